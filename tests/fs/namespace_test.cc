// The daxfs namespace: how every operation reads a path, rm -r, rename in
// every case, and readers over the damage lost log records leave behind.
#include <sys/stat.h>

#include <algorithm>
#include <functional>

#include "fs/fs_fixture.h"
#include "fs/fsck.h"
#include "fs/log_surgery.h"

namespace daxguard::fs {
namespace {

using NameList = std::vector<std::string>;

class NamespaceTest : public FsTest {
 protected:
  // What fsck finds, unmounted (then mounted again).
  std::vector<std::string> FsckProblems() {
    fs_.reset();
    auto r = Fsck(*dev_, false);
    EXPECT_TRUE(r.ok()) << r.status().message();
    Mount();
    return r.ok() ? r->problems : std::vector<std::string>{};
  }
  void ExpectFsckClean() {
    for (const std::string& p : FsckProblems()) ADD_FAILURE() << "fsck: " << p;
  }
  std::vector<std::string> Names(const std::string& dir) {
    auto ls = fs_->ReadDir(dir);
    EXPECT_TRUE(ls.ok()) << ls.status().message();
    std::vector<std::string> out;
    if (ls.ok())
      for (const DirEntry& e : *ls) out.push_back(e.name);
    return out;
  }
  uint32_t Links(const std::string& path) {
    auto st = fs_->Stat(path);
    EXPECT_TRUE(st.ok()) << path << ": " << st.status().message();
    return st.ok() ? st->attr.nlink : 0;
  }
  // Appends `ops` to the log of the unmounted filesystem, as a bug would
  // have committed them, and mounts again.
  void AppendToLog(const std::vector<Op>& ops) {
    fs_.reset();
    {
      LogSurgery s(*dev_);
      ASSERT_TRUE(s.log().Append(ops).ok());
    }
    Mount();
  }
  // Unlinks `path` and loses the record that did it in both log copies
  // (the one freeing the inode after it survives): a dangling entry.
  void UnlinkAndLoseTheRecord(const std::string& dir, const std::string& name) {
    ASSERT_TRUE(fs_->Unlink(dir + "/" + name).ok());
    fs_.reset();
    {
      LogSurgery s(*dev_);
      bool found = false;
      for (const LogRecord& r : s.Records())
        for (const Op& op : r.ops)
          if (!found && op.type == OpType::kUnlink && op.name == name) {
            s.Scribble(r.pos, r.span, 0x5a);
            found = true;
          }
      ASSERT_TRUE(found);
    }
    Mount();
  }
  static bool Damaged(const Status& s) {
    return s.err() == EIO && s.message().find("damaged directory entry") != std::string::npos;
  }
  uint64_t Ino(const std::string& path) {
    auto st = fs_->Stat(path);
    EXPECT_TRUE(st.ok()) << path << ": " << st.status().message();
    return st.ok() ? st->ino : 0;
  }
};

TEST_F(NamespaceTest, EveryFormOfAPathNamesTheSameInode) {
  ASSERT_TRUE(fs_->Mkdir("/a").ok());
  ASSERT_TRUE(fs_->Mkdir("/a/b").ok());
  Create("/a/b/f");
  uint64_t f = Ino("/a/b/f");
  for (const char* p : {"//a//b/f", "/a/./b/f", "a/b/f", "/a/b/../b/f", "/../a/b/f", "/a/b/./../../a/b/f"})
    EXPECT_EQ(Ino(p), f) << p;
  for (const char* p : {"/", "//", "/.", "/./", "/..", "/a/..", "/a/b/../..", ""}) EXPECT_EQ(Ino(p), kRootIno) << p;
  EXPECT_EQ(Ino("/a/b/"), Ino("/a/b/."));
  EXPECT_EQ(fs_->Stat("/missing/../a").status().err(), ENOENT) << "every name on the way must exist";
  EXPECT_EQ(fs_->Stat("/a/b/f/..").status().err(), ENOTDIR);
  EXPECT_EQ(fs_->Stat("/" + std::string(kMaxNameLen + 1, 'n') + "/..").status().err(), ENAMETOOLONG);
}

TEST_F(NamespaceTest, RemoveTreeRefusesTheRootBeforeRemovingAnything) {
  ASSERT_TRUE(fs_->Mkdir("/a").ok());
  Create("/a/f");
  Create("/x");
  for (const char* root : {"/", "//", "/.", "/./", "/..", "/a/..", "/a/../", ""}) {
    Status s = fs_->RemoveTree(root);
    EXPECT_EQ(s.err(), EINVAL) << root;
    EXPECT_NE(s.message().find("names the root"), std::string::npos) << s.message();
    EXPECT_EQ(Names("/"), (NameList{"a", "x"})) << root;
    EXPECT_EQ(Names("/a"), NameList{"f"}) << root;
  }
  for (const char* dotted : {"/a/.", "/a/./"}) {
    EXPECT_EQ(fs_->RemoveTree(dotted).err(), EINVAL) << dotted << ": as rm(1) refuses it";
    EXPECT_EQ(Names("/a"), NameList{"f"}) << dotted;
  }
  EXPECT_EQ(fs_->RemoveTree("/a/b/..").err(), ENOENT);
  for (const char* op : {"mkdir", "rmdir", "unlink", "rename from", "rename to"}) {
    std::string o = op;
    Status s = o == "mkdir"         ? fs_->Mkdir("/a/..")
               : o == "rmdir"       ? fs_->Rmdir("/.")
               : o == "unlink"      ? fs_->Unlink("//")
               : o == "rename from" ? fs_->Rename("/a/..", "/y")
                                    : fs_->Rename("/x", "/a/..");
    EXPECT_EQ(s.err(), EINVAL) << op;
  }
  EXPECT_EQ(Names("/"), (NameList{"a", "x"}));
  ASSERT_TRUE(fs_->RemoveTree("/a/").ok());
  EXPECT_EQ(Names("/"), NameList{"x"});
  ExpectFsckClean();
}

TEST_F(NamespaceTest, ATrailingSlashNamesADirectory) {
  Create("/f");
  ASSERT_TRUE(fs_->Mkdir("/d/").ok());
  EXPECT_EQ(fs_->Unlink("/f/").err(), ENOTDIR);
  EXPECT_EQ(fs_->RemoveTree("/f/").err(), ENOTDIR);
  EXPECT_EQ(fs_->Stat("/f/").status().err(), ENOTDIR);
  EXPECT_EQ(fs_->Stat("/f/.").status().err(), ENOTDIR);
  EXPECT_EQ(fs_->Open("/f/").status().err(), ENOTDIR);
  EXPECT_EQ(fs_->Open("/g/", kCreate).status().err(), EISDIR) << "open(2) refuses to create a file named with a slash";
  EXPECT_EQ(fs_->Link("/f", "/g/").err(), ENOTDIR);
  EXPECT_EQ(fs_->Link("/f/", "/g").err(), ENOTDIR);
  EXPECT_EQ(fs_->Rename("/f/", "/g").err(), ENOTDIR);
  EXPECT_EQ(fs_->Rename("/f", "/g/").err(), ENOTDIR);
  EXPECT_EQ(Names("/"), (NameList{"d", "f"}));
  EXPECT_TRUE(fs_->Rename("/d/", "/e/").ok());
  EXPECT_TRUE(fs_->Rmdir("/e/").ok());
  EXPECT_TRUE(fs_->Unlink("/f").ok());
  ExpectFsckClean();
}

TEST_F(NamespaceTest, RenameKeepsEveryLinkCountRight) {
  ASSERT_TRUE(fs_->Mkdir("/a").ok());
  ASSERT_TRUE(fs_->Mkdir("/b").ok());
  ASSERT_TRUE(fs_->Mkdir("/p").ok());
  ASSERT_TRUE(fs_->Mkdir("/p/q").ok());
  Create("/f");
  Create("/g");
  ASSERT_EQ(Links("/"), 5u);
  struct Case {
    const char* what;
    std::function<Status()> op;
  };
  std::vector<Case> cases = {
      {"file over file", [&] { return fs_->Rename("/f", "/g"); }},
      {"dir over empty dir, same parent", [&] { return fs_->Rename("/a", "/b"); }},
      {"dir across directories", [&] { return fs_->Rename("/b", "/p/b"); }},
      {"dir over empty dir across directories", [&] { return fs_->Rename("/p/q", "/b2"); }},
      {"dir back over an empty dir in another directory", [&] {
         DG_RETURN_IF_ERROR(fs_->Mkdir("/p/e"));
         return fs_->Rename("/b2", "/p/e");
       }},
      {"file across directories", [&] { return fs_->Rename("/g", "/p/b/g"); }},
      {"file over file across directories", [&] {
         Create("/h");
         return fs_->Rename("/h", "/p/b/g");
       }},
      {"hard link over its other name", [&] {
         DG_RETURN_IF_ERROR(fs_->Link("/p/b/g", "/p/g2"));
         return fs_->Rename("/p/g2", "/p/b/g");
       }},
      {"onto itself", [&] { return fs_->Rename("/p/e", "/p/./e/"); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Status s = c.op();
    ASSERT_TRUE(s.ok()) << s.message();
    ExpectFsckClean();
  }
  EXPECT_EQ(Names("/"), NameList{"p"});
  EXPECT_EQ(Names("/p"), (NameList{"b", "e", "g2"}));
  EXPECT_EQ(Names("/p/b"), NameList{"g"});
  EXPECT_EQ(Links("/"), 3u);
  EXPECT_EQ(Links("/p"), 4u);
  EXPECT_EQ(Links("/p/b/g"), 2u) << "a rename of one name over another of the same file changes nothing";
  // Nothing freed was left behind: the overwritten directories and file are gone.
  fs_.reset();
  auto r = Fsck(*dev_, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->inodes, 5u) << "root, p, b, e and the file g";
  Mount();
}

TEST_F(NamespaceTest, RenameRefusesWhatRenameTwoRefusesAndChangesNothing) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  ASSERT_TRUE(fs_->Mkdir("/d/sub").ok());
  ASSERT_TRUE(fs_->Mkdir("/full").ok());
  Create("/full/x");
  Create("/f");
  struct Case {
    const char *from, *to;
    int err;
  };
  for (const Case& c : std::vector<Case>{{"/d", "/full", ENOTEMPTY},
                                         {"/f", "/d", EISDIR},
                                         {"/d", "/f", ENOTDIR},
                                         {"/d", "/d/sub/d", EINVAL},
                                         {"/d", "/d/new", EINVAL},
                                         {"/d/sub", "/d/sub/x/..", ENOENT},
                                         {"/missing", "/m", ENOENT},
                                         {"/f", "/missing/f", ENOENT},
                                         {"/f", "/f/x", ENOTDIR},
                                         {"/", "/r", EINVAL},
                                         {"/f", "/", EINVAL}}) {
    EXPECT_EQ(fs_->Rename(c.from, c.to).err(), c.err) << c.from << " -> " << c.to;
  }
  EXPECT_EQ(Names("/"), (NameList{"d", "f", "full"}));
  EXPECT_EQ(Names("/d"), NameList{"sub"});
  EXPECT_EQ(Names("/full"), NameList{"x"});
  ExpectFsckClean();
}

TEST_F(NamespaceTest, EveryReaderCopesWithADanglingEntryAndRepairRemovesIt) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  Fill(*Create("/d/x"), 0, 8192, 0x11);
  Create("/d/y");
  Create("/z");
  uint64_t x = Ino("/d/x");
  UnlinkAndLoseTheRecord("/d", "x");
  ASSERT_TRUE(fs_->read_only()) << "a lost record";
  auto ls = fs_->ReadDir("/d");
  ASSERT_TRUE(ls.ok()) << ls.status().message();
  ASSERT_EQ(ls->size(), 2u);
  EXPECT_EQ((*ls)[0].name, "x");
  EXPECT_TRUE((*ls)[0].damaged);
  EXPECT_EQ((*ls)[0].ino, x);
  EXPECT_FALSE((*ls)[1].damaged);
  for (const char* p : {"/d/x", "/d/x/", "/d/x/..", "/d/x/y"}) {
    EXPECT_TRUE(Damaged(fs_->Stat(p).status())) << p << ": " << fs_->Stat(p).status().message();
    EXPECT_TRUE(Damaged(fs_->Open(p).status())) << p;
    EXPECT_TRUE(Damaged(fs_->ReadDir(p).status())) << p;
  }
  EXPECT_TRUE(Damaged(fs_->Unlink("/d/x")));
  EXPECT_TRUE(Damaged(fs_->RemoveTree("/d"))) << "rm -r names the damage, not only the read-only filesystem";
  EXPECT_TRUE(Damaged(fs_->Rename("/d/x", "/q")));
  EXPECT_TRUE(Damaged(fs_->Rename("/z", "/d/x")));
  EXPECT_TRUE(Damaged(fs_->Link("/z", "/d/x")));
  EXPECT_TRUE(fs_->Who(0, kDevSize).ok());
  HealthReport h = fs_->Health();
  ASSERT_EQ(h.damaged_entries.size(), 1u);
  EXPECT_NE(h.damaged_entries[0].find("/d/x"), std::string::npos) << h.damaged_entries[0];
  std::vector<std::string> problems = FsckProblems();
  EXPECT_TRUE(std::any_of(problems.begin(), problems.end(), [&](const std::string& p) {
    return p.find("entry 'x'") != std::string::npos && p.find("missing inode " + std::to_string(x)) != std::string::npos;
  }));
  fs_.reset();
  auto fixed = Fsck(*dev_, true);
  ASSERT_TRUE(fixed.ok()) << fixed.status().message();
  Mount();
  ExpectFsckClean();
  EXPECT_FALSE(fs_->read_only());
  EXPECT_EQ(Names("/d"), NameList{"y"});
  EXPECT_TRUE(fs_->Health().damaged_entries.empty());
  EXPECT_TRUE(fs_->RemoveTree("/d").ok());
}

TEST_F(NamespaceTest, ChangesRefuseADanglingEntryOnAWritableFilesystem) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  Create("/d/y");
  Create("/z");
  AppendToLog({Op::Link(Ino("/d"), "ghost", 999), Op::Link(kRootIno, "ghost", 998)});
  ASSERT_FALSE(fs_->read_only());
  EXPECT_TRUE(Damaged(fs_->Unlink("/ghost")));
  EXPECT_TRUE(Damaged(fs_->Rmdir("/ghost")));
  EXPECT_TRUE(Damaged(fs_->Mkdir("/ghost")));
  EXPECT_TRUE(Damaged(fs_->Open("/ghost", kCreate).status()));
  EXPECT_TRUE(Damaged(fs_->Rename("/z", "/ghost")));
  EXPECT_TRUE(Damaged(fs_->Rename("/ghost", "/z2")));
  EXPECT_TRUE(Damaged(fs_->RemoveTree("/d")));
  EXPECT_EQ(Names("/d"), (NameList{"ghost", "y"})) << "rm -r checked the tree before removing anything";
  EXPECT_EQ(Names("/"), (NameList{"d", "ghost", "z"}));
  EXPECT_EQ(fs_->Health().damaged_entries.size(), 2u);
}

TEST_F(NamespaceTest, AnEntryNamingTheRootIsDamaged) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  AppendToLog({Op::Link(Ino("/d"), "r", kRootIno)});
  EXPECT_TRUE(Damaged(fs_->Stat("/d/r").status()));
  auto ls = fs_->ReadDir("/d");
  ASSERT_TRUE(ls.ok());
  ASSERT_EQ(ls->size(), 1u);
  EXPECT_TRUE((*ls)[0].damaged);
  EXPECT_TRUE(Damaged(fs_->RemoveTree("/d")));
  EXPECT_TRUE(Damaged(fs_->Rmdir("/d/r")));
  EXPECT_EQ(Ino("/d/.."), kRootIno);
  EXPECT_FALSE(FsckProblems().empty());
  fs_.reset();
  ASSERT_TRUE(Fsck(*dev_, true).ok());
  Mount();
  ExpectFsckClean();
  EXPECT_TRUE(fs_->Rmdir("/d").ok());
}

