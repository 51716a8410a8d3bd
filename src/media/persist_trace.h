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

namespace daxguard::media {

struct TraceEvent {
  enum class Kind : uint8_t { kStore, kWriteBack, kFence, kMarker };
  Kind kind{};
  uint64_t off = 0;    // store, write-back: device bytes; marker: its value
  uint64_t len = 0;    // store, write-back
  uint64_t bytes = 0;  // store: where its bytes start in bytes()
};

class PersistTrace {
 public:
  // `image`: the device's bytes when tracking starts (durable, nothing in flight).
  explicit PersistTrace(std::span<const uint8_t> image);

  // What the device reports. `view` is the device's bytes (the volatile
  // view), to find stores made around the device's calls.
  void Store(uint64_t off, const void* src, uint64_t len);
  void WriteBack(uint64_t off, uint64_t len, const uint8_t* view);
  void Fence(const uint8_t* view);
  // What the workload reports: a point its caller could observe.
  void Mark(uint64_t value);

  const std::vector<uint8_t>& initial() const { return initial_; }
  const std::vector<TraceEvent>& events() const { return events_; }
  const uint8_t* bytes(const TraceEvent& e) const { return pool_.data() + e.bytes; }
  uint64_t size() const { return initial_.size(); }

 private:
  void StoreLocked(uint64_t off, const uint8_t* src, uint64_t len);
  // Records what differs between the view and the trace's bytes in range.
  void DiscoverLocked(uint64_t off, uint64_t len, const uint8_t* view);

  std::mutex mu_;
  std::vector<uint8_t> initial_;
  std::vector<uint8_t> shadow_;  // the device's bytes as the trace tells them
  std::vector<uint8_t> pool_;    // every store's bytes
  std::vector<TraceEvent> events_;
};

}  // namespace daxguard::media
