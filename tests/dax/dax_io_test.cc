#include "dax/dax_io.h"
#include "common/test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/units.h"
#include "dax/pmem_dax.h"
#include "dax_test_util.h"

namespace daxguard::dax {
using daxguard::testing::TempDir;
namespace {

using media::BadBlock;
using media::InjectOptions;
using media::PmemDevice;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t P = kPageSize;


// The same device without the ability to clear poison, as a device whose
// firmware cannot clear (or a remapping target that cannot pass it on).
class NoRecoveryDevice final : public Device {
 public:
  explicit NoRecoveryDevice(PmemDax& d) : d_(d) {}
  uint64_t size() const override { return d_.size(); }
  Capabilities caps() const override { return {false, true}; }
  Result<Mapping> DirectAccess(uint64_t pgoff, uint64_t n, AccessMode mode) override {
    return d_.DirectAccess(pgoff, n, mode);
  }
  Result<size_t> RecoveryWrite(uint64_t, const void*, size_t) override {
    ADD_FAILURE() << "RecoveryWrite on a device that cannot recover";
    return Status::Io("cannot recover");
  }
  Status ZeroPageRange(uint64_t, uint64_t) override { return Status::Io("cannot clear"); }
  Result<size_t> ReadMcSafe(uint64_t off, void* dst, size_t len) override { return d_.ReadMcSafe(off, dst, len); }
  Status Write(uint64_t off, const void* src, size_t len) override { return d_.Write(off, src, len); }
  Status WriteBack(uint64_t off, uint64_t len) override { return d_.WriteBack(off, len); }
  void Fence() override { d_.Fence(); }
  std::vector<BadBlock> BadBlocks() const override { return d_.BadBlocks(); }

 protected:
  Status ClaimForHolder(uint64_t) override { return Status::Ok(); }
  void UnclaimForHolder(uint64_t) override {}

 private:
  PmemDax& d_;
};

class DaxIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dax_ = testing::NewPmemDax(dir_.File("dev"), 2 * kMiB, 256);
    ASSERT_TRUE(dax_);
    std::vector<uint8_t> buf(dax_->size());
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = Pattern(i);
    ASSERT_TRUE(dax_->Write(0, buf.data(), buf.size()).ok());
  }
  PmemDax& dax() { return *dax_; }
  PmemDevice& media() { return dax_->media(); }
  static uint8_t Pattern(uint64_t off) { return static_cast<uint8_t>(off % 251 + 1); }
  bool Untouched(uint64_t off, uint64_t len) {
    for (uint64_t i = off; i < off + len; ++i)
      if (media().data()[i] != Pattern(i)) return false;
    return true;
  }
  bool AllZero(uint64_t off, uint64_t len) {
    for (uint64_t i = off; i < off + len; ++i)
      if (media().data()[i]) return false;
    return true;
  }
  static InjectOptions Latent() {
    InjectOptions o;
    o.notify = false;
    return o;
  }

  TempDir dir_;
  std::unique_ptr<PmemDax> dax_;
};

// --- reads

TEST_F(DaxIoTest, ReadOfCleanRange) {
  std::vector<uint8_t> buf(3 * P + 100);
  auto n = ReadAt(dax(), 1000, buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, buf.size());
  for (size_t i = 0; i < buf.size(); ++i) ASSERT_EQ(buf[i], Pattern(1000 + i)) << i;
  auto z = ReadAt(dax(), dax().size(), buf.data(), 0);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(*z, 0u);
}

TEST_F(DaxIoTest, ReadStopsShortBeforeKnownPoison) {
  ASSERT_TRUE(media().Inject(2 * 8, 1, {}).ok());  // first sector of page 2
  std::vector<uint8_t> buf(4 * P);
  auto n = ReadAt(dax(), 100, buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2 * P - 100);
  for (size_t i = 0; i < *n; ++i) ASSERT_EQ(buf[i], Pattern(100 + i)) << i;
  // Starting at the poison: EIO.
  auto at = ReadAt(dax(), 2 * P, buf.data(), 10);
  ASSERT_FALSE(at.ok());
  EXPECT_EQ(at.status().err(), EIO);
  // The page is the unit: another, clean sector of that page fails too.
  EXPECT_EQ(ReadAt(dax(), 2 * P + 1024, buf.data(), 10).status().err(), EIO);
  // The next page reads fine.
  auto next = ReadAt(dax(), 3 * P, buf.data(), P);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, P);
}

