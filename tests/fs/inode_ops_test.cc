// The inode-relative face of daxfs that a FUSE mount uses: paths from a
// directory inode, rename's NOREPLACE and EXCHANGE, chmod/chown/utimens,
// the caller owning what it creates, statfs; all kept across a remount
// and clean to fsck.
#include <sys/stat.h>
#include <sys/xattr.h>

#include <array>
#include <mutex>

#include "common/test_util.h"
#include "fs/fs_fixture.h"
#include "fs/fsck.h"

namespace daxguard::fs {
namespace {

class InodeOpsTest : public FsTest {
 protected:
  uint64_t Ino(const std::string& path) {
    auto st = fs_->Stat(path);
    EXPECT_TRUE(st.ok()) << path << ": " << st.status().message();
    return st.ok() ? st->ino : 0;
  }
  FileStat StatOf(const PathRef& p) {
    auto st = fs_->Stat(p);
    EXPECT_TRUE(st.ok()) << p.path << ": " << st.status().message();
    return st.ok() ? *st : FileStat{};
  }
  void ExpectFsckClean() {
    fs_.reset();
    auto r = Fsck(*dev_, false);
    ASSERT_TRUE(r.ok()) << r.status().message();
    for (const std::string& p : r->problems) ADD_FAILURE() << "fsck: " << p;
    Mount();
  }
};

TEST_F(InodeOpsTest, PathsStartAtTheInodeTheyName) {
  ASSERT_TRUE(fs_->Mkdir("/a").ok());
  uint64_t a = Ino("/a");
  ASSERT_TRUE(fs_->Mkdir(PathRef(a, "b")).ok());
  ASSERT_TRUE(fs_->Open(PathRef(a, "b/f"), kCreate).ok());
  EXPECT_EQ(StatOf(PathRef(a, "b/f")).ino, Ino("/a/b/f"));
  EXPECT_EQ(StatOf(PathRef(Ino("/a/b"), "")).ino, Ino("/a/b"));  // the inode itself
  EXPECT_EQ(StatOf(PathRef(Ino("/a/b"), "..")).ino, a);          // its parent, though the walk began below it
  // A rename above does not change what the inode-relative path reaches.
  ASSERT_TRUE(fs_->Rename("/a", "/z").ok());
  EXPECT_EQ(StatOf(PathRef(a, "b/f")).ino, Ino("/z/b/f"));
  EXPECT_EQ(fs_->Stat(PathRef(a, "nothing")).status().err(), ENOENT);
  EXPECT_EQ(fs_->Stat(PathRef(Ino("/z/b/f"), "x")).status().err(), ENOTDIR);
  EXPECT_EQ(fs_->Stat(PathRef(999999, "")).status().err(), ESTALE);
}

TEST_F(InodeOpsTest, AMoveIntoItsOwnSubtreeIsRefusedFromAnInode) {
  ASSERT_TRUE(fs_->Mkdir("/a").ok());
  ASSERT_TRUE(fs_->Mkdir("/a/b").ok());
  Status s = fs_->Rename("/a", PathRef(Ino("/a/b"), "a"));
  EXPECT_EQ(s.err(), EINVAL) << s.message();
  s = fs_->Rename("/a", PathRef(Ino("/a/b"), "a"), kRenameExchange);
  EXPECT_EQ(s.err(), ENOENT) << s.message();
}

TEST_F(InodeOpsTest, NoReplaceRefusesAnExistingTarget) {
  ASSERT_TRUE(fs_->Open("/x", kCreate).ok());
  ASSERT_TRUE(fs_->Open("/y", kCreate).ok());
  uint64_t x = Ino("/x"), y = Ino("/y");
  EXPECT_EQ(fs_->Rename("/x", "/y", kRenameNoReplace).err(), EEXIST);
  EXPECT_EQ(Ino("/x"), x);
  EXPECT_EQ(Ino("/y"), y);
  ASSERT_TRUE(fs_->Rename("/x", "/z", kRenameNoReplace).ok());
  EXPECT_EQ(Ino("/z"), x);
}

TEST_F(InodeOpsTest, ExchangeSwapsAFileAndADirectoryAcrossParents) {
  ASSERT_TRUE(fs_->Mkdir("/p").ok());
  ASSERT_TRUE(fs_->Mkdir("/q").ok());
  ASSERT_TRUE(fs_->Mkdir("/p/dir").ok());
  ASSERT_TRUE(fs_->Open("/p/dir/inside", kCreate).ok());
  ASSERT_TRUE(fs_->Open("/q/file", kCreate).ok());
  uint64_t dir = Ino("/p/dir"), file = Ino("/q/file");
  ASSERT_TRUE(fs_->Rename("/p/dir", "/q/file", kRenameExchange).ok());
  EXPECT_EQ(Ino("/p/dir"), file);
  EXPECT_EQ(Ino("/q/file"), dir);
  EXPECT_TRUE(fs_->Stat("/q/file/inside").ok());
  // The directory's ".." moved from /p to /q.
  EXPECT_EQ(StatOf("/p").attr.nlink, 2u);
  EXPECT_EQ(StatOf("/q").attr.nlink, 3u);
  EXPECT_EQ(fs_->Rename("/p/dir", "/p/none", kRenameExchange).err(), ENOENT);
  EXPECT_EQ(fs_->Rename("/p/dir", "/q/file", kRenameExchange | kRenameNoReplace).err(), EINVAL);
  ExpectFsckClean();
  Remount();
  EXPECT_EQ(Ino("/q/file"), dir);
  EXPECT_EQ(StatOf("/q").attr.nlink, 3u);
}

TEST_F(InodeOpsTest, ChangesToADirectoryMoveItsTimes) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  Attr old;
  old.mtime_ns = old.atime_ns = 1'000'000'000;
  ASSERT_TRUE(fs_->SetAttr(Ino("/d"), old, kAttrAtime | kAttrMtime).ok());
  ASSERT_TRUE(fs_->Open("/d/f", kCreate).ok());
  int64_t after_create = StatOf("/d").attr.mtime_ns;
  EXPECT_GT(after_create, old.mtime_ns);
  ASSERT_TRUE(fs_->SetAttr(Ino("/d"), old, kAttrMtime).ok());
  ASSERT_TRUE(fs_->Unlink("/d/f").ok());
  EXPECT_GT(StatOf("/d").attr.mtime_ns, old.mtime_ns);
}

TEST_F(InodeOpsTest, SetAttrChangesWhatItNamesAndKeepsItAcrossARemount) {
  ASSERT_TRUE(fs_->Open("/f", kCreate, 0600, Caller{1234, 5678}).ok());
  EXPECT_EQ(StatOf("/f").attr.uid, 1234u);
  EXPECT_EQ(StatOf("/f").attr.gid, 5678u);
  uint64_t ino = Ino("/f");
  Attr a;
  a.mode = S_IFDIR | 04755;  // the type bits are not the caller's to change
  a.uid = 42;
  a.gid = 43;
  a.atime_ns = 111;
  a.mtime_ns = 222;
  auto st = fs_->SetAttr(ino, a, kAttrMode | kAttrUid | kAttrAtime | kAttrMtime);
  ASSERT_TRUE(st.ok()) << st.status().message();
  Remount();
  FileStat s = StatOf("/f");
  EXPECT_EQ(s.attr.mode, static_cast<uint32_t>(S_IFREG | 04755));
  EXPECT_EQ(s.attr.uid, 42u);
  EXPECT_EQ(s.attr.gid, 5678u);  // not in the mask
  EXPECT_EQ(s.attr.atime_ns, 111);
  EXPECT_EQ(s.attr.mtime_ns, 222);
  EXPECT_GT(s.attr.ctime_ns, 222);
  ASSERT_TRUE(fs_->Mkdir("/d", 0700, Caller{7, 8}).ok());
  EXPECT_EQ(StatOf("/d").attr.uid, 7u);
  ExpectFsckClean();
}

TEST_F(InodeOpsTest, StatFsCountsBlocksAndFiles) {
  FsStats before = fs_->StatFs();
  EXPECT_GT(before.blocks, 0u);
  EXPECT_LT(before.blocks, kDevSize / 4096);  // the metadata areas are not for data
  EXPECT_LE(before.free_blocks, before.blocks);
  EXPECT_EQ(before.files, 1u);  // the root
  auto f = Create("/f");
  ASSERT_TRUE(f);
  Fill(*f, 0, 10 * 4096, 0xab);
  FsStats after = fs_->StatFs();
  EXPECT_EQ(after.files, 2u);
  EXPECT_EQ(after.free_blocks, before.free_blocks - 10);
  EXPECT_EQ(after.blocks, before.blocks);
}

TEST_F(InodeOpsTest, AnOpenFileWithNoNameGetsNoNewOne) {
  auto f = Create("/f");
  ASSERT_TRUE(f);
  uint64_t ino = f->ino();
  ASSERT_TRUE(fs_->Unlink("/f").ok());
  EXPECT_TRUE(fs_->Stat(PathRef(ino, "")).ok());  // still there while open
  EXPECT_EQ(fs_->Link(PathRef(ino, ""), "/g").err(), ENOENT);
  EXPECT_EQ(fs_->Stat("/g").status().err(), ENOENT);
}

TEST_F(InodeOpsTest, ASymlinkKeepsItsTargetAcrossARemount) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  std::string target(4095, 'x');
  target.replace(0, 9, "../other/");
  ASSERT_TRUE(fs_->Symlink(target, "/d/l", Caller{5, 6}).ok());
  ASSERT_TRUE(fs_->Symlink("f", PathRef(Ino("/d"), "short")).ok());
  EXPECT_EQ(fs_->Symlink("x", "/d/l").err(), EEXIST);
  EXPECT_EQ(fs_->Symlink(std::string(4096, 'y'), "/d/long").err(), ENAMETOOLONG);
  EXPECT_EQ(fs_->Symlink("", "/d/empty").err(), ENOENT);
  EXPECT_EQ(fs_->Open("/d/l").status().err(), ELOOP);  // never opened: the kernel follows it
  Remount();
  auto t = fs_->ReadLink("/d/l");
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(*t, target);
  EXPECT_EQ(fs_->ReadLink(PathRef(Ino("/d"), "short")).value_or(""), "f");
  FileStat st = StatOf("/d/l");
  EXPECT_EQ(st.attr.mode, static_cast<uint32_t>(S_IFLNK | 0777));
  EXPECT_EQ(st.attr.size, 4095u);
  EXPECT_EQ(st.attr.uid, 5u);
  EXPECT_EQ(st.attr.nlink, 1u);
  EXPECT_EQ(fs_->ReadLink("/d").status().err(), EINVAL);
  EXPECT_EQ(fs_->StatFs().files, 4u);  // root, d and the two links: the refused ones left nothing
  ASSERT_TRUE(fs_->Unlink("/d/l").ok());
  ExpectFsckClean();
}

