// Every mutating filesystem operation is all-or-nothing: stopped at any step
// — a write, zeroing or direct access that fails with EIO, or the process
// killed just before it — the filesystem afterwards holds either the state
// before the operation or the state after it, and fsck finds nothing wrong.
// Each operation runs once to count its steps, then once per step.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "common/faulty_device.h"
#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "fs/log_surgery.h"

namespace daxguard::fs {
namespace {

using daxguard::testing::FaultyDevice;
using Tree = std::map<std::string, std::string>;  // path -> what a user can see of it

std::string Describe(File& f, const FileStat& st) {
  std::string out = "mode " + std::to_string(st.attr.mode) + " size " + std::to_string(st.attr.size) +
                    " nlink " + std::to_string(st.attr.nlink);
  std::string data(st.attr.size, '\0');
  auto r = f.Read(0, data.data(), data.size());
  if (!r.ok()) return out + " read: " + r.status().message();
  data.resize(*r);
  return out + " data " + std::to_string(std::hash<std::string>{}(data));
}

void Walk(Filesystem& fs, const std::string& dir, Tree* tree) {
  auto entries = fs.ReadDir(dir);
  if (!entries.ok()) {
    (*tree)[dir] = "readdir: " + entries.status().message();
    return;
  }
  for (const DirEntry& e : *entries) {
    std::string path = (dir == "/" ? "" : dir) + "/" + e.name;
    auto st = fs.Stat(path);
    if (!st.ok()) {
      (*tree)[path] = "stat: " + st.status().message();
    } else if (S_ISDIR(st->attr.mode)) {
      (*tree)[path] = "dir nlink " + std::to_string(st->attr.nlink);
      Walk(fs, path, tree);
    } else if (S_ISLNK(st->attr.mode)) {
      auto t = fs.ReadLink(path);
      (*tree)[path] = "link to " + (t.ok() ? *t : "readlink: " + t.status().message());
    } else {
      auto f = fs.Open(path);
      (*tree)[path] = f.ok() ? Describe(**f, *st) : "open: " + f.status().message();
    }
    for (const std::string& name : fs.ListXattr(e.ino).value_or({}))
      (*tree)[path + " xattr " + name] = std::to_string(std::hash<std::string>{}(fs.GetXattr(e.ino, name).value_or("?")));
  }
}

// The namespace, sizes, link counts, contents and damage, as a user sees them.
Tree Snapshot(Filesystem& fs) {
  Tree t;
  Walk(fs, "/", &t);
  for (const DamagedFile& d : fs.Health().files)
    for (const auto& r : d.ranges) t["damage " + d.path] += std::to_string(r.first) + ".." + std::to_string(r.second) + " ";
  return t;
}

std::string Show(const Tree& t) {
  std::string out;
  for (const auto& [k, v] : t) out += "  " + k + ": " + v + "\n";
  return out;
}

struct Scenario {
  std::function<void(Filesystem&)> setup;
  std::function<Status(Filesystem&)> op;  // on the mounted filesystem, or
  std::function<Status(dax::Device&)> device_op = nullptr;  // on the device (mkfs)
  std::function<void(dax::Device&)> damage = nullptr;        // after setup, unmounted
};

class AllOrNothingTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kDevSize = 16ull << 20;

