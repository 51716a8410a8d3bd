// FastMap: a file handle's copy of where its file's clean bytes lie on the
// device, so that reads and writes there can skip the filesystem lock.
//
// A run is file bytes mapped to written device blocks, below the file size,
// with no recorded damage; runs whose blocks the file alone owns may also
// be written in place. The map is filled under the filesystem lock from the
// state of one data generation and answers only while that generation is
// current (every change of extents, size, damage or sharing starts a new
// one). Another thread may refill it while a lookup runs, so its words are
// atomics read under a seqlock: a lookup that met a refill misses.
#pragma once

#include <atomic>
#include <cstdint>

#include "dax/clean_path.h"
#include "fs/space_map.h"
#include "fs/state.h"

namespace daxguard::fs {

class FastMap {
 public:
  static constexpr unsigned kMaxRuns = 64;

  // The device offset of file bytes [off, off+len) if they lie in one run
  // (a writable one for `write`) and the map is of generation `gen`.
  // *vouched: the device's clean epoch if the bytes lie in the window the
  // map vouched for when filled (see dax::CleanPath), else kNoEpoch.
  bool Find(uint64_t gen, uint64_t off, uint64_t len, bool write, uint64_t* dev_off, uint64_t* vouched) const {
    uint64_t seq = seq_.load(std::memory_order_acquire);
    // The run found last first. Slots past the count are empty, so the
    // hint needs no bounds check of its own.
    unsigned hint = last_.load(std::memory_order_relaxed), i = hint;
    uint64_t start = runs_[i].start.load(std::memory_order_relaxed), end = runs_[i].end.load(std::memory_order_relaxed);
    if (off - start >= end - start) [[unlikely]] {  // off outside [start, end)
      unsigned count = count_.load(std::memory_order_relaxed);
      i = Search(count, off);
      if (i >= count) return false;
      start = runs_[i].start.load(std::memory_order_relaxed);
      end = runs_[i].end.load(std::memory_order_relaxed);
      if (off - start >= end - start) return false;
    }
    uint64_t dev = runs_[i].dev.load(std::memory_order_relaxed);
    uint64_t filled_gen = gen_.load(std::memory_order_relaxed);
    uint64_t vlo = vouch_lo_.load(std::memory_order_relaxed), vhi = vouch_hi_.load(std::memory_order_relaxed);
    uint64_t epoch = vouch_epoch_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    // Refilled meanwhile, or of another generation.
    if (seq_.load(std::memory_order_relaxed) != seq || (seq & 1) || filled_gen != gen) return false;
    if (len > end - off || (write && !(dev & kWritable))) return false;
    *dev_off = (dev & ~kWritable) + (off - start);
    *vouched = off - vlo < vhi - vlo && len <= vhi - off ? epoch : dax::CleanPath::kNoEpoch;
    if (i != hint) last_.store(i, std::memory_order_relaxed);
    return true;
  }

  // Whether the map is of generation `gen` and its runs begin at or
  // before `off` and end after it.
  bool Spans(uint64_t gen, uint64_t off) const {
    unsigned n = count_.load(std::memory_order_relaxed);
    return gen_.load(std::memory_order_relaxed) == gen && n > 0 &&
           runs_[0].start.load(std::memory_order_relaxed) <= off &&
           off < runs_[n - 1].end.load(std::memory_order_relaxed);
  }

  // Refills the map (caller holds the filesystem lock) with up to kMaxRuns
  // runs of `in` around file offset `off`, as of generation `gen`.
  // `writable`: whether the filesystem takes writes at all. `clean`
  // vouches for the kVouchBytes-aligned window holding `off`, within its run.
  void Fill(uint64_t gen, const Inode& in, const SpaceMap& space, uint64_t off, bool writable,
            const dax::CleanPath& clean);
  // Vouching reads a filter bit per device sector: the window's bound keeps
  // it to about 2,300 words (a microsecond or two) per refill.
  static constexpr uint64_t kVouchBytes = 64ull << 20;

 private:
  // Device offsets are multiples of 64 (damage is line-precise), so the
  // low bit is free to say "writable in place".
  static constexpr uint64_t kWritable = 1;
  struct Run {
    std::atomic<uint64_t> start{0}, end{0};  // file bytes
    std::atomic<uint64_t> dev{0};            // device offset of start | kWritable
  };
  void Add(uint64_t start, uint64_t end, uint64_t dev, bool writable, unsigned* n);
  void VouchAround(unsigned n, uint64_t off, const dax::CleanPath& clean);
  // The first of runs_[0, count) that ends after off.
  unsigned Search(unsigned count, uint64_t off) const {
    unsigned lo = 0, hi = count;
    while (lo < hi) {
      unsigned mid = (lo + hi) / 2;
      if (runs_[mid].end.load(std::memory_order_relaxed) <= off)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  }

  std::atomic<uint64_t> seq_{0};  // odd while being filled
  std::atomic<uint64_t> gen_{0};  // the data generation filled from (0: none)
  std::atomic<unsigned> count_{0};
  // File bytes [vouch_lo_, vouch_hi_), within one run, were clean at
  // vouch_epoch_ (kNoEpoch: none).
  std::atomic<uint64_t> vouch_lo_{0}, vouch_hi_{0};
  std::atomic<uint64_t> vouch_epoch_{dax::CleanPath::kNoEpoch};
  mutable std::atomic<unsigned> last_{0};  // the run found last (< kMaxRuns): the next lookup tries it first
  Run runs_[kMaxRuns];
};

}  // namespace daxguard::fs
