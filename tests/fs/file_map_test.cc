// Mapped daxfs files: loads and stores reach the file's blocks in place, the
// mapping follows the file through copy-on-write, truncate, clone and
// damage, and a writable mapping never changes another owner's data.
#include <sys/mman.h>

#include <cstring>

#include "common/fault_probe.h"
#include "dax/mapping.h"
#include "fs/fs_fixture.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kPage = 4096;

// One load (or store) through a mapping: what SIGBUS said, and what the
// library makes of the address.
struct Touched {
  bool faulted = false;
  int code = 0;
  int lsb = 0;
  const void* addr = nullptr;
  bool described = false;
  dax::FaultReport report;
};

Touched Touch(uint8_t* p, bool store = false, uint8_t value = 0) {
  daxguard::testing::BusCatcher catcher;
  daxguard::testing::BusFault f = daxguard::testing::Probe(p, store, value);
  Touched t{f.hit, f.code, f.lsb, f.addr, false, {}};
  if (f.hit) t.described = dax::DescribeFault(p, &t.report);
  return t;
}

class FileMapTest : public FsTest {
 protected:
  std::unique_ptr<FileMapping> MapFile(File& f, uint64_t off, uint64_t len, bool writable) {
    auto m = f.Map(off, len, writable);
    EXPECT_TRUE(m.ok()) << m.status().message();
    return m.ok() ? std::move(m).value() : nullptr;
  }
  static bool AllBytes(const uint8_t* p, uint64_t len, uint8_t v) {
    for (uint64_t i = 0; i < len; ++i)
      if (p[i] != v) return false;
    return true;
  }
  void InjectAt(uint64_t dev_off) {
    ASSERT_TRUE(media().Inject(dev_off / 512, 1, {true, true, media::Source::kInjected}).ok());
  }
};

TEST_F(FileMapTest, ReadOnlyMappingSeesTheFileInPlace) {
  auto f = Create("/a");
  Fill(*f, 0, 2 * kPage, 0xab);
  auto m = MapFile(*f, 0, 2 * kPage, false);
  ASSERT_TRUE(m);
  EXPECT_TRUE(AllBytes(m->addr(), 2 * kPage, 0xab));
  Fill(*f, kPage, kPage, 0xcd);  // an in-place write shows through at once
  EXPECT_TRUE(AllBytes(m->addr() + kPage, kPage, 0xcd));
}

TEST_F(FileMapTest, StoresReachTheFile) {
  auto f = Create("/a");
  Fill(*f, 0, 2 * kPage, 1);
  auto m = MapFile(*f, 0, 2 * kPage, true);
  ASSERT_TRUE(m);
  std::memset(m->addr() + 100, 7, 50);
  auto got = ReadAll(*f, 100, 50);
  EXPECT_TRUE(AllBytes(got.data(), 50, 7));
  EXPECT_EQ(got.size(), 50u);
}

TEST_F(FileMapTest, HolesReadAsZeroesAndAreFilledForWritableMappings) {
  auto f = Create("/sparse");
  Fill(*f, 3 * kPage, kPage, 9);  // blocks 0..2 are a hole
  auto ro = MapFile(*f, 0, 4 * kPage, false);
  ASSERT_TRUE(ro);
  EXPECT_TRUE(AllBytes(ro->addr(), 3 * kPage, 0));
  auto rw = MapFile(*f, 0, 4 * kPage, true);
  ASSERT_TRUE(rw);
  auto st = f->Stat();
  EXPECT_EQ(st->blocks, 4u) << "the writable mapping gave the hole blocks";
  rw->addr()[5] = 42;
  EXPECT_EQ(ReadAll(*f, 5, 1), std::vector<uint8_t>{42});
}

