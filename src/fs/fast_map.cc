#include "fs/fast_map.h"

#include <algorithm>

#include "common/units.h"

namespace daxguard::fs {

void FastMap::Add(uint64_t start, uint64_t end, uint64_t dev, bool writable, unsigned* n) {
  if (start >= end || *n >= kMaxRuns) return;
  Run& r = runs_[(*n)++];
  r.start.store(start, std::memory_order_relaxed);
  r.end.store(end, std::memory_order_relaxed);
  r.dev.store(dev | (writable ? kWritable : 0), std::memory_order_relaxed);
}

void FastMap::VouchAround(unsigned n, uint64_t off, const dax::CleanPath& clean) {
  uint64_t lo = 0, hi = 0, epoch = dax::CleanPath::kNoEpoch;
  unsigned i = Search(n, off);
  if (i < n && runs_[i].start.load(std::memory_order_relaxed) <= off) {
    const Run& r = runs_[i];
    uint64_t start = r.start.load(std::memory_order_relaxed), end = r.end.load(std::memory_order_relaxed);
    uint64_t window = AlignDown(off, kVouchBytes);
    lo = std::max(start, window);
    hi = std::min(end, window + kVouchBytes);
    epoch = clean.Vouch((r.dev.load(std::memory_order_relaxed) & ~kWritable) + (lo - start), hi - lo);
  }
  vouch_lo_.store(lo, std::memory_order_relaxed);
  vouch_hi_.store(hi, std::memory_order_relaxed);
  vouch_epoch_.store(epoch, std::memory_order_relaxed);
}

void FastMap::Fill(uint64_t gen, const Inode& in, const SpaceMap& space, uint64_t off, bool writable,
                   const dax::CleanPath& clean) {
  uint64_t seq = seq_.load(std::memory_order_relaxed);
  seq_.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);  // lookups see it odd before any run changes
  gen_.store(gen, std::memory_order_relaxed);
  // Start a quarter of the map before the extent holding `off`, so access
  // around it (back and forth) stays within the map.
  auto it = in.extents.upper_bound(off / kBlockSize);
  for (unsigned back = 0; it != in.extents.begin() && back < kMaxRuns / 4; ++back) --it;
  unsigned n = 0;
  uint64_t size = in.attr.size;
  for (; it != in.extents.end() && n < kMaxRuns && it->first * kBlockSize < size; ++it) {
    const Extent& e = it->second;
    if (e.unwritten) continue;
    // Pieces of the extent with one sharing state, less their damage.
    for (const OwnedRun& r : space.Lookup(e.pblk, e.len)) {
      uint64_t lo = (it->first + (r.pblk - e.pblk)) * kBlockSize;
      if (lo >= size) break;
      uint64_t hi = std::min(lo + r.len * kBlockSize, size);
      bool own = writable && r.owners.size() == 1;
      uint64_t at = lo;
      for (const auto& [d, dl] : in.damage.Overlapping(lo, hi - lo)) {
        Add(at, d, r.pblk * kBlockSize + (at - lo), own, &n);
        at = d + dl;
      }
      Add(at, hi, r.pblk * kBlockSize + (at - lo), own, &n);
    }
  }
  VouchAround(n, off, clean);
  // Empty the slots past the new count that the old one used: a lookup
  // may try any slot before it reads the count.
  for (unsigned k = n, old = count_.load(std::memory_order_relaxed); k < old; ++k) {
    runs_[k].start.store(0, std::memory_order_relaxed);
    runs_[k].end.store(0, std::memory_order_relaxed);
  }
  count_.store(n, std::memory_order_relaxed);
  seq_.store(seq + 2, std::memory_order_release);
}

}  // namespace daxguard::fs
