// What mount checks beyond replaying the log, and what fsck --repair puts
// right. The extents are the authority over the reverse map: files read
// and write through them, so a disagreeing reverse map is rebuilt from them
// at mount (lossless). Extents pointing outside the device or over metadata
// are never applied; dropping them loses data, so mount goes read-only
// naming the files and only fsck --repair drops them.
#include <map>

#include "fs/filesystem.h"

namespace daxguard::fs {
namespace {

std::string Summary(const ReverseMapDiff& d) {
  std::string s = "stored reverse map disagreed with the extents (" +
                  std::to_string(d.only_in_extents.size()) + " extent run(s) missing from it, " +
                  std::to_string(d.only_in_reverse_map.size()) + " run(s) no extent has";
  if (d.metadata_differs) s += ", metadata owners wrong";
  if (!d.bad_records.empty()) s += ", " + std::to_string(d.bad_records.size()) + " unusable record(s)";
  return s + "): rebuilt from the extents";
}

}  // namespace

Status Filesystem::CheckAtMount() {
  for (const State::BadExtent& b : state_.bad_extents()) GoReadOnly(state_.Describe(b) + " (run daxguard fsck --repair)");
  // Format 1 stored no reverse map: built from the extents. Older formats
  // are upgraded by a fresh snapshot.
  bool map_stored = log_.super().version >= kReverseMapVersion;
  ReverseMapDiff d = state_.ReverseMapSuspect() ? state_.CheckReverseMap() : ReverseMapDiff{};
  if (!d.empty()) {
    if (map_stored) mount_report_.repaired.push_back(Summary(d));
    state_.RebuildReverseMap();
  }
  bool old_format = log_.super().version < kFormatVersion;
  if ((old_format || !d.empty()) && Writable().ok()) return log_.Compact(state_.Snapshot());
  return Status::Ok();
}

Status Filesystem::RepairForFsck() {
  OpGuard g(this);
  if (removed_) return Writable();
  // fsck named every loss before this runs: what survived is taken as the
  // filesystem, written out afresh below.
  read_only_why_.clear();
  state_.ForgetLosses();
  state_.RebuildReverseMap();
  ReplayReport scrub;
  DG_RETURN_IF_ERROR(log_.Scrub(&scrub));
  std::vector<Op> ops;
  std::map<uint64_t, uint32_t> links = {{kRootIno, 2}};
  for (const auto& [ino, in] : state_.inodes())
    for (const auto& [name, child] : in->entries) {
      const Inode* c = state_.Find(child);
      if (!c) {
        ops.push_back(Op::Unlink(ino, name));  // dangling entry
        continue;
      }
      links[child] += c->is_dir() ? 2 : 1;
      if (c->is_dir()) links[ino]++;
    }
  for (const auto& [ino, in] : state_.inodes()) {
    uint32_t want = links.count(ino) ? links[ino] : 0;
    if (in->attr.nlink == want) continue;
    Attr a = in->attr;
    a.nlink = want;
    ops.push_back(Op::SetInode(ino, a));
  }
  DG_RETURN_IF_ERROR(Commit(ops));
  // Inodes left with no link are freed now.
  ops.clear();
  for (const auto& [ino, in] : state_.inodes())
    if (in->attr.nlink == 0) DropIfUnused(in.get(), &ops);
  DG_RETURN_IF_ERROR(Commit(std::move(ops)));
  // A fresh snapshot: no hole, no dropped extent, the reverse map stored as
  // the extents give it.
  return log_.Compact(state_.Snapshot());
}

}  // namespace daxguard::fs
