// The daxfs namespace: how every operation reads a path, rm -r, rename in
// every case, and readers over the damage lost log records leave behind.
#include <sys/stat.h>

#include <algorithm>
#include <functional>

#include "fs/fs_fixture.h"
#include "fs/fsck.h"

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

}  // namespace
}  // namespace daxguard::fs