// A directory named twice, and a cycle reachable from the root, as replay
// makes them when records are lost: /x/y moved to /y (lost), then /x moved
// into /y, then /y renamed /z.
TEST_F(NamespaceTest, ReadersAndRepairCopeWithADirectoryCycle) {
  ASSERT_TRUE(fs_->Mkdir("/x").ok());
  ASSERT_TRUE(fs_->Mkdir("/x/y").ok());
  Create("/x/y/f");
  Create("/keep");
  uint64_t x = Ino("/x"), y = Ino("/x/y");
  ASSERT_TRUE(fs_->Rename("/x/y", "/y").ok());
  ASSERT_TRUE(fs_->Rename("/x", "/y/x").ok());
  ASSERT_TRUE(fs_->Rename("/y", "/z").ok());
  fs_.reset();
  {
    LogSurgery s(*dev_);
    std::vector<LogRecord> recs = s.Records();
    auto moved_y = std::find_if(recs.begin(), recs.end(), [&](const LogRecord& r) {
      return std::any_of(r.ops.begin(), r.ops.end(),
                         [&](const Op& op) { return op.type == OpType::kLink && op.name == "y" && op.parent == kRootIno; });
    });
    ASSERT_NE(moved_y, recs.end());
    s.Scribble(moved_y->pos, moved_y->span, 0x5a);
  }
  Mount();
  ASSERT_EQ(Ino("/z"), y);
  ASSERT_EQ(Ino("/z/x"), x);
  ASSERT_EQ(Ino("/z/x/y"), y) << "the cycle replay made";
  EXPECT_EQ(Ino("/z/x/y/x/y/f"), Ino("/z/f"));
  EXPECT_EQ(Ino("/z/x/y/x/.."), y);
  EXPECT_TRUE(fs_->RemoveTree("/z").err() == EIO);
  EXPECT_TRUE(fs_->Who(0, kDevSize).ok());
  (void)fs_->Health();
  EXPECT_EQ(Names("/"), (NameList{"keep", "z"}));
  std::vector<std::string> problems = FsckProblems();  // terminates
  EXPECT_TRUE(std::any_of(problems.begin(), problems.end(), [&](const std::string& p) {
    return p.find("directory inode " + std::to_string(y)) != std::string::npos &&
           p.find("named by more than one entry") != std::string::npos;
  })) << ::testing::PrintToString(problems);
  fs_.reset();
  auto fixed = Fsck(*dev_, true);
  ASSERT_TRUE(fixed.ok()) << fixed.status().message();
  Mount();
  ExpectFsckClean();
  EXPECT_EQ(Names("/z"), (NameList{"f", "x"}));
  EXPECT_EQ(Names("/z/x"), NameList{}) << "the name that closed the cycle is dropped, the tree kept";
  EXPECT_TRUE(fs_->RemoveTree("/z").ok());
  ExpectFsckClean();
  EXPECT_EQ(Names("/"), NameList{"keep"});
}

