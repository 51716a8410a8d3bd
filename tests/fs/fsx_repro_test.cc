// Discrepancies the model-based test (fsx_test.cc) found, each reduced to
// the few operations that show it.
#include "fs/fs_fixture.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kSector = 512;

class FsxRepro : public FsTest {
 protected:
  void InjectAt(uint64_t dev_off, bool notify = true) {
    ASSERT_TRUE(media().Inject(dev_off / kSector, 1, {notify, true, media::Source::kInjected}).ok());
  }
  std::vector<IntervalSet::Interval> DamageOf(uint64_t ino) {
    for (const DamagedFile& d : fs_->Health().files)
      if (d.ino == ino) return d.ranges;
    return {};
  }
};

// A read that starts after a page's damage reads that page line by line,
// then goes on with the pages after it.
TEST_F(FsxRepro, ReadPastDamageEarlierInAPageGoesOnToTheNextPages) {
  auto f = Create("/f");
  Fill(*f, 0, 16384, 0x10);
  InjectAt(DeviceOffset(*f, 8192));
  auto got = ReadAll(*f, 8704, 16384 - 8704);
  EXPECT_EQ(got.size(), 16384u - 8704);
  EXPECT_EQ(got, std::vector<uint8_t>(16384 - 8704, 0x10));
}

// Cloning a partial last block into the middle of a file would replace the
// destination's bytes after it with the source's bytes past its end: as
// Linux, refused.
TEST_F(FsxRepro, ClonedPartialLastBlockMustReachTheDestinationsEnd) {
  auto src = Create("/src");
  auto dst = Create("/dst");
  Fill(*src, 0, 5000, 0x11);
  Fill(*dst, 0, 16384, 0x22);
  EXPECT_EQ(dst->CloneFrom(*src, 0, 4096, 0).err(), EINVAL);
  EXPECT_EQ(ReadAll(*dst, 0, 16384), std::vector<uint8_t>(16384, 0x22));
  // At the destination's end it is taken, and the file ends where the source does.
  ASSERT_TRUE(dst->CloneFrom(*src, 0, 12288, 0).ok());
  EXPECT_EQ(dst->Stat()->attr.size, 12288u + 5000);
  EXPECT_EQ(ReadAll(*dst, 12288, 8192), std::vector<uint8_t>(5000, 0x11));
}

// Damage is kept in whole lines: truncating into a damaged line keeps all of
// it, so what reads as EIO does not change when another write to the same
// block rewrites the page.
TEST_F(FsxRepro, TruncateIntoADamagedLineKeepsTheWholeLine) {
  auto f = Create("/f");
  Fill(*f, 0, 8192, 0x10);
  InjectAt(DeviceOffset(*f, 0));  // bytes 0..511
  ASSERT_TRUE(f->Truncate(100).ok());
  ASSERT_TRUE(f->Truncate(8192).ok());
  EXPECT_EQ(DamageOf(f->ino()), (std::vector<IntervalSet::Interval>{{0, 128}}));
  ASSERT_TRUE(f->Fallocate(kFallocPunchHole | kFallocKeepSize, 1024, 100).ok());
  EXPECT_EQ(DamageOf(f->ino()), (std::vector<IntervalSet::Interval>{{0, 128}}));
  EXPECT_EQ(ReadAll(*f, 128, 8064), std::vector<uint8_t>(8064, 0));
}

