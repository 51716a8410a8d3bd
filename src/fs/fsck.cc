#include "fs/fsck.h"

#include <sys/stat.h>

#include <cstring>
#include <map>

#include "fs/filesystem.h"
#include "fs/meta_log.h"
#include "fs/state.h"

namespace daxguard::fs {
namespace {

void CheckSuperBlocks(dax::Device& dev, const Geometry& g, FsckReport* r) {
  SuperBlock sb[2];
  bool ok[2];
  for (int c = 0; c < 2; ++c)
    ok[c] = dev.ReadMcSafe(g.SuperBlock(c) * kBlockSize, &sb[c], sizeof sb[c]) == sizeof sb[c] &&
            CheckSuperBlock(sb[c], dev.size()).ok();
  for (int c = 0; c < 2; ++c)
    if (!ok[c]) r->problems.push_back(std::string("superblock copy ") + (c ? "B" : "A") + " is unreadable or invalid");
  if (ok[0] && ok[1] && std::memcmp(&sb[0], &sb[1], sizeof sb[0]) != 0)
    r->problems.push_back("superblock copies differ");
}

// Link counts and reachability, from the directory tree.
void CheckTree(const State& s, FsckReport* r) {
  std::map<uint64_t, uint32_t> links;  // ino -> expected nlink
  std::vector<uint64_t> todo = {kRootIno};
  links[kRootIno] = 2;
  while (!todo.empty()) {
    const Inode* d = s.Find(todo.back());
    todo.pop_back();
    for (const auto& [name, child] : d->entries) {
      const Inode* c = s.Find(child);
      if (!c) {
        r->problems.push_back("entry '" + name + "' in directory " + std::to_string(d->ino) + " points to missing inode " + std::to_string(child));
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
    } else if (it->second != in->attr.nlink) {
      r->problems.push_back("inode " + std::to_string(ino) + " has link count " + std::to_string(in->attr.nlink) +
                            ", expected " + std::to_string(it->second));
    }
    r->extents += in->extents.size();
  }
  r->inodes = s.inodes().size();
}

// The reverse map, reference counts and free space, recomputed from the
// extents alone, must equal what was kept up to date change by change.
void CheckSpace(const State& s, FsckReport* r) {
  SpaceMap fresh(s.geometry());
  for (const auto& [ino, in] : s.inodes())
    for (const auto& [fblk, e] : in->extents) fresh.AddOwner(e.pblk, e.len, {ino, fblk});
  for (const auto& [pblk, len] : s.space().quarantine().intervals()) fresh.SetQuarantine(pblk, len, true);
  auto flatten = [](const SpaceMap& m) {
    std::vector<std::tuple<uint64_t, uint64_t, std::vector<Owner>>> v;
    for (const auto& [p, run] : m.runs()) v.emplace_back(p, run.len, run.owners);
    return v;
  };
  if (flatten(fresh) != flatten(s.space())) r->problems.push_back("reverse map does not match the extents");
  if (!(fresh.free_space() == s.space().free_space())) r->problems.push_back("free space does not match the extents");
  for (const auto& [pblk, len] : s.space().quarantine().intervals())
    if (!s.space().Lookup(pblk, len).empty())
      r->problems.push_back("quarantined block " + std::to_string(pblk) + " is owned by a file");
}

Result<FsckReport> Check(dax::Device& dev, bool dry_run) {
  FsckReport r;
  Geometry g = GeometryFor(dev.size());
  if (g.blocks < kMinBlocks) return Status::Invalid("device too small to hold daxfs");
  CheckSuperBlocks(dev, g, &r);
  MetaLog log(dev, g);
  log.set_dry_run(dry_run);
  State state(g);
  ReplayReport rep;
  Status s = log.Replay([&](const std::vector<Op>& ops) { return state.ApplyAll(ops); }, &rep);
  if (!s.ok()) return s;
  r.records = rep.records;
  ReplayReport scrub;
  DG_RETURN_IF_ERROR(log.Scrub(&scrub));
  if (rep.repaired_blocks + scrub.repaired_blocks)
    r.problems.push_back(std::to_string(rep.repaired_blocks + scrub.repaired_blocks) +
                         " metadata log block(s) differ between the two copies");
  for (const std::string& l : rep.lost) r.problems.push_back("lost: " + l);
  for (const std::string& l : scrub.lost) r.problems.push_back("lost: " + l);
  for (const std::string& l : state.lost()) r.problems.push_back("lost earlier: " + l);
  if (!state.Find(kRootIno)) {
    r.problems.push_back("no root directory");
    return r;
  }
  CheckTree(state, &r);
  CheckSpace(state, &r);
  return r;
}

}  // namespace

Result<FsckReport> Fsck(dax::Device& dev, bool repair) {
  if (dev.HasHolder()) return Status::Busy("device is in use (mounted?)");
  auto first = Check(dev, /*dry_run=*/true);
  if (!first.ok() || !repair || first->problems.empty()) return first;
  // Repair: a mount rebuilds bad copies and frees orphans; link counts are
  // set to what the tree says. Then everything is checked again.
  {
    auto fs = Filesystem::Mount(dev);
    if (!fs.ok()) return fs.status();
    DG_RETURN_IF_ERROR((*fs)->RepairForFsck());
  }
  auto second = Check(dev, /*dry_run=*/false);
  if (!second.ok()) return second;
  FsckReport out = *first;
  for (const std::string& p : first->problems) {
    bool still = std::find(second->problems.begin(), second->problems.end(), p) != second->problems.end();
    if (!still) out.fixed.push_back(p);
  }
  return out;
}

}  // namespace daxguard::fs
