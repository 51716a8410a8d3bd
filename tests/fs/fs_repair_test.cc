// The reverse map stored on the device and checked against the extents,
// log replay resyncing past a record lost in both copies, what fsck reports
// and what fsck --repair puts right, and format versions.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "fs/fs_fixture.h"
#include "fs/fsck.h"
#include "fs/log_surgery.h"

namespace daxguard::fs {
namespace {

class FsRepairTest : public FsTest {
 protected:
  std::vector<std::string> Problems() {
    auto r = Fsck(*dev_, false);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->problems : std::vector<std::string>{};
  }
  // fsck --repair fixes everything it found, and a second fsck is clean.
  void RepairCleans() {
    auto r = Fsck(*dev_, true);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_FALSE(r->problems.empty());
    EXPECT_EQ(r->fixed, r->problems);
    for (const std::string& p : Problems()) ADD_FAILURE() << "after --repair: " << p;
  }
  static bool Has(const std::vector<std::string>& v, const std::string& part) {
    return std::any_of(v.begin(), v.end(), [&](const std::string& s) { return s.find(part) != std::string::npos; });
  }
  static std::string Join(const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& s : v) out += s + "\n";
    return out;
  }
  static std::string Blocks(uint64_t p, uint64_t len) {
    return "device blocks " + std::to_string(p) + ".." + std::to_string(p + len - 1);
  }
  // A free device block, as the replayed state sees it.
  static uint64_t FreeBlock(LogSurgery& s) { return s.state().space().FindFree(1, 0)->first; }
};

TEST_F(FsRepairTest, SnapshotStoresTheReverseMapApartFromTheExtents) {
  auto a = Create("/a");
  Fill(*a, 0, 65536, 1);
  auto b = Create("/b");
  ASSERT_TRUE(b->CloneFrom(*a, 0, 0, 0).ok());
  uint64_t off = DeviceOffset(*a, 8192);
  a.reset(), b.reset(), fs_.reset();
  {
    LogSurgery s(*dev_);
    ASSERT_TRUE(s.log().Compact(s.state().Snapshot()).ok());
    size_t maps = 0, extents = 0, owners = 0, meta = 0;
    for (const LogRecord& r : s.Records())
      for (const Op& op : r.ops) {
        maps += op.type == OpType::kMap;
        extents += op.type == OpType::kExtent;
        owners += op.type == OpType::kOwners;
        meta += op.type == OpType::kMetaOwner;
      }
    EXPECT_EQ(maps, 0u);
    EXPECT_EQ(extents, 2u);
    EXPECT_EQ(owners, s.state().space().runs().size());
    EXPECT_EQ(meta, 4u) << "both superblocks and both log copies";
  }
  Mount();
  EXPECT_TRUE(fs_->mount_report().repaired.empty()) << Join(fs_->mount_report().repaired);
  auto who = fs_->Who(off, 1);
  ASSERT_TRUE(who.ok());
  ASSERT_EQ(who->size(), 2u);
  EXPECT_EQ((*who)[0].path, "/a");
  EXPECT_EQ((*who)[1].path, "/b");
  EXPECT_EQ((*who)[1].file_offset, 8192u);
  fs_.reset();
  EXPECT_EQ(Join(Problems()), "");
}

TEST_F(FsRepairTest, StrayReverseMapRecordIsReportedAndRepaired) {
  auto a = Create("/a");
  Fill(*a, 0, 8192, 1);
  uint64_t ino = a->ino();
  a.reset(), fs_.reset();
  uint64_t stray;
  {
    LogSurgery s(*dev_);
    stray = FreeBlock(s);
    ASSERT_TRUE(s.log().Append({Op::Owners(stray, 2, {{ino, 100}})}).ok());
  }
  auto p = Problems();
  EXPECT_TRUE(Has(p, "reverse map names inode " + std::to_string(ino) + " (/a) file blocks 100..101 as owner of " +
                         Blocks(stray, 2) + ", but no extent maps them"))
      << Join(p);
  EXPECT_TRUE(Has(p, Blocks(stray, 2) + ": reference count 1 in the reverse map, 0 from the extents")) << Join(p);
  EXPECT_TRUE(Has(p, Blocks(stray, 2) + " are not free in the free-space map, but nothing owns them")) << Join(p);
  RepairCleans();
  Mount();
  EXPECT_TRUE(fs_->mount_report().repaired.empty());
}

TEST_F(FsRepairTest, ReverseMapRecordsOutsideTheDeviceOrOverMetadataAreReported) {
  auto a = Create("/a");
  uint64_t ino = a->ino();
  a.reset(), fs_.reset();
  Geometry g = GeometryFor(kDevSize);
  {
    LogSurgery s(*dev_);
    ASSERT_TRUE(s.log().Append({Op::Owners(g.blocks - 1, 2, {{ino, 0}}), Op::Owners(g.SuperBlock(1), 1, {{ino, 5}})}).ok());
  }
  auto p = Problems();
  EXPECT_TRUE(Has(p, "reverse-map record for device blocks " + std::to_string(g.blocks - 1) + "+2 lies beyond the device"))
      << Join(p);
  EXPECT_TRUE(Has(p, "reverse-map record for device blocks " + std::to_string(g.SuperBlock(1)) + "+1 overlaps metadata"))
      << Join(p);
  RepairCleans();
}

TEST_F(FsRepairTest, MountRebuildsADisagreeingReverseMapFromTheExtents) {
  auto a = Create("/a");
  Fill(*a, 0, 8192, 1);
  uint64_t ino = a->ino();
  a.reset(), fs_.reset();
  uint64_t stray;
  {
    LogSurgery s(*dev_);
    stray = FreeBlock(s);
    ASSERT_TRUE(s.log().Append({Op::Owners(stray, 1, {{ino, 7}})}).ok());
  }
  Mount();
  ASSERT_EQ(fs_->mount_report().repaired.size(), 1u);
  EXPECT_NE(fs_->mount_report().repaired[0].find("rebuilt from the extents"), std::string::npos);
  EXPECT_FALSE(fs_->read_only());
  auto who = fs_->Who(stray * kBlockSize, 1);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ((*who)[0].kind, OwnerInfo::Kind::kFree);
  fs_.reset();
  EXPECT_EQ(Join(Problems()), "") << "the rebuilt map was written at mount";
}

TEST_F(FsRepairTest, MountFindsASnapshotRunMovedOffItsExtent) {
  auto a = Create("/a");
  Fill(*a, 0, 8192, 1);
  uint64_t pblk = DeviceOffset(*a, 0) / kBlockSize;
  a.reset(), fs_.reset();
  uint64_t moved;
  {
    LogSurgery s(*dev_);
    moved = FreeBlock(s);
    std::vector<Op> snap = s.state().Snapshot();
    for (Op& op : snap)
      if (op.type == OpType::kOwners && op.pblk == pblk) op.pblk = moved;  // same owner, same length, elsewhere
    ASSERT_TRUE(s.log().Compact(snap).ok());
  }
  Mount();
  ASSERT_EQ(fs_->mount_report().repaired.size(), 1u);
  auto who = fs_->Who(pblk * kBlockSize, 1);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ((*who)[0].path, "/a");
  who = fs_->Who(moved * kBlockSize, 1);
  EXPECT_EQ((*who)[0].kind, OwnerInfo::Kind::kFree);
  fs_.reset();
  EXPECT_EQ(Join(Problems()), "");
}

TEST_F(FsRepairTest, MissingReverseMapRunIsReportedAndRepaired) {
  auto a = Create("/a");
  Fill(*a, 0, 8192, 1);
  uint64_t ino = a->ino(), pblk = DeviceOffset(*a, 0) / kBlockSize;
  a.reset(), fs_.reset();
  {
    LogSurgery s(*dev_);
    std::vector<Op> snap = s.state().Snapshot();
    std::erase_if(snap, [](const Op& op) { return op.type == OpType::kOwners; });
    ASSERT_TRUE(s.log().Compact(snap).ok());
  }
  auto p = Problems();
  EXPECT_TRUE(Has(p, "reverse map lacks inode " + std::to_string(ino) + " (/a) file blocks 0..1 -> " + Blocks(pblk, 2)))
      << Join(p);
  EXPECT_TRUE(Has(p, Blocks(pblk, 2) + ": reference count 0 in the reverse map, 1 from the extents")) << Join(p);
  EXPECT_TRUE(Has(p, Blocks(pblk, 2) + " are free in the free-space map but owned")) << Join(p);
  RepairCleans();
  Mount();
  auto f = OpenFile("/a");
  EXPECT_EQ(ReadAll(*f, 0, 8192), std::vector<uint8_t>(8192, 1));
}

TEST_F(FsRepairTest, ExtentsOutsideTheDeviceOrOverMetadataAreNamedThenDropped) {
  auto f = Create("/bad");
  Fill(*f, 0, 4096, 7);
  uint64_t ino = f->ino();
  f.reset(), fs_.reset();
  Geometry g = GeometryFor(kDevSize);
  {
    LogSurgery s(*dev_);
    ASSERT_TRUE(s.log().Append({Op::Map(ino, 10, g.blocks + 5, 4, false), Op::Map(ino, 20, g.SlotStart(1, 0), 2, false)}).ok());
  }
  Mount();
  EXPECT_TRUE(fs_->read_only()) << "dropping an extent loses data: left to fsck --repair";
  auto h = fs_->Health();
  std::string beyond = "inode " + std::to_string(ino) + " (/bad): extent at file block 10 -> " + Blocks(g.blocks + 5, 4) +
                       " lies beyond the device";
  std::string over = "inode " + std::to_string(ino) + " (/bad): extent at file block 20 -> " +
                     Blocks(g.SlotStart(1, 0), 2) + " overlaps metadata";
  EXPECT_TRUE(Has(h.lost_metadata, beyond)) << Join(h.lost_metadata);
  EXPECT_TRUE(Has(h.lost_metadata, over)) << Join(h.lost_metadata);
  fs_.reset();
  auto p = Problems();
  EXPECT_TRUE(Has(p, beyond)) << Join(p);
  EXPECT_TRUE(Has(p, over)) << Join(p);
  RepairCleans();
  Mount();
  EXPECT_FALSE(fs_->read_only());
  auto back = OpenFile("/bad");
  EXPECT_EQ(ReadAll(*back, 0, 4096), std::vector<uint8_t>(4096, 7));
}

// Replay goes on past a record damaged in both copies, naming it.
class LogHoleTest : public FsRepairTest, public ::testing::WithParamInterface<bool> {};

TEST_P(LogHoleTest, LaterRecordsAreAppliedAndTheLostOneNamed) {
  bool header_too = GetParam();
  Create("/a");
  Create("/b");
  Create("/c");
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  fs_.reset();
  uint64_t lost;
  {
    LogSurgery s(*dev_);
    LogRecord r = s.RecordLinking("b");
    lost = r.seq;
    uint64_t from = header_too ? r.pos : r.pos + sizeof(RecordHeader);
    s.Scribble(from, r.pos + r.span - from, 0x5a);
  }
  std::string named = "metadata log record " + std::to_string(lost) +
                      " unreadable in both copies; replay resumed at record " + std::to_string(lost + 1);
  Mount();
  EXPECT_TRUE(fs_->read_only());
  EXPECT_TRUE(fs_->Stat("/a").ok());
  EXPECT_EQ(fs_->Stat("/b").status().err(), ENOENT);
  EXPECT_TRUE(fs_->Stat("/c").ok()) << "a record after the hole";
  EXPECT_TRUE(fs_->Stat("/d").ok()) << "the last record";
  EXPECT_TRUE(Has(fs_->Health().lost_metadata, named)) << Join(fs_->Health().lost_metadata);
  EXPECT_EQ(fs_->Mkdir("/x").err(), EROFS);
  fs_.reset();
  EXPECT_TRUE(Has(Problems(), "lost: " + named)) << Join(Problems());
  RepairCleans();
  Mount();
  EXPECT_FALSE(fs_->read_only());
  EXPECT_TRUE(fs_->Stat("/c").ok());
  EXPECT_TRUE(fs_->Mkdir("/x").ok());
  fs_.reset();
  EXPECT_EQ(Join(Problems()), "");
}

INSTANTIATE_TEST_SUITE_P(PayloadOrWholeRecord, LogHoleTest, ::testing::Bool());

TEST_F(FsRepairTest, LogResyncsPastPoisonInBothCopies) {
  std::string name(kMaxNameLen, 'b');
  for (int i = 0; i < 10; ++i) Create("/p" + std::to_string(i));  // the snapshot stays clear of the poison
  Create("/" + name);
  for (int i = 0; i < 12; ++i) Create("/c" + std::to_string(i));
  fs_.reset();
  {
    LogSurgery s(*dev_);
    LogRecord r = s.RecordLinking(name);
    for (int c = 0; c < 2; ++c)
      ASSERT_TRUE(media().Inject(s.Addr(c, r.pos + 64) / 512, 1, {false, true, media::Source::kInjected}).ok());
  }
  Mount();
  EXPECT_TRUE(fs_->read_only());
  EXPECT_EQ(fs_->Stat("/" + name).status().err(), ENOENT);
  EXPECT_TRUE(fs_->Stat("/p0").ok()) << "records before the poisoned sector are applied";
  EXPECT_TRUE(fs_->Stat("/c11").ok()) << "records past it too";
  EXPECT_TRUE(Has(fs_->Health().lost_metadata, "unreadable in both copies; replay resumed at record"))
      << Join(fs_->Health().lost_metadata);
  fs_.reset();
  EXPECT_TRUE(Has(Problems(), "unreadable in both copies; replay resumed at record")) << Join(Problems());
  RepairCleans();
  Mount();
  EXPECT_TRUE(fs_->Stat("/c11").ok());
  EXPECT_FALSE(fs_->read_only());
}

// The ranges health names as damaged in `path`.
std::vector<IntervalSet::Interval> DamageOf(Filesystem& fs, const std::string& path) {
  for (const DamagedFile& d : fs.Health().files)
    if (d.path == path) return d.ranges;
  return {};
}

using Ranges = std::vector<IntervalSet::Interval>;

// An extent record lost in both copies: the bytes it mapped are damage (EIO,
// named by health), across remounts and fsck --repair, until rewritten.
TEST_F(FsRepairTest, LostExtentRecordMakesItsRangeDamageUntilRewritten) {
  auto a = Create("/a");
  Fill(*a, 0, 65536, 1);
  uint64_t ino = a->ino();
  a.reset();
  Create("/b");
  fs_.reset();
  {
    LogSurgery s(*dev_);
    LogRecord r = s.RecordWith(OpType::kMap, ino);
    s.Scribble(r.pos, r.span, 0x5a);
  }
  for (int pass = 0; pass < 2; ++pass) {  // the same after a remount
    Mount();
    EXPECT_TRUE(fs_->read_only());
    auto f = OpenFile("/a");
    Status why;
    EXPECT_TRUE(ReadAll(*f, 0, 4096, &why).empty()) << "zeroes read where the lost extent was";
    EXPECT_EQ(why.err(), EIO);
    EXPECT_EQ(DamageOf(*fs_, "/a"), (Ranges{{0, 65536}}));
    EXPECT_TRUE(fs_->Stat("/b").ok());
    f.reset(), fs_.reset();
  }
  RepairCleans();
  Mount();
  EXPECT_FALSE(fs_->read_only());
  EXPECT_EQ(DamageOf(*fs_, "/a"), (Ranges{{0, 65536}})) << "fsck --repair keeps the damage";
  auto f = OpenFile("/a");
  Fill(*f, 0, 4096 + 128, 7);  // rewritten in part: that part reads back, the rest still fails
  EXPECT_EQ(ReadAll(*f, 0, 4096 + 128), std::vector<uint8_t>(4096 + 128, 7));
  Status why;
  EXPECT_TRUE(ReadAll(*f, 4096 + 128, 64, &why).empty());
  EXPECT_EQ(why.err(), EIO);
  f.reset();
  Remount();
  EXPECT_EQ(DamageOf(*fs_, "/a"), (Ranges{{4096 + 128, 65536 - 4096 - 128}}));
  ASSERT_TRUE(OpenFile("/a")->Truncate(4096).ok());
  EXPECT_TRUE(fs_->Health().files.empty());
  fs_.reset();
  EXPECT_EQ(Join(Problems()), "");
}

// Records after the lost one that give its bytes new contents (here a hole
// punched over part of them) take that part of the damage back.
TEST_F(FsRepairTest, LaterRecordsRewritingALostRangeTakeItsDamageBack) {
  auto a = Create("/a");
  Fill(*a, 0, 65536, 1);
  ASSERT_TRUE(a->Fallocate(kFallocPunchHole | kFallocKeepSize, 0, 8192).ok());
  uint64_t ino = a->ino();
  a.reset(), fs_.reset();
  {
    LogSurgery s(*dev_);
    LogRecord r = s.RecordWith(OpType::kMap, ino);
    s.Scribble(r.pos, r.span, 0x5a);
  }
  Mount();
  EXPECT_EQ(DamageOf(*fs_, "/a"), (Ranges{{8192, 65536 - 8192}}));
  auto f = OpenFile("/a");
  EXPECT_EQ(ReadAll(*f, 0, 8192), std::vector<uint8_t>(8192, 0));
}

// Two records lost in a row: the record after them tells what the second
// changed; of the first nothing is known. That loss is named before and
// after fsck --repair, which cannot make it vanish.
TEST_F(FsRepairTest, LossOfUnknownReachIsNamedForGood) {
  for (const char* p : {"/a", "/b", "/c", "/d"}) Create(p);
  fs_.reset();
  uint64_t first;
  {
    LogSurgery s(*dev_);
    LogRecord b = s.RecordLinking("b"), c = s.RecordLinking("c");
    ASSERT_EQ(c.seq, b.seq + 1);
    first = b.seq;
    s.Scribble(b.pos, c.pos + c.span - b.pos, 0x5a);
  }
  std::string unknown = "metadata log record " + std::to_string(first) + " lost in both copies; what it changed is unknown";
  Mount();
  EXPECT_TRUE(fs_->read_only());
  EXPECT_TRUE(Has(fs_->Health().lost_metadata, "what metadata log record " + std::to_string(first) + " changed is unknown"))
      << Join(fs_->Health().lost_metadata);
  fs_.reset();
  RepairCleans();
  for (int pass = 0; pass < 2; ++pass) {
    Mount();
    EXPECT_FALSE(fs_->read_only());
    EXPECT_TRUE(Has(fs_->Health().lost_metadata, unknown)) << Join(fs_->Health().lost_metadata);
    EXPECT_TRUE(fs_->Stat("/d").ok());
    ASSERT_TRUE(fs_->Mkdir("/x" + std::to_string(pass)).ok());
    fs_.reset();
    auto r = Fsck(*dev_, false);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(Join(r->problems), "");
    EXPECT_TRUE(Has(r->notes, unknown)) << Join(r->notes);
    {
      LogSurgery s(*dev_);  // and in a fresh snapshot
      ASSERT_TRUE(s.log().Compact(s.state().Snapshot()).ok());
    }
  }
}

// One damaged mkdir record: what was made inside the directory survives,
// reconnected under /lost+found (as e2fsck does), data and subtrees whole.
TEST_F(FsRepairTest, LostMkdirRecordSendsTheSubtreeToLostAndFound) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  ASSERT_TRUE(fs_->Mkdir("/d/e").ok());
  uint64_t d = fs_->Stat("/d")->ino;
  auto f = Create("/d/f");
  Fill(*f, 0, 8192, 1);
  auto g = Create("/d/e/g");
  Fill(*g, 0, 4096, 2);
  uint64_t f_at = DeviceOffset(*f, 0), g_at = DeviceOffset(*g, 0);
  f.reset(), g.reset(), fs_.reset();
  {
    LogSurgery s(*dev_);
    LogRecord r = s.RecordLinking("d");
    s.Scribble(r.pos, r.span, 0x5a);
  }
  RepairCleans();
  Mount();
  EXPECT_FALSE(fs_->read_only());
  std::string f_path = fs_->Who(f_at, 1)->at(0).path, g_path = fs_->Who(g_at, 1)->at(0).path;
  // The record after the lost one tells that it made directory d: d stands in.
  std::string d_path = "/lost+found/#" + std::to_string(d);
  EXPECT_EQ(f_path, d_path + "/f");
  EXPECT_EQ(g_path, d_path + "/e/g");
  auto f2 = OpenFile(f_path), g2 = OpenFile(g_path);
  EXPECT_EQ(ReadAll(*f2, 0, 8192), std::vector<uint8_t>(8192, 1));
  EXPECT_EQ(ReadAll(*g2, 0, 4096), std::vector<uint8_t>(4096, 2));
  f2.reset(), g2.reset();
  Create("/after");
  fs_.reset();
  EXPECT_EQ(Join(Problems()), "");
}