TEST_F(InodeOpsTest, ExtendedAttributesKeepAcrossARemountAndASnapshot) {
  ASSERT_TRUE(fs_->Open("/f", kCreate).ok());
  uint64_t ino = Ino("/f");
  std::string big(60 << 10, 'v');
  ASSERT_TRUE(fs_->SetXattr(ino, "user.a", "one", 0).ok());
  ASSERT_TRUE(fs_->SetXattr(ino, "trusted.b", std::string("bin\0ary", 7), 0).ok());
  EXPECT_EQ(fs_->SetXattr(ino, "user.a", "x", XATTR_CREATE).err(), EEXIST);
  EXPECT_EQ(fs_->SetXattr(ino, "user.none", "x", XATTR_REPLACE).err(), ENODATA);
  EXPECT_EQ(fs_->SetXattr(ino, "user.big", std::string((64 << 10) + 1, 'x'), 0).err(), E2BIG);
  ASSERT_TRUE(fs_->SetXattr(ino, "user.big", big, 0).ok());
  EXPECT_EQ(fs_->SetXattr(ino, "user.more", std::string(8 << 10, 'm'), 0).err(), ENOSPC);  // over 64 KiB in all
  ASSERT_TRUE(fs_->SetXattr(ino, "user.a", "two", XATTR_REPLACE).ok());
  Remount();
  EXPECT_EQ(fs_->GetXattr(ino, "user.a").value_or(""), "two");
  EXPECT_EQ(fs_->GetXattr(ino, "trusted.b").value_or(""), std::string("bin\0ary", 7));
  EXPECT_EQ(fs_->GetXattr(ino, "user.big").value_or(""), big);
  EXPECT_EQ(fs_->GetXattr(ino, "user.none").status().err(), ENODATA);
  ASSERT_TRUE(fs_->RemoveXattr(ino, "user.big").ok());
  EXPECT_EQ(fs_->RemoveXattr(ino, "user.big").err(), ENODATA);
  // A fresh snapshot (what log compaction and fsck --repair write) carries them.
  ASSERT_TRUE(fs_->RepairForFsck().ok());
  Remount();
  auto names = fs_->ListXattr(ino);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"trusted.b", "user.a"}));
  ExpectFsckClean();
}