TEST_F(DaxIoTest, ReadConsumingLatentPoisonStopsThereAndMakesItKnown) {
  ASSERT_TRUE(media().Inject(2 * 8 + 1, 1, Latent()).ok());  // bytes 8704..8959
  std::vector<uint8_t> buf(4 * P);
  auto n = ReadAt(dax(), P, buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, P + 512);
  EXPECT_EQ(media().BadBlocks(), (std::vector<BadBlock>{{17, 1, false}}));
  EXPECT_EQ(ReadAt(dax(), 2 * P, buf.data(), 512).status().err(), EIO);
  // Latent poison at the very start of a read: EIO, nothing returned.
  ASSERT_TRUE(media().Inject(5 * 8, 1, Latent()).ok());
  EXPECT_EQ(ReadAt(dax(), 5 * P, buf.data(), 100).status().err(), EIO);
}

// --- the clean fast path (ReadClean / WriteClean)

TEST_F(DaxIoTest, CleanCopiesMoveBytesWhereNothingIsPoisoned) {
  std::vector<uint8_t> buf(P + 300);
  ASSERT_TRUE(dax().ReadClean(700, buf.data(), buf.size()));
  for (size_t i = 0; i < buf.size(); ++i) ASSERT_EQ(buf[i], Pattern(700 + i)) << i;
  std::vector<uint8_t> src(P + 300, 0xee);
  ASSERT_TRUE(dax().WriteClean(700, src.data(), src.size()));
  EXPECT_TRUE(Untouched(0, 700));
  for (size_t i = 0; i < src.size(); ++i) ASSERT_EQ(media().data()[700 + i], 0xee) << i;
  EXPECT_TRUE(Untouched(700 + src.size(), 2 * P));
  EXPECT_FALSE(dax().ReadClean(dax().size() - 10, buf.data(), 11)) << "beyond the end";
  EXPECT_FALSE(dax().WriteClean(dax().size() - 10, src.data(), 11));
}

TEST_F(DaxIoTest, CleanReadRefusesLatentPoisonWithoutConsumingIt) {
  ASSERT_TRUE(media().Inject(2 * 8 + 3, 1, Latent()).ok());
  std::vector<uint8_t> buf(P);
  EXPECT_FALSE(dax().ReadClean(2 * P, buf.data(), P));
  EXPECT_TRUE(media().BadBlocks().empty()) << "the clean path reported an error";
  // A store over latent poison goes through and leaves it poisoned, as Write does.
  EXPECT_TRUE(dax().WriteClean(2 * P, buf.data(), P));
  EXPECT_TRUE(media().HasPoison(2 * P, P));
  EXPECT_TRUE(media().BadBlocks().empty());
}

TEST_F(DaxIoTest, CleanCopiesRefuseAPageWithKnownPoisonAnywhereInIt) {
  ASSERT_TRUE(media().Inject(2 * 8 + 7, 1, {}).ok());  // the last sector of page 2
  std::vector<uint8_t> buf(512, 0x11);
  EXPECT_FALSE(dax().ReadClean(2 * P, buf.data(), buf.size()));
  EXPECT_FALSE(dax().WriteClean(2 * P, buf.data(), buf.size()));
  EXPECT_TRUE(Untouched(2 * P, 512)) << "a refused clean write changed the page";
  EXPECT_TRUE(dax().ReadClean(P, buf.data(), buf.size())) << "the page before is clean";
  dax().Kill();
  EXPECT_FALSE(dax().ReadClean(P, buf.data(), buf.size())) << "the device is gone";
  EXPECT_FALSE(dax().WriteClean(P, buf.data(), buf.size()));
}

