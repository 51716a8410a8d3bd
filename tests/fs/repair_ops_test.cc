// The repairs fsck --repair makes, computed on states built by hand: each
// kind of damage lost log records leave in the tree, and what puts it right.
#include "fs/repair.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

namespace daxguard::fs {
namespace {

const Geometry kGeo = GeometryFor(16ull << 20);

Attr Dir(uint32_t nlink) { return Attr{.mode = S_IFDIR | 0755, .nlink = nlink}; }
Attr File(uint32_t nlink) { return Attr{.mode = S_IFREG | 0644, .nlink = nlink, .size = 10}; }

// / holds directory "d" (ino 2), which holds file "f" (ino 3).
class RepairOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Apply({Op::SetInode(kRootIno, Dir(3)), Op::SetInode(2, Dir(2)), Op::SetInode(3, File(1)),
           Op::Link(kRootIno, "d", 2), Op::Link(2, "f", 3)});
  }
  void Apply(const std::vector<Op>& ops) { ASSERT_TRUE(s_.ApplyAll(ops).ok()); }
  // Reconnects, then sets the link counts, as fsck --repair does.
  void Repair() {
    Apply(ReconnectOps(s_));
    Apply(LinkCountOps(s_));
  }
  uint64_t Entry(uint64_t dir, const std::string& name) {
    const Inode* d = s_.Find(dir);
    if (!d) return 0;
    auto it = d->entries.find(name);
    return it == d->entries.end() ? 0 : it->second;
  }
  uint32_t Links(uint64_t ino) { return s_.Find(ino) ? s_.Find(ino)->attr.nlink : 0; }

  State s_{kGeo};
};

TEST_F(RepairOpsTest, AWholeTreeNeedsNothing) {
  EXPECT_TRUE(ReconnectOps(s_).empty());
  EXPECT_TRUE(LinkCountOps(s_).empty());
  EXPECT_TRUE(DropBadEntriesBelow(s_, kRootIno).empty());
}

TEST_F(RepairOpsTest, ADirectoryThatLostItsEntryGoesToLostAndFoundWithWhatItHolds) {
  Apply({Op::Unlink(kRootIno, "d")});
  Repair();
  uint64_t lf = Entry(kRootIno, "lost+found");
  ASSERT_NE(lf, 0u);
  EXPECT_TRUE(s_.Find(lf)->is_dir());
  EXPECT_EQ(Entry(lf, "#2"), 2u);
  EXPECT_EQ(Entry(2, "f"), 3u);
  EXPECT_EQ(Links(kRootIno), 3u);  // ".", its entry's "..", lost+found's ".."
  EXPECT_EQ(Links(lf), 3u);
  EXPECT_EQ(Links(2), 2u);
  EXPECT_TRUE(ReconnectOps(s_).empty());
  EXPECT_TRUE(LinkCountOps(s_).empty());
}

TEST_F(RepairOpsTest, AFileWhoseDirectoryRecordWasLostIsReconnectedAlone) {
  Apply({Op::FreeInode(2)});  // the directory's inode record lost; "d" names nothing now
  Repair();
  EXPECT_EQ(Entry(kRootIno, "d"), 0u);
  uint64_t lf = Entry(kRootIno, "lost+found");
  ASSERT_NE(lf, 0u);
  EXPECT_EQ(Entry(lf, "#3"), 3u);
  EXPECT_EQ(Links(3), 1u);
}

TEST_F(RepairOpsTest, AnEntryNamingNoInodeIsDropped) {
  Apply({Op::Link(2, "ghost", 99)});
  std::vector<Op> ops = DropBadEntriesBelow(s_, kRootIno);
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].type, OpType::kUnlink);
  EXPECT_EQ(ops[0].parent, 2u);
  EXPECT_EQ(ops[0].name, "ghost");
}

TEST_F(RepairOpsTest, ADirectoryNamedTwiceKeepsItsShallowestName) {
  Apply({Op::SetInode(4, Dir(2)), Op::Link(2, "e", 4), Op::Link(4, "loop", 2)});  // a cycle back to d
  Repair();
  EXPECT_EQ(Entry(kRootIno, "d"), 2u);
  EXPECT_EQ(Entry(4, "loop"), 0u);
  EXPECT_EQ(Links(2), 3u);
  EXPECT_EQ(Links(4), 2u);
}

TEST_F(RepairOpsTest, LostAndFoundTakenByAFileIsNotUsed) {
  Apply({Op::SetInode(5, File(1)), Op::Link(kRootIno, "lost+found", 5), Op::Unlink(2, "f")});
  Repair();
  EXPECT_EQ(Entry(kRootIno, "lost+found"), 5u);
  uint64_t lf = Entry(kRootIno, "lost+found.1");
  ASSERT_NE(lf, 0u);
  EXPECT_EQ(Entry(lf, "#3"), 3u);
}

TEST_F(RepairOpsTest, AFileUnlinkedWhileOpenIsLeftToBeFreed) {
  Apply({Op::Unlink(2, "f"), Op::SetInode(3, File(0))});
  Repair();
  EXPECT_EQ(Entry(kRootIno, "lost+found"), 0u);
  EXPECT_EQ(Links(3), 0u);
}

TEST_F(RepairOpsTest, WrongLinkCountsAreSetFromTheTree) {
  Apply({Op::SetInode(kRootIno, Dir(7)), Op::SetInode(3, File(5)), Op::Link(2, "g", 3)});
  Repair();
  EXPECT_EQ(Links(kRootIno), 3u);
  EXPECT_EQ(Links(2), 2u);
  EXPECT_EQ(Links(3), 2u);
}

}  // namespace
}  // namespace daxguard::fs