  void SetUp() override {
    char tmpl[] = "/tmp/daxfs-aon-XXXXXX";
    dir_ = mkdtemp(tmpl);
    dev_path_ = dir_ + "/pmem0";
    before_path_ = dir_ + "/before";
    media::CreateOptions opt;
    opt.size = kDevSize;
    ASSERT_TRUE(media::PmemDevice::Create(dev_path_, opt).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<dax::PmemDax> OpenDev() {
    auto d = dax::PmemDax::Open(dev_path_);
    EXPECT_TRUE(d.ok()) << d.status().message();
    return d.ok() ? std::move(d).value() : nullptr;
  }
  static std::unique_ptr<Filesystem> MountOn(dax::Device& dev) {
    auto f = Filesystem::Mount(dev);
    EXPECT_TRUE(f.ok()) << f.status().message();
    return f.ok() ? std::move(f).value() : nullptr;
  }
  void Restore() {
    std::filesystem::copy_file(before_path_, dev_path_, std::filesystem::copy_options::overwrite_existing);
  }
  // The state on the device now, from a fresh mount, with what fsck finds.
  Tree StateOnDevice(const std::string&) {
    auto dev = OpenDev();
    if (!dev) return {};
    auto fsck = Fsck(*dev, false);
    if (!fsck.ok()) return {{"fsck fails", fsck.status().message()}};
    auto fs = MountOn(*dev);
    Tree t = fs ? Snapshot(*fs) : Tree{};
    for (const std::string& p : fsck->problems) t["fsck: " + p] = "";
    return t;
  }
  static bool Clean(const Tree& t) {
    return std::none_of(t.begin(), t.end(), [](const auto& kv) { return kv.first.rfind("fsck", 0) == 0; });
  }
  void ExpectOldOrNew(const Tree& t, const std::string& when) {
    if (t != old_ && t != new_)
      ADD_FAILURE() << when << ": neither the old state nor the new one:\n"
                    << Show(t) << "old:\n" << Show(old_) << "new:\n" << Show(new_);
  }

  // Runs `s` to learn its steps and end state, then stops it at every step.
  void Check(const Scenario& s) {
    {
      auto dev = OpenDev();
      ASSERT_TRUE(Filesystem::Mkfs(*dev).ok());
      auto fs = MountOn(*dev);
      s.setup(*fs);
    }
    if (s.damage) s.damage(*OpenDev());
    std::filesystem::copy_file(dev_path_, before_path_);
    old_ = StateOnDevice("before");
    ASSERT_TRUE(Clean(old_) || s.damage) << Show(old_);
    Restore();  // a mount may write
    uint64_t steps = RunThrough(s, -1, nullptr);
    new_ = StateOnDevice("after");
    ASSERT_TRUE(Clean(new_)) << Show(new_);
    ASSERT_NE(old_, new_) << "the operation changed nothing";
    ASSERT_GT(steps, 0u);
    for (uint64_t n = 0; n < steps && !HasFailure(); ++n) {
      Restore();
      Status st;
      Tree now;
      RunThrough(s, n, &st, s.device_op ? nullptr : &now);
      std::string when = "EIO at step " + std::to_string(n) + " of " + std::to_string(steps);
      Tree remounted = StateOnDevice(when);
      if (!s.device_op) ExpectOldOrNew(now, when + " (still mounted)");
      else now = remounted;
      if (st.ok() && now != new_) ADD_FAILURE() << when << ": succeeded but the state is not the new one";
      ExpectOldOrNew(remounted, when + " (remounted)");
    }
    for (uint64_t n = 0; n < steps && !HasFailure(); ++n) {
      Restore();
      KillAt(s, n);
      std::string when = "killed before step " + std::to_string(n) + " of " + std::to_string(steps);
      ExpectOldOrNew(StateOnDevice(when), when);
    }
  }

  // Runs the operation through a FaultyDevice failing at step `fail` of the
  // operation (not counting the mount's); returns how many steps it took.
  uint64_t RunThrough(const Scenario& s, int64_t fail, Status* st, Tree* after = nullptr) {
    auto dev = OpenDev();
    if (!dev) return 0;
    FaultyDevice faulty(*dev);
    std::unique_ptr<Filesystem> fs = s.device_op ? nullptr : MountOn(faulty);
    if (!fs && !s.device_op) return 0;
    uint64_t first = faulty.steps();
    if (fail >= 0) faulty.FailAt(static_cast<int64_t>(first) + fail);
    Status r = fs ? s.op(*fs) : s.device_op(faulty);
    if (st) *st = r;
    else EXPECT_TRUE(r.ok()) << r.message();
    uint64_t steps = faulty.steps() - first;
    if (after && fs) *after = Snapshot(*fs);
    return steps;
  }

  // A child process runs the operation and dies just before step `n`.
  void KillAt(const Scenario& s, uint64_t n) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto dev = dax::PmemDax::Open(dev_path_);
      if (!dev.ok()) _exit(2);
      FaultyDevice faulty(**dev);
      if (s.device_op) {
        faulty.BeforeStep([&](uint64_t step) {
          if (step == n) _exit(0);
        });
        (void)s.device_op(faulty);
        _exit(4);
      }
      auto fs = Filesystem::Mount(faulty);
      if (!fs.ok()) _exit(3);
      uint64_t first = faulty.steps();
      faulty.BeforeStep([&](uint64_t step) {
        if (step == first + n) _exit(0);
      });
      (void)s.op(**fs);
      _exit(4);  // the step never came
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }

  std::string dir_, dev_path_, before_path_;
  Tree old_, new_;
};

void Put(Filesystem& fs, const std::string& path, uint64_t len, uint8_t seed) {
  auto f = fs.Open(path, kCreate);
  ASSERT_TRUE(f.ok()) << f.status().message();
  std::string data(len, '\0');
  for (uint64_t i = 0; i < len; ++i) data[i] = static_cast<char>(seed + i * 7 + i / 4096);
  auto w = (*f)->Write(0, data.data(), len);
  ASSERT_TRUE(w.ok() && *w == len) << path;
}

// A tree to work on: a directory tree, files of one page and of many, a hard link.
void Populate(Filesystem& fs) {
  ASSERT_TRUE(fs.Mkdir("/d").ok());
  ASSERT_TRUE(fs.Mkdir("/d/sub").ok());
  ASSERT_TRUE(fs.Mkdir("/empty").ok());
  Put(fs, "/d/a", 100 << 10, 1);
  Put(fs, "/d/sub/b", 4096, 2);
  Put(fs, "/c", 64 << 10, 3);
  ASSERT_TRUE(fs.Link("/d/a", "/d/a-link").ok());
}

Status WithFile(Filesystem& fs, const std::string& path, const std::function<Status(File&)>& fn) {
  auto f = fs.Open(path);
  if (!f.ok()) return f.status();
  return fn(**f);
}

TEST_F(AllOrNothingTest, RenameFile) {
  Check({Populate, [](Filesystem& fs) { return fs.Rename("/d/a", "/empty/a2"); }});
}

TEST_F(AllOrNothingTest, RenameFileOverFile) {
  Check({Populate, [](Filesystem& fs) { return fs.Rename("/d/sub/b", "/c"); }});
}

TEST_F(AllOrNothingTest, RenameDirectoryOverEmptyDirectory) {
  Check({Populate, [](Filesystem& fs) { return fs.Rename("/d", "/empty"); }});
}

TEST_F(AllOrNothingTest, Symlink) {
  Check({Populate, [](Filesystem& fs) { return fs.Symlink("../somewhere/else", "/d/link"); }});
}

TEST_F(AllOrNothingTest, RenameExchangeOfAFileAndADirectory) {
  Check({Populate, [](Filesystem& fs) { return fs.Rename("/c", "/d/sub", kRenameExchange); }});
}

void PopulateWithXattr(Filesystem& fs) {
  Populate(fs);
  auto st = fs.Stat("/c");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(fs.SetXattr(st->ino, "user.a", "old value", 0).ok());
}

TEST_F(AllOrNothingTest, ReplaceAnExtendedAttribute) {
  Check({PopulateWithXattr, [](Filesystem& fs) {
           auto st = fs.Stat("/c");
           return st.ok() ? fs.SetXattr(st->ino, "user.a", std::string(5000, 'x'), XATTR_REPLACE) : st.status();
         }});
}

TEST_F(AllOrNothingTest, RemoveAnExtendedAttribute) {
  Check({PopulateWithXattr, [](Filesystem& fs) {
           auto st = fs.Stat("/c");
           return st.ok() ? fs.RemoveXattr(st->ino, "user.a") : st.status();
         }});
}

TEST_F(AllOrNothingTest, Mknod) {
  Check({Populate, [](Filesystem& fs) { return fs.Mknod("/d/fifo", S_IFIFO | 0600); }});
}

TEST_F(AllOrNothingTest, Mkdir) {
  Check({Populate, [](Filesystem& fs) { return fs.Mkdir("/d/new"); }});
}

TEST_F(AllOrNothingTest, Link) {
  Check({Populate, [](Filesystem& fs) { return fs.Link("/c", "/d/c2"); }});
}

TEST_F(AllOrNothingTest, Unlink) {
  Check({Populate, [](Filesystem& fs) { return fs.Unlink("/c"); }});
}

TEST_F(AllOrNothingTest, Rmdir) {
  Check({Populate, [](Filesystem& fs) { return fs.Rmdir("/empty"); }});
}

TEST_F(AllOrNothingTest, TruncateUp) {
  Check({Populate, [](Filesystem& fs) { return WithFile(fs, "/d/a", [](File& f) { return f.Truncate(300 << 10); }); }});
}

TEST_F(AllOrNothingTest, PunchHole) {
  Check({Populate, [](Filesystem& fs) {
           return WithFile(fs, "/c", [](File& f) { return f.Fallocate(kFallocPunchHole | kFallocKeepSize, 4096, 32 << 10); });
         }});
}

TEST_F(AllOrNothingTest, Fallocate) {
  Check({Populate, [](Filesystem& fs) { return WithFile(fs, "/d/sub/b", [](File& f) { return f.Fallocate(0, 0, 1 << 20); }); }});
}

TEST_F(AllOrNothingTest, Reflink) {
  Check({Populate, [](Filesystem& fs) {
           auto src = fs.Open("/c");
           if (!src.ok()) return src.status();
           return WithFile(fs, "/d/a", [&](File& f) { return f.CloneFrom(**src, 0, 0, 32 << 10); });
         }});
}

// Untorn writes: part of a written page, a whole page, and a page past the
// end (the size grows in the same commit).
TEST_F(AllOrNothingTest, AtomicWriteInsideAPage) {
  static const std::string kBytes(700, 'q');
  Check({Populate, [](Filesystem& fs) {
           return WithFile(fs, "/c", [](File& f) { return f.WriteAtomic(8192 + 1000, kBytes.data(), kBytes.size()); });
         }});
}

TEST_F(AllOrNothingTest, AtomicWriteOfAWholePage) {
  static const std::string kBytes(4096, 'w');
  Check({Populate, [](Filesystem& fs) {
           return WithFile(fs, "/d/a", [](File& f) { return f.WriteAtomic(4096, kBytes.data(), kBytes.size()); });
         }});
}

TEST_F(AllOrNothingTest, AtomicWritePastTheEnd) {
  static const std::string kBytes(300, 'e');
  Check({Populate, [](Filesystem& fs) {
           return WithFile(fs, "/d/sub/b", [](File& f) { return f.WriteAtomic(4096 + 50, kBytes.data(), kBytes.size()); });
         }});
}

TEST_F(AllOrNothingTest, TruncateDownInsideABlock) {
  Check({Populate, [](Filesystem& fs) { return WithFile(fs, "/d/a", [](File& f) { return f.Truncate(50000); }); }});
}

TEST_F(AllOrNothingTest, PunchHoleWithPartialBlocks) {
  Check({Populate, [](Filesystem& fs) {
           return WithFile(fs, "/c", [](File& f) { return f.Fallocate(kFallocPunchHole | kFallocKeepSize, 1000, 30000); });
         }});
}

TEST_F(AllOrNothingTest, ZeroRangeWithPartialBlocks) {
  Check({Populate, [](Filesystem& fs) {
           return WithFile(fs, "/c", [](File& f) { return f.Fallocate(kFallocZeroRange, 1000, 30000); });
         }});
}

// Shared blocks are let go and replaced, holes filled, own blocks made
// unwritten: all in one commit.
TEST_F(AllOrNothingTest, ZeroRangeOverSharedBlocksAndHoles) {
  auto populate = [](Filesystem& fs) {
    Populate(fs);
    auto c = fs.Open("/c");
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(WithFile(fs, "/d/a", [&](File& f) { return f.CloneFrom(**c, 0, 0, 32 << 10); }).ok());
    ASSERT_TRUE(WithFile(fs, "/d/a", [](File& f) { return f.Fallocate(kFallocPunchHole | kFallocKeepSize, 64 << 10, 16 << 10); }).ok());
  };
  Check({populate, [](Filesystem& fs) {
           return WithFile(fs, "/d/a", [](File& f) { return f.Fallocate(kFallocZeroRange, 0, 100 << 10); });
         }});
}

TEST_F(AllOrNothingTest, RemoveTree) {
  Check({Populate, [](Filesystem& fs) { return fs.RemoveTree("/d"); }});
}

// fs put: a new unnamed file, written, then named in one commit.
Status PutAsFsPutDoes(Filesystem& fs, const std::string& path, uint64_t len) {
  auto f = fs.CreateUnnamed(path);
  if (!f.ok()) return f.status();
  std::string data(len, 'p');
  auto w = (*f)->Write(0, data.data(), len);
  if (!w.ok()) return w.status();
  DG_RETURN_IF_ERROR((*f)->Fsync());
  return fs.Publish(**f, path);
}

TEST_F(AllOrNothingTest, PutOverAFile) {
  Check({Populate, [](Filesystem& fs) { return PutAsFsPutDoes(fs, "/d/a", 40 << 10); }});
}

TEST_F(AllOrNothingTest, PutOfANewName) {
  Check({Populate, [](Filesystem& fs) { return PutAsFsPutDoes(fs, "/d/new", 40 << 10); }});
}

// mkfs -f over a filesystem: the new one is written beside the old one and
// the superblocks switch to it.
TEST_F(AllOrNothingTest, MkfsOverAFilesystem) {
  Check({Populate, nullptr, [](dax::Device& dev) { return Filesystem::Mkfs(dev); }});
}

// fsck --repair writes what it repaired as one snapshot: a stop leaves the
// damage fsck found, or the repaired filesystem.
TEST_F(AllOrNothingTest, FsckRepair) {
  Check({Populate, [](Filesystem& fs) { return fs.RepairForFsck(); }, nullptr, [](dax::Device& dev) {
           LogSurgery s(dev);
           LogRecord r = s.RecordLinking("sub");
           s.Scribble(r.pos, r.span, 0x5a);
         }});
}

// More entries than one removal commit takes (Filesystem::kRemoveBatch):
// the tree leaves the namespace first, and is emptied over several commits.
TEST_F(AllOrNothingTest, RemoveLargeTree) {
  auto populate = [](Filesystem& fs) {
    Populate(fs);
    for (int d = 0; d < 3; ++d) {
      std::string dir = "/d/many" + std::to_string(d);
      ASSERT_TRUE(fs.Mkdir(dir).ok());
      for (int i = 0; i < 40; ++i) Put(fs, dir + "/f" + std::to_string(i), i % 3 ? 0 : 4096, static_cast<uint8_t>(i));
    }
  };
  Check({populate, [](Filesystem& fs) { return fs.RemoveTree("/d"); }});
}

}  // namespace
}  // namespace daxguard::fs
