// daxfs on a three-level stack (striped over linear over two device files):
// poison put on a bottom device, however it becomes known, reaches the
// filesystem at the stack's offsets and names the exact (file, offset)
// owners, reflinked ones included. Linux loses this under device-mapper.
#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "common/units.h"
#include "dm/dm_test_util.h"
#include "fs/filesystem.h"

namespace daxguard::fs {
namespace {

using dm::testing::Eventually;
using dm::testing::MakeDevice;
using dm::testing::MakeStack;
using dm::testing::TempDir;
using Ranges = std::vector<IntervalSet::Interval>;

constexpr uint64_t S = kSectorSize;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kChunk = 64 * 1024;        // the stripe chunk, 128 sectors
constexpr uint64_t kL0Offset = 4 * kMiB;      // where l0 starts on d0

// Where a stack byte lives on the bottom devices.
struct Bottom {
  int dev;
  uint64_t off;
};

class FsStackTest : public ::testing::Test {
 protected:
  // top (64 MiB): 64 KiB chunks, even ones on l0, odd ones on l1.
  // l0: d0 from 4 MiB.  l1: d1 from 0.
  void SetUp() override {
    MakeDevice(dir_.File("d0"), 40 * kMiB);
    MakeDevice(dir_.File("d1"), 40 * kMiB);
    ASSERT_TRUE(MakeStack(dir_.File("l0"), {"0 65536 linear d0 8192"}).ok());
    ASSERT_TRUE(MakeStack(dir_.File("l1"), {"0 65536 linear d1 0"}).ok());
    ASSERT_TRUE(MakeStack(dir_.File("top"), {"0 131072 striped 2 128 l0 0 l1 0"}).ok());
    OpenTop();
    ASSERT_TRUE(Filesystem::Mkfs(*top_).ok());
    Mount();
  }
  void TearDown() override {
    fs_.reset();
    top_.reset();
  }
  void OpenTop() {
    top_ = dm::testing::OpenOrDie(dir_.File("top"));
    ASSERT_TRUE(top_);
  }
  void Mount() {
    auto f = Filesystem::Mount(*top_);
    ASSERT_TRUE(f.ok()) << f.status().message();
    fs_ = std::move(f).value();
  }
  void Remount() {
    fs_.reset();
    top_.reset();
    OpenTop();
    Mount();
  }

  // The table worked out by hand, independently of the code under test.
  static Bottom Down(uint64_t top_off) {
    uint64_t chunk = top_off / kChunk;
    uint64_t in_leg = chunk / 2 * kChunk + top_off % kChunk;
    return chunk % 2 == 0 ? Bottom{0, kL0Offset + in_leg} : Bottom{1, in_leg};
  }
  // The bottom devices opened on their own, as another process would.
  std::unique_ptr<media::PmemDevice> Media(int dev) {
    auto m = media::PmemDevice::Open(dir_.File(dev == 0 ? "d0" : "d1"));
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(m).value() : nullptr;
  }
  void Inject(Bottom at, uint64_t sectors, bool notify) {
    auto m = Media(at.dev);
    ASSERT_TRUE(m);
    ASSERT_EQ(at.off % S, 0u);
    ASSERT_TRUE(m->Inject(at.off / S, sectors, {notify, true, media::Source::kInjected}).ok());
  }

  std::unique_ptr<File> Create(const std::string& path, uint64_t len, uint8_t byte) {
    auto f = fs_->Open(path, kCreate);
    EXPECT_TRUE(f.ok()) << f.status().message();
    if (!f.ok()) return nullptr;
    std::vector<uint8_t> buf(len, byte);
    auto w = (*f)->Write(0, buf.data(), len);
    EXPECT_TRUE(w.ok() && *w == len);
    return std::move(f).value();
  }
  // The stack offset of file offset `off`.
  static uint64_t StackOffset(File& f, uint64_t off) {
    auto m = f.Fiemap();
    EXPECT_TRUE(m.ok());
    for (const FiemapExtent& e : *m)
      if (off >= e.logical && off < e.logical + e.length) return e.physical + (off - e.logical);
    ADD_FAILURE() << "file offset " << off << " is not mapped";
    return 0;
  }
  Ranges DamageOf(const std::string& path) {
    for (const DamagedFile& d : fs_->Health().files)
      if (d.path == path) return d.ranges;
    return {};
  }
  bool DamageBecomes(const std::string& path, const Ranges& want) {
    return Eventually([&] { return DamageOf(path) == want; });
  }
  // Who's file owners of a stack range, as (path, file offset, length).
  std::set<std::tuple<std::string, uint64_t, uint64_t>> FileOwners(uint64_t off, uint64_t len) {
    auto who = fs_->Who(off, len);
    EXPECT_TRUE(who.ok()) << who.status().message();
    std::set<std::tuple<std::string, uint64_t, uint64_t>> out;
    for (const OwnerInfo& o : *who)
      if (o.kind == OwnerInfo::Kind::kFile) out.insert({o.path, o.file_offset, o.length});
    return out;
  }

