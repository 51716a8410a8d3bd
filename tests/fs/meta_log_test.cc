// The metadata log on its own: what replay gives back after format, appends
// and compaction, where it ends, and how it survives one copy's damage.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dax/pmem_dax.h"
#include "fs/meta_log.h"

namespace daxguard::fs {
namespace {

class MetaLogTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kDevSize = 16ull << 20;

  void SetUp() override {
    char tmpl[] = "/tmp/daxfs-log-XXXXXX";
    dir_ = mkdtemp(tmpl);
    media::CreateOptions opt;
    opt.size = kDevSize;
    ASSERT_TRUE(media::PmemDevice::Create(dir_ + "/pmem0", opt).ok());
    auto d = dax::PmemDax::Open(dir_ + "/pmem0");
    ASSERT_TRUE(d.ok()) << d.status().message();
    dev_ = std::move(d).value();
    log_ = std::make_unique<MetaLog>(*dev_, geo_);
    ASSERT_TRUE(log_->Format({Op::MetaLost("snapshot")}).ok());
  }
  void TearDown() override {
    log_.reset();
    dev_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Replays with a fresh MetaLog, as a mount would: the records' operations
  // in order (kSuper, the log's own, left out).
  std::vector<Op> Replay(ReplayReport* report = nullptr) {
    ReplayReport local;
    MetaLog fresh(*dev_, geo_);
    std::vector<Op> out;
    Status s = fresh.Replay(
        [&](const std::vector<Op>& ops) {
          for (const Op& op : ops)
            if (op.type != OpType::kSuper) out.push_back(op);
          return Status::Ok();
        },
        report ? report : &local);
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }
  static std::vector<std::string> Names(const std::vector<Op>& ops) {
    std::vector<std::string> out;
    for (const Op& op : ops) out.push_back(op.name);
    return out;
  }
  // Device offset of byte `pos` of the active slot in log copy `copy`.
  uint64_t Addr(int copy, uint64_t pos) const {
    return geo_.SlotStart(copy, static_cast<int>(log_->super().active_slot)) * kBlockSize + pos;
  }

  Geometry geo_ = GeometryFor(kDevSize);
  std::string dir_;
  std::unique_ptr<dax::PmemDax> dev_;
  std::unique_ptr<MetaLog> log_;
};

using Strings = std::vector<std::string>;

TEST_F(MetaLogTest, ReplayGivesTheSnapshotThenEachRecordInOrder) {
  ASSERT_TRUE(log_->Append({Op::MetaLost("one")}).ok());
  ASSERT_TRUE(log_->Append({Op::MetaLost("two"), Op::MetaLost("three")}).ok());
  ReplayReport r;
  EXPECT_EQ(Names(Replay(&r)), (Strings{"snapshot", "one", "two", "three"}));
  EXPECT_TRUE(r.lost.empty());
  EXPECT_EQ(r.repaired_blocks, 0u);
}

TEST_F(MetaLogTest, CompactionStartsTheOtherSlotFromTheSnapshot) {
  ASSERT_TRUE(log_->Append({Op::MetaLost("before")}).ok());
  uint64_t slot = log_->super().active_slot;
  ASSERT_TRUE(log_->Compact({Op::MetaLost("compacted")}).ok());
  EXPECT_NE(log_->super().active_slot, slot);
  ASSERT_TRUE(log_->Append({Op::MetaLost("after")}).ok());
  EXPECT_EQ(Names(Replay()), (Strings{"compacted", "after"}));
}

TEST_F(MetaLogTest, ALastRecordTornInBothCopiesEndsTheLog) {
  ASSERT_TRUE(log_->Append({Op::MetaLost("kept")}).ok());
  uint64_t last = log_->tail();
  ASSERT_TRUE(log_->Append({Op::MetaLost("torn")}).ok());
  std::vector<uint8_t> junk(log_->tail() - last - 8, 0x5a);
  for (int c = 0; c < 2; ++c) ASSERT_TRUE(dev_->Write(Addr(c, last + 8), junk.data(), junk.size()).ok());
  ReplayReport r;
  EXPECT_EQ(Names(Replay(&r)), (Strings{"snapshot", "kept"}));
  EXPECT_TRUE(r.lost.empty()) << "a torn last record is a crash, not a loss";
}

TEST_F(MetaLogTest, ARecordDamagedInOneCopyIsReadFromTheOther) {
  ASSERT_TRUE(log_->Append({Op::MetaLost("one")}).ok());
  uint64_t at = log_->tail();
  ASSERT_TRUE(log_->Append({Op::MetaLost("two")}).ok());
  ASSERT_TRUE(log_->Append({Op::MetaLost("three")}).ok());
  std::vector<uint8_t> junk(16, 0xa5);
  ASSERT_TRUE(dev_->Write(Addr(0, at + 8), junk.data(), junk.size()).ok());
  ReplayReport r;
  EXPECT_EQ(Names(Replay(&r)), (Strings{"snapshot", "one", "two", "three"}));
  EXPECT_TRUE(r.lost.empty());
  EXPECT_GT(r.repaired_blocks, 0u);
  // The damaged copy was rebuilt: with copy B now scribbled there, A alone serves.
  ASSERT_TRUE(dev_->Write(Addr(1, at + 8), junk.data(), junk.size()).ok());
  EXPECT_EQ(Names(Replay()), (Strings{"snapshot", "one", "two", "three"}));
}

// A crash between the copies' writes may leave the last record in B only:
// that is the end of an append, not damage. Replay keeps the record, and
// says it resynced A rather than that it repaired a block; a dry run (fsck)
// writes nothing and says the same.
TEST_F(MetaLogTest, ALastRecordOnlyInCopyBIsACrashNotDamage) {
  ASSERT_TRUE(log_->Append({Op::MetaLost("one")}).ok());
  uint64_t at = log_->tail();
  ASSERT_TRUE(log_->Append({Op::MetaLost("two")}).ok());
  std::vector<uint8_t> junk(16, 0xa5);
  ASSERT_TRUE(dev_->Write(Addr(0, at + 8), junk.data(), junk.size()).ok());
  {
    MetaLog dry(*dev_, geo_);
    dry.set_dry_run(true);
    ReplayReport r;
    ASSERT_TRUE(dry.Replay([](const std::vector<Op>&) { return Status::Ok(); }, &r).ok());
    EXPECT_EQ(r.records, 3u);
    EXPECT_TRUE(r.last_record_resynced);
    EXPECT_EQ(r.repaired_blocks, 0u);
    ReplayReport scrub;
    ASSERT_TRUE(dry.Scrub(&scrub).ok());
    EXPECT_EQ(scrub.repaired_blocks, 0u) << "the last record's bytes are not compared in a dry run";
  }
  ReplayReport r;
  EXPECT_EQ(Names(Replay(&r)), (Strings{"snapshot", "one", "two"}));
  EXPECT_TRUE(r.last_record_resynced);
  EXPECT_EQ(r.repaired_blocks, 0u);
  // Copy A was rewritten: with copy B now scribbled there, A alone serves.
  ASSERT_TRUE(dev_->Write(Addr(1, at + 8), junk.data(), junk.size()).ok());
  EXPECT_EQ(Names(Replay()), (Strings{"snapshot", "one", "two"}));
}

TEST_F(MetaLogTest, ARecordLostInBothCopiesIsNamedAndReplayGoesOn) {
  ASSERT_TRUE(log_->Append({Op::MetaLost("one")}).ok());
  uint64_t at = log_->tail();
  ASSERT_TRUE(log_->Append({Op::MetaLost("two")}).ok());
  ASSERT_TRUE(log_->Append({Op::MetaLost("three")}).ok());
  std::vector<uint8_t> junk(16, 0xa5);
  for (int c = 0; c < 2; ++c) ASSERT_TRUE(dev_->Write(Addr(c, at + 8), junk.data(), junk.size()).ok());
  ReplayReport r;
  EXPECT_EQ(Names(Replay(&r)), (Strings{"snapshot", "one", "three"}));
  EXPECT_EQ(r.lost.size(), 1u);
}

TEST_F(MetaLogTest, WantsCompactionOnceHalfTheSlotIsUsed) {
  std::string name(200, 'x');
  uint64_t appended = 0;
  while (!log_->WantsCompaction()) {
    ASSERT_TRUE(log_->Append({Op::MetaLost(name)}).ok());
    ++appended;
  }
  EXPECT_GT(log_->tail(), geo_.SlotBlocks() * kBlockSize / 2);
  EXPECT_EQ(Replay().size(), appended + 1);
}

TEST_F(MetaLogTest, FitsOneRecordUpToAQuarterOfASlot) {
  EXPECT_TRUE(log_->FitsOneRecord({Op::MetaLost("small")}));
  std::vector<Op> big(geo_.SlotBlocks() * kBlockSize / 4 / 64, Op::MetaLost(std::string(64, 'y')));
  EXPECT_FALSE(log_->FitsOneRecord(big));
}

}  // namespace
}  // namespace daxguard::fs
