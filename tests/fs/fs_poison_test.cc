// The poison lifecycle through the filesystem: every error that becomes
// known reaches its precise owners, survives remount, and is repaired only
// by the owner that writes or zeroes it.
#include "fs/fs_fixture.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kSector = 512;

class FsPoisonTest : public FsTest {
 protected:
  void InjectAt(uint64_t dev_off, bool notify = true, bool saturate = true) {
    ASSERT_TRUE(media().Inject(dev_off / kSector, 1, {notify, saturate, media::Source::kInjected}).ok());
  }
  std::vector<IntervalSet::Interval> DamageOf(const std::string& path) {
    for (const DamagedFile& d : fs_->Health().files)
      if (d.path == path) return d.ranges;
    return {};
  }
};

TEST_F(FsPoisonTest, InjectedErrorNamesTheFileAndSurvivesRemount) {
  auto f = Create("/data");
  Fill(*f, 0, 16384, 0x44);
  std::vector<std::pair<uint64_t, uint64_t>> told;
  f->OnDamage([&](uint64_t off, uint64_t len) { told.push_back({off, len}); });
  InjectAt(DeviceOffset(*f, 8192 + 1024));
  EXPECT_EQ(DamageOf("/data"), (std::vector<IntervalSet::Interval>{{8192 + 1024, 512}}));
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0], (std::pair<uint64_t, uint64_t>{8192 + 1024, 512}));
  // Bytes before the damage read; the damage itself is EIO.
  EXPECT_EQ(ReadAll(*f, 8192, 4096).size(), 1024u);
  Status why;
  EXPECT_TRUE(ReadAll(*f, 8192 + 1024, 10, &why).empty());
  EXPECT_EQ(why.err(), EIO);
  f.reset();
  Remount();
  EXPECT_EQ(DamageOf("/data"), (std::vector<IntervalSet::Interval>{{8192 + 1024, 512}}));
}

TEST_F(FsPoisonTest, FileNotOpenIsStillRecorded) {
  auto f = Create("/closed");
  Fill(*f, 0, 8192, 1);
  uint64_t at = DeviceOffset(*f, 4096);
  f.reset();
  InjectAt(at);
  EXPECT_EQ(DamageOf("/closed").size(), 1u);
}

TEST_F(FsPoisonTest, LatentErrorFoundByReadIsRecorded) {
  auto f = Create("/latent");
  Fill(*f, 0, 8192, 1);
  // Not saturated: only the sector's first clear unit (256 bytes) is bad.
  InjectAt(DeviceOffset(*f, 4096 + 512), /*notify=*/false, /*saturate=*/false);
  EXPECT_TRUE(DamageOf("/latent").empty());
  auto got = ReadAll(*f, 0, 8192);
  EXPECT_EQ(got.size(), 4096u + 512) << "the copy stops at the first poisoned line";
  EXPECT_EQ(DamageOf("/latent"), (std::vector<IntervalSet::Interval>{{4096 + 512, 512}}));
}

TEST_F(FsPoisonTest, ErrorsFoundWhileUnmountedAreReportedAtMount) {
  auto f = Create("/later");
  Fill(*f, 0, 8192, 1);
  uint64_t at = DeviceOffset(*f, 0);
  f.reset();
  fs_.reset();
  InjectAt(at);
  Mount();
  EXPECT_EQ(DamageOf("/later").size(), 1u);
}

TEST_F(FsPoisonTest, WholePageWriteRepairs) {
  auto f = Create("/fix");
  Fill(*f, 0, 8192, 1);
  InjectAt(DeviceOffset(*f, 4096));
  Fill(*f, 4096, 4096, 2);
  EXPECT_TRUE(DamageOf("/fix").empty());
  EXPECT_EQ(ReadAll(*f, 4096, 4096).size(), 4096u);
  EXPECT_TRUE(media().BadBlocks().empty());
}

TEST_F(FsPoisonTest, PartialWriteKeepsGoodLinesAndUncoveredBadLines) {
  auto f = Create("/partial");
  Fill(*f, 0, 4096, 0x10);
  InjectAt(DeviceOffset(*f, 1024));  // lines 16..23 bad
  // Cover lines 16..19 only.
  Fill(*f, 1024, 256, 0x20);
  auto d = DamageOf("/partial");
  EXPECT_EQ(d, (std::vector<IntervalSet::Interval>{{1024 + 256, 256}}));
  auto head = ReadAll(*f, 0, 4096);
  ASSERT_EQ(head.size(), 1024u + 256);  // stops at the lines still damaged
  EXPECT_EQ(head[1023], 0x10);
  EXPECT_EQ(head[1024], 0x20);
  EXPECT_EQ(ReadAll(*f, 2048, 2048)[0], 0x10) << "good lines after the damage kept their data";
  EXPECT_TRUE(media().BadBlocks().empty()) << "the page itself was cleared";
}