TEST_F(NamespaceTest, ALinkCountTooLowNeverFreesANamedFileNorWraps) {
  Fill(*Create("/x"), 0, 4096, 0x33);
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  Attr zero = fs_->Stat("/d").value().attr;
  zero.nlink = 0;
  // Two names, one link; the root at 0 (mount must not free it).
  AppendToLog({Op::Link(kRootIno, "x2", Ino("/x")), Op::SetInode(kRootIno, zero)});
  ASSERT_EQ(Links("/x"), 1u);
  ASSERT_TRUE(fs_->Unlink("/x").ok());
  auto f = OpenFile("/x2");
  ASSERT_NE(f, nullptr) << "the other name still reaches the file";
  EXPECT_EQ(ReadAll(*f, 0, 4096), std::vector<uint8_t>(4096, 0x33));
  f.reset();
  EXPECT_EQ(Links("/x2"), 0u);
  ASSERT_TRUE(fs_->Unlink("/x2").ok());
  ASSERT_TRUE(fs_->Rmdir("/d").ok());
  EXPECT_EQ(Links("/"), 0u) << "a count at 0 stays there, never wraps";
  EXPECT_FALSE(FsckProblems().empty());
  fs_.reset();
  ASSERT_TRUE(Fsck(*dev_, true).ok());
  Mount();
  ExpectFsckClean();
  EXPECT_EQ(Links("/"), 2u);
}

