// What mount checks beyond replaying the log, and what fsck --repair puts
// right. The extents are the authority over the reverse map: files read
// and write through them, so a disagreeing reverse map is rebuilt from them
// at mount (lossless). Extents pointing outside the device or over metadata
// are never applied; dropping them loses data, so mount goes read-only
// naming the files and only fsck --repair drops them.
#include <sys/stat.h>

#include <map>
#include <set>

#include "fs/repair.h"

#include "fs/filesystem.h"

namespace daxguard::fs {
namespace {

std::string Describe(const ReverseMapDiff& d) {
  std::string s = "stored reverse map disagreed with the extents (" +
                  std::to_string(d.only_in_extents.size()) + " extent run(s) missing from it, " +
                  std::to_string(d.only_in_reverse_map.size()) + " run(s) no extent has";
  if (d.metadata_differs) s += ", metadata owners wrong";
  if (!d.bad_records.empty())
    s += ", " + std::to_string(d.bad_records.size()) + " unusable record(s), the first: " + d.bad_records.front();
  return s + "): rebuilt from the extents";
}

// Walks the tree below `top` breadth first, as fsck counts it, adding what
// it reaches to *seen. An entry naming no inode, or a directory reached
// before (a directory has one name: its shallowest), is dropped.
void Walk(const State& s, uint64_t top, std::set<uint64_t>* seen, std::vector<Op>* ops) {
  std::vector<uint64_t> todo = {top};
  seen->insert(top);
  for (size_t i = 0; i < todo.size(); ++i) {
    const Inode* d = s.Find(todo[i]);
    for (const auto& [name, child] : d->entries) {
      const Inode* c = s.Find(child);
      if (!c || (c->is_dir() && seen->count(child))) {
        ops->push_back(Op::Unlink(d->ino, name));
        continue;
      }
      if (seen->insert(child).second && c->is_dir()) todo.push_back(child);
    }
  }
}

// Inodes the walks missed that hold something: a link count above zero
// (their entry was lost, or their directory) or entries of their own.
std::vector<uint64_t> Unreached(const State& s, const std::set<uint64_t>& seen) {
  std::vector<uint64_t> out;
  for (const auto& [ino, in] : s.inodes())
    if (!seen.count(ino) && (in->attr.nlink > 0 || !in->entries.empty())) out.push_back(ino);
  return out;
}

// The tops of the unreached trees: inodes no unreached directory names
// (when they all form loops, the first of them).
std::vector<uint64_t> Tops(const State& s, const std::vector<uint64_t>& unreached) {
  std::set<uint64_t> named;
  for (uint64_t ino : unreached)
    for (const auto& [name, child] : s.Find(ino)->entries) named.insert(child);
  std::vector<uint64_t> tops;
  for (uint64_t ino : unreached)
    if (!named.count(ino)) tops.push_back(ino);
  if (tops.empty()) tops.push_back(unreached.front());
  return tops;
}

// Where reconnected inodes go: /lost+found, made if missing (or
// /lost+found.N when that name is taken by something else).
class LostAndFound {
 public:
  explicit LostAndFound(const State& s) : s_(s) {}
  void Add(uint64_t ino, std::vector<Op>* ops) {
    if (!dir_) Open(ops);
    std::string name = "#" + std::to_string(ino);
    for (int n = 1; used_.count(name); ++n) name = "#" + std::to_string(ino) + "." + std::to_string(n);
    used_.insert(name);
    ops->push_back(Op::Link(dir_, name, ino));
  }