// A write must fail or leave its bytes readable: bytes written into a
// damaged line that it covers only in part would read back EIO.
TEST_F(FsPoisonTest, WriteOverPartOfADamagedLineFailsAndWritesNothing) {
  auto f = Create("/edge");
  Fill(*f, 0, 16384, 0x10);
  InjectAt(DeviceOffset(*f, 8192));  // file bytes 8192..8704: lines 128..135
  std::vector<uint8_t> buf(8192, 0x20);
  auto w = f->Write(8292, buf.data(), 50);  // parts of lines 129 and 130
  ASSERT_FALSE(w.ok()) << "wrote " << *w;
  EXPECT_EQ(w.status().err(), EIO);
  // Also when the damaged line is the last of a longer write: nothing is written.
  w = f->Write(4096, buf.data(), 4096 + 100);
  ASSERT_FALSE(w.ok()) << "wrote " << *w;
  EXPECT_EQ(w.status().err(), EIO);
  EXPECT_EQ(ReadAll(*f, 4096, 4096), std::vector<uint8_t>(4096, 0x10));
  EXPECT_EQ(DamageOf("/edge"), (std::vector<IntervalSet::Interval>{{8192, 512}}));
  // Punch and zero range write zeroes: the same holds for them.
  EXPECT_EQ(f->Fallocate(kFallocPunchHole | kFallocKeepSize, 8292, 5000).err(), EIO);
  EXPECT_EQ(f->Fallocate(kFallocZeroRange | kFallocKeepSize, 4000, 4200).err(), EIO);
  EXPECT_EQ(ReadAll(*f, 0, 8192), std::vector<uint8_t>(8192, 0x10));
  EXPECT_EQ(ReadAll(*f, 8704, 12288 - 8704), std::vector<uint8_t>(12288 - 8704, 0x10));
  EXPECT_EQ(ReadAll(*f, 12288, 4096), std::vector<uint8_t>(4096, 0x10));
  EXPECT_EQ(DamageOf("/edge"), (std::vector<IntervalSet::Interval>{{8192, 512}}));
  // Whole damaged lines are repaired by a write that covers them.
  Fill(*f, 8256, 128, 0x30);
  EXPECT_EQ(DamageOf("/edge"), (std::vector<IntervalSet::Interval>{{8192, 64}, {8384, 320}}));
  auto got = ReadAll(*f, 8256, 128);
  EXPECT_EQ(got, std::vector<uint8_t>(128, 0x30));
}

TEST_F(FsPoisonTest, ZeroRangeClearsPoison) {
  auto f = Create("/z");
  Fill(*f, 0, 8192, 3);
  InjectAt(DeviceOffset(*f, 0));
  ASSERT_TRUE(f->Fallocate(kFallocZeroRange | kFallocKeepSize, 0, 4096).ok());
  EXPECT_TRUE(DamageOf("/z").empty());
  EXPECT_TRUE(media().BadBlocks().empty());
  EXPECT_EQ(ReadAll(*f, 0, 4096), std::vector<uint8_t>(4096, 0));
}

TEST_F(FsPoisonTest, PunchedPoisonIsQuarantinedAndNeverReused) {
  auto f = Create("/p");
  Fill(*f, 0, 8192, 3);
  uint64_t at = DeviceOffset(*f, 0);
  InjectAt(at);
  ASSERT_TRUE(f->Fallocate(kFallocPunchHole | kFallocKeepSize, 0, 4096).ok());
  auto h = fs_->Health();
  ASSERT_EQ(h.quarantined.size(), 1u);
  EXPECT_EQ(h.quarantined[0].first, AlignDown(at, 4096));
  // Fill the rest of the device: the quarantined block is never handed out.
  auto g = Create("/filler");
  std::vector<uint8_t> buf(1 << 20, 9);
  for (uint64_t off = 0;; off += buf.size()) {
    auto w = g->Write(off, buf.data(), buf.size());
    if (!w.ok() || *w < buf.size()) break;
  }
  auto m = g->Fiemap();
  for (const FiemapExtent& e : *m) EXPECT_FALSE(at >= e.physical && at < e.physical + e.length);
}

