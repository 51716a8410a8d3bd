// Both superblocks lost: every snapshot carries a copy of the superblock
// that points at it, so mount and fsck --repair rebuild them from either
// log copy; and what counts as "a daxfs is here" for mkfs (FindDaxfs).
#include "fs/fs_fixture.h"
#include "fs/fsck.h"
#include "fs/log_surgery.h"

namespace daxguard::fs {
namespace {

class SuperblockRecoveryTest : public FsTest {
 protected:
  Geometry geo() const { return GeometryFor(kDevSize); }
  // Poisons the first clear unit of both superblocks, as inject-error does.
  void PoisonBothSuperblocks() {
    for (int c = 0; c < 2; ++c)
      ASSERT_TRUE(media().Inject(geo().SuperBlock(c) * kBlockSize / kSectorSize, 1, {}).ok());
  }
  void ZeroBothSuperblocks() {
    std::vector<uint8_t> zero(kBlockSize);
    for (int c = 0; c < 2; ++c) ASSERT_TRUE(dev_->Write(geo().SuperBlock(c) * kBlockSize, zero.data(), kBlockSize).ok());
  }
  std::vector<std::string> Problems() {
    auto r = Fsck(*dev_, false);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->problems : std::vector<std::string>{"fsck failed"};
  }
  void MakeFiles() {
    auto f = Create("/a");
    Fill(*f, 0, 8192, 0x61);
    ASSERT_TRUE(fs_->Mkdir("/d").ok());
  }
  void ExpectFiles() {
    auto f = OpenFile("/a");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(ReadAll(*f, 0, 8192), std::vector<uint8_t>(8192, 0x61));
    EXPECT_TRUE(fs_->Stat("/d").ok());
  }
};

TEST_F(SuperblockRecoveryTest, MountRebuildsBothPoisonedSuperblocksFromTheLog) {
  MakeFiles();
  fs_.reset();
  PoisonBothSuperblocks();
  std::vector<std::string> problems = Problems();
  EXPECT_EQ(problems, (std::vector<std::string>{"superblock copy A is unreadable or invalid",
                                                "superblock copy B is unreadable or invalid"}));
  Mount();
  EXPECT_FALSE(fs_->read_only());
  ASSERT_EQ(fs_->mount_report().repaired.size(), 1u);
  EXPECT_NE(fs_->mount_report().repaired[0].find("rebuilt from the copy in metadata log copy A slot 0"),
            std::string::npos)
      << fs_->mount_report().repaired[0];
  ExpectFiles();
  ASSERT_NE(Create("/after"), nullptr);
  Remount();
  ExpectFiles();
  EXPECT_TRUE(fs_->mount_report().repaired.empty());
  fs_.reset();
  EXPECT_TRUE(Problems().empty()) << Problems().front();
}

// The copies are written one at a time, so a crash tears at most one: fsck
// notes a torn copy beside a whole one (the next mount rewrites it), and
// calls both torn a problem.
TEST_F(SuperblockRecoveryTest, OneTornCopyBesideAWholeOneIsACrashNotAProblem) {
  MakeFiles();
  fs_.reset();
  std::vector<uint8_t> junk(16, 0x5a);
  ASSERT_TRUE(dev_->Write(geo().SuperBlock(1) * kBlockSize + 8, junk.data(), junk.size()).ok());
  auto r = Fsck(*dev_, false);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->problems.empty()) << r->problems.front();
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_NE(r->notes[0].find("superblock copy B is invalid"), std::string::npos) << r->notes[0];
  Mount();
  ExpectFiles();
  fs_.reset();
  EXPECT_TRUE(Problems().empty()) << "the mount rewrote copy B";
  for (int c = 0; c < 2; ++c)
    ASSERT_TRUE(dev_->Write(geo().SuperBlock(c) * kBlockSize + 8, junk.data(), junk.size()).ok());
  EXPECT_EQ(Problems().size(), 2u);
}

TEST_F(SuperblockRecoveryTest, FsckRepairRewritesThemAndACheckWritesNothing) {
  MakeFiles();
  fs_.reset();
  ZeroBothSuperblocks();
  EXPECT_EQ(Problems().size(), 2u);
  EXPECT_EQ(Problems().size(), 2u) << "a check alone changes nothing";
  auto fixed = Fsck(*dev_, true);
  ASSERT_TRUE(fixed.ok()) << fixed.status().message();
  EXPECT_EQ(fixed->fixed.size(), 2u);
  EXPECT_TRUE(Problems().empty()) << Problems().front();
  Mount();
  ExpectFiles();
}

TEST_F(SuperblockRecoveryTest, TheNewestWholeSnapshotWins) {
  MakeFiles();
  fs_.reset();
  // An older format is upgraded at mount by a fresh snapshot in slot 1.
  LogSurgery(*dev_).SetVersion(kReverseMapVersion);
  Mount();
  ASSERT_NE(Create("/late"), nullptr);  // after the snapshot, in slot 1's log
  fs_.reset();
  {
    LogSurgery s(*dev_);
    ASSERT_EQ(s.log().super().active_slot, 1u);
    ASSERT_EQ(s.log().super().version, kFormatVersion);
  }
  PoisonBothSuperblocks();
  Mount();
  ASSERT_EQ(fs_->mount_report().repaired.size(), 1u);
  EXPECT_NE(fs_->mount_report().repaired[0].find("slot 1"), std::string::npos) << fs_->mount_report().repaired[0];
  ExpectFiles();
  EXPECT_TRUE(fs_->Stat("/late").ok()) << "the records after the snapshot are replayed too";
  fs_.reset();
  EXPECT_EQ(LogSurgery(*dev_).log().super().generation, 2u);
}

TEST_F(SuperblockRecoveryTest, WithNothingToRebuildFromTheErrorNamesWhatIsLeftAndNeverAdvisesMkfs) {
  MakeFiles();
  fs_.reset();
  {
    LogSurgery s(*dev_);
    s.Scribble(24, 8, 0xee);  // the snapshot's first record, in both copies
  }
  ZeroBothSuperblocks();
  auto m = Filesystem::Mount(*dev_);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message().find("mkfs"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("a record of metadata log copy A slot 0"), std::string::npos)
      << m.status().message();
  auto r = Fsck(*dev_, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("mkfs"), std::string::npos) << r.status().message();
}

TEST_F(SuperblockRecoveryTest, FindDaxfsSeesEveryTrace) {
  fs_.reset();
  EXPECT_EQ(FindDaxfs(*dev_, geo()), "superblock copy A");
  PoisonBothSuperblocks();
  EXPECT_EQ(FindDaxfs(*dev_, geo()), "superblock copy A (unreadable)");
  ASSERT_TRUE(dev_->ZeroPageRange(geo().SuperBlock(0), 1).ok());
  EXPECT_EQ(FindDaxfs(*dev_, geo()), "superblock copy B (unreadable)");
  ASSERT_TRUE(dev_->ZeroPageRange(geo().SuperBlock(1), 1).ok());
  EXPECT_EQ(FindDaxfs(*dev_, geo()), "a record of metadata log copy A slot 0");
  ASSERT_TRUE(dev_->ZeroPageRange(geo().AreaStart(0), geo().meta_blocks).ok());
  EXPECT_EQ(FindDaxfs(*dev_, geo()), "a record of metadata log copy B slot 0");
  ASSERT_TRUE(dev_->ZeroPageRange(geo().AreaStart(1), geo().meta_blocks).ok());
  EXPECT_EQ(FindDaxfs(*dev_, geo()), "") << "nothing left of it";
  auto m = Filesystem::Mount(*dev_);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("no daxfs filesystem on this device (run daxguard mkfs first)"),
            std::string::npos)
      << m.status().message();
}

}  // namespace
}  // namespace daxguard::fs
