// PersistTrace: what a power failure could keep, recorded. A device in
// tracked mode (PmemDevice::Track) reports here every store it takes, every
// write-back and fence, in order; the workload adds markers (an operation
// returned, an fsync returned). Crash states are built from it offline
// (media/crash_states.h).
//
// Stores that bypass the device's calls (copies into memory the device
// handed out, stores through a file mapping) are found by comparing the
// device's bytes with the bytes the trace accounts for: over a range at
// its write-back, over the whole device at each fence. Such a store shows
// up just before the write-back or fence that found it, with its bytes as
// they were then (an earlier value it overwrote before that is not seen).
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "common/units.h"

namespace daxguard::media {

// The media's error state, which its firmware keeps through a power failure:
// poisoned 64-byte lines, and known-bad and untold 512-byte sectors, as runs.
struct MediaErrorState {
  std::vector<ByteRange> poison_lines, known_sectors, untold_sectors;
  bool operator==(const MediaErrorState&) const = default;
};

struct TraceEvent {
  // kErrors: the media's error state changed (poison found or cleared, a
  // known error recorded or forgotten); it is durable at once.
  enum class Kind : uint8_t { kStore, kWriteBack, kFence, kMarker, kErrors };
  Kind kind{};
  uint64_t off = 0;    // store, write-back: device bytes; marker: its value; errors: its state's number
  uint64_t len = 0;    // store, write-back
  uint64_t bytes = 0;  // store: where its bytes start in bytes()
};

class PersistTrace {
 public:
  // `image`: the device's bytes when tracking starts (durable, nothing in
  // flight), and `errors` its error state then.
  explicit PersistTrace(std::span<const uint8_t> image, MediaErrorState errors = {});

  // What the device reports. `view` is the device's bytes (the volatile
  // view), to find stores made around the device's calls.
  void Store(uint64_t off, const void* src, uint64_t len);
  void WriteBack(uint64_t off, uint64_t len, const uint8_t* view);
  void Fence(const uint8_t* view);
  // The error state now; recorded only when it differs from the last.
  void Errors(MediaErrorState state);
  // What the workload reports: a point its caller could observe.
  void Mark(uint64_t value);

  const std::vector<uint8_t>& initial() const { return initial_; }
  const std::vector<TraceEvent>& events() const { return events_; }
  const uint8_t* bytes(const TraceEvent& e) const { return pool_.data() + e.bytes; }
  uint64_t size() const { return initial_.size(); }
  // Error state number n: 0 is the initial one, n the one the n-th kErrors event set.
  const MediaErrorState& error_state(uint64_t n) const { return errors_.at(n); }

 private:
  void StoreLocked(uint64_t off, const uint8_t* src, uint64_t len);
  // Records what differs between the view and the trace's bytes in range.
  void DiscoverLocked(uint64_t off, uint64_t len, const uint8_t* view);

  std::mutex mu_;
  std::vector<uint8_t> initial_;
  std::vector<uint8_t> shadow_;  // the device's bytes as the trace tells them
  std::vector<uint8_t> pool_;    // every store's bytes
  std::vector<TraceEvent> events_;
  std::vector<MediaErrorState> errors_;
};

}  // namespace daxguard::media
