#include "fs/namespace.h"

#include <algorithm>
#include <string_view>

namespace daxguard::fs {

Status DamagedEntry(const std::string& path, uint64_t ino) {
  return Status::Io(path + ": damaged directory entry naming inode " + std::to_string(ino) +
                    " (run daxguard fsck --repair)");
}

Status NoEntry(const std::string& path) { return Status::Error(ENOENT, path + ": no such file or directory"); }

Inode* Namespace::EntryTarget(uint64_t ino) const { return ino == kRootIno ? nullptr : state_.Find(ino); }

Status Namespace::StartAt(uint64_t dir, Located* at) const {
  at->inode = state_.Find(dir);
  if (!at->inode) return Status::Error(ESTALE, "inode " + std::to_string(dir) + " no longer exists");
  // Up its first names to the root; an unlinked inode (open, or cut off by
  // rm -r) has none. Bounded, in case damage made a loop.
  size_t bound = state_.inodes().size();
  for (uint64_t cur = dir; cur != kRootIno && at->dirs.size() < bound;) {
    const auto* up = state_.FirstName(cur);
    Inode* d = up ? state_.Find(up->first) : nullptr;
    if (!d) break;
    at->dirs.push_back(d);
    at->names.push_back(up->second);
    cur = up->first;
  }
  std::reverse(at->dirs.begin(), at->dirs.end());
  std::reverse(at->names.begin(), at->names.end());
  return Status::Ok();
}

Result<Located> Namespace::Locate(const PathRef& ref) const {
  const std::string& path = ref.path;
  Located at;
  DG_RETURN_IF_ERROR(StartAt(ref.dir, &at));
  for (size_t i = 0, end; i < path.size(); i = end + 1) {
    end = std::min(path.find('/', i), path.size());
    std::string_view part(path.data() + i, end - i);
    if (part.empty()) continue;
    if (part.size() > kMaxNameLen) return Status::Error(ENAMETOOLONG, path + ": name longer than 255 bytes");
    if (!at.inode) return NoEntry(path);
    if (!at.inode->is_dir()) return Status::Error(ENOTDIR, path + ": not a directory");
    at.dotted = part == "." || part == "..";
    if (part == "." || (part == ".." && at.is_root())) continue;
    if (part == "..") {
      at.inode = at.dirs.back();
      at.dirs.pop_back();
      at.names.pop_back();
      continue;
    }
    auto e = at.inode->entries.find(std::string(part));
    at.dirs.push_back(at.inode);
    at.names.emplace_back(part);
    at.inode = nullptr;
    if (e == at.dirs.back()->entries.end()) continue;  // fine as the last name
    at.inode = EntryTarget(e->second);
    if (!at.inode) return DamagedEntry(path.substr(0, end), e->second);
  }
  at.must_be_dir = at.dotted || (!path.empty() && path.back() == '/');
  if (at.inode && at.must_be_dir && !at.inode->is_dir()) return Status::Error(ENOTDIR, path + ": not a directory");
  return at;
}

Result<Located> Namespace::LocateEntry(const PathRef& ref) const {
  const std::string& path = ref.path;
  auto at = Locate(ref);
  if (!at.ok()) return at.status();
  if (at->is_root()) return Status::Invalid(path + ": names the root");
  if (at->dotted) return Status::Invalid(path + ": ends in '.' or '..'");
  return at;
}

Result<Inode*> Namespace::Resolve(const PathRef& ref) const {
  // An inode itself (every FUSE getattr): no walk, no ancestors to find.
  if (ref.path.empty()) {
    Inode* in = state_.Find(ref.dir);
    if (!in) return Status::Error(ESTALE, "inode " + std::to_string(ref.dir) + " no longer exists");
    return in;
  }
  auto at = Locate(ref);
  if (!at.ok()) return at.status();
  if (!at->inode) return NoEntry(ref.path);
  return at->inode;
}

Status Namespace::AddTreeBelow(Inode* top, std::vector<TreeEntry>* tree) const {
  std::vector<Inode*> dirs = {top};
  for (size_t i = 0; i < dirs.size(); ++i) {
    Inode* dir = dirs[i];
    if (state_.NameCount(dir->ino) > 1)
      return Status::Io(state_.PathOf(dir->ino) + ": directory inode " + std::to_string(dir->ino) +
                        " has more than one name (damaged; run daxguard fsck --repair)");
    for (const auto& [name, ino] : dir->entries) {
      Inode* child = EntryTarget(ino);
      if (!child) return DamagedEntry(state_.PathOf(dir->ino) + "/" + name, ino);
      tree->push_back({dir, name, child});
      if (child->is_dir()) dirs.push_back(child);
    }
  }
  return Status::Ok();
}

}  // namespace daxguard::fs