// rm -r detaches its tree in one commit and empties it after; a stop in
// between leaves the tree to the next mount. When that mount is read-only
// (a lost record), fsck counts the tree as held, not lost, and --repair
// finishes removing it rather than reconnecting what the user removed.
TEST_F(FsRepairTest, RepairFinishesAnRmDashRAStopCutShort) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  ASSERT_TRUE(fs_->Mkdir("/d/e").ok());
  auto f = Create("/d/f");
  Fill(*f, 0, 8192, 1);
  auto g = Create("/d/e/g");
  Fill(*g, 0, 4096, 2);
  Fill(*Create("/x"), 0, 4096, 3);
  uint64_t f_at = DeviceOffset(*f, 0), d = fs_->Stat("/d")->ino;
  std::vector<uint64_t> tree = {d, fs_->Stat("/d/e")->ino, fs_->Stat("/d/f")->ino, fs_->Stat("/d/e/g")->ino};
  Attr root = fs_->Stat("/")->attr, dir = fs_->Stat("/d")->attr;
  f.reset(), g.reset(), fs_.reset();
  {
    LogSurgery s(*dev_);
    LogRecord lost = s.RecordLinking("x");
    root.nlink--;
    dir.nlink = 0;
    ASSERT_TRUE(s.log().Append({Op::Unlink(kRootIno, "d"), Op::SetInode(kRootIno, root), Op::SetInode(d, dir)}).ok());
    s.Scribble(lost.pos, lost.span, 0x5a);
  }
  Mount();
  EXPECT_TRUE(fs_->read_only());
  EXPECT_EQ(fs_->Stat("/d").status().err(), ENOENT);
  fs_.reset();
  for (const std::string& p : Problems())
    for (uint64_t ino : tree) EXPECT_EQ(p.find("inode " + std::to_string(ino) + " "), std::string::npos) << p;
  RepairCleans();
  Mount();
  EXPECT_EQ(fs_->Who(f_at, 1)->at(0).kind, OwnerInfo::Kind::kFree) << "the removed file's blocks are free";
  auto lf = fs_->ReadDir("/lost+found");
  ASSERT_TRUE(lf.ok()) << "x lost its name: it is reconnected";
  for (const DirEntry& e : *lf) EXPECT_NE(e.name, "#" + std::to_string(d)) << "the removed tree came back";
}