TEST_F(DaxIoTest, OutOfRangeIsErange) {
  std::vector<uint8_t> buf(P);
  const uint64_t size = dax().size();
  EXPECT_EQ(ReadAt(dax(), size - 10, buf.data(), 11).status().err(), ERANGE);
  EXPECT_EQ(ReadAt(dax(), size + 1, buf.data(), 0).status().err(), ERANGE);
  EXPECT_EQ(WriteAt(dax(), size - 10, buf.data(), 11).status().err(), ERANGE);
  EXPECT_EQ(WriteAt(dax(), UINT64_MAX, buf.data(), 1).status().err(), ERANGE);
  EXPECT_EQ(ZeroAt(dax(), size, P).err(), ERANGE);
  EXPECT_EQ(ZeroAt(dax(), size - P, 2 * P).err(), ERANGE);
  EXPECT_TRUE(Untouched(size - P, P));
}

// --- writes

TEST_F(DaxIoTest, WriteOfCleanRange) {
  std::vector<uint8_t> buf(2 * P + 7, 0x5a);
  auto n = WriteAt(dax(), 3000, buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, buf.size());
  EXPECT_EQ(std::memcmp(media().data() + 3000, buf.data(), buf.size()), 0);
  EXPECT_TRUE(Untouched(0, 3000));
  EXPECT_TRUE(Untouched(3000 + buf.size(), P));
}

TEST_F(DaxIoTest, PartialPageWriteOverKnownPoisonFailsAndChangesNothing) {
  ASSERT_TRUE(media().Inject(9, 1, {}).ok());  // second sector of page 1
  auto errs = media().MediaErrors().size();
  std::vector<uint8_t> buf(2 * P, 0x11);
  for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{
           {P + 100, 100}, {P, 1000}, {P, P - 1}, {P + 1, P}, {P + 2048, 2 * P - 2048}}) {
    auto n = WriteAt(dax(), off, buf.data(), len);
    ASSERT_FALSE(n.ok()) << off << "+" << len;
    EXPECT_EQ(n.status().err(), EIO);
  }
  EXPECT_TRUE(Untouched(0, dax().size()));
  EXPECT_TRUE(media().HasPoison(9 * 512, 256));
  EXPECT_EQ(media().MediaErrors().size(), errs);
  EXPECT_EQ(media().BadBlocks(), (std::vector<BadBlock>{{9, 1, false}}));
}

TEST_F(DaxIoTest, WriteEndingInsideAPoisonedPageIsShort) {
  ASSERT_TRUE(media().Inject(9, 1, {}).ok());
  std::vector<uint8_t> buf(2 * P, 0x22);
  auto n = WriteAt(dax(), 100, buf.data(), P - 100 + 500);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, P - 100);  // stops at the bad page
  EXPECT_EQ(media().data()[100], 0x22);
  EXPECT_EQ(media().data()[P - 1], 0x22);
  EXPECT_TRUE(Untouched(P, P));
  EXPECT_EQ(media().BadBlocks().size(), 1u);
}

TEST_F(DaxIoTest, WholePageWriteRepairsKnownPoison) {
  ASSERT_TRUE(media().Inject(9, 1, {}).ok());
  ASSERT_TRUE(media().Inject(3 * 8, 8, {}).ok());  // all of page 3
  std::vector<uint8_t> buf(4 * P);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 7);
  // From inside page 0 to inside page 4: pages 1 and 3 are covered whole.
  const uint64_t off = 100;
  auto n = WriteAt(dax(), off, buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, buf.size());
  EXPECT_EQ(std::memcmp(media().data() + off, buf.data(), buf.size()), 0);
  EXPECT_TRUE(media().BadBlocks().empty());
  EXPECT_FALSE(media().HasPoison(0, dax().size()));
  std::vector<uint8_t> back(buf.size());
  auto r = ReadAt(dax(), off, back.data(), back.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, back.size());
  EXPECT_EQ(back, buf);
  EXPECT_TRUE(Untouched(0, off));
}

