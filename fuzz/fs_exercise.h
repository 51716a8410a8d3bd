// What the filesystem harnesses do with an image: what a user does with a
// filesystem they found on a device. Mount it, list it recursively, read
// every file, look at its health and owners, change it a little, unmount;
// then fsck, fsck --repair, fsck again, and mount and read it once more.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "fuzz/fuzz_util.h"

namespace daxguard::fuzz {

inline constexpr size_t kMaxWalk = 256;          // entries listed per mount
inline constexpr uint64_t kReadWindow = 64 << 10;  // bytes read at each end of a file

struct WalkResult {
  std::string first_file;  // a regular file's path, to change
};

// `ls -R` and reading every file, bounded: a damaged tree may be huge or loop.
inline WalkResult Walk(fs::Filesystem& f) {
  WalkResult out;
  std::set<uint64_t> seen;
  std::deque<std::string> dirs = {"/"};
  std::vector<uint8_t> buf(16 << 10);
  size_t listed = 0;
  while (!dirs.empty() && listed < kMaxWalk) {
    std::string dir = dirs.front();
    dirs.pop_front();
    auto entries = f.ReadDir(dir);
    if (!entries.ok()) continue;
    for (const fs::DirEntry& e : *entries) {
      if (++listed > kMaxWalk) break;
      std::string path = (dir == "/" ? "" : dir) + "/" + e.name;
      auto st = f.Stat(path);
      if (!st.ok() || !seen.insert(st->ino).second) continue;
      if (S_ISDIR(st->attr.mode)) {
        dirs.push_back(path);
        continue;
      }
      auto file = f.Open(path);
      if (!file.ok()) continue;
      if (out.first_file.empty()) out.first_file = path;
      (void)(*file)->Stat();
      (void)(*file)->Fiemap();
      uint64_t size = st->attr.size;
      uint64_t tail = size - std::min(size, kReadWindow);
      for (uint64_t start : {uint64_t{0}, tail})
        for (uint64_t off = start; off < std::min(size, start + kReadWindow); off += buf.size())
          if (!(*file)->Read(off, buf.data(), buf.size()).ok()) break;
    }
  }
  return out;
}

// A few changes, as a user makes after mounting: they append records to
// the log replayed from the input (and may compact it).
inline void Change(fs::Filesystem& f, const WalkResult& w) {
  if (f.read_only()) return;
  std::vector<uint8_t> data(8 << 10, 0x42);
  if (!w.first_file.empty()) {
    if (auto file = f.Open(w.first_file); file.ok()) {
      (void)(*file)->Write(0, data.data(), data.size());
      (void)(*file)->Truncate(4096);
    }
  }
  if (auto file = f.Open("/fuzz.new", fs::kCreate); file.ok()) {
    (void)(*file)->Write(0, data.data(), data.size());
    (void)(*file)->Write(1 << 20, data.data(), data.size());
    (void)(*file)->Fallocate(fs::kFallocPunchHole | fs::kFallocKeepSize, 0, 4096);
    (void)(*file)->Fsync();
  }
  (void)f.Mkdir("/fuzz.dir");
  (void)f.Rename("/fuzz.new", "/fuzz.dir/moved");
  if (!w.first_file.empty()) (void)f.Unlink(w.first_file);
}

inline void UseMounted(dax::Device& dev, bool change) {
  auto f = fs::Filesystem::Mount(dev);
  if (!f.ok()) return;
  WalkResult w = Walk(**f);
  (void)(*f)->Health();
  (void)(*f)->Who(0, dev.size());
  if (change) {
    Change(**f, w);
    Walk(**f);
  }
}

inline void ExerciseFilesystem(const std::string& path) {
  auto d = dax::PmemDax::Open(path);
  DG_FUZZ_CHECK(d.ok(), "cannot open %s: %s", path.c_str(), d.status().message().c_str());
  dax::Device& dev = **d;
  UseMounted(dev, /*change=*/true);
  (void)fs::Fsck(dev, /*repair=*/false);
  auto repaired = fs::Fsck(dev, /*repair=*/true);
  (void)fs::Fsck(dev, /*repair=*/false);
  UseMounted(dev, /*change=*/false);
  (void)repaired;
}

}  // namespace daxguard::fuzz
