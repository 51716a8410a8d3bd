#include "fs/fast_map.h"

#include <algorithm>

namespace daxguard::fs {

void FastMap::Add(uint64_t start, uint64_t end, uint64_t dev, bool writable, unsigned* n) {
  if (start >= end || *n >= kMaxRuns) return;
  Run& r = runs_[(*n)++];
  r.start.store(start, std::memory_order_relaxed);
  r.end.store(end, std::memory_order_relaxed);
  r.dev.store(dev | (writable ? kWritable : 0), std::memory_order_relaxed);
}

void FastMap::Fill(uint64_t gen, const Inode& in, const SpaceMap& space, uint64_t off, bool writable) {
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
  count_.store(n, std::memory_order_relaxed);
  seq_.store(seq + 2, std::memory_order_release);
}

}  // namespace daxguard::fs