 private:
  void Open(std::vector<Op>* ops) {
    const Inode* root = s_.Find(kRootIno);
    std::string name = "lost+found";
    for (int n = 1;; ++n) {
      auto it = root->entries.find(name);
      const Inode* in = it == root->entries.end() ? nullptr : s_.Find(it->second);
      if (in && in->is_dir()) {
        dir_ = in->ino;
        for (const auto& [entry, child] : in->entries) used_.insert(entry);
        return;
      }
      if (it == root->entries.end()) break;
      name = "lost+found." + std::to_string(n);
    }
    dir_ = s_.NextIno();
    Attr a = root->attr;
    a.mode = S_IFDIR | 0700;
    a.nlink = 2;  // set with every link count below
    a.size = 0;
    ops->push_back(Op::SetInode(dir_, a));
    ops->push_back(Op::Link(kRootIno, name, dir_));
  }

  const State& s_;
  uint64_t dir_ = 0;
  std::set<std::string> used_;
};

}  // namespace

std::vector<Op> DropBadEntriesBelow(const State& s, uint64_t top) {
  std::vector<Op> ops;
  std::set<uint64_t> seen;
  Walk(s, top, &seen, &ops);
  return ops;
}

std::vector<Op> ReconnectOps(const State& s) {
  std::vector<Op> ops;
  std::set<uint64_t> seen;
  Walk(s, kRootIno, &seen, &ops);
  LostAndFound lf(s);
  for (std::vector<uint64_t> left = Unreached(s, seen); !left.empty(); left = Unreached(s, seen))
    for (uint64_t top : Tops(s, left)) {
      lf.Add(top, &ops);
      Walk(s, top, &seen, &ops);
    }
  return ops;
}

std::vector<Op> LinkCountOps(const State& s) {
  std::map<uint64_t, uint32_t> links = {{kRootIno, 2}};
  for (const auto& [ino, in] : s.inodes())
    for (const auto& [name, child] : in->entries) {
      const Inode* c = s.Find(child);
      if (!c) continue;  // none left: ReconnectOps dropped them
      links[child] += c->is_dir() ? 2 : 1;
      if (c->is_dir()) links[ino]++;
    }
  std::vector<Op> ops;
  for (const auto& [ino, in] : s.inodes()) {
    uint32_t want = links.count(ino) ? links[ino] : 0;
    if (in->attr.nlink == want) continue;
    Attr a = in->attr;
    a.nlink = want;
    ops.push_back(Op::SetInode(ino, a));
  }
  return ops;
}

Status Filesystem::CheckAtMount() {
  for (const State::BadExtent& b : state_.bad_extents()) GoReadOnly(state_.Describe(b) + " (run daxguard fsck --repair)");
  // Format 1 stored no reverse map: built from the extents. Older formats
  // are upgraded by a fresh snapshot.
  bool map_stored = log_.super().version >= kReverseMapVersion;
  ReverseMapDiff d = state_.ReverseMapSuspect() ? state_.CheckReverseMap() : ReverseMapDiff{};
  if (!d.empty()) {
    if (map_stored) mount_report_.repaired.push_back(Describe(d));
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
  // filesystem. Every change is made in memory and written out as one fresh
  // snapshot, so a repair that fails part way changes nothing on the device.
  read_only_why_.clear();
  state_.AcceptLosses(mount_report_.unknown);
  state_.RebuildReverseMap();
  ReplayReport scrub;
  DG_RETURN_IF_ERROR(log_.Scrub(&scrub));
  // What mount would have finished, as it would have: a detached tree's
  // damaged entries are dropped first, so that it can be emptied.
  for (Inode* dir : state_.DetachedDirs()) DG_RETURN_IF_ERROR(state_.ApplyAll(DropBadEntriesBelow(state_, dir->ino)));
  DG_RETURN_IF_ERROR(FinishUnlinked([this](std::vector<Op> ops) { return state_.ApplyAll(ops); }));
  DG_RETURN_IF_ERROR(state_.ApplyAll(ReconnectOps(state_)));
  DG_RETURN_IF_ERROR(state_.ApplyAll(LinkCountOps(state_)));
  // No hole, no dropped extent, the reverse map stored as the extents give it.
  return log_.Compact(state_.Snapshot());
}

}  // namespace daxguard::fs
