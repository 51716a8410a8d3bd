#include "fs/fsck.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "fs/filesystem.h"
#include "fs/meta_log.h"
#include "fs/state.h"

namespace daxguard::fs {
namespace {

void CheckSuperBlocks(dax::Device& dev, const Geometry& g, FsckReport* r) {
  SuperBlock sb[2];
  bool read[2], ok[2];
  for (int c = 0; c < 2; ++c) {
    read[c] = dev.ReadAll(g.SuperBlock(c) * kBlockSize, &sb[c], sizeof sb[c]);
    ok[c] = read[c] && CheckSuperBlock(sb[c], dev.size()).ok();
  }
  for (int c = 0; c < 2; ++c) {
    std::string copy = std::string("superblock copy ") + (c ? "B" : "A");
    // The copies are written one at a time: a crash tears at most one.
    if (read[c] && !ok[c] && ok[1 - c])
      r->notes.push_back(copy + " is invalid (a switch stopped while writing it, or damage); the other copy is "
                                "whole and the next mount rewrites this one");
    else if (!ok[c])
      r->problems.push_back(copy + " is unreadable or invalid");
  }
  if (!ok[0] || !ok[1] || std::memcmp(&sb[0], &sb[1], sizeof sb[0]) == 0) return;
  // One copy a generation behind is a switch (compaction, mkfs) stopped
  // between its two writes: the newer copy is the filesystem, and the next
  // mount rewrites the older.
  if (sb[0].generation != sb[1].generation)
    r->notes.push_back(std::string("superblock copy ") + (sb[0].generation < sb[1].generation ? "A" : "B") +
                       " is of an older generation (a switch stopped between its two writes; the next mount "
                       "rewrites it)");
  else
    r->problems.push_back("superblock copies differ");
}

// Link counts and reachability, from the directory tree. A directory is
// counted under the first entry found naming it, breadth first; any other
// (replay makes them, and cycles of them, of lost records) is named, and
// --repair drops it.
void CheckTree(const State& s, FsckReport* r) {
  std::map<uint64_t, uint32_t> links;  // ino -> expected nlink
  std::vector<uint64_t> todo = {kRootIno};
  links[kRootIno] = 2;
  // Trees rm -r detached and a stop cut short are walked too (the next
  // mount removes them); their tops keep a link count of 0.
  std::set<uint64_t> detached;
  for (const Inode* d : s.DetachedDirs()) {
    todo.push_back(d->ino);
    detached.insert(d->ino);
    links[d->ino] = 0;
  }
  for (size_t i = 0; i < todo.size(); ++i) {  // breadth first: the shallowest name counts
    const Inode* d = s.Find(todo[i]);
    for (const auto& [name, child] : d->entries) {
      const Inode* c = s.Find(child);
      std::string entry = "entry '" + name + "' in directory " + std::to_string(d->ino);
      if (!c) {
        r->problems.push_back(entry + " points to missing inode " + std::to_string(child));
        continue;
      }
      if (c->is_dir() && links.count(child)) {
        r->problems.push_back(entry + ": directory inode " + std::to_string(child) + " is named by more than one entry");
        continue;
      }
      if (c->is_dir()) {
        links[d->ino]++;
        links[child] += 2;
        todo.push_back(child);
      } else {
        links[child]++;
      }
    }
  }
  for (const auto& [ino, in] : s.inodes()) {
    auto it = links.find(ino);
    if (it == links.end()) {
      // Unlinked while open when the system stopped: freed at the next mount.
      if (in->attr.nlink) r->problems.push_back("inode " + std::to_string(ino) + " is unreachable");
    } else if (it->second != in->attr.nlink && !detached.count(ino)) {
      r->problems.push_back("inode " + std::to_string(ino) + " has link count " + std::to_string(in->attr.nlink) +
                            ", expected " + std::to_string(it->second));
    }
    r->extents += in->extents.size();
  }
  r->inodes = s.inodes().size();
}

std::string Blocks(uint64_t pblk, uint64_t len) {
  return "device blocks " + std::to_string(pblk) + ".." + std::to_string(pblk + len - 1);
}

std::string FileBlocks(const State& s, const Mapping& m) {
  std::string path = s.PathOf(m.ino);
  return "inode " + std::to_string(m.ino) + (path.empty() ? "" : " (" + path + ")") + " file blocks " +
         std::to_string(m.fblk) + ".." + std::to_string(m.fblk + m.len - 1);
}

// Reference counts (owners per block) of the stored map against the ones
// the extents give, over every stretch where they differ.
void CompareRefCounts(const SpaceMap& stored, const SpaceMap& fresh, FsckReport* r) {
  std::vector<uint64_t> cuts;
  for (const SpaceMap* m : {&stored, &fresh})
    for (const auto& [p, run] : m->runs()) cuts.push_back(p), cuts.push_back(p + run.len);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  struct Diff { uint64_t start, end; size_t have, want; };
  std::vector<Diff> diffs;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    size_t have = stored.RefCount(cuts[i]), want = fresh.RefCount(cuts[i]);
    if (have == want) continue;
    if (!diffs.empty() && diffs.back().end == cuts[i] && diffs.back().have == have && diffs.back().want == want)
      diffs.back().end = cuts[i + 1];
    else
      diffs.push_back({cuts[i], cuts[i + 1], have, want});
  }
  for (const Diff& d : diffs)
    r->problems.push_back(Blocks(d.start, d.end - d.start) + ": reference count " + std::to_string(d.have) +
                          " in the reverse map, " + std::to_string(d.want) + " from the extents");
}

// Blocks in `a` and not in `b`.
IntervalSet Minus(const IntervalSet& a, const IntervalSet& b) {
  IntervalSet out = a;
  for (const auto& [s, l] : b.intervals()) out.Remove(s, l);
  return out;
}

// The stored reverse map against the extents, the reference counts and the
// free space: every disagreement, by blocks and owners.
void CheckSpace(const State& s, bool stored_map, FsckReport* r) {
  for (const State::BadExtent& b : s.bad_extents()) r->problems.push_back(s.Describe(b));
  ReverseMapDiff d = s.CheckReverseMap();
  for (const std::string& b : d.bad_records) r->problems.push_back(b);
  if (stored_map && d.metadata_differs)
    r->problems.push_back("reverse map: the metadata owners stored do not match the device layout");
  for (const Mapping& m : d.only_in_extents)
    r->problems.push_back("reverse map lacks " + FileBlocks(s, m) + " -> " + Blocks(m.pblk, m.len) + " (an extent maps them)");
  for (const Mapping& m : d.only_in_reverse_map)
    r->problems.push_back("reverse map names " + FileBlocks(s, m) + " as owner of " + Blocks(m.pblk, m.len) +
                          ", but no extent maps them");
  SpaceMap fresh = s.SpaceFromExtents();
  CompareRefCounts(s.space(), fresh, r);
  IntervalSet wrongly_free = Minus(s.space().free_space(), fresh.free_space());
  IntervalSet leaked = Minus(fresh.free_space(), s.space().free_space());
  for (const auto& [p, l] : wrongly_free.intervals())
    r->problems.push_back(Blocks(p, l) + " are free in the free-space map but owned or quarantined");
  for (const auto& [p, l] : leaked.intervals())
    r->problems.push_back(Blocks(p, l) + " are not free in the free-space map, but nothing owns them");
  for (const auto& [pblk, len] : s.space().quarantine().intervals())
    if (!s.space().Lookup(pblk, len).empty())
      r->problems.push_back("quarantined block " + std::to_string(pblk) + " is owned by a file");
}

Result<FsckReport> Check(dax::Device& dev, bool dry_run) {
  FsckReport r;
  Geometry g = MetaLog::GeometryOf(dev);
  if (g.blocks < kMinBlocks) return Status::Invalid("device too small to hold daxfs");
  CheckSuperBlocks(dev, g, &r);
  MetaLog log(dev, g);
  log.set_dry_run(dry_run);
  State state(g);
  ReplayReport rep;
  Status s = log.Replay([&](const std::vector<Op>& ops) { return state.ApplyAll(ops); }, &rep,
                        [&](const Summary& lost) { state.ApplyLoss(lost); });
  state.EndReplay();
  if (!s.ok()) return s;
  r.records = rep.records;
  ReplayReport scrub;
  DG_RETURN_IF_ERROR(log.Scrub(&scrub));
  if (rep.repaired_blocks + scrub.repaired_blocks)
    r.problems.push_back(std::to_string(rep.repaired_blocks + scrub.repaired_blocks) +
                         " metadata log block(s) differ between the two copies");
  for (const std::string& l : rep.lost) r.problems.push_back("lost: " + l);
  for (const std::string& l : scrub.lost) r.problems.push_back("lost: " + l);
  for (const std::string& l : state.lost()) r.notes.push_back("lost earlier: " + l);
  for (const std::string& u : state.unrepaired()) r.problems.push_back("an earlier fsck --repair could not repair: " + u);
  if (!state.Find(kRootIno)) {
    r.problems.push_back("no root directory");
    return r;
  }
  CheckTree(state, &r);
  bool stored_map = log.super().version >= kReverseMapVersion;
  if (!stored_map)
    r.problems.push_back("format version " + std::to_string(log.super().version) +
                         ": the reverse map is not stored on the device (mount or fsck --repair upgrades it)");
  CheckSpace(state, stored_map, &r);
  return r;
}

// Appends what is left to repair to the log: mounts are read-only until a
// repair succeeds.
Status MarkUnrepaired(dax::Device& dev, const std::vector<std::string>& left) {
  Geometry g = MetaLog::GeometryOf(dev);
  MetaLog log(dev, g);
  ReplayReport rep;
  DG_RETURN_IF_ERROR(log.Replay([](const std::vector<Op>&) { return Status::Ok(); }, &rep));
  std::vector<Op> ops;
  for (const std::string& what : left) ops.push_back(Op::Unrepaired(what));
  return log.Append(ops);
}

}  // namespace

