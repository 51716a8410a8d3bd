#include <sys/stat.h>

#include "fs/fs_fixture.h"

namespace daxguard::fs {
namespace {

TEST_F(FsTest, WriteReadAndSurviveRemount) {
  auto f = Create("/hello");
  Fill(*f, 0, 10000, 0x61);
  Fill(*f, 5000, 100, 0x62);
  EXPECT_EQ(f->Stat()->attr.size, 10000u);
  f.reset();
  Remount();
  auto g = OpenFile("/hello");
  auto data = ReadAll(*g, 0, 20000);
  ASSERT_EQ(data.size(), 10000u);
  EXPECT_EQ(data[0], 0x61);
  EXPECT_EQ(data[5000], 0x62);
  EXPECT_EQ(data[5099], 0x62);
  EXPECT_EQ(data[5100], 0x61);
}

// An untorn write takes a fresh block (the old one stays until the commit)
// and refuses to span two pages or to be empty.
TEST_F(FsTest, AtomicWritesStayInOnePageAndMoveIt) {
  auto f = Create("/a");
  Fill(*f, 0, 8192, 0x61);
  uint64_t before = f->Fiemap()->at(0).physical;
  std::string bytes(100, 'z');
  ASSERT_TRUE(f->WriteAtomic(4096 + 10, bytes.data(), bytes.size()).ok());
  auto data = ReadAll(*f, 0, 8192);
  EXPECT_EQ(data[4095], 0x61);
  EXPECT_EQ(data[4096 + 10], 'z');
  EXPECT_EQ(data[4096 + 109], 'z');
  EXPECT_EQ(data[4096 + 110], 0x61);
  auto map = f->Fiemap();
  ASSERT_TRUE(map.ok());
  uint64_t second = 0;
  for (const FiemapExtent& e : *map)
    if (e.logical <= 4096 && 4096 < e.logical + e.length) second = e.physical + (4096 - e.logical);
  EXPECT_NE(second, before + 4096) << "written in place";
  ASSERT_TRUE(f->WriteAtomic(8192 + 4000, bytes.data(), 96).ok());  // past the end: grows
  EXPECT_EQ(f->Stat()->attr.size, 8192u + 4096);
  EXPECT_EQ(f->WriteAtomic(4000, bytes.data(), 100).err(), EINVAL);
  EXPECT_EQ(f->WriteAtomic(0, bytes.data(), 0).err(), EINVAL);
  f.reset();
  Remount();
  data = ReadAll(*OpenFile("/a"), 0, 20000);
  ASSERT_EQ(data.size(), 8192u + 4096);
  EXPECT_EQ(data[4096 + 50], 'z');
  EXPECT_EQ(data[8192 + 4095], 'z');
  EXPECT_EQ(data[8192], 0);
}

TEST_F(FsTest, HolesReadAsZeroes) {
  auto f = Create("/sparse");
  Fill(*f, 1 << 20, 10, 0x77);
  auto data = ReadAll(*f, 0, 4096);
  ASSERT_EQ(data.size(), 4096u);
  EXPECT_EQ(std::count(data.begin(), data.end(), 0), 4096);
  EXPECT_EQ(f->Stat()->blocks, 1u);
}

TEST_F(FsTest, NamespaceOperations) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  ASSERT_TRUE(fs_->Mkdir("/d/e").ok());
  EXPECT_EQ(fs_->Mkdir("/d").err(), EEXIST);
  Create("/d/f1");
  ASSERT_TRUE(fs_->Link("/d/f1", "/d/e/f2").ok());
  EXPECT_EQ(fs_->Stat("/d/f1")->attr.nlink, 2u);
  ASSERT_TRUE(fs_->Rename("/d/e/f2", "/g").ok());
  EXPECT_EQ(fs_->Stat("/d/e/f2").status().err(), ENOENT);
  EXPECT_EQ(fs_->Rmdir("/d").err(), ENOTEMPTY);
  EXPECT_EQ(fs_->Rename("/d", "/d/e/x").err(), EINVAL);
  ASSERT_TRUE(fs_->Unlink("/d/f1").ok());
  EXPECT_EQ(fs_->Stat("/g")->attr.nlink, 1u);
  ASSERT_TRUE(fs_->Rmdir("/d/e").ok());
  auto ls = fs_->ReadDir("/");
  ASSERT_TRUE(ls.ok());
  ASSERT_EQ(ls->size(), 2u);
  EXPECT_EQ((*ls)[0].name, "d");
  EXPECT_EQ((*ls)[1].name, "g");
  EXPECT_EQ(fs_->Mkdir("/" + std::string(256, 'x')).err(), ENAMETOOLONG);
  Remount();
  EXPECT_TRUE(fs_->Stat("/g").ok());
  EXPECT_TRUE(S_ISDIR(fs_->Stat("/d")->attr.mode));
}

TEST_F(FsTest, LargeWritesGetAlignedExtents) {
  auto f = Create("/big");
  Fill(*f, 0, 4 << 20, 0x11);
  auto m = f->Fiemap();
  ASSERT_TRUE(m.ok());
  ASSERT_FALSE(m->empty());
  EXPECT_EQ((*m)[0].physical % (2 << 20), 0u);
  uint64_t total = 0;
  for (auto& e : *m) total += e.length;
  EXPECT_EQ(total, 4u << 20);
}

TEST_F(FsTest, ReflinkSharesAndCopiesOnWrite) {
  auto a = Create("/a");
  Fill(*a, 0, 64 << 10, 0xaa);
  auto b = Create("/b");
  ASSERT_TRUE(b->CloneFrom(*a, 0, 0, 0).ok());
  EXPECT_EQ(b->Stat()->attr.size, 64u << 10);
  auto mb = b->Fiemap();
  ASSERT_FALSE(mb->empty());
  EXPECT_TRUE((*mb)[0].shared);
  EXPECT_EQ(DeviceOffset(*a, 0), DeviceOffset(*b, 0));
  Fill(*b, 4096, 100, 0xbb);
  EXPECT_NE(DeviceOffset(*a, 4096), DeviceOffset(*b, 4096));
  EXPECT_EQ(ReadAll(*a, 4096, 1)[0], 0xaa);
  EXPECT_EQ(ReadAll(*b, 4096, 1)[0], 0xbb);
  EXPECT_EQ(ReadAll(*b, 4196, 1)[0], 0xaa);
  Remount();
  auto a2 = OpenFile("/a");
  auto b2 = OpenFile("/b");
  EXPECT_EQ(ReadAll(*a2, 4096, 1)[0], 0xaa);
  EXPECT_EQ(ReadAll(*b2, 4096, 1)[0], 0xbb);
  EXPECT_EQ(DeviceOffset(*a2, 0), DeviceOffset(*b2, 0));
}

TEST_F(FsTest, TruncateAndFallocate) {
  auto f = Create("/t");
  Fill(*f, 0, 3 * 4096, 0x33);
  ASSERT_TRUE(f->Truncate(5000).ok());
  EXPECT_EQ(f->Stat()->blocks, 2u);
  ASSERT_TRUE(f->Truncate(3 * 4096).ok());
  auto d = ReadAll(*f, 4096, 8192);
  ASSERT_EQ(d.size(), 8192u);
  EXPECT_EQ(d[0], 0x33);
  EXPECT_EQ(d[903], 0x33);
  EXPECT_EQ(d[904], 0);  // the old tail beyond 5000 does not come back
  ASSERT_TRUE(f->Fallocate(0, 0, 1 << 20).ok());
  EXPECT_EQ(f->Stat()->attr.size, 1u << 20);
  EXPECT_EQ(f->Stat()->blocks, 256u);
  EXPECT_EQ(ReadAll(*f, 500 * 1024, 1)[0], 0);
  ASSERT_TRUE(f->Fallocate(kFallocPunchHole | kFallocKeepSize, 0, 4096).ok());
  EXPECT_EQ(f->Stat()->blocks, 255u);
  EXPECT_EQ(ReadAll(*f, 0, 1)[0], 0);
  ASSERT_TRUE(f->Fallocate(kFallocZeroRange, 4096, 100).ok());
  EXPECT_EQ(ReadAll(*f, 4096, 1)[0], 0);
  EXPECT_EQ(ReadAll(*f, 4196, 1)[0], 0x33);
}

TEST_F(FsTest, UnlinkedOpenFileLivesUntilClosed) {
  auto f = Create("/tmp1");
  Fill(*f, 0, 8192, 1);
  uint64_t free_before = 0;
  ASSERT_TRUE(fs_->Unlink("/tmp1").ok());
  EXPECT_EQ(ReadAll(*f, 0, 1)[0], 1);
  (void)free_before;
  f.reset();
  EXPECT_EQ(fs_->Stat("/tmp1").status().err(), ENOENT);
  Remount();
}

TEST_F(FsTest, ManyOperationsCompactTheLog) {
  auto f = Create("/churn");
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(f->Truncate(i % 2 ? 8192 : 4096).ok());
  Fill(*f, 0, 4096, 0x5c);
  f.reset();
  Remount();
  auto g = OpenFile("/churn");
  EXPECT_EQ(ReadAll(*g, 0, 1)[0], 0x5c);
}

}  // namespace
}  // namespace daxguard::fs

namespace daxguard::fs {
namespace {

TEST_F(FsTest, HandlesLeftOpenFailCleanlyAfterUnmount) {
  auto f = Create("/left-open");
  Fill(*f, 0, 100, 1);
  fs_.reset();
  uint8_t b;
  EXPECT_EQ(f->Read(0, &b, 1).status().err(), EBADF);
  EXPECT_EQ(f->Write(0, &b, 1).status().err(), EBADF);
  f.reset();
  Mount();
  EXPECT_EQ(fs_->Stat("/left-open")->attr.size, 100u);
}

}  // namespace
}  // namespace daxguard::fs