TEST_F(DaxIoTest, WriteOverLatentPoisonLeavesItInPlace) {
  ASSERT_TRUE(media().Inject(9, 1, Latent()).ok());
  std::vector<uint8_t> buf(100, 0x33);
  // Nobody knows of the poison, so the write goes through as a plain store...
  auto n = WriteAt(dax(), 9 * 512, buf.data(), buf.size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, buf.size());
  // ...and the poison is still there for the next reader.
  EXPECT_TRUE(media().HasPoison(9 * 512, 1));
  EXPECT_EQ(ReadAt(dax(), 9 * 512, buf.data(), buf.size()).status().err(), EIO);
}

TEST_F(DaxIoTest, DeviceThatCannotClearStopsAtPoison) {
  NoRecoveryDevice dev(dax());
  ASSERT_TRUE(media().Inject(2 * 8, 1, {}).ok());  // page 2
  std::vector<uint8_t> buf(16 * P, 0x44);
  // A whole aligned page over poison still fails, and changes nothing.
  EXPECT_EQ(WriteAt(dev, 2 * P, buf.data(), P).status().err(), EIO);
  EXPECT_TRUE(Untouched(2 * P, P));
  EXPECT_EQ(media().BadBlocks().size(), 1u);
  // A large write stops short at the bad page.
  auto n = WriteAt(dev, 0, buf.data(), buf.size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2 * P);
  EXPECT_TRUE(Untouched(2 * P, 14 * P));
}

// --- zeroing

TEST_F(DaxIoTest, ZeroAtClearsPoisonAndZeroes) {
  ASSERT_TRUE(media().Inject(8, 1, {}).ok());
  ASSERT_TRUE(media().Inject(40, 1, Latent()).ok());
  ASSERT_TRUE(ZeroAt(dax(), P, 8 * P).ok());
  EXPECT_TRUE(AllZero(P, 8 * P));
  EXPECT_TRUE(Untouched(0, P));
  EXPECT_TRUE(Untouched(9 * P, P));
  EXPECT_TRUE(media().BadBlocks().empty());
  EXPECT_FALSE(media().HasPoison(0, dax().size()));
  std::vector<uint8_t> buf(8 * P);
  auto r = ReadAt(dax(), P, buf.data(), buf.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, buf.size());
}

TEST_F(DaxIoTest, ZeroAtNeedsWholePages) {
  ASSERT_TRUE(media().Inject(8, 1, {}).ok());
  EXPECT_EQ(ZeroAt(dax(), P + 512, P).err(), EINVAL);
  EXPECT_EQ(ZeroAt(dax(), P, P + 512).err(), EINVAL);
  EXPECT_TRUE(Untouched(0, dax().size()));
  EXPECT_EQ(media().BadBlocks().size(), 1u);
}

// The device file cut short under the open device (the tool's `io` while
// someone truncates it): reads and writes fail with EIO, and the process
// lives on.
TEST_F(DaxIoTest, FileShrunkUnderTheDevice) {
  ASSERT_EQ(truncate(media().path().c_str(), static_cast<off_t>(media().geometry().data_off + kMiB)), 0);
  std::vector<uint8_t> buf(2 * P, 0x5a);
  auto wrote = WriteAt(dax(), kMiB + P, buf.data(), buf.size());
  ASSERT_FALSE(wrote.ok());
  EXPECT_EQ(wrote.status().err(), EIO);
  EXPECT_NE(wrote.status().message().find("device file shrank under us"), std::string::npos)
      << wrote.status().message();
  auto read = ReadAt(dax(), 0, buf.data(), buf.size());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().err(), EIO);
  EXPECT_NE(read.status().message().find("device file shrank under us"), std::string::npos)
      << read.status().message();
}

}  // namespace
}  // namespace daxguard::dax
