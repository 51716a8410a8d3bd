// The stored reverse map checked against the extents, and rebuilt from
// them. The extents are the authority: files read and write through them,
// and the reverse map is what they imply.
#include <algorithm>
#include <map>
#include <tuple>

#include "fs/state.h"

namespace daxguard::fs {
namespace {

bool Continues(const Mapping& a, const Mapping& b) {
  return a.ino == b.ino && a.fblk + a.len == b.fblk && a.pblk + a.len == b.pblk;
}

// Sorted by (ino, fblk, pblk) and joined where file and device blocks both
// continue: the same set of block mappings always gives the same list.
void Canonicalize(std::vector<Mapping>* v) {
  auto key = [](const Mapping& m) { return std::tie(m.ino, m.fblk, m.pblk); };
  if (!std::is_sorted(v->begin(), v->end(), [&](const Mapping& a, const Mapping& b) { return key(a) < key(b); }))
    std::sort(v->begin(), v->end(), [&](const Mapping& a, const Mapping& b) { return key(a) < key(b); });
  size_t out = 0;
  for (size_t i = 0; i < v->size(); ++i) {
    if (out > 0 && Continues((*v)[out - 1], (*v)[i]))
      (*v)[out - 1].len += (*v)[i].len;
    else
      (*v)[out++] = (*v)[i];
  }
  v->resize(out);
}

// Mappings share blocks only along one diagonal (pblk - fblk) of one file:
// grouped so, each side is a set of file-block intervals.
using Diagonals = std::map<std::pair<uint64_t, uint64_t>, IntervalSet>;

Diagonals ByDiagonal(const std::vector<Mapping>& v) {
  Diagonals d;
  for (const Mapping& m : v) d[{m.ino, m.pblk - m.fblk}].Add(m.fblk, m.len);
  return d;
}

// The block mappings of `a` that `b` lacks.
std::vector<Mapping> Missing(const Diagonals& a, const Diagonals& b) {
  std::vector<Mapping> out;
  for (const auto& [key, set] : a) {
    IntervalSet rest = set;
    if (auto it = b.find(key); it != b.end())
      for (const auto& [s, l] : it->second.intervals()) rest.Remove(s, l);
    for (const auto& [s, l] : rest.intervals()) out.push_back({key.first, s, s + key.second, l});
  }
  return out;
}

}  // namespace

bool State::ReverseMapSuspect() const {
  return owner_unbacked_ || stored_owner_blocks_ != stored_extent_blocks_ || !unapplied_records_.empty() ||
         meta_owners_ != MetadataRuns(geo_);
}

ReverseMapDiff State::CheckReverseMap() const {
  std::vector<Mapping> extents, rmap;
  for (const auto& [ino, in] : inodes_)
    for (const auto& [fblk, e] : in->extents) extents.push_back({ino, fblk, e.pblk, e.len});
  for (const auto& [pblk, run] : space_.runs())
    for (const Owner& o : run.owners) rmap.push_back({o.ino, o.fblk, pblk, run.len});
  Canonicalize(&extents);
  Canonicalize(&rmap);
  ReverseMapDiff d;
  d.metadata_differs = meta_owners_ != MetadataRuns(geo_);
  d.bad_records = unapplied_records_;
  if (extents == rmap) return d;
  Diagonals e = ByDiagonal(extents), r = ByDiagonal(rmap);
  d.only_in_extents = Missing(e, r);
  d.only_in_reverse_map = Missing(r, e);
  return d;
}

SpaceMap State::SpaceFromExtents() const {
  SpaceMap fresh(geo_);
  for (const auto& [ino, in] : inodes_)
    for (const auto& [fblk, e] : in->extents) fresh.AddOwner(e.pblk, e.len, {ino, fblk});
  // Quarantine holds free blocks only; a file's poisoned block is its damage.
  for (const auto& [qs, ql] : space_.quarantine().intervals()) {
    uint64_t pos = qs;
    for (const OwnedRun& r : fresh.Lookup(qs, ql)) {
      if (r.pblk > pos) fresh.SetQuarantine(pos, r.pblk - pos, true);
      pos = r.pblk + r.len;
    }
    if (pos < qs + ql) fresh.SetQuarantine(pos, qs + ql - pos, true);
  }
  return fresh;
}

void State::RebuildReverseMap() {
  space_ = SpaceFromExtents();
  meta_owners_ = MetadataRuns(geo_);
  unapplied_records_.clear();
  stored_extent_blocks_ = stored_owner_blocks_ = 0;
  owner_unbacked_ = false;
}

std::string State::Describe(const BadExtent& b) const {
  std::string path = PathOf(b.at.ino);
  return "inode " + std::to_string(b.at.ino) + (path.empty() ? "" : " (" + path + ")") + ": extent at file block " +
         std::to_string(b.at.fblk) + " -> device blocks " + std::to_string(b.at.pblk) + ".." +
         std::to_string(b.at.pblk + b.at.len - 1) + " " + b.why + "; not applied";
}

void State::AcceptLosses(const std::vector<std::string>& unknown) {
  bad_extents_.clear();
  unrepaired_.clear();
  for (const std::string& what : unknown) (void)Apply(Op::MetaLost(what + " (accepted by fsck --repair)"));
}

}  // namespace daxguard::fs