// daxfs never changes an inode's type: a record turning a directory into
// a file is damage, not applied (its entries stay reachable) and named.
// daxfs never changes an inode's type: a record turning a directory into
// a file is damage. It is not applied (the entries stay reachable), and
// the mount that finds it names it and writes a snapshot without it.
TEST_F(NamespaceTest, ARecordTurningADirectoryIntoAFileIsNotAppliedAndIsNamed) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  Create("/d/x");
  Attr file = fs_->Stat("/d").value().attr;
  file.mode = S_IFREG | 0644;
  AppendToLog({Op::SetInode(Ino("/d"), file)});
  const std::vector<std::string>& repaired = fs_->mount_report().repaired;
  ASSERT_EQ(repaired.size(), 1u);
  EXPECT_NE(repaired[0].find("inode record for inode " + std::to_string(Ino("/d")) + " changes its type"),
            std::string::npos) << repaired[0];
  EXPECT_TRUE(S_ISDIR(fs_->Stat("/d").value().attr.mode));
  EXPECT_EQ(Names("/d"), NameList{"x"});
  ExpectFsckClean();
  EXPECT_EQ(Names("/d"), NameList{"x"});
}

TEST_F(NamespaceTest, RemoveTreeRefusesADirectoryWithASecondName) {
  ASSERT_TRUE(fs_->Mkdir("/a").ok());
  ASSERT_TRUE(fs_->Mkdir("/a/d").ok());
  Fill(*Create("/a/d/f"), 0, 4096, 0x44);
  ASSERT_TRUE(fs_->Mkdir("/b").ok());
  AppendToLog({Op::Link(Ino("/b"), "alias", Ino("/a/d"))});
  for (const char* p : {"/b", "/a", "/b/alias", "/a/d"}) {
    Status s = fs_->RemoveTree(p);
    EXPECT_EQ(s.err(), EIO) << p;
    EXPECT_NE(s.message().find("has more than one name"), std::string::npos) << s.message();
  }
  EXPECT_EQ(Names("/a/d"), NameList{"f"}) << "nothing went";
  EXPECT_EQ(Names("/b/alias"), NameList{"f"});
  ASSERT_TRUE(fs_->Rmdir("/b/alias").err() == ENOTEMPTY);
  std::vector<std::string> problems = FsckProblems();
  EXPECT_TRUE(std::any_of(problems.begin(), problems.end(), [&](const std::string& p) {
    return p.find("entry 'alias'") != std::string::npos && p.find("named by more than one entry") != std::string::npos;
  })) << ::testing::PrintToString(problems);
  fs_.reset();
  ASSERT_TRUE(Fsck(*dev_, true).ok());
  Mount();
  ExpectFsckClean();
  EXPECT_EQ(Names("/b"), NameList{}) << "the second name found from the root is dropped";
  auto f = OpenFile("/a/d/f");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(ReadAll(*f, 0, 4096), std::vector<uint8_t>(4096, 0x44));
  f.reset();
  EXPECT_TRUE(fs_->RemoveTree("/a").ok());
  ExpectFsckClean();
}

}  // namespace
}  // namespace daxguard::fs