TEST_F(FileMapTest, WritableMappingOfAReflinkedFileLeavesTheOtherOwnerAlone) {
  auto a = Create("/a");
  Fill(*a, 0, 4 * kPage, 0x11);
  auto b = Create("/b");
  ASSERT_TRUE(b->CloneFrom(*a, 0, 0, 0).ok());
  auto m = MapFile(*b, 0, 4 * kPage, true);
  ASSERT_TRUE(m);
  std::memset(m->addr(), 0x22, 4 * kPage);
  auto ga = ReadAll(*a, 0, 4 * kPage), gb = ReadAll(*b, 0, 4 * kPage);
  EXPECT_TRUE(AllBytes(ga.data(), ga.size(), 0x11));
  EXPECT_TRUE(AllBytes(gb.data(), gb.size(), 0x22));
  EXPECT_NE(DeviceOffset(*a, 0), DeviceOffset(*b, 0));
}

TEST_F(FileMapTest, CloningFromAWritablyMappedFileKeepsTheCloneApart) {
  auto a = Create("/a");
  Fill(*a, 0, 2 * kPage, 0x31);
  auto m = MapFile(*a, 0, 2 * kPage, true);
  ASSERT_TRUE(m);
  auto b = Create("/b");
  ASSERT_TRUE(b->CloneFrom(*a, 0, 0, 0).ok());
  std::memset(m->addr(), 0x33, 2 * kPage);
  auto gb = ReadAll(*b, 0, 2 * kPage), ga = ReadAll(*a, 0, 2 * kPage);
  EXPECT_TRUE(AllBytes(gb.data(), gb.size(), 0x31)) << "the clone kept the data as it was when cloned";
  EXPECT_TRUE(AllBytes(ga.data(), ga.size(), 0x33));
}

TEST_F(FileMapTest, CopyOnWriteMovesTheMappingToTheNewBlock) {
  auto a = Create("/a");
  Fill(*a, 0, 2 * kPage, 0x41);
  auto b = Create("/b");
  ASSERT_TRUE(b->CloneFrom(*a, 0, 0, 0).ok());
  auto m = MapFile(*a, 0, 2 * kPage, false);
  ASSERT_TRUE(m);
  Fill(*a, 0, kPage, 0x44);  // shared: the write copies the block first
  EXPECT_TRUE(AllBytes(m->addr(), kPage, 0x44));
  auto gb = ReadAll(*b, 0, kPage);
  EXPECT_TRUE(AllBytes(gb.data(), gb.size(), 0x41));
}

TEST_F(FileMapTest, TruncateTakesThePagesBack) {
  auto f = Create("/t");
  Fill(*f, 0, 4 * kPage, 5);
  auto m = MapFile(*f, 0, 4 * kPage, true);
  ASSERT_TRUE(m);
  ASSERT_TRUE(f->Truncate(kPage).ok());
  auto p = Touch(m->addr() + 2 * kPage + 8);
  ASSERT_TRUE(p.faulted);
  EXPECT_EQ(p.code, BUS_ADRERR);
  EXPECT_EQ(p.addr, m->addr() + 2 * kPage + 8);
  ASSERT_TRUE(p.described);
  EXPECT_EQ(p.report.kind, dax::TrapKind::kGone);
  EXPECT_EQ(p.report.offset, 2 * kPage + 8);
  EXPECT_FALSE(Touch(m->addr() + 8).faulted);
  ASSERT_TRUE(f->Truncate(4 * kPage).ok());  // grown again: a hole, placed back as such
  EXPECT_EQ(Touch(m->addr() + 2 * kPage).code, BUS_ADRERR) << "a writable mapping traps where the file punched";
}