  // What the open handles were told, per path.
  class Told {
   public:
    void Watch(File& f, const std::string& path) {
      f.OnDamage([this, path](uint64_t off, uint64_t len) {
        std::lock_guard<std::mutex> g(mu_);
        told_.insert({path, off, len});
      });
    }
    std::set<std::tuple<std::string, uint64_t, uint64_t>> Get() {
      std::lock_guard<std::mutex> g(mu_);
      return told_;
    }

   private:
    std::mutex mu_;
    std::set<std::tuple<std::string, uint64_t, uint64_t>> told_;
  };

  TempDir dir_;
  std::unique_ptr<dax::Device> top_;
  std::unique_ptr<Filesystem> fs_;
};

TEST_F(FsStackTest, NotifiedPoisonOnABottomDeviceNamesEveryReflinkOwner) {
  auto a = Create("/a", 512 * 1024, 0x41);
  auto b = fs_->Open("/b", kCreate);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE((*b)->CloneFrom(*a, 0, 0, 0).ok());
  auto c = Create("/c", 512 * 1024, 0x43);  // a bystander
  Told told;
  told.Watch(*a, "/a");
  told.Watch(**b, "/b");
  told.Watch(*c, "/c");

  // File offset 64 KiB + 1 KiB is in an odd chunk of the stack: on d1.
  const uint64_t foff = kChunk + 1024;
  uint64_t top = StackOffset(*a, foff);
  ASSERT_EQ(StackOffset(**b, foff), top) << "the clone shares the block";
  Bottom at = Down(top);
  Inject(at, 1, /*notify=*/true);

  const Ranges want = {{foff, S}};
  EXPECT_TRUE(DamageBecomes("/a", want));
  EXPECT_TRUE(DamageBecomes("/b", want));
  EXPECT_TRUE(DamageOf("/c").empty());
  EXPECT_TRUE(Eventually([&] { return told.Get().size() == 2; }));
  EXPECT_EQ(told.Get(), (std::set<std::tuple<std::string, uint64_t, uint64_t>>{{"/a", foff, S}, {"/b", foff, S}}));
  EXPECT_EQ(FileOwners(top, S), (std::set<std::tuple<std::string, uint64_t, uint64_t>>{{"/a", foff, S}, {"/b", foff, S}}));

  // The bytes before the damage read; the damage itself is EIO, in both.
  std::vector<uint8_t> buf(4096);
  auto r = a->Read(kChunk, buf.data(), buf.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 1024u);
  auto rb = (*b)->Read(foff, buf.data(), 16);
  EXPECT_FALSE(rb.ok());
  EXPECT_EQ(rb.status().err(), EIO);

  // Recorded on the device: still named after remount.
  a.reset();
  b->reset();
  c.reset();
  Remount();
  EXPECT_EQ(DamageOf("/a"), want);
  EXPECT_EQ(DamageOf("/b"), want);
  EXPECT_EQ(FileOwners(top, S).size(), 2u);
}

TEST_F(FsStackTest, ABottomRangeAcrossChunksIsDamageInTwoPlacesOfTheFile) {
  auto f = Create("/f", 1024 * 1024, 0x46);
  uint64_t start = StackOffset(*f, 0);
  ASSERT_EQ(StackOffset(*f, 1024 * 1024 - 1), start + 1024 * 1024 - 1) << "one contiguous extent";
  // The last sector of an even chunk (on l0) and the first of the next even
  // chunk are neighbours on d0, but 64 KiB apart in the stack and the file.
  uint64_t even = AlignUp(start, 2 * kChunk);
  uint64_t first = even + kChunk - S, second = even + 2 * kChunk;
  Bottom at = Down(first);
  ASSERT_EQ(at.dev, 0);
  ASSERT_EQ(Down(second).dev, 0);
  ASSERT_EQ(Down(second).off, at.off + S);
  Inject(at, 2, /*notify=*/true);
  EXPECT_TRUE(DamageBecomes("/f", Ranges{{first - start, S}, {second - start, S}}));
  EXPECT_EQ(FileOwners(second, S),
            (std::set<std::tuple<std::string, uint64_t, uint64_t>>{{"/f", second - start, S}}));
}

TEST_F(FsStackTest, PoisonFoundWhileUnmountedIsReportedWhenMountReturns) {
  auto f = Create("/u", 256 * 1024, 0x55);
  const uint64_t foff = kChunk + 4096;  // on d1
  Bottom at = Down(StackOffset(*f, foff));
  f.reset();
  fs_.reset();
  top_.reset();
  Inject(at, 1, /*notify=*/true);
  OpenTop();
  Mount();
  // No waiting: like a device file, a stack tells its new holder of every
  // error known before it came, before registration returns.
  EXPECT_EQ(DamageOf("/u"), (Ranges{{foff, S}}));
}

TEST_F(FsStackTest, LatentPoisonFoundByAScrubOfTheBottomDevice) {
  auto f = Create("/s", 512 * 1024, 0x53);
  Told told;
  told.Watch(*f, "/s");
  const uint64_t foff = 2 * kChunk + 8192;  // an even chunk: on d0
  Bottom at = Down(StackOffset(*f, foff));
  ASSERT_EQ(at.dev, 0);
  Inject(at, 1, /*notify=*/false);
  EXPECT_TRUE(fs_->Health().files.empty()) << "latent: nobody knows yet";
  auto m = Media(0);
  ASSERT_TRUE(m->BeginScrub(static_cast<uint32_t>(getpid())).ok());
  ASSERT_TRUE(m->RunScrub().ok());
  EXPECT_TRUE(DamageBecomes("/s", Ranges{{foff, S}}));
  EXPECT_TRUE(Eventually([&] { return told.Get().size() == 1; }));
  EXPECT_EQ(told.Get(), (std::set<std::tuple<std::string, uint64_t, uint64_t>>{{"/s", foff, S}}));
}

TEST_F(FsStackTest, LatentPoisonConsumedByAFileReadIsRecorded) {
  auto f = Create("/r", 256 * 1024, 0x52);
  const uint64_t foff = 3 * kChunk + 512;  // an odd chunk: on d1
  Inject(Down(StackOffset(*f, foff)), 1, /*notify=*/false);
  std::vector<uint8_t> buf(kChunk);
  auto r = f->Read(3 * kChunk, buf.data(), buf.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 512u) << "the copy stops at the poisoned line";
  EXPECT_TRUE(DamageBecomes("/r", Ranges{{foff, S}}));
}

TEST_F(FsStackTest, PoisonUnderFreeSpaceOfTheStackIsQuarantined) {
  auto f = Create("/q", 64 * 1024, 0x51);
  // 8 MiB past the file: free, far from the metadata copies.
  uint64_t free_off = AlignUp(StackOffset(*f, 0), 2 * kMiB) + 8 * kMiB;
  auto who = fs_->Who(free_off, kPageSize);
  ASSERT_TRUE(who.ok());
  ASSERT_EQ(who->size(), 1u);
  ASSERT_EQ((*who)[0].kind, OwnerInfo::Kind::kFree);
  Inject(Down(free_off), 1, /*notify=*/true);
  EXPECT_TRUE(Eventually([&] {
    auto q = fs_->Health().quarantined;
    return q.size() == 1 && q[0].first == free_off;
  }));
  EXPECT_TRUE(fs_->Health().files.empty());
}


// The error target under a filesystem: every access to it fails, naming it.
class FsErrorTargetTest : public ::testing::Test {
 protected:
  std::unique_ptr<dax::Device> Stack(const std::string& name, const std::vector<std::string>& table) {
    EXPECT_TRUE(MakeStack(dir_.File(name), table).ok());
    return dm::testing::OpenOrDie(dir_.File(name));
  }
  void SetUp() override { MakeDevice(dir_.File("d0"), 64 * kMiB); }
  TempDir dir_;
};

TEST_F(FsErrorTargetTest, MkfsOverTheErrorTargetFailsNamingIt) {
  auto head = Stack("head", {"0 65536 error", "65536 65536 linear d0 0"});
  ASSERT_TRUE(head);
  Status s = Filesystem::Mkfs(*head);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_NE(s.message().find("sector 0 is mapped to the error target"), std::string::npos) << s.message();
  EXPECT_FALSE(Filesystem::Mount(*head).ok());
}

TEST_F(FsErrorTargetTest, FileIoReachingTheErrorTargetFailsAndTheRestWorks) {
  // 48 MiB of d0, then 16 MiB that fail every access.
  auto top = Stack("top", {"0 98304 linear d0 0", "98304 32768 error"});
  ASSERT_TRUE(top);
  ASSERT_TRUE(Filesystem::Mkfs(*top).ok());
  auto fs = Filesystem::Mount(*top);
  ASSERT_TRUE(fs.ok()) << fs.status().message();
  auto f = (*fs)->Open("/big", kCreate);
  ASSERT_TRUE(f.ok());
  std::vector<uint8_t> buf(1 << 20, 0x62);
  uint64_t size = 0;
  Status why;
  for (int i = 0; i < 64 && why.ok(); ++i) {
    auto w = (*f)->Write(size, buf.data(), buf.size());
    if (!w.ok()) why = w.status();
    else size += *w;
  }
  ASSERT_FALSE(why.ok()) << "64 MiB cannot fit below the error target";
  EXPECT_EQ(why.err(), EIO);
  EXPECT_NE(why.message().find("mapped to the error target"), std::string::npos) << why.message();
  // What was written before is intact, and the filesystem still works.
  auto st = (*f)->Stat();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->attr.size, size);
  std::vector<uint8_t> back(4096);
  auto r = (*f)->Read(size - 4096, back.data(), back.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(back, std::vector<uint8_t>(4096, 0x62));
  EXPECT_TRUE((*fs)->Mkdir("/after").ok()) << "metadata lives below the error target and still works";
  EXPECT_TRUE((*fs)->Health().files.empty()) << "the error target is not poison: nothing is damaged";
}

}  // namespace
}  // namespace daxguard::fs
