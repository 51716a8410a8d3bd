// What a daxfs crash image may hold: the workload's model of the tree after
// each of its operations, and the check of a mounted image against it.
//
// Names, types, modes, link targets and extended attributes are metadata:
// each image holds them exactly as one of the two trees has them.
// daxfs commits metadata (names, links, sizes, extents) durably before an
// operation returns, so the tree after a crash is the tree after the last
// operation that returned, or after the one in flight. File bytes written
// in place are durable from the file's fsync on; before that each byte may
// hold any value the file held there since its last fsync (never another
// file's or a freed block's bytes), except across an untorn write.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/units.h"
#include "fs/filesystem.h"

namespace daxguard::tools {

struct ModelFile {
  uint32_t mode = S_IFREG | 0644;  // type and permissions
  // Contents since the last fsync, oldest first; back() is the current one.
  // A symbolic link's target is its one version.
  std::vector<std::vector<uint8_t>> versions{{}};
  std::map<std::string, std::string> xattrs;
  // Bytes whose data poison destroyed. They may read as EIO; where they
  // read, the bytes must come from versions[since] on (rewritten since the
  // loss; kNever: not yet, so they may only fail).
  struct Lost {
    static constexpr size_t kNever = SIZE_MAX;
    uint64_t off = 0, len = 0;
    size_t since = kNever;
    bool rebuildable = false;  // parity may give the bytes back as they were
  };
  std::vector<Lost> lost;
  // Set in the tree after an untorn write (File::WriteAtomic) only: an image
  // must show the file as one tree or the other has it, not a mix.
  bool untorn = false;

  bool dir() const { return S_ISDIR(mode); }
  const std::vector<uint8_t>& now() const { return versions.back(); }
  std::vector<uint8_t>& Change() {  // a new version to edit
    versions.push_back(versions.back());
    return versions.back();
  }
  // Poison destroyed [off, off+len); with `rebuildable` (the filesystem
  // keeps parity) it may also read back as it was.
  void Lose(uint64_t off, uint64_t len, bool rebuildable = false);
  // The newest version put new bytes (or zeroes) in [off, off+len).
  void Rewrote(uint64_t off, uint64_t len);
  // An fsync returned: the newest version is durable, and what was rewritten
  // of lost bytes is no longer lost.
  void Synced();
  // The size is now `size`: lost bytes beyond it are gone.
  void Clip(uint64_t size);
};

struct ModelTree {
  std::map<std::string, uint64_t> names;  // path -> model inode (the root is not named)
  std::map<uint64_t, ModelFile> files;
  uint64_t next_ino = 1;

  uint64_t Add(const std::string& path, bool dir);
  // A node of another type (symlink, FIFO), with `bytes` its data.
  uint64_t AddNode(const std::string& path, uint32_t mode, std::vector<uint8_t> bytes = {});
  // Drops the name; the file goes with its last name.
  void Unname(const std::string& path);
  // Renames `from` (and, for a directory, everything under it) to `to`.
  void Rename(const std::string& from, const std::string& to);
  // Swaps the names `a` and `b` (and what lies under them).
  void Exchange(const std::string& a, const std::string& b);
  ModelFile* Find(const std::string& path);
};

// The tree of a mounted filesystem, read whole.
struct SeenEntry {
  uint64_t ino = 0;
  uint32_t mode = 0;
  std::vector<uint8_t> bytes;     // a file's data, a symbolic link's target
  std::vector<ByteRange> failed;  // 64-byte lines that read as EIO (their bytes 0 in `bytes`)
  std::map<std::string, std::string> xattrs;
};
Result<std::map<std::string, SeenEntry>> ReadTree(fs::Filesystem& fs);

// "" when `seen` is a tree `before` or `after` allows (see above), else what
// is wrong. `after` is null when no operation was in flight.
std::string CheckTree(const std::map<std::string, SeenEntry>& seen, const ModelTree& before, const ModelTree* after);

}  // namespace daxguard::tools