TEST_F(FileMapTest, PoisonUnderASharedBlockTrapsEveryOwnersMapping) {
  auto a = Create("/a");
  Fill(*a, 0, 2 * kPage, 0x51);
  auto b = Create("/b");
  ASSERT_TRUE(b->CloneFrom(*a, 0, 0, 0).ok());
  auto ma = MapFile(*a, 0, 2 * kPage, false), mb = MapFile(*b, 0, 2 * kPage, false);
  ASSERT_TRUE(ma && mb);
  InjectAt(DeviceOffset(*a, kPage + 512));
  for (auto* m : {ma.get(), mb.get()}) {
    auto p = Touch(m->addr() + kPage + 700);
    ASSERT_TRUE(p.faulted);
    EXPECT_EQ(p.code, BUS_MCEERR_AR);
    EXPECT_EQ(p.lsb, 12);
    ASSERT_TRUE(p.described);
    EXPECT_EQ(p.report.kind, dax::TrapKind::kPoison);
    EXPECT_EQ(p.report.offset, kPage + 700);
    EXPECT_EQ(p.report.unit_offset, kPage);
    EXPECT_EQ(p.report.unit_length, kPage);
    EXPECT_FALSE(Touch(m->addr() + 10).faulted);
  }
  EXPECT_EQ(Touch(ma->addr() + kPage).report.ino, a->ino());
  EXPECT_EQ(Touch(mb->addr() + kPage).report.ino, b->ino());
  EXPECT_STREQ(Touch(mb->addr() + kPage).report.name, "/b");
}

TEST_F(FileMapTest, DamageRecordsTrapEvenWhereTheMediaIsClean) {
  auto f = Create("/d");
  Fill(*f, 0, 2 * kPage, 3);
  InjectAt(DeviceOffset(*f, kPage + 1024));  // bytes 1024..1535 of page 1 are damaged
  auto m = MapFile(*f, 0, 2 * kPage, true);
  ASSERT_TRUE(m);
  EXPECT_EQ(Touch(m->addr() + kPage).code, BUS_MCEERR_AR);
  Fill(*f, kPage, 512, 4);  // repairs the page, but lines 1024..1535 stay EIO
  EXPECT_TRUE(media().BadBlocks().empty()) << "the media was cleared";
  EXPECT_EQ(Touch(m->addr() + kPage).code, BUS_MCEERR_AR) << "the file's damage record still traps";
  Fill(*f, kPage, kPage, 6);  // a whole-page write repairs it all
  auto p = Touch(m->addr() + kPage + 1100);
  ASSERT_FALSE(p.faulted);
  EXPECT_EQ(m->addr()[kPage + 1100], 6);
}

TEST_F(FileMapTest, AnUnlinkedFileLivesWhileMapped) {
  auto f = Create("/gone");
  Fill(*f, 0, kPage, 8);
  uint64_t dev_off = DeviceOffset(*f, 0);
  auto m = MapFile(*f, 0, kPage, false);
  ASSERT_TRUE(m);
  f.reset();
  ASSERT_TRUE(fs_->Unlink("/gone").ok());
  EXPECT_EQ(m->addr()[0], 8);
  auto who = fs_->Who(dev_off, kPage);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ((*who)[0].kind, OwnerInfo::Kind::kFile);
  m.reset();
  who = fs_->Who(dev_off, kPage);
  EXPECT_EQ((*who)[0].kind, OwnerInfo::Kind::kFree) << "the last reference let the blocks go";
}

TEST_F(FileMapTest, UnmountTakesThePagesBack) {
  auto f = Create("/u");
  Fill(*f, 0, kPage, 8);
  auto m = MapFile(*f, 0, kPage, true);
  ASSERT_TRUE(m);
  f.reset();
  fs_.reset();
  EXPECT_EQ(Touch(m->addr()).code, BUS_ADRERR);
}

TEST_F(FileMapTest, BadArgumentsAreRefused) {
  auto f = Create("/x");
  Fill(*f, 0, kPage, 1);
  EXPECT_EQ(f->Map(100, kPage, false).status().err(), EINVAL);
  EXPECT_EQ(f->Map(0, 0, false).status().err(), EINVAL);
  EXPECT_EQ(f->Map(0, kDevSize * 2, false).status().err(), EFBIG);
}

}  // namespace
}  // namespace daxguard::fs