// A directory named twice (a lost unlink of a rename leaves that) would
// make every walk of the tree loop or count twice: fsck names it, --repair
// keeps the first entry.
TEST_F(FsRepairTest, DirectoryNamedTwiceIsNamedAndRepaired) {
  ASSERT_TRUE(fs_->Mkdir("/d").ok());
  ASSERT_TRUE(fs_->Mkdir("/d/e").ok());
  uint64_t d = fs_->Stat("/d")->ino, e = fs_->Stat("/d/e")->ino;
  fs_.reset();
  {
    LogSurgery s(*dev_);
    ASSERT_TRUE(s.log().Append({Op::Link(e, "loop", d)}).ok());
  }
  auto p = Problems();
  EXPECT_TRUE(Has(p, "entry 'loop' in directory " + std::to_string(e) + ": directory inode " + std::to_string(d) +
                         " is named by more than one entry"))
      << Join(p);
  RepairCleans();
  Mount();
  EXPECT_TRUE(fs_->Stat("/d/e").ok());
  EXPECT_EQ(fs_->Stat("/d/e/loop").status().err(), ENOENT);
}

TEST_F(FsRepairTest, EndRecordedAtCleanUnmountIsClearedBeforeTheNextAppend) {
  Create("/a");
  fs_.reset();  // clean unmount: where the log ends is recorded
  dev_.reset();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // appends past the recorded end, then dies without unmounting
    auto dev = dax::PmemDax::Open(path_);
    if (!dev.ok()) _exit(2);
    auto fs = Filesystem::Mount(**dev);
    if (!fs.ok()) _exit(3);
    for (const char* p : {"/x", "/y"})
      if (!(*fs)->Open(p, kCreate).ok()) _exit(4);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  OpenDevice();
  uint64_t lost;
  {
    LogSurgery s(*dev_);
    LogRecord r = s.RecordLinking("x");
    lost = r.seq;
    s.Scribble(r.pos, r.span, 0);  // zeroes, right where the recorded end was
  }
  Mount();
  EXPECT_TRUE(fs_->Stat("/y").ok()) << "replay must not stop at the old recorded end";
  EXPECT_TRUE(Has(fs_->Health().lost_metadata, "metadata log record " + std::to_string(lost) + " unreadable"))
      << Join(fs_->Health().lost_metadata);
}

