// The lock-free fast path of File::Read/Write: every handle here is warmed
// first (a read or write that fills its fast map), so that what follows
// would go through the map if nothing made it stale.
#include <time.h>

#include <thread>

#include "fs/fs_fixture.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t P = 4096;

class FastPathTest : public FsTest {
 protected:
  // Opens `path` holding `len` bytes of `byte`, its fast map filled.
  std::unique_ptr<File> Warm(const std::string& path, uint64_t len, uint8_t byte) {
    auto f = Create(path);
    Fill(*f, 0, len, byte);
    EXPECT_EQ(ReadAll(*f, 0, P).size(), P);  // misses, then fills the map
    EXPECT_EQ(ReadAll(*f, 0, P).size(), P);
    return f;
  }
  static bool All(const std::vector<uint8_t>& v, uint8_t byte) {
    for (uint8_t b : v)
      if (b != byte) return false;
    return true;
  }
};

TEST_F(FastPathTest, WritesAndReadsInPlaceAreSeenByEveryHandle) {
  auto a = Warm("/f", 64 * P, 1);
  auto b = OpenFile("/f");
  Fill(*a, 5 * P + 100, 300, 2);
  auto back = ReadAll(*b, 5 * P, P);
  ASSERT_EQ(back.size(), P);
  EXPECT_EQ(back[99], 1);
  EXPECT_EQ(back[100], 2);
  EXPECT_EQ(back[399], 2);
  EXPECT_EQ(back[400], 1);
  // A read past the end is cut at the size, a write past it grows the file.
  EXPECT_EQ(ReadAll(*a, 64 * P - 10, P).size(), 10u);
  Fill(*a, 64 * P - 10, 20, 3);
  EXPECT_EQ(a->Stat()->attr.size, 64 * P + 10);
  EXPECT_TRUE(All(ReadAll(*b, 64 * P - 10, P), 3));
}

TEST_F(FastPathTest, TruncateMakesTheMapStaleAndTheTailReadsZeroes) {
  auto f = Warm("/f", 16 * P, 7);
  ASSERT_TRUE(f->Truncate(3 * P + 10).ok());
  EXPECT_EQ(ReadAll(*f, 3 * P, P).size(), 10u);
  EXPECT_TRUE(ReadAll(*f, 8 * P, P).empty());
  ASSERT_TRUE(f->Truncate(16 * P).ok());
  auto tail = ReadAll(*f, 3 * P, 2 * P);
  ASSERT_EQ(tail.size(), 2 * P);
  EXPECT_EQ(tail[9], 7);
  EXPECT_TRUE(All(std::vector<uint8_t>(tail.begin() + 10, tail.end()), 0));
}

TEST_F(FastPathTest, WriteAfterReflinkCopiesInsteadOfWritingTheSharedBlock) {
  auto src = Warm("/src", 8 * P, 4);
  Fill(*src, 0, P, 4);  // a write through the map too
  auto dst = Create("/dst");
  ASSERT_TRUE(dst->CloneFrom(*src, 0, 0, 0).ok());
  Fill(*src, 2 * P, P, 5);
  EXPECT_TRUE(All(ReadAll(*dst, 0, 8 * P), 4)) << "a write to the source reached the clone";
  EXPECT_TRUE(All(ReadAll(*src, 2 * P, P), 5));
  EXPECT_NE(DeviceOffset(*src, 2 * P), DeviceOffset(*dst, 2 * P));
}

TEST_F(FastPathTest, PoisonUnderAWarmMapIsStillFoundAndRecorded) {
  auto f = Warm("/f", 16 * P, 9);
  // Latent: the read consumes it on the careful path and stops there.
  uint64_t dev = DeviceOffset(*f, 4 * P);
  media::InjectOptions latent;
  latent.notify = false;
  ASSERT_TRUE(media().Inject((dev + 1024) / 512, 1, latent).ok());
  EXPECT_EQ(ReadAll(*f, 4 * P, P).size(), 1024u);
  // Known: refused from the start of the damage on.
  dev = DeviceOffset(*f, 9 * P);
  ASSERT_TRUE(media().Inject(dev / 512, 1, {}).ok());
  Status why;
  EXPECT_TRUE(ReadAll(*f, 9 * P, P, &why).empty());
  EXPECT_EQ(why.err(), EIO);
  auto h = fs_->Health();
  ASSERT_EQ(h.files.size(), 1u);
  EXPECT_EQ(h.files[0].ranges.size(), 2u);
  // A whole-page write repairs, and the page reads through the map again.
  Fill(*f, 9 * P, P, 6);
  EXPECT_TRUE(All(ReadAll(*f, 9 * P, P), 6));
}

// A warm map skips the device's clean test only while nothing new went
// bad anywhere on it (dax::CleanPath): poison under another file sends this
// one back to the test, which still lets it read.
TEST_F(FastPathTest, PoisonElsewhereLeavesWarmReadsCorrect) {
  auto f = Warm("/f", 16 * P, 7);
  auto g = Warm("/g", 4 * P, 8);
  media::InjectOptions latent;
  latent.notify = false;
  ASSERT_TRUE(media().Inject(DeviceOffset(*g, P) / 512, 1, latent).ok());
  EXPECT_TRUE(All(ReadAll(*f, 2 * P, 4 * P), 7));
  EXPECT_EQ(ReadAll(*g, 0, 4 * P).size(), P) << "the poisoned file stops at its damage";
  EXPECT_TRUE(All(ReadAll(*f, 0, 16 * P), 7));
}

TEST_F(FastPathTest, AGoneDeviceFailsAWarmHandle) {
  auto f = Warm("/f", 4 * P, 1);
  dev_->Kill();
  std::vector<uint8_t> buf(P);
  EXPECT_FALSE(f->Read(0, buf.data(), P).ok());
  EXPECT_FALSE(f->Write(0, buf.data(), P).ok());
}

TEST_F(FastPathTest, WritesMarkTimesThatStatSets) {
  auto f = Warm("/f", 4 * P, 1);
  Fill(*f, 0, P, 2);
  int64_t before = f->Stat()->attr.mtime_ns;
  timespec res;
  clock_getres(CLOCK_REALTIME_COARSE, &res);
  std::this_thread::sleep_for(std::chrono::nanoseconds(2 * res.tv_nsec + 1000000));
  Fill(*f, 0, P, 3);  // in place: the fast path
  auto st = fs_->Stat("/f");
  ASSERT_TRUE(st.ok());
  EXPECT_GT(st->attr.mtime_ns, before);
  EXPECT_EQ(st->attr.ctime_ns, st->attr.mtime_ns);
  // Set once: looking again does not move them.
  std::this_thread::sleep_for(std::chrono::nanoseconds(2 * res.tv_nsec + 1000000));
  EXPECT_EQ(f->Stat()->attr.mtime_ns, st->attr.mtime_ns);
}

TEST_F(FastPathTest, UnmountFailsAWarmHandle) {
  auto f = Warm("/f", 4 * P, 1);
  Fill(*f, 0, P, 2);
  fs_.reset();  // the handle now fails cleanly
  std::vector<uint8_t> buf(P);
  EXPECT_EQ(f->Write(0, buf.data(), P).status().err(), EBADF);
  EXPECT_EQ(f->Read(0, buf.data(), P).status().err(), EBADF);
}

}  // namespace
}  // namespace daxguard::fs
