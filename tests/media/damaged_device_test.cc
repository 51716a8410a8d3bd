// Device files whose header or error tables were damaged: Open refuses
// each, naming the damage in one line, and leaves the file as it was.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "common/test_util.h"
#include "common/units.h"
#include "media/pmem_device.h"

namespace daxguard::media {
namespace {

using daxguard::testing::Child;
using daxguard::testing::TempDir;

constexpr uint64_t kMiB = 1ull << 20;

// Byte offsets inside a range table (RangeTableHeader, then 16-byte entries).
constexpr uint64_t kSeq = 0, kCount = 8, kCapacity = 16;
uint64_t EntryStart(uint64_t i) { return 64 + 16 * i; }
uint64_t EntryLenFlags(uint64_t i) { return 64 + 16 * i + 8; }

class DamagedDeviceTest : public ::testing::Test {
 protected:
  // badblocks: {8, 2}, {64, 1}; poison: the first clear unit of each.
  void SetUp() override {
    CreateOptions opt;
    opt.size = 4 * kMiB;
    auto dev = PmemDevice::Create(path_, opt);
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    geo_ = (*dev)->geometry();
    ASSERT_TRUE((*dev)->Inject(8, 2, {}).ok());
    ASSERT_TRUE((*dev)->Inject(64, 1, {}).ok());
  }
  std::string Bytes() const {
    std::ifstream in(path_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  uint64_t Get(uint64_t off) const {
    uint64_t v = 0;
    int fd = open(path_.c_str(), O_RDONLY);
    EXPECT_EQ(pread(fd, &v, sizeof v, static_cast<off_t>(off)), static_cast<ssize_t>(sizeof v));
    close(fd);
    return v;
  }
  void Put(uint64_t off, uint64_t v) const {
    int fd = open(path_.c_str(), O_RDWR);
    EXPECT_EQ(pwrite(fd, &v, sizeof v, static_cast<off_t>(off)), static_cast<ssize_t>(sizeof v));
    close(fd);
  }
  // The badblocks table's entries 0 and 1 trade places (as a writer that
  // died mid-edit, or damage, leaves them).
  void SwapFirstTwoBadBlocks() const {
    uint64_t b = geo_.badblocks_off;
    uint64_t s0 = Get(b + EntryStart(0)), l0 = Get(b + EntryLenFlags(0));
    Put(b + EntryStart(0), Get(b + EntryStart(1)));
    Put(b + EntryLenFlags(0), Get(b + EntryLenFlags(1)));
    Put(b + EntryStart(1), s0);
    Put(b + EntryLenFlags(1), l0);
  }
  // Open must fail naming `what`, and leave every byte of the file alone.
  void ExpectRefused(const std::string& what) {
    std::string before = Bytes();
    auto dev = PmemDevice::Open(path_);
    ASSERT_FALSE(dev.ok());
    EXPECT_EQ(dev.status().err(), EUCLEAN);
    const std::string& msg = dev.status().message();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(path_ + ": device file damaged: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_TRUE(Bytes() == before) << "Open changed the damaged file";
  }

  TempDir dir_;
  std::string path_ = dir_.File("dev");
  Geometry geo_{};
};

TEST_F(DamagedDeviceTest, HeaderGeometry) {
  Put(offsetof(Header, geo) + offsetof(Geometry, clear_unit), 100);  // with `kind` beside it: 0
  ExpectRefused("header geometry (clear unit 100)");
}

TEST_F(DamagedDeviceTest, HeaderAlign) {
  Put(offsetof(Header, geo) + offsetof(Geometry, align), 4096);  // fsdax has none
  ExpectRefused("header geometry (align 4096)");
}

TEST_F(DamagedDeviceTest, HeaderLayout) {
  Put(offsetof(Header, geo) + offsetof(Geometry, badblocks_off), geo_.badblocks_off + 4096);
  ExpectRefused("header layout does not match its size");
}

TEST_F(DamagedDeviceTest, FileTruncated) {
  ASSERT_EQ(truncate(path_.c_str(), static_cast<off_t>(geo_.file_size - 4096)), 0);
  ExpectRefused("truncated to " + std::to_string(geo_.file_size - 4096));
}

TEST_F(DamagedDeviceTest, CountBeyondCapacity) {
  Put(geo_.badblocks_off + kCount, 0x0100000000000002ull);  // one flipped bit
  ExpectRefused("badblocks table: entry count 72057594037927938 exceeds capacity");
}

TEST_F(DamagedDeviceTest, CapacityChanged) {
  Put(geo_.badblocks_off + kCapacity, 0);
  ExpectRefused("badblocks table: capacity 0, not " + std::to_string(geo_.badblocks_capacity));
}

TEST_F(DamagedDeviceTest, EntryBeyondDeviceEnd) {
  Put(geo_.badblocks_off + EntryStart(1), 18446744073709551360ull);
  ExpectRefused("badblocks table: entry 1 (start 18446744073709551360, length 1) is beyond the device end");
}

TEST_F(DamagedDeviceTest, EntryRunsPastDeviceEnd) {
  Put(geo_.badblocks_off + EntryLenFlags(1), RangeTable::kMaxLen);
  ExpectRefused("badblocks table: entry 1 (start 64, length 72057594037927935) is beyond the device end");
}

TEST_F(DamagedDeviceTest, EntryEmpty) {
  Put(geo_.badblocks_off + EntryLenFlags(0), 0);
  ExpectRefused("badblocks table: entry 0 (start 8, length 0) is empty");
}

TEST_F(DamagedDeviceTest, EntriesOutOfOrder) {
  SwapFirstTwoBadBlocks();
  ExpectRefused("badblocks table: entry 1 (start 8, length 2) is out of order or overlaps the one before");
}

TEST_F(DamagedDeviceTest, EntriesOverlap) {
  Put(geo_.badblocks_off + EntryStart(1), 9);  // within {8, 2}, whose filter bits are set
  ExpectRefused("badblocks table: entry 1 (start 9, length 1) is out of order or overlaps the one before");
}

TEST_F(DamagedDeviceTest, UnknownFlags) {
  Put(geo_.badblocks_off + EntryLenFlags(1), 7ull << 56 | 1);
  ExpectRefused("badblocks table: entry 1 (start 64, length 1) has unknown flags 7");
}

TEST_F(DamagedDeviceTest, EntryMissingFromFilter) {
  Put(geo_.badblocks_filter_off + 8, 0);  // sectors 64..127
  ExpectRefused("badblocks table: entry 1 (start 64, length 1) is not marked in the filter");
}

TEST_F(DamagedDeviceTest, PoisonTable) {
  Put(geo_.poison_off + EntryStart(0), geo_.size / kLineSize);
  ExpectRefused("media poison table: entry 0");
}

TEST_F(DamagedDeviceTest, UntoldTable) {
  Put(kUntoldOff + kCount, kUntoldCapacity + 1);
  ExpectRefused("table of untold cleared errors: entry count 65537");
}

TEST_F(DamagedDeviceTest, ScrubState) {
  Put(offsetof(Header, live) + offsetof(LiveState, scrub_active), 9);
  ExpectRefused("scrub state 9");
}

// Not damage: a filter may mark more than the table lists.
TEST_F(DamagedDeviceTest, FilterBitWithoutEntryIsHarmless) {
  Put(geo_.badblocks_filter_off + 16, 1);  // sector 128
  auto dev = PmemDevice::Open(path_);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->BadBlocks().size(), 2u);
}

// Not damage either: a writer that died mid-edit leaves the counter odd
// and the entries in disorder; Open repairs the table.
TEST_F(DamagedDeviceTest, TornEditIsRepaired) {
  SwapFirstTwoBadBlocks();
  uint64_t b = geo_.badblocks_off;
  Put(b + kSeq, Get(b + kSeq) + 1);
  auto dev = PmemDevice::Open(path_);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->BadBlocks(), (std::vector<BadBlock>{{8, 2, false}, {64, 1, false}}));
  EXPECT_EQ(Get(b + kSeq) % 2, 0u);
}

// A writer in another process dies mid-edit while this one has the device
// open: readers do not wait for it forever, and the next writer does not
// edit the torn table (which would leave its counter odd for good).
TEST_F(DamagedDeviceTest, ReaderOutlivesDeadWriter) {
  Child child([&] {
    alarm(30);  // a reader that waits forever dies of SIGALRM
    auto dev = PmemDevice::Open(path_);
    if (!dev.ok()) return 2;
    Put(geo_.badblocks_off + kSeq, Get(geo_.badblocks_off + kSeq) + 1);  // "dies" mid-edit
    if ((*dev)->BadBlocks().size() != 2) return 3;
    if (!(*dev)->Inject(100, 1, {}).ok()) return 4;
    if (Get(geo_.badblocks_off + kSeq) % 2 != 0) return 5;
    return (*dev)->BadBlocks().size() == 3 ? 0 : 6;
  });
  EXPECT_EQ(child.Wait(), 0);
}

}  // namespace
}  // namespace daxguard::media
