#include "fs/space_map.h"

#include <algorithm>

namespace daxguard::fs {

inline constexpr uint64_t kHugeBlocks = (2ull << 20) / kBlockSize;

SpaceMap::SpaceMap(const Geometry& g) : geo_(g) {
  free_.Add(0, g.blocks);
  for (int c = 0; c < 2; ++c) free_.Remove(g.SuperBlock(c), g.AreaStart(c) + g.meta_blocks - g.SuperBlock(c));
}

void SpaceMap::SplitAt(uint64_t p) {
  auto it = runs_.upper_bound(p);
  if (it == runs_.begin()) return;
  --it;
  OwnedRun& r = it->second;
  if (p <= r.pblk || p >= r.pblk + r.len) return;
  OwnedRun tail{p, r.pblk + r.len - p, r.owners};
  for (Owner& o : tail.owners) o.fblk += p - r.pblk;
  r.len = p - r.pblk;
  runs_.emplace(p, std::move(tail));
}

bool SpaceMap::Continues(const OwnedRun& a, const OwnedRun& b) const {
  if (a.pblk + a.len != b.pblk || a.owners.size() != b.owners.size()) return false;
  for (size_t i = 0; i < a.owners.size(); ++i)
    if (a.owners[i].ino != b.owners[i].ino || a.owners[i].fblk + a.len != b.owners[i].fblk) return false;
  return true;
}

// Joins runs that continue each other across [lo, hi], keeping the map small.
void SpaceMap::MergeAround(uint64_t lo) {
  auto it = runs_.upper_bound(lo);
  if (it != runs_.begin()) --it;
  if (it != runs_.begin()) --it;
  while (it != runs_.end()) {
    auto next = std::next(it);
    if (next == runs_.end() || it->first > lo + 1) break;
    if (Continues(it->second, next->second)) {
      it->second.len += next->second.len;
      runs_.erase(next);
    } else {
      it = next;
    }
  }
}

void SpaceMap::AddOwner(uint64_t pblk, uint64_t len, Owner o) {
  SplitAt(pblk);
  SplitAt(pblk + len);
  uint64_t pos = pblk, end = pblk + len;
  auto it = runs_.lower_bound(pblk);
  while (pos < end) {
    uint64_t gap_end = (it == runs_.end() || it->first >= end) ? end : it->first;
    if (pos < gap_end) {  // unowned until now: taken from free space
      runs_.emplace(pos, OwnedRun{pos, gap_end - pos, {{o.ino, o.fblk + (pos - pblk)}}});
      free_.Remove(pos, gap_end - pos);
      pos = gap_end;
      continue;
    }
    OwnedRun& r = it->second;
    Owner add{o.ino, o.fblk + (r.pblk - pblk)};
    // An owner is listed once: a damaged log may map the same blocks twice.
    auto at = std::lower_bound(r.owners.begin(), r.owners.end(), add);
    if (at == r.owners.end() || *at != add) r.owners.insert(at, add);
    pos = r.pblk + r.len;
    ++it;
  }
  MergeAround(pblk);
  MergeAround(end);
}

bool SpaceMap::LoadRun(uint64_t pblk, uint64_t len, std::vector<Owner> owners) {
  std::sort(owners.begin(), owners.end());
  owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
  bool after_all = runs_.empty() || runs_.rbegin()->first + runs_.rbegin()->second.len <= pblk;
  if (after_all && !owners.empty() && free_.Contains(pblk, len)) {
    runs_.emplace_hint(runs_.end(), pblk, OwnedRun{pblk, len, std::move(owners)});
    free_.Remove(pblk, len);
    return true;
  }
  for (const Owner& o : owners) AddOwner(pblk, len, o);
  return false;
}

void SpaceMap::RemoveOwner(uint64_t pblk, uint64_t len, Owner o) {
  SplitAt(pblk);
  SplitAt(pblk + len);
  for (auto it = runs_.lower_bound(pblk); it != runs_.end() && it->first < pblk + len;) {
    OwnedRun& r = it->second;
    Owner gone{o.ino, o.fblk + (r.pblk - pblk)};
    auto at = std::find(r.owners.begin(), r.owners.end(), gone);
    if (at != r.owners.end()) r.owners.erase(at);
    if (!r.owners.empty()) {
      ++it;
      continue;
    }
    // Last owner gone: free, unless the blocks are quarantined.
    free_.Add(r.pblk, r.len);
    for (const auto& [qs, ql] : quarantine_.Overlapping(r.pblk, r.len)) free_.Remove(qs, ql);
    it = runs_.erase(it);
  }
  MergeAround(pblk);
  MergeAround(pblk + len);
}

std::vector<OwnedRun> SpaceMap::Lookup(uint64_t pblk, uint64_t len) const {
  std::vector<OwnedRun> out;
  uint64_t end = pblk + len;
  auto it = runs_.upper_bound(pblk);
  if (it != runs_.begin()) --it;
  for (; it != runs_.end() && it->first < end; ++it) {
    const OwnedRun& r = it->second;
    uint64_t lo = std::max(r.pblk, pblk), hi = std::min(r.pblk + r.len, end);
    if (lo >= hi) continue;
    OwnedRun piece{lo, hi - lo, r.owners};
    for (Owner& o : piece.owners) o.fblk += lo - r.pblk;
    out.push_back(std::move(piece));
  }
  return out;
}

size_t SpaceMap::RefCount(uint64_t pblk) const {
  auto runs = Lookup(pblk, 1);
  return runs.empty() ? 0 : runs[0].owners.size();
}

// On every in-place write: walks the runs without copying them.
bool SpaceMap::Exclusive(uint64_t pblk, uint64_t len) const {
  uint64_t pos = pblk, end = pblk + len;  // [pblk, pos) is known to be exclusive
  auto it = runs_.upper_bound(pblk);
  if (it != runs_.begin()) --it;
  for (; pos < end && it != runs_.end(); ++it) {
    const OwnedRun& r = it->second;
    if (r.pblk + r.len <= pos) continue;  // ends before the range
    if (r.pblk > pos || r.owners.size() != 1) return false;  // unowned gap, or shared
    pos = r.pblk + r.len;
  }
  return pos >= end;
}

void SpaceMap::SetQuarantine(uint64_t pblk, uint64_t len, bool on) {
  if (on) {
    quarantine_.Add(pblk, len);
    free_.Remove(pblk, len);
    return;
  }
  quarantine_.Remove(pblk, len);
  uint64_t pos = pblk;
  for (const OwnedRun& r : Lookup(pblk, len)) {
    if (r.pblk > pos) free_.Add(pos, r.pblk - pos);
    pos = r.pblk + r.len;
  }
  if (pos < pblk + len) free_.Add(pos, pblk + len - pos);
}

std::optional<IntervalSet::Interval> SpaceMap::FindFree(uint64_t want, uint64_t goal) const {
  const auto& iv = free_.intervals();
  if (iv.empty() || want == 0) return std::nullopt;
  if (want >= kHugeBlocks) {
    for (const auto& [s, l] : iv) {
      uint64_t a = AlignUp(s, kHugeBlocks);
      if (a + kHugeBlocks <= s + l) return IntervalSet::Interval{a, std::min(want, s + l - a)};
    }
  }
  auto it = iv.upper_bound(goal);
  if (it != iv.begin() && std::prev(it)->first + std::prev(it)->second > goal) {
    --it;
    return IntervalSet::Interval{goal, std::min(want, it->first + it->second - goal)};
  }
  if (it == iv.end()) it = iv.begin();
  return IntervalSet::Interval{it->first, std::min(want, it->second)};
}

}  // namespace daxguard::fs
