// FastMap: a handle's map of clean runs answers only for written, undamaged
// bytes below the file size, in place for writes only where the file alone
// owns the blocks, and only for the data generation it was filled from.
#include "fs/fast_map.h"

#include <gtest/gtest.h>

#include "common/test_util.h"
#include "dax/dax_test_util.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kGen = 5;

class FastMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_ = dax::testing::NewPmemDax(dir_.File("dev"), kMinBlocks * kBlockSize);
    ASSERT_NE(dev_, nullptr);
    clean_ = std::make_unique<dax::CleanPath>(*dev_);
    data_ = geo_.AreaStart(0) + geo_.meta_blocks + 16;  // first data block used
    in_.ino = 9;
    in_.attr.size = 10 * kBlockSize + 100;
  }
  // File blocks [fblk, +len) -> device blocks from data_ + pblk_rel.
  void Map(uint64_t fblk, uint64_t pblk_rel, uint64_t len, bool unwritten = false) {
    in_.extents[fblk] = Extent{data_ + pblk_rel, len, unwritten};
    space_.AddOwner(data_ + pblk_rel, len, {in_.ino, fblk});
  }
  bool Find(uint64_t off, uint64_t len, bool write, uint64_t* dev_off) {
    uint64_t vouched;
    return map_.Find(kGen, off, len, write, dev_off, &vouched);
  }
  void Fill(uint64_t off, bool writable = true) { map_.Fill(kGen, in_, space_, off, writable, *clean_); }
  uint64_t DevOf(uint64_t pblk_rel, uint64_t in_blk) const { return (data_ + pblk_rel) * kBlockSize + in_blk; }

  testing::TempDir dir_;
  std::unique_ptr<dax::PmemDax> dev_;
  std::unique_ptr<dax::CleanPath> clean_;
  Geometry geo_ = GeometryFor(kMinBlocks * kBlockSize);
  SpaceMap space_{geo_};
  Inode in_;
  uint64_t data_ = 0;
  FastMap map_;
};

TEST_F(FastMapTest, FindsWrittenBytesAtTheirDeviceOffset) {
  Map(0, 0, 4);
  Fill(0);
  uint64_t dev = 0;
  ASSERT_TRUE(Find(5000, 100, false, &dev));
  EXPECT_EQ(dev, DevOf(0, 5000));
  ASSERT_TRUE(Find(5000, 100, true, &dev));
  EXPECT_FALSE(Find(4 * kBlockSize - 10, 20, false, &dev)) << "crosses the extent's end into a hole";
}

TEST_F(FastMapTest, MissesHolesUnwrittenDamageAndBeyondTheSize) {
  Map(0, 0, 2);
  Map(2, 10, 2, /*unwritten=*/true);
  Map(8, 20, 4);  // file block 10 holds the last 100 bytes; 11 is past the size
  in_.damage.Add(kBlockSize + 64, 64);
  Fill(0);
  uint64_t dev;
  EXPECT_FALSE(Find(2 * kBlockSize, 10, false, &dev)) << "unwritten";
  EXPECT_FALSE(Find(5 * kBlockSize, 10, false, &dev)) << "hole";
  EXPECT_FALSE(Find(kBlockSize + 100, 10, false, &dev)) << "damaged line";
  EXPECT_TRUE(Find(kBlockSize + 128, 10, false, &dev)) << "after the damaged line";
  EXPECT_TRUE(Find(10 * kBlockSize, 100, false, &dev));
  EXPECT_FALSE(Find(10 * kBlockSize, 101, false, &dev)) << "past the size";
}

TEST_F(FastMapTest, SharedBlocksAreReadOnlyAndAReadOnlyFsWritesNothing) {
  Map(0, 0, 4);
  space_.AddOwner(data_ + 2, 2, {77, 0});  // a reflink shares blocks 2..3
  Fill(0);
  uint64_t dev;
  EXPECT_TRUE(Find(0, 100, true, &dev));
  EXPECT_TRUE(Find(2 * kBlockSize, 100, false, &dev));
  EXPECT_FALSE(Find(2 * kBlockSize, 100, true, &dev));
  Fill(0, /*writable=*/false);
  EXPECT_FALSE(Find(0, 100, true, &dev));
  EXPECT_TRUE(Find(0, 100, false, &dev));
}

TEST_F(FastMapTest, AnotherGenerationMisses) {
  Map(0, 0, 4);
  Fill(0);
  uint64_t dev, vouched;
  EXPECT_TRUE(map_.Find(kGen, 0, 10, false, &dev, &vouched));
  EXPECT_FALSE(map_.Find(kGen + 1, 0, 10, false, &dev, &vouched));
}

TEST_F(FastMapTest, ARefillForgetsRunsItNoLongerHolds) {
  for (uint64_t i = 0; i < 2 * FastMap::kMaxRuns; ++i) Map(2 * i, 3 * i, 1);  // many one-block runs
  in_.attr.size = 4 * FastMap::kMaxRuns * kBlockSize;
  Fill(0);
  uint64_t dev;
  EXPECT_TRUE(Find(0, 10, false, &dev));
  uint64_t far = 2 * (2 * FastMap::kMaxRuns - 1) * kBlockSize;
  EXPECT_FALSE(Find(far, 10, false, &dev)) << "beyond the map's runs: a miss, not a wrong answer";
  Fill(far);
  ASSERT_TRUE(Find(far, 10, false, &dev));
  EXPECT_EQ(dev, DevOf(3 * (2 * FastMap::kMaxRuns - 1), 0));
  EXPECT_FALSE(Find(0, 10, false, &dev));
}

}  // namespace
}  // namespace daxguard::fs
