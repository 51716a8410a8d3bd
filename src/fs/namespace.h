// The directory tree as State holds it: where a path leads, and the walk
// of a tree. Namespace only reads; the changes it leads to are computed
// and committed by the Filesystem, under its lock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "fs/format.h"
#include "fs/state.h"

namespace daxguard::fs {

// A path as an operation takes it: from the root ("/a/b"), or from the
// inode `dir` (a FUSE request names a directory inode and one entry in it;
// an empty path is `dir` itself). Resolved under the filesystem's lock, so
// a rename elsewhere cannot move it between lookup and change.
struct PathRef {
  PathRef(const std::string& p) : path(p) {}  // NOLINT: a plain path is the usual case
  PathRef(const char* p) : path(p) {}         // NOLINT
  PathRef(uint64_t d, std::string rest) : dir(d), path(std::move(rest)) {}
  uint64_t dir = kRootIno;
  std::string path;
};

// Where a path leads. Every namespace operation starts at Locate, so
// "/a/b", "//a/./b/" and "/a/c/../b" are one path: empty names and "."
// are skipped, ".." goes up (the root's is the root). A path ending in
// '/', "." or ".." must name a directory.
struct Located {
  std::vector<Inode*> dirs;        // the directories walked through; dirs[i] holds names[i]
  std::vector<std::string> names;  // empty: the root
  Inode* inode = nullptr;          // what the last name holds: null if nothing
  bool dotted = false;             // ended in "." or "..": the last name is not the one written
  bool must_be_dir = false;
  bool is_root() const { return names.empty(); }
  Inode* parent() const { return dirs.back(); }
  const std::string& name() const { return names.back(); }
};

// One entry of a tree: `name` in directory `parent` names `in`.
struct TreeEntry {
  Inode* parent;
  std::string name;
  Inode* in;
};

Status NoEntry(const std::string& path);
Status DamagedEntry(const std::string& path, uint64_t ino);

class Namespace {
 public:
  explicit Namespace(State& state) : state_(state) {}

  Result<Located> Locate(const PathRef& ref) const;
  // Locate for a change to the entry `path` names: refuses the root and a
  // path ending in "." or "..".
  Result<Located> LocateEntry(const PathRef& ref) const;
  // The inode `path` names.
  Result<Inode*> Resolve(const PathRef& ref) const;
  // What a directory entry names, or null if the entry is damaged: its
  // inode is gone, or it names the root, which no entry may.
  Inode* EntryTarget(uint64_t ino) const;
  // Appends the entries below directory `top`, each directory before what it
  // holds; refuses a damaged entry or a directory with a second name.
  Status AddTreeBelow(Inode* top, std::vector<TreeEntry>* tree) const;

 private:
  // Where a walk from `dir` starts: the inode and the directories above it
  // (so that ".." and rename's loop check see them).
  Status StartAt(uint64_t dir, Located* at) const;
  State& state_;
};

}  // namespace daxguard::fs