TEST_F(FsRepairTest, TornLastRecordIsTheEndNotALoss) {
  Create("/a");
  Create("/b");
  fs_.reset();
  {
    LogSurgery s(*dev_);
    LogRecord r = s.RecordLinking("b");
    s.Scribble(r.pos + r.span - 8, 8, 0x5a);  // as a crash mid-append leaves it
  }
  Mount();
  EXPECT_FALSE(fs_->read_only());
  EXPECT_TRUE(fs_->Stat("/a").ok());
  EXPECT_EQ(fs_->Stat("/b").status().err(), ENOENT);
  EXPECT_TRUE(fs_->mount_report().lost.empty());
  Create("/c");
  fs_.reset();
  EXPECT_EQ(Join(Problems()), "");
}

TEST_F(FsRepairTest, FormatVersionOneIsUpgradedAndUnknownVersionsRefused) {
  auto f = Create("/v");
  Fill(*f, 0, 4096, 3);
  f.reset(), fs_.reset();
  LogSurgery(*dev_).SetVersion(1);
  EXPECT_TRUE(Has(Problems(), "format version 1: the reverse map is not stored")) << Join(Problems());
  Mount();
  EXPECT_FALSE(fs_->read_only());
  fs_.reset();
  EXPECT_EQ(LogSurgery(*dev_).log().super().version, kFormatVersion);
  EXPECT_EQ(Join(Problems()), "");
  Mount();
  auto v = OpenFile("/v");
  EXPECT_EQ(ReadAll(*v, 0, 4096), std::vector<uint8_t>(4096, 3));
  v.reset(), fs_.reset();

  LogSurgery(*dev_).SetVersion(kFormatVersion + 1);
  std::vector<uint8_t> before(kBlockSize), after(kBlockSize);
  ASSERT_EQ(dev_->ReadMcSafe(0, before.data(), kBlockSize).value_or(SIZE_MAX), kBlockSize);
  auto m = Filesystem::Mount(*dev_);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("daxfs format version " + std::to_string(kFormatVersion + 1) + " is not supported"),
            std::string::npos)
      << m.status().message();
  EXPECT_FALSE(Fsck(*dev_, true).ok());
  ASSERT_EQ(dev_->ReadMcSafe(0, after.data(), kBlockSize).value_or(SIZE_MAX), kBlockSize);
  EXPECT_EQ(before, after) << "a refused mount writes nothing";
}

}  // namespace
}  // namespace daxguard::fs