TEST_F(InodeOpsTest, MknodMakesFilesFifosAndSocketsButNoDevices) {
  ASSERT_TRUE(fs_->Mknod("/f", S_IFREG | 0600).ok());
  ASSERT_TRUE(fs_->Mknod("/p", S_IFIFO | 0644).ok());
  ASSERT_TRUE(fs_->Mknod("/s", S_IFSOCK | 0755).ok());
  EXPECT_EQ(fs_->Mknod("/c", S_IFCHR | 0600).err(), EPERM);
  EXPECT_EQ(fs_->Mknod("/f", S_IFREG | 0600).err(), EEXIST);
  Remount();
  EXPECT_EQ(StatOf("/f").attr.mode, static_cast<uint32_t>(S_IFREG | 0600));
  EXPECT_EQ(StatOf("/p").attr.mode, static_cast<uint32_t>(S_IFIFO | 0644));
  EXPECT_EQ(StatOf("/s").attr.mode, static_cast<uint32_t>(S_IFSOCK | 0755));
  EXPECT_EQ(fs_->Stat("/c").status().err(), ENOENT);
  ExpectFsckClean();
}

TEST_F(InodeOpsTest, TheFilesystemHearsOfDamageToAFileNobodyHasOpen) {
  auto f = Create("/f");
  ASSERT_TRUE(f);
  Fill(*f, 0, 3 * 4096, 0x5a);
  uint64_t ino = f->ino(), at = DeviceOffset(*f, 4096);
  f.reset();
  std::mutex mu;
  std::vector<std::array<uint64_t, 3>> heard;
  fs_->OnAnyDamage([&](uint64_t i, uint64_t off, uint64_t len) {
    std::lock_guard<std::mutex> g(mu);
    heard.push_back({i, off, len});
  });
  ASSERT_TRUE(dev_->media().Inject(at / 512, 1, {}).ok());
  EXPECT_TRUE(daxguard::testing::Eventually([&] {
    std::lock_guard<std::mutex> g(mu);
    return !heard.empty();
  }));
  fs_->OnAnyDamage(nullptr);
  std::lock_guard<std::mutex> g(mu);
  ASSERT_FALSE(heard.empty());
  EXPECT_EQ(heard[0][0], ino);
  EXPECT_LE(heard[0][1], 4096u);
  EXPECT_GT(heard[0][1] + heard[0][2], 4096u);
}

}  // namespace
}  // namespace daxguard::fs
