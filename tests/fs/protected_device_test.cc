// daxfs with data protection (mkfs --data-protection): poison and stray
// stores under file data are rebuilt from parity and read back intact;
// what parity cannot rebuild is reported and never read as wrong bytes;
// checksums alone turn a stray store into reported damage; crash
// consistency through the write-intent bitmap; stores through a writable
// mapping are never reverted.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "common/fault_probe.h"
#include "fs/fs_fixture.h"
#include "fs/meta_log.h"
#include "fs/protected_device.h"

namespace daxguard::fs {
namespace {

bool Eventually(const std::function<bool()>& cond) {
  for (int i = 0; i < 400; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

class ParityTest : public FsTest {
 protected:
  DataProtection Protection() const override { return DataProtection::kParity; }

  std::unique_ptr<File> WriteFile(const std::string& path, const std::vector<uint8_t>& data) {
    auto f = Create(path);
    auto w = f->Write(0, data.data(), data.size());
    EXPECT_TRUE(w.ok() && *w == data.size());
    return f;
  }
  // Poisons the 512-byte sector at device offset `off`.
  void Poison(uint64_t off, bool known) {
    ASSERT_TRUE(media().Inject(off / kSectorSize, 1, {.notify = known, .saturate = true}).ok());
  }
  void Scribble(uint64_t off, size_t n) {
    std::vector<uint8_t> junk = RandomBytes(n, 99);
    ASSERT_TRUE(dev_->Write(off, junk.data(), n).ok());
  }
  std::vector<uint8_t> Raw(uint64_t off, size_t n) {
    std::vector<uint8_t> v(n);
    auto r = dev_->ReadMcSafe(off, v.data(), n);
    if (!r.ok() || *r != n) return {};
    return v;
  }
  bool NoBadBlocks() { return dev_->BadBlocks().empty(); }
};

TEST_F(ParityTest, MkfsRecordsTheProtectionAndItsAreaIsWithinFifteenPercent) {
  EXPECT_EQ(fs_->protection(), DataProtection::kParity);
  Geometry g = GeometryFor(kDevSize, DataProtection::kParity);
  EXPECT_GT(g.protect_blocks, 0u);
  EXPECT_LE(g.protect_blocks * 100, g.blocks * 15);
  Remount();
  EXPECT_EQ(fs_->protection(), DataProtection::kParity);
  EXPECT_EQ(MetaLog::FindSuper(*dev_)->version, kFormatVersion);
  // The area is metadata: no file is ever given a block of it.
  std::vector<uint8_t> big(40ull << 20, 7);
  auto f = Create("/big");
  auto w = f->Write(0, big.data(), big.size());
  ASSERT_TRUE(w.ok());
  auto extents = f->Fiemap();
  ASSERT_TRUE(extents.ok());
  for (const FiemapExtent& e : *extents) EXPECT_LE(e.physical + e.length, g.ProtectStart() * kBlockSize);
  auto who = fs_->Who(g.ProtectStart() * kBlockSize, 4096);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ((*who)[0].what, "data parity area");
}

TEST_F(ParityTest, KnownPoisonUnderFileDataIsRebuiltAndTheFileReadsBackIntact) {
  auto data = RandomBytes(64 << 10, 1);
  auto f = WriteFile("/f", data);
  uint64_t at = DeviceOffset(*f, 20000);
  Poison(at, true);
  EXPECT_TRUE(Eventually([&] { return NoBadBlocks(); })) << "the recovery write clears the poison";
  EXPECT_EQ(ReadAll(*f, 0, data.size()), data);
  HealthReport h = fs_->Health();
  EXPECT_TRUE(h.files.empty());
  EXPECT_EQ(h.repaired_blocks, 1u);
  EXPECT_EQ(h.unrepaired_blocks, 0u);
  // Named: when, where, why, and whose bytes they were.
  ASSERT_EQ(h.repaired.size(), 1u);
  EXPECT_EQ(h.repaired[0].offset, AlignDown(at, kBlockSize));
  EXPECT_EQ(h.repaired[0].cause, "poison");
  EXPECT_GT(h.repaired[0].when_ns, 0u);
  ASSERT_EQ(h.repaired[0].owners.size(), 1u);
  EXPECT_EQ(h.repaired[0].owners[0].path, "/f");
  EXPECT_EQ(h.repaired[0].owners[0].file_offset, AlignDown(20000, kBlockSize));
}

TEST_F(ParityTest, LatentPoisonIsRebuiltInlineByTheReadThatFindsIt) {
  auto data = RandomBytes(64 << 10, 2);
  auto f = WriteFile("/f", data);
  Poison(DeviceOffset(*f, 8192 + 1024), false);
  EXPECT_EQ(ReadAll(*f, 0, data.size()), data);
  EXPECT_EQ(ReadAll(*f, 8192 + 1000, 100), std::vector<uint8_t>(data.begin() + 9192, data.begin() + 9292));
  EXPECT_TRUE(Eventually([&] { return NoBadBlocks(); }));
  EXPECT_TRUE(fs_->Health().files.empty());
}

TEST_F(ParityTest, AStrayStoreIsFoundByTheNextReadAndRepairedOnTheMedia) {
  auto data = RandomBytes(64 << 10, 3);
  auto f = WriteFile("/f", data);
  uint64_t at = DeviceOffset(*f, 4096 * 5 + 700);
  Scribble(at, 100);
  EXPECT_EQ(ReadAll(*f, 0, data.size()), data);
  EXPECT_TRUE(Eventually([&] { return Raw(at, 100) == std::vector<uint8_t>(data.begin() + 4096 * 5 + 700,
                                                                             data.begin() + 4096 * 5 + 800); }));
  HealthReport h = fs_->Health();
  EXPECT_GE(h.checksum_mismatches, 1u);
  EXPECT_EQ(h.repaired_blocks, 1u);
  EXPECT_TRUE(h.files.empty());
  ASSERT_EQ(h.repaired.size(), 1u);
  EXPECT_EQ(h.repaired[0].cause, "checksum mismatch");
}

TEST_F(ParityTest, AStrayStoreInTheRecordIsRepairedFromTheDataAndParity) {
  auto data = RandomBytes(16 << 10, 4);
  auto f = WriteFile("/f", data);
  Geometry g = GeometryFor(kDevSize, DataProtection::kParity);
  ProtectionLayout l = LayoutOf(g);
  uint64_t b = DeviceOffset(*f, 4096) / kBlockSize;
  Scribble(l.records * kBlockSize + b * 8, 4);
  EXPECT_EQ(ReadAll(*f, 0, data.size()), data);
  EXPECT_TRUE(fs_->Health().files.empty());
}

TEST_F(ParityTest, TwoBadStripsInOneBlockAreReportedAndNeverReadAsWrongBytes) {
  auto data = RandomBytes(32 << 10, 5);
  auto f = WriteFile("/f", data);
  uint64_t blk = DeviceOffset(*f, 8192);
  // Two strips at once (one at a time, each would be rebuilt in turn).
  ASSERT_TRUE(media().Inject((blk + 1024) / kSectorSize, 2, {.notify = true, .saturate = true}).ok());
  EXPECT_TRUE(Eventually([&] { return !fs_->Health().files.empty(); }));
  HealthReport h = fs_->Health();
  ASSERT_EQ(h.files.size(), 1u);
  EXPECT_EQ(h.files[0].path, "/f");
  EXPECT_EQ(h.unrepaired_blocks, 1u);
  // Everything before the damage reads back, and the read stops there.
  std::vector<uint8_t> got = ReadAll(*f, 0, data.size());
  ASSERT_LE(got.size(), 8192u + 1024);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin()));
  // The strips around the damage still read as they were.
  EXPECT_EQ(ReadAll(*f, 8192, 512), std::vector<uint8_t>(data.begin() + 8192, data.begin() + 8192 + 512));
  // A whole-block rewrite makes the block good again.
  std::vector<uint8_t> fresh(4096, 0x5a);
  ASSERT_TRUE(f->Write(8192, fresh.data(), fresh.size()).ok());
  EXPECT_EQ(ReadAll(*f, 8192, 4096), fresh);
}

TEST_F(ParityTest, ReflinkedBlocksShareTheirProtection) {
  auto data = RandomBytes(32 << 10, 6);
  auto a = WriteFile("/a", data);
  auto b = Create("/b");
  ASSERT_TRUE(b->CloneFrom(*a, 0, 0, 0).ok());
  Poison(DeviceOffset(*a, 12288 + 600), false);
  Scribble(DeviceOffset(*a, 20480 + 33), 50);
  EXPECT_EQ(ReadAll(*b, 0, data.size()), data);
  EXPECT_EQ(ReadAll(*a, 0, data.size()), data);
  EXPECT_TRUE(fs_->Health().files.empty());
}

TEST_F(ParityTest, PartialWritesKeepTheBlockProtected) {
  auto data = RandomBytes(20 << 10, 7);
  auto f = WriteFile("/f", data);
  for (uint64_t off : {100ull, 4000ull, 4096ull + 17, 12288ull + 4000}) {
    std::vector<uint8_t> patch = RandomBytes(200, static_cast<uint32_t>(off));
    ASSERT_TRUE(f->Write(off, patch.data(), patch.size()).ok());
    std::copy(patch.begin(), patch.end(), data.begin() + off);
  }
  Scribble(DeviceOffset(*f, 4096 + 300), 10);
  Poison(DeviceOffset(*f, 12288 + 3584), false);
  EXPECT_EQ(ReadAll(*f, 0, data.size()), data);
  Remount();
  auto g = OpenFile("/f");
  EXPECT_EQ(ReadAll(*g, 0, data.size()), data);
  EXPECT_TRUE(fs_->Health().files.empty());
}

TEST_F(ParityTest, StoresThroughAWritableMappingAreNeverRevertedByParity) {
  auto data = RandomBytes(16 << 10, 8);
  auto f = WriteFile("/f", data);
  {
    auto m = f->Map(0, data.size(), true);
    ASSERT_TRUE(m.ok()) << m.status().message();
    std::memset((*m)->addr() + 5000, 0xee, 300);
    std::memset(data.data() + 5000, 0xee, 300);
    // Unchecked while mapped: the read returns what the mapping stored.
    EXPECT_EQ(ReadAll(*f, 0, data.size()), data);
  }
  EXPECT_EQ(ReadAll(*f, 0, data.size()), data);
  // Resealed at unmap: the stored bytes are what parity rebuilds.
  Poison(DeviceOffset(*f, 5120), false);
  EXPECT_EQ(ReadAll(*f, 0, data.size()), data);
  EXPECT_TRUE(fs_->Health().files.empty());
}

// A load through a read-only mapping that meets poison parity can rebuild
// completes with the right byte; SIGBUS only when the data is really gone.
TEST_F(ParityTest, AMappedLoadOfRebuildablePoisonGetsTheDataNotSigbus) {
  auto data = RandomBytes(32 << 10, 10);
  auto f = WriteFile("/f", data);
  auto m = f->Map(0, data.size(), false);
  ASSERT_TRUE(m.ok()) << m.status().message();
  uint8_t* base = (*m)->addr();
  testing::BusCatcher catcher;
  // Latent: the load consumes it, the block is rebuilt, the load completes.
  Poison(DeviceOffset(*f, 4096 + 700), false);
  dax::FaultReport report;
  ASSERT_TRUE(Eventually([&] { return dax::DescribeFault(base + 4096 + 700, &report); })) << "the page traps";
  uint8_t got = 0;
  auto t0 = std::chrono::steady_clock::now();
  testing::BusFault fault = testing::Probe(base + 4096 + 700, false, 0, &got);
  EXPECT_FALSE(fault.hit) << "SIGBUS code " << fault.code << " after "
                          << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                          << " s, damaged files " << fs_->Health().files.size()
                          << ", unrepaired " << fs_->Health().unrepaired_blocks;
  EXPECT_EQ(got, data[4096 + 700]);
  // Known, arriving while mapped: the page comes back rebuilt.
  Poison(DeviceOffset(*f, 3 * 4096 + 3000), true);
  fault = testing::Probe(base + 3 * 4096 + 3000, false, 0, &got);
  EXPECT_FALSE(fault.hit) << "SIGBUS code " << fault.code << ", damaged files " << fs_->Health().files.size()
                          << ", unrepaired " << fs_->Health().unrepaired_blocks;
  EXPECT_EQ(got, data[3 * 4096 + 3000]);
  // Counted once the rebuilt block is sealed, just after its errors go.
  EXPECT_TRUE(Eventually([&] { return NoBadBlocks() && fs_->Health().repaired_blocks == 2; }));
  for (size_t i = 0; i < data.size(); i += 509) EXPECT_EQ(base[i], data[i]) << i;
  EXPECT_TRUE(fs_->Health().files.empty());
  // Two bad strips in one block: gone, and the load says so.
  ASSERT_TRUE(media().Inject((DeviceOffset(*f, 6 * 4096) + 1024) / kSectorSize, 2, {.saturate = true}).ok());
  ASSERT_TRUE(Eventually([&] { return dax::DescribeFault(base + 6 * 4096 + 1024, &report); }));
  fault = testing::Probe(base + 6 * 4096 + 1024);
  EXPECT_TRUE(fault.hit);
  EXPECT_EQ(fault.code, BUS_MCEERR_AR);
  EXPECT_TRUE(Eventually([&] { return fs_->Health().files.size() == 1; }));
}

TEST_F(ParityTest, RecordsSurviveARemountAndStillCatchAStrayStore) {
  auto data = RandomBytes(16 << 10, 9);
  WriteFile("/f", data);
  Remount();
  auto f = OpenFile("/f");
  Scribble(DeviceOffset(*f, 9000), 64);
  EXPECT_EQ(ReadAll(*f, 0, data.size()), data);
  EXPECT_EQ(fs_->Health().checksum_mismatches, 1u);
}

class ChecksumTest : public ParityTest {
 protected:
  DataProtection Protection() const override { return DataProtection::kChecksum; }
};

TEST_F(ChecksumTest, AStrayStoreBecomesReportedDamageNotWrongBytes) {
  auto data = RandomBytes(16 << 10, 10);
  auto f = WriteFile("/f", data);
  Scribble(DeviceOffset(*f, 4096 * 2 + 10), 20);
  std::vector<uint8_t> got = ReadAll(*f, 0, data.size());
  EXPECT_EQ(got, std::vector<uint8_t>(data.begin(), data.begin() + 8192));
  EXPECT_TRUE(Eventually([&] { return fs_->Health().files.size() == 1; }));
  HealthReport h = fs_->Health();
  ASSERT_EQ(h.files.size(), 1u);
  EXPECT_EQ(h.files[0].ranges[0].first, 8192u);
  EXPECT_EQ(h.files[0].ranges[0].second, 4096u);
  EXPECT_EQ(h.protection, DataProtection::kChecksum);
}

// The write-intent bitmap, below the filesystem: a store whose record a
// crash kept from the media is taken from the data at the next open, while
// after a clean close the same store is a stray one.
class IntentTest : public ParityTest {};

TEST_F(IntentTest, ACrashLeavesMarkedChunksToBeResyncedFromTheirData) {
  fs_.reset();
  Geometry g = GeometryFor(kDevSize, DataProtection::kParity);
  uint32_t tag = MetaLog::FindSuper(*dev_)->protection_tag;
  uint64_t blk = (g.ProtectStart() - 100) * kBlockSize;
  auto data = RandomBytes(4096, 11);
  {
    auto p = ProtectedDevice::Open(*dev_, g, tag);
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE((*p)->Write(blk, data.data(), 4096).ok());
    // The data reaches the media; its record does not (the crash).
    data[10] ^= 0xff;
    ASSERT_TRUE(dev_->Write(blk + 10, &data[10], 1).ok());
  }  // no MarkClean: the chunk stays marked
  {
    auto p = ProtectedDevice::Open(*dev_, g, tag);
    ASSERT_TRUE(p.ok());
    std::vector<uint8_t> got(4096);
    auto r = (*p)->ReadMcSafe(blk, got.data(), 4096);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 4096u);
    EXPECT_EQ(got, data) << "resynced from the data, not reverted";
    EXPECT_EQ((*p)->counts().mismatches, 0u);
    ASSERT_TRUE((*p)->MarkClean().ok());
  }
  data[20] ^= 0xff;
  ASSERT_TRUE(dev_->Write(blk + 20, &data[20], 1).ok());  // a stray store, after a clean close
  auto p = ProtectedDevice::Open(*dev_, g, tag);
  ASSERT_TRUE(p.ok());
  std::vector<uint8_t> got(4096);
  ASSERT_TRUE((*p)->ReadMcSafe(blk, got.data(), 4096).ok());
  data[20] ^= 0xff;
  EXPECT_EQ(got, data) << "rebuilt from parity";
  EXPECT_EQ((*p)->counts().mismatches, 1u);
}

}  // namespace
}  // namespace daxguard::fs