TEST_F(FsPoisonTest, FreeSpacePoisonIsQuarantined) {
  // Somewhere in the data area that no file uses.
  uint64_t at = (kDevSize / 4) & ~4095ull;
  auto who = fs_->Who(at, 4096);
  ASSERT_TRUE(who.ok());
  ASSERT_EQ((*who)[0].kind, OwnerInfo::Kind::kFree);
  InjectAt(at);
  who = fs_->Who(at, 4096);
  EXPECT_EQ((*who)[0].kind, OwnerInfo::Kind::kQuarantined);
  Remount();
  EXPECT_EQ(fs_->Health().quarantined.size(), 1u);
}

TEST_F(FsPoisonTest, SharedBlockDamageReportedForEveryOwnerAndRepairedPerOwner) {
  auto a = Create("/a");
  Fill(*a, 0, 8192, 0xa);
  auto b = Create("/b");
  auto c = Create("/c");
  ASSERT_TRUE(b->CloneFrom(*a, 0, 0, 0).ok());
  ASSERT_TRUE(c->CloneFrom(*a, 0, 0, 0).ok());
  uint64_t at = DeviceOffset(*a, 4096);
  InjectAt(at);
  auto who = fs_->Who(AlignDown(at, 4096), 4096);
  ASSERT_EQ(who->size(), 3u);
  for (const char* p : {"/a", "/b", "/c"}) EXPECT_EQ(DamageOf(p).size(), 1u) << p;
  Fill(*b, 4096, 4096, 0xb);  // b repairs its own copy
  EXPECT_TRUE(DamageOf("/b").empty());
  EXPECT_EQ(DamageOf("/a").size(), 1u);
  EXPECT_EQ(DamageOf("/c").size(), 1u);
  ASSERT_TRUE(c->Fallocate(kFallocZeroRange | kFallocKeepSize, 4096, 4096).ok());
  EXPECT_TRUE(DamageOf("/c").empty());
  EXPECT_EQ(DamageOf("/a").size(), 1u) << "the other owner still reports damage";
  Status why;
  ReadAll(*a, 4096, 4096, &why);
  EXPECT_EQ(why.err(), EIO);
}

TEST_F(FsPoisonTest, MetadataPoisonInOneCopyIsRebuilt) {
  Create("/m");
  Geometry g = GeometryFor(kDevSize);
  uint64_t log_a = g.SlotStart(0, 0) * kBlockSize;
  InjectAt(log_a);  // the first live log block, copy A
  auto h = fs_->Health();
  EXPECT_FALSE(h.read_only);
  EXPECT_GE(h.metadata_repairs, 1u);
  EXPECT_TRUE(media().BadBlocks().empty()) << "the damaged copy was rewritten";
  fs_.reset();
  Mount();
  EXPECT_TRUE(fs_->Stat("/m").ok());
}

TEST_F(FsPoisonTest, MetadataPoisonInBothCopiesWhileMountedIsRewrittenFromMemory) {
  Create("/m2");
  Geometry g = GeometryFor(kDevSize);
  ASSERT_TRUE(media().Inject(g.SlotStart(0, 0) * 8, 8, {false, true, media::Source::kInjected}).ok());
  ASSERT_TRUE(media().Inject(g.SlotStart(1, 0) * 8, 8, {true, true, media::Source::kInjected}).ok());
  ASSERT_TRUE(media().Inject(g.SlotStart(0, 0) * 8, 8, {true, true, media::Source::kInjected}).ok());
  EXPECT_FALSE(fs_->read_only());
  fs_.reset();
  Mount();
  EXPECT_TRUE(fs_->Stat("/m2").ok());
  EXPECT_FALSE(fs_->read_only());
}

TEST_F(FsPoisonTest, MetadataLostInBothCopiesWhileUnmountedGoesReadOnly) {
  Create("/m3");
  Geometry g = GeometryFor(kDevSize);
  fs_.reset();
  for (int c = 0; c < 2; ++c)
    ASSERT_TRUE(media().Inject(g.SlotStart(c, 0) * 8, 8, {false, true, media::Source::kInjected}).ok());
  Mount();
  EXPECT_TRUE(fs_->read_only());
  auto h = fs_->Health();
  ASSERT_FALSE(h.lost_metadata.empty());
  EXPECT_NE(h.lost_metadata[0].find("both copies"), std::string::npos) << h.lost_metadata[0];
  EXPECT_EQ(fs_->Mkdir("/x").err(), EROFS);
}

}  // namespace
}  // namespace daxguard::fs
