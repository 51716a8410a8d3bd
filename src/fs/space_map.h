// SpaceMap: who owns every device block. It is the reverse map (each run of
// blocks lists all its owners: file and file block), the reference counts
// (an owner count above one means the run is shared by reflink), the free
// space and the quarantine of poisoned free blocks, all kept in step.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "fs/format.h"
#include "fs/interval_set.h"
#include "fs/ops.h"

namespace daxguard::fs {

// A run of device blocks sharing one owner list.
struct OwnedRun {
  uint64_t pblk = 0;
  uint64_t len = 0;
  std::vector<Owner> owners;
};

class SpaceMap {
 public:
  explicit SpaceMap(const Geometry& g);

  void AddOwner(uint64_t pblk, uint64_t len, Owner o);
  void RemoveOwner(uint64_t pblk, uint64_t len, Owner o);
  // A run as stored on the device (snapshot): appended in one step when it
  // follows every run so far over free blocks (returns true), else added
  // owner by owner (false: it met runs loaded before).
  bool LoadRun(uint64_t pblk, uint64_t len, std::vector<Owner> owners);
  // The owned runs meeting [pblk, pblk+len), clipped, owners adjusted.
  std::vector<OwnedRun> Lookup(uint64_t pblk, uint64_t len) const;
  size_t RefCount(uint64_t pblk) const;
  // Whether every block of [pblk, pblk+len) has exactly one owner.
  bool Exclusive(uint64_t pblk, uint64_t len) const;

  void SetQuarantine(uint64_t pblk, uint64_t len, bool on);
  const IntervalSet& quarantine() const { return quarantine_; }
  const IntervalSet& free_space() const { return free_; }
  bool IsFree(uint64_t pblk, uint64_t len) const { return free_.Contains(pblk, len); }

  // A free run of up to `want` blocks: a 2 MiB-aligned one for large
  // requests when there is one, else the first fit at or after `goal`.
  std::optional<IntervalSet::Interval> FindFree(uint64_t want, uint64_t goal) const;

  const std::map<uint64_t, OwnedRun>& runs() const { return runs_; }

 private:
  void SplitAt(uint64_t pblk);
  void MergeAround(uint64_t pblk);
  bool Continues(const OwnedRun& a, const OwnedRun& b) const;

  Geometry geo_;
  std::map<uint64_t, OwnedRun> runs_;  // keyed by pblk
  IntervalSet free_;
  IntervalSet quarantine_;
};

}  // namespace daxguard::fs
