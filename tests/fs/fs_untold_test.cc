// Errors cleared before any holder heard of them (clear-errors while the
// filesystem was not mounted): the next mount is told, and daxfs treats
// what they hit as lost — damaged file bytes, metadata rebuilt from its
// other copy — never as good zeroes.
#include <unistd.h>

#include "fs/fs_fixture.h"
#include "fs/fsck.h"

namespace daxguard::fs {
namespace {

class FsUntoldTest : public FsTest {
 protected:
  // Unmounted, an error becomes known under device byte `off` and is
  // cleared before anyone is told.
  void InjectAndClearUnmounted(uint64_t off) {
    fs_.reset();
    ASSERT_TRUE(media().Inject(off / kSectorSize, 1, {}).ok());
    uint64_t unit = media().clear_unit(), untold = 0;
    ASSERT_TRUE(media().ClearErrors(AlignDown(off, unit), unit, &untold).ok());
    ASSERT_EQ(untold, 1u);
    ASSERT_TRUE(media().BadBlocks().empty());
  }
};

TEST_F(FsUntoldTest, AFileRangeClearedWhileUnmountedReadsAsDamageUntilRewritten) {
  uint64_t dev_off;
  {
    auto f = Create("/x");
    Fill(*f, 0, 16384, 0x61);
    ASSERT_TRUE(f->Fsync().ok());
    dev_off = DeviceOffset(*f, 4096);
  }
  InjectAndClearUnmounted(dev_off);
  Mount();
  auto f = OpenFile("/x");
  Status why;
  EXPECT_TRUE(ReadAll(*f, 4096, 512, &why).empty());
  EXPECT_EQ(why.err(), EIO) << "the cleared bytes are lost, not zeroes";
  EXPECT_EQ(ReadAll(*f, 0, 4096), std::vector<uint8_t>(4096, 0x61));
  HealthReport h = fs_->Health();
  ASSERT_EQ(h.files.size(), 1u);
  EXPECT_EQ(h.files[0].path, "/x");
  EXPECT_EQ(h.files[0].ranges, (std::vector<IntervalSet::Interval>{{4096, 512}}));

  Fill(*f, 4096, 4096, 0x62);  // rewriting the page repairs it
  EXPECT_EQ(ReadAll(*f, 4096, 4096), std::vector<uint8_t>(4096, 0x62));
  EXPECT_TRUE(fs_->Health().files.empty());
  f.reset();
  Remount();
  EXPECT_TRUE(fs_->Health().files.empty());
  EXPECT_TRUE(media().BadBlocks().empty());
  EXPECT_TRUE(media().Untold().empty());
}

TEST_F(FsUntoldTest, ALogBlockClearedWhileUnmountedIsRebuiltAndTheLogGoesOn) {
  {
    auto f = Create("/before");
    Fill(*f, 0, 4096, 0x61);
  }
  Geometry g = GeometryFor(kDevSize);
  for (int copy = 0; copy < 2; ++copy) {
    SCOPED_TRACE(copy);
    InjectAndClearUnmounted(g.SlotStart(copy, 0) * kBlockSize + 1024);  // the live log's first block
    Mount();
    EXPECT_TRUE(media().BadBlocks().empty()) << "rebuilt from the other copy";
    EXPECT_FALSE(fs_->read_only());
    std::string name = "/after" + std::to_string(copy);
    ASSERT_NE(Create(name), nullptr) << "the log takes appends in the rebuilt block";
    Remount();
    EXPECT_TRUE(fs_->Stat("/before").ok());
    EXPECT_TRUE(fs_->Stat(name).ok());
    fs_.reset();
    auto report = Fsck(*dev_, false);
    ASSERT_TRUE(report.ok()) << report.status().message();
    EXPECT_TRUE(report->problems.empty()) << report->problems.front();
    Mount();
  }
}

TEST_F(FsUntoldTest, AnErrorTheHolderHeardOfOwesNothingAfterTheClear) {
  uint64_t dev_off;
  {
    auto f = Create("/x");
    Fill(*f, 0, 8192, 0x61);
    dev_off = DeviceOffset(*f, 0);
  }
  ASSERT_TRUE(media().Inject(dev_off / kSectorSize, 1, {}).ok());  // told at once: mounted here
  uint64_t untold = 0;
  ASSERT_TRUE(media().ClearErrors(AlignDown(dev_off, media().clear_unit()), media().clear_unit(), &untold).ok());
  EXPECT_EQ(untold, 0u);
  EXPECT_TRUE(media().Untold().empty());
  HealthReport h = fs_->Health();
  ASSERT_EQ(h.files.size(), 1u) << "the filesystem recorded the damage when told";
}

// Another process injects and clears at once, racing the watcher that
// tells this filesystem: whichever wins, nothing is lost or mistaken.
TEST_F(FsUntoldTest, AClearRacingTheHolderLosesNothing) {
  uint64_t data_off;
  {
    auto f = Create("/x");
    Fill(*f, 0, 8192, 0x61);
    data_off = DeviceOffset(*f, 0);
  }
  Geometry g = GeometryFor(kDevSize);
  uint64_t log_off = g.SlotStart(0, 0) * kBlockSize + 512;  // live log, copy A
  auto other = media::PmemDevice::Open(path_);
  ASSERT_TRUE(other.ok());
  uint64_t unit = media().clear_unit(), untold = 0;
  for (uint64_t off : {log_off, data_off}) {
    ASSERT_TRUE((*other)->Inject(off / kSectorSize, 1, {}).ok());
    ASSERT_TRUE((*other)->ClearErrors(AlignDown(off, unit), unit, &untold).ok());
  }
  auto settled = [&] {
    return media().Unacknowledged().empty() && media().Untold().empty() &&
           !media().HasKnownErrors(AlignDown(log_off, kBlockSize), kBlockSize) && fs_->Health().files.size() == 1;
  };
  for (int i = 0; i < 500 && !settled(); ++i) usleep(10000);
  ASSERT_TRUE(settled()) << "the filesystem was not told within 5 s";
  EXPECT_EQ(fs_->Health().files[0].path, "/x") << "the cleared data is lost, not zeroes";
  EXPECT_FALSE(fs_->read_only());
  ASSERT_NE(Create("/y"), nullptr) << "the log block was rebuilt from copy B";
  Remount();
  EXPECT_TRUE(fs_->Stat("/y").ok());
  EXPECT_EQ(fs_->Health().files.size(), 1u);
  fs_.reset();
  auto report = Fsck(*dev_, false);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_TRUE(report->problems.empty()) << report->problems.front();
}

}  // namespace
}  // namespace daxguard::fs
