// Records that passed their checksum but name blocks or bytes no record
// written by daxfs names: State keeps its free space on the device's data
// blocks whatever they say, and names what it did not apply.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "fs/state.h"

namespace daxguard::fs {
namespace {

const Geometry kGeo = GeometryFor(16ull << 20);

bool Named(const State& s, const std::string& what) {
  for (const std::string& b : s.CheckReverseMap().bad_records)
    if (b.find(what) != std::string::npos) return true;
  return false;
}

TEST(StateRecordsTest, UnquarantineOverMetadataOrBeyondTheDeviceFreesNothing) {
  State s(kGeo);
  const IntervalSet free_before = s.space().free_space();
  ASSERT_TRUE(s.Apply(Op::Quarantine(0, kGeo.AreaStart(0) + kGeo.meta_blocks, false)).ok());
  ASSERT_TRUE(s.Apply(Op::Quarantine(kGeo.blocks, 100, false)).ok());
  ASSERT_TRUE(s.Apply(Op::Quarantine(kGeo.blocks - 1, UINT64_MAX, false)).ok());
  EXPECT_EQ(s.space().free_space(), free_before);
  EXPECT_TRUE(Named(s, "overlaps metadata"));
  EXPECT_TRUE(Named(s, "lies beyond the device"));
}

TEST(StateRecordsTest, QuarantineThatWrapsIsNotAppliedAndIsNamed) {
  State s(kGeo);
  const IntervalSet free_before = s.space().free_space();
  ASSERT_TRUE(s.Apply(Op::Quarantine(UINT64_MAX - 4, 10, true)).ok());
  ASSERT_TRUE(s.Apply(Op::Quarantine(kGeo.blocks - 8, 0, true)).ok());
  EXPECT_TRUE(s.space().quarantine().empty());
  EXPECT_EQ(s.space().free_space(), free_before);
  EXPECT_TRUE(Named(s, "quarantine record for device blocks " + std::to_string(UINT64_MAX - 4)));
  // Named until the reverse map is rebuilt, as other bad reverse-map records.
  s.RebuildReverseMap();
  EXPECT_TRUE(s.CheckReverseMap().bad_records.empty());
}

TEST(StateRecordsTest, QuarantineOfFreeDataBlocksStillApplies) {
  State s(kGeo);
  uint64_t b = kGeo.AreaStart(0) + kGeo.meta_blocks + 10;
  ASSERT_TRUE(s.Apply(Op::Quarantine(b, 2, true)).ok());
  EXPECT_TRUE(s.space().quarantine().Contains(b, 2));
  EXPECT_FALSE(s.space().free_space().Overlaps(b, 2));
  EXPECT_TRUE(s.CheckReverseMap().bad_records.empty());
}

TEST(StateRecordsTest, DamageReachingPastTheLastByteEndsThere) {
  State s(kGeo);
  ASSERT_TRUE(s.Apply(Op::SetInode(2, Attr{})).ok());
  ASSERT_TRUE(s.Apply(Op::Damage(2, UINT64_MAX - 100, 1000, true)).ok());
  EXPECT_EQ(s.Find(2)->damage.intervals(), (std::map<uint64_t, uint64_t>{{UINT64_MAX - 100, 100}}));
  ASSERT_TRUE(s.Apply(Op::Damage(2, UINT64_MAX - 50, 1000, false)).ok());
  EXPECT_EQ(s.Find(2)->damage.intervals(), (std::map<uint64_t, uint64_t>{{UINT64_MAX - 100, 50}}));
}

// daxfs never changes an inode's type: a record that turns a directory
// into a file would strand its entries (its snapshot would not replay).
TEST(StateRecordsTest, ARecordChangingAnInodesTypeIsNotAppliedAndIsNamed) {
  State s(kGeo);
  Attr dir{.mode = S_IFDIR | 0755, .nlink = 2}, file{.mode = S_IFREG | 0644, .nlink = 1};
  ASSERT_TRUE(s.Apply(Op::SetInode(kRootIno, dir)).ok());
  ASSERT_TRUE(s.Apply(Op::SetInode(2, file)).ok());
  ASSERT_TRUE(s.Apply(Op::Link(kRootIno, "a", 2)).ok());
  ASSERT_TRUE(s.Apply(Op::SetInode(kRootIno, Attr{.mode = S_IFREG | 0644})).ok());
  EXPECT_TRUE(s.Find(kRootIno)->is_dir());
  EXPECT_TRUE(Named(s, "inode record for inode 1 changes its type"));
  State replayed(kGeo);
  EXPECT_TRUE(replayed.ApplyAll(s.Snapshot()).ok());
  EXPECT_EQ(replayed.PathOf(2), "/a");
}

// A reverse-map owner whose file blocks run past 2^64 cannot be any file's.
TEST(StateRecordsTest, AnOwnerWhoseFileBlocksWrapIsNotLoadedAndIsNamed) {
  State s(kGeo);
  uint64_t b = kGeo.AreaStart(0) + kGeo.meta_blocks + 10;
  ASSERT_TRUE(s.Apply(Op::Owners(b, 4, {{2, UINT64_MAX - 1}})).ok());
  EXPECT_TRUE(s.space().runs().empty());
  EXPECT_TRUE(Named(s, "wrap past 2^64"));
}

}  // namespace
}  // namespace daxguard::fs
