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

Result<Located> Namespace::Locate(const std::string& path) const {
  Located at;
  at.inode = state_.Find(kRootIno);
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

Result<Located> Namespace::LocateEntry(const std::string& path) const {
  auto at = Locate(path);
  if (!at.ok()) return at.status();
  if (at->is_root()) return Status::Invalid(path + ": names the root");
  if (at->dotted) return Status::Invalid(path + ": ends in '.' or '..'");
  return at;
}

Result<Inode*> Namespace::Resolve(const std::string& path) const {
  auto at = Locate(path);
  if (!at.ok()) return at.status();
  if (!at->inode) return NoEntry(path);
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