Result<FsckReport> Fsck(dax::Device& dev, bool repair) {
  DG_RETURN_IF_ERROR(dev.CheckNotHeld());
  auto first = Check(dev, /*dry_run=*/true);
  if (!first.ok() || !repair || first->problems.empty()) return first;
  // Repair: a mount rebuilds bad copies and frees orphans; RepairForFsck
  // does the rest. Then everything is checked again.
  Status repaired;
  {
    auto fs = Filesystem::Mount(dev);
    if (!fs.ok()) return fs.status();
    repaired = (*fs)->RepairForFsck();
  }
  Result<FsckReport> second = repaired.ok() ? Check(dev, /*dry_run=*/false) : Result<FsckReport>(repaired);
  FsckReport out = *first;
  if (!second.ok()) {
    out.unrepaired.push_back("fsck --repair failed: " + second.status().message());
  } else {
    out.notes = second->notes;  // with the losses the repair accepted
    out.unrepaired = second->problems;
    for (const std::string& p : first->problems)
      if (std::find(second->problems.begin(), second->problems.end(), p) == second->problems.end())
        out.fixed.push_back(p);
  }
  if (out.unrepaired.empty()) return out;
  // Left inconsistent: read-only until a repair succeeds.
  if (Status m = MarkUnrepaired(dev, out.unrepaired); !m.ok())
    out.unrepaired.push_back("could not mark the filesystem read-only: " + m.message());
  return out;
}

}  // namespace daxguard::fs