// Growing a file brings the bytes past its old end into it: poison found
// there while they lay past the end must not show up inside the file, as
// EIO or as stale bytes. However the file grows, they read as zeroes.
TEST_F(FsxRepro, GrowingOverDamagePastTheEndDropsItAndReadsZeroes) {
  enum Grow { kWrite, kWriteOverDamagedLines, kTruncate, kFallocate, kClone, kZeroRange };
  auto donor = Create("/donor");
  Fill(*donor, 0, 4096, 0x33);
  for (Grow how : {kWrite, kWriteOverDamagedLines, kTruncate, kFallocate, kClone, kZeroRange}) {
    SCOPED_TRACE(how);
    auto f = Create("/g" + std::to_string(how));
    Fill(*f, 0, 10944, 0x10);  // ends in a damaged sector: 10752..11263
    ASSERT_TRUE(f->Fallocate(kFallocKeepSize, 10944, 3 * 4096).ok());  // and an unwritten block past the end
    InjectAt(DeviceOffset(*f, 10752));
    InjectAt(DeviceOffset(*f, 12288 + 1024));
    switch (how) {
      case kWrite: Fill(*f, 16384 + 42, 10, 0x20); break;
      case kWriteOverDamagedLines: Fill(*f, 11000, 10, 0x20); break;  // parts of damaged lines past the end
      case kTruncate: ASSERT_TRUE(f->Truncate(16394).ok()); break;
      case kFallocate: ASSERT_TRUE(f->Fallocate(0, 16384, 10).ok()); break;
      case kClone: ASSERT_TRUE(f->CloneFrom(*donor, 0, 16384, 4096).ok()); break;
      case kZeroRange: ASSERT_TRUE(f->Fallocate(kFallocZeroRange, 16384, 10).ok()); break;
    }
    EXPECT_EQ(DamageOf(f->ino()), (std::vector<IntervalSet::Interval>{{10752, 192}}));
    uint64_t end = how == kWriteOverDamagedLines ? 11000 : 16384;
    auto got = ReadAll(*f, 10944, end - 10944);
    EXPECT_EQ(got, std::vector<uint8_t>(end - 10944, 0));
  }
}

// A write that runs out of space after it wrote some blocks says how many
// bytes it wrote: a short count, not an error that hides the blocks it
// changed.
TEST_F(FsxRepro, WriteStoppedByNoSpaceCountsWhatItWrote) {
  auto a = Create("/a");
  Fill(*a, 0, 3 * 4096, 0x10);
  auto b = Create("/b");
  ASSERT_TRUE(b->CloneFrom(*a, 0, 0, 0).ok());  // b's blocks are shared: a write copies them
  auto filler = Create("/filler");
  std::vector<uint8_t> chunk(1 << 20, 0x77);
  for (uint64_t off = 0;; off += chunk.size()) {
    auto w = filler->Write(off, chunk.data(), chunk.size());
    if (!w.ok() || *w < chunk.size()) break;
  }
  ASSERT_TRUE(filler->Fallocate(kFallocPunchHole | kFallocKeepSize, 0, 4096).ok());  // one block free
  std::vector<uint8_t> buf(3 * 4096, 0x20);
  auto w = b->Write(0, buf.data(), buf.size());
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(*w, 4096u);
  EXPECT_EQ(ReadAll(*b, 0, 4096), std::vector<uint8_t>(4096, 0x20));
  EXPECT_EQ(ReadAll(*b, 4096, 8192), std::vector<uint8_t>(8192, 0x10));
  EXPECT_EQ(ReadAll(*a, 0, 3 * 4096), std::vector<uint8_t>(3 * 4096, 0x10));
}

// A write, punch or zero range whose edge line holds poison nobody knew of
// fails before it changes anything, like one over a known damaged line.
TEST_F(FsxRepro, WriteOrPunchOverUnknownPoisonInAnEdgeLineChangesNothing) {
  auto f = Create("/f");
  Fill(*f, 0, 16384, 0x10);
  InjectAt(DeviceOffset(*f, 4096));                     // known: bytes 4096..4607
  InjectAt(DeviceOffset(*f, 12288), /*notify=*/false);  // latent: the last line of both
  std::vector<uint8_t> buf(8300, 0x20);
  auto w = f->Write(4000, buf.data(), buf.size());
  ASSERT_FALSE(w.ok()) << "wrote " << *w;
  EXPECT_EQ(w.status().err(), EIO);
  EXPECT_EQ(f->Fallocate(kFallocPunchHole | kFallocKeepSize, 4000, 8300).err(), EIO);
  EXPECT_EQ(ReadAll(*f, 0, 4096), std::vector<uint8_t>(4096, 0x10));
  EXPECT_EQ(ReadAll(*f, 4608, 12288 - 4608), std::vector<uint8_t>(12288 - 4608, 0x10));
  EXPECT_EQ(DamageOf(f->ino()), (std::vector<IntervalSet::Interval>{{4096, 512}, {12288, 512}}));
}

}  // namespace
}  // namespace daxguard::fs
