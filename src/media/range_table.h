// RangeTable: a sorted list of disjoint [start, start+len) ranges, each with
// 8 bits of flags, kept inside a shared mapping of the device file so every
// process sees the same table.
//
// It serves both the media poison list (64-byte line units) and the badblocks
// list (512-byte sector units). Unlike Linux's badblocks it has no fixed
// entry limit: its capacity is sized from the device so it can never fill.
//
// Readers never block and never take a lock: a sequence counter (seqlock)
// tells them to retry if a writer changed the table under them. Writers must
// hold the device's write lock. A counter left odd by a writer that died
// does not hold readers forever: after kStuckWriterMs they call the
// stuck-writer hook (the device takes its write lock and repairs). A page filter (one bit per 4 KiB of device)
// lets the data path prove "no ranges here" with a few word loads, which is
// what keeps reads fast when millions of ranges live elsewhere.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "common/status.h"

namespace daxguard::media {

struct Range {
  uint64_t start = 0;
  uint64_t len = 0;
  uint8_t flags = 0;
  uint64_t end() const { return start + len; }
  bool operator==(const Range&) const = default;
};

// On-device header of a table; entries follow it directly.
struct RangeTableHeader {
  uint64_t seq;       // odd while a writer is editing
  uint64_t count;
  uint64_t capacity;
  uint64_t reserved[5];
};
static_assert(sizeof(RangeTableHeader) == 64);

class RangeTable {
 public:
  static constexpr uint64_t kEntryBytes = 16;
  static constexpr uint64_t kMaxLen = (1ull << 56) - 1;
  static constexpr int kStuckWriterMs = 50;

  // `units_per_bit` (a power of two): how many table units one filter bit
  // covers. With 1 the filter is exact: a bitmap of every covered unit.
  // `filter` holds `filter_bits` rounded up to whole 64-bit words.
  RangeTable(void* header, uint64_t* filter, uint64_t filter_bits, uint64_t units_per_bit);
  static void Format(void* header, uint64_t capacity);
  static uint64_t BytesFor(uint64_t capacity) {
    return sizeof(RangeTableHeader) + capacity * kEntryBytes;
  }
  // Called by a reader that found an edit open for kStuckWriterMs; it must
  // return once no dead writer's edit is open any more.
  void SetStuckWriterHook(std::function<void()> hook) { stuck_writer_ = std::move(hook); }

  // Checks a table read from a device file before anything trusts it, with
  // no writer running: the capacity, the count, every listed entry (nonzero,
  // within [0, limit) units, flags at most max_flags, sorted and disjoint),
  // and that the filter marks each one. With `torn` (a writer died mid-edit;
  // Repair comes next) the disorder and blank slots an edit leaves pass, and
  // the filter is not checked (Repair rebuilds it). Says what is wrong.
  Status Validate(uint64_t capacity, uint64_t limit, uint8_t max_flags, bool torn) const;
  // Whether a writer's edit is open (or was left open by one that died).
  bool EditOpen() const {
    return std::atomic_ref<uint64_t>(hdr_->seq).load(std::memory_order_acquire) & 1;
  }

  // --- readers: lock-free, safe against concurrent writers in any process.
  // Cheap filter test: false means certainly no range meets [start, start+len).
  // A range within one filter word, the data path's case, stays inline.
  bool MayOverlap(uint64_t start, uint64_t len) const {
    uint64_t first = start >> unit_shift_, last = (start + len - 1) >> unit_shift_;
    if (len && first / 64 == last / 64 && last < filter_bits_ && start + len > start) [[likely]] {
      uint64_t mask = (~0ull >> (63 - (last - first))) << (first % 64);
      return LoadFilterWord(first / 64) & mask;
    }
    return MayOverlapSlow(start, len);
  }
  // The same test by filter bits: false means no range meets the units
  // that bits [first, last] cover.
  bool MayOverlapBits(uint64_t first, uint64_t last) const {
    if (first / 64 == last / 64 && last < filter_bits_) [[likely]] {
      uint64_t mask = (~0ull >> (63 - (last - first))) << (first % 64);
      return LoadFilterWord(first / 64) & mask;
    }
    return MayOverlapSlow(first << unit_shift_, (last - first + 1) << unit_shift_);
  }
  // The first unit in [start, start+len) whose filter bit is set; with an
  // exact filter, the first covered unit.
  std::optional<uint64_t> FirstMarked(uint64_t start, uint64_t len) const;
  std::optional<Range> FirstOverlap(uint64_t start, uint64_t len) const;
  std::vector<Range> Overlapping(uint64_t start, uint64_t len) const;
  std::vector<Range> All() const { return Overlapping(0, UINT64_MAX); }
  uint64_t Count() const;

  // --- writers: the caller holds the device write lock.
  // Covers every given range (sorted, disjoint). Parts already covered keep
  // their flags; only newly covered parts get `flags` and are reported.
  Status Add(const std::vector<Range>& ranges, uint8_t flags, std::vector<Range>* added);
  // Uncovers [start, start+len). With `only_flags`, only ranges carrying
  // exactly those flags are touched. Reports what was removed.
  void Remove(uint64_t start, uint64_t len, std::optional<uint8_t> only_flags,
              std::vector<Range>* removed);
  // Sets the flags of every covered unit inside [start, start+len).
  void SetFlags(uint64_t start, uint64_t len, uint8_t flags);
  // Called after a writer died mid-edit: restores order and the filter.
  void Repair();

 private:
  struct Window {
    uint64_t lo, hi;  // entry indexes replaced
  };
  uint64_t LowerBound(uint64_t n, uint64_t unit) const;  // first entry with end > unit
  Range Load(uint64_t i) const;
  void Store(uint64_t i, const Range& r);
  Window Touching(uint64_t start, uint64_t end) const;
  Status Replace(Window w, const std::vector<Range>& with);
  void BeginWrite();
  void EndWrite();
  void FillFilter(uint64_t start, uint64_t end);
  void RefreshFilter(uint64_t start, uint64_t end);
  bool MayOverlapSlow(uint64_t start, uint64_t len) const;
  bool FilterCovers(uint64_t start, uint64_t end) const;
  // Runs `read` until it completes without a writer intervening.
  template <typename F>
  auto SeqRead(F read) const;
  // A reader that finds a filter bit clear goes on without the seqlock, so the
  // bit itself carries the ordering: a writer clears it (release) only after
  // its earlier stores, such as the data of a repaired page, are in place, and
  // a reader that sees it clear (acquire) sees those stores too.
  uint64_t LoadFilterWord(uint64_t w) const {
    return std::atomic_ref<uint64_t>(filter_[w]).load(std::memory_order_acquire);
  }

  RangeTableHeader* hdr_;
  uint64_t* entries_;
  uint64_t* filter_;
  uint64_t filter_bits_;
  uint64_t units_per_bit_;
  unsigned unit_shift_;
  std::function<void()> stuck_writer_;
};

}  // namespace daxguard::media
