// Poison passes upward: a holder of a three-level stack (striped over
// linear over two device files) hears of every error that becomes known on
// a bottom device, at the exact stack offsets, however it became known and
// in whichever process.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "common/units.h"
#include "dax/dax_io.h"
#include "dm/stack.h"
#include "dm_test_util.h"

namespace daxguard::dm {
namespace {

using namespace testing;  // NOLINT: the dm test helpers
constexpr uint64_t S = kSectorSize;
constexpr int kMedia = dax::kFailureMedia;

class StackHolderTest : public ::testing::Test {
 protected:
  // top: chunks of 16 sectors, even ones on l0, odd ones on l1.
  // l0: d0 sectors 4096..12287.  l1: d1 sectors 8192..16383.
  void SetUp() override {
    MakeDevice(dir_.File("d0"), 8 * kMiB);
    MakeDevice(dir_.File("d1"), 8 * kMiB);
    ASSERT_TRUE(MakeStack(dir_.File("l0"), {"0 8192 linear d0 4096"}).ok());
    ASSERT_TRUE(MakeStack(dir_.File("l1"), {"0 8192 linear d1 8192"}).ok());
    ASSERT_TRUE(MakeStack(dir_.File("top"), {"0 16384 striped 2 16 l0 0 l1 0"}).ok());
  }
  std::unique_ptr<dax::Device> OpenTop() { return OpenOrDie(dir_.File("top")); }
  // Where a bottom sector shows in the top stack, by the table, worked out
  // independently of the code under test.
  static uint64_t TopSector(int dev, uint64_t sector) {
    uint64_t t = sector - (dev == 0 ? 4096 : 8192);
    return (t / 16 * 2 + static_cast<uint64_t>(dev)) * 16 + t % 16;
  }
  static Call At(int dev, uint64_t sector) { return {TopSector(dev, sector) * S, S, kMedia}; }
  std::unique_ptr<media::PmemDevice> Media(int dev) {
    auto m = media::PmemDevice::Open(dir_.File(dev == 0 ? "d0" : "d1"));
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(m).value() : nullptr;
  }
  static bool AllAcknowledged(media::PmemDevice& m) {
    for (const media::BadBlock& b : m.BadBlocks())
      if (!b.acknowledged) return false;
    return true;
  }
  static bool Has(const std::vector<Call>& v, const Call& c) { return std::find(v.begin(), v.end(), c) != v.end(); }

  TempDir dir_;
};

TEST_F(StackHolderTest, InjectionOnABottomDeviceReachesTheTopHolder) {
  auto top = OpenTop();
  ASSERT_TRUE(top);
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*top).ok());
  // Through the stack's own bottom device (told at once in this process)...
  media::PmemDevice* d1 = top->Media()[1];
  ASSERT_TRUE(d1->Inject(8192 + 20, 1, {}).ok());
  ASSERT_TRUE(h.WaitForCount(1));
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{52 * S, S, kMedia}}));
  EXPECT_EQ(At(1, 8192 + 20), (Call{52 * S, S, kMedia}));
  // ...and through another handle on the file (found by the watcher). Two
  // sectors across a chunk boundary of l0 are two separate stack ranges.
  auto d0 = Media(0);
  ASSERT_TRUE(d0->Inject(4096 + 15, 2, {}).ok());
  ASSERT_TRUE(h.WaitForCount(3));
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{52 * S, S, kMedia}, {15 * S, S, kMedia}, {32 * S, S, kMedia}}));
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>&) { return AllAcknowledged(*d0); }))
      << "the bottom device knows its holder was told";
  EXPECT_EQ(top->BadBlocks(),
            (std::vector<media::BadBlock>{{15, 1, true}, {32, 1, true}, {52, 1, true}}));
  // Poison outside what the stack maps is nobody's business up here.
  ASSERT_TRUE(d0->Inject(10, 1, {}).ok());
  ASSERT_TRUE(d0->Inject(4096 + 40, 1, {}).ok());
  ASSERT_TRUE(h.WaitForCount(4));
  EXPECT_EQ(h.Calls().back(), At(0, 4096 + 40));
  EXPECT_EQ(h.Calls().size(), 4u);
}

TEST_F(StackHolderTest, LatentErrorFoundByScrubReachesTheTopHolder) {
  auto top = OpenTop();
  ASSERT_TRUE(top);
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*top).ok());
  auto d0 = Media(0), d1 = Media(1);
  media::InjectOptions latent;
  latent.notify = false;
  ASSERT_TRUE(d0->Inject(4096 + 100, 1, latent).ok());
  ASSERT_TRUE(d1->Inject(16000, 3, latent).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(h.Calls().empty()) << "latent poison is unknown";
  for (auto* m : {d0.get(), d1.get()}) {
    ASSERT_TRUE(m->BeginScrub(static_cast<uint32_t>(getpid())).ok());
    ASSERT_TRUE(m->RunScrub().ok());
  }
  ASSERT_TRUE(h.WaitForCount(2));
  std::vector<Call> calls = h.Calls();
  EXPECT_TRUE(Has(calls, At(0, 4096 + 100))) << ::testing::PrintToString(calls);
  EXPECT_TRUE(Has(calls, Call{TopSector(1, 16000) * S, 3 * S, kMedia})) << ::testing::PrintToString(calls);
  EXPECT_EQ(calls.size(), 2u);
}

TEST_F(StackHolderTest, ConsumptionThroughAStackReadReachesTheTopHolder) {
  auto top = OpenTop();
  ASSERT_TRUE(top);
  std::vector<uint8_t> data(256 * S, 0x42);
  ASSERT_TRUE(dax::WriteAt(*top, 0, data.data(), data.size()).ok());
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*top).ok());
  media::InjectOptions latent;
  latent.notify = false;
  ASSERT_TRUE(Media(1)->Inject(8192 + 37, 1, latent).ok());  // top sector 85
  uint64_t bad = TopSector(1, 8192 + 37);
  auto r = dax::ReadAt(*top, 0, data.data(), data.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, bad * S) << "the read stops at the poisoned line";
  ASSERT_TRUE(h.WaitForCount(1));
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{bad * S, S, kMedia}}));
  EXPECT_TRUE(Eventually([&] { return top->BadBlocks() == std::vector<media::BadBlock>{{bad, 1, true}}; }));
  // A whole-page write through the stack repairs it.
  std::vector<uint8_t> page(kPageSize, 0x43);
  ASSERT_TRUE(dax::WriteAt(*top, AlignDown(bad * S, kPageSize), page.data(), page.size()).ok());
  EXPECT_TRUE(top->BadBlocks().empty());
}

TEST_F(StackHolderTest, ErrorsKnownBeforeRegistrationAreDeliveredOnce) {
  ASSERT_TRUE(Media(0)->Inject(4096 + 3, 1, {}).ok());
  auto top = OpenTop();
  ASSERT_TRUE(top);
  {
    auto lister = OpenTop();  // opening (a tool listing it) tells nobody
    ASSERT_TRUE(lister);
    EXPECT_EQ(lister->BadBlocks(), (std::vector<media::BadBlock>{{3, 1, false}}));
  }
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*top).ok());
  // Told before registration returns, as a device file does: no waiting.
  EXPECT_EQ(h.Calls(), (std::vector<Call>{At(0, 4096 + 3)}));
  top->ReleaseHolder(&h);
  RecordingHolder h2;
  ASSERT_TRUE(h2.RegisterWith(*top).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(h2.Calls().empty()) << "a later holder does not hear it again";
}

TEST_F(StackHolderTest, TheStackHoldsItsBasesWhileItIsHeld) {
  auto top = OpenTop();
  ASSERT_TRUE(top);
  auto d0 = dax::PmemDax::Open(dir_.File("d0"));
  ASSERT_TRUE(d0.ok());
  RecordingHolder fs, other;
  ASSERT_TRUE(other.RegisterWith(**d0).ok()) << "an unheld stack claims nothing";
  (*d0)->ReleaseHolder(&other);
  ASSERT_TRUE(fs.RegisterWith(*top).ok());
  EXPECT_EQ((*d0)->RegisterHolder(&other).err(), EBUSY);
  EXPECT_EQ(top->RegisterHolder(&other).err(), EBUSY);
  auto second = OpenOrDie(dir_.File("l1"));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->RegisterHolder(&other).err(), EBUSY) << "l1 is held by top";
  top->ReleaseHolder(&fs);
  ASSERT_TRUE(other.RegisterWith(**d0).ok()) << "released with the stack";
  (*d0)->ReleaseHolder(&other);
  // Its second base held elsewhere: the stack cannot be held, and keeps no
  // claim on the first.
  RecordingHolder on_l1;
  ASSERT_TRUE(on_l1.RegisterWith(*second).ok());
  EXPECT_EQ(top->RegisterHolder(&fs).err(), EBUSY);
  EXPECT_FALSE(top->HasHolder());
  EXPECT_TRUE(other.RegisterWith(**d0).ok()) << "the claim on d0, through l0, was rolled back";
}

TEST_F(StackHolderTest, DestroyingAHeldStackFreesItsBases) {
  RecordingHolder h, other;  // outlive the stack
  {
    auto top = OpenTop();
    ASSERT_TRUE(top);
    ASSERT_TRUE(top->RegisterHolder(&h).ok());
  }
  auto d1 = dax::PmemDax::Open(dir_.File("d1"));
  ASSERT_TRUE(d1.ok());
  EXPECT_TRUE((*d1)->RegisterHolder(&other).ok());
  (*d1)->ReleaseHolder(&other);
}

TEST_F(StackHolderTest, PreRemoveFromABottomDeviceRemovesTheStack) {
  auto top = OpenTop();
  ASSERT_TRUE(top);
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*top).ok());
  // d0, under l0 under the top stack.
  dynamic_cast<Stack&>(dynamic_cast<Stack&>(*top).base(0)).base(0).Kill();
  ASSERT_TRUE(h.WaitForCount(1));
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{0, top->size(), dax::kFailurePreRemove}}));
  EXPECT_FALSE(top->alive());
  EXPECT_TRUE(Eventually([&] { return !top->HasHolder(); })) << "a removed stack lets its holder go";
  std::vector<uint8_t> buf(kPageSize);
  EXPECT_EQ(top->Write(0, buf.data(), buf.size()).err(), ENXIO);
  // Its other device is free again.
  auto d1 = dax::PmemDax::Open(dir_.File("d1"));
  ASSERT_TRUE(d1.ok());
  RecordingHolder other;
  EXPECT_TRUE(other.RegisterWith(**d1).ok());
}

// Many errors from two threads on both devices: each reaches the holder,
// at its place.
TEST_F(StackHolderTest, ConcurrentInjectionsAllArrive) {
  auto top = OpenTop();
  ASSERT_TRUE(top);
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*top).ok());
  constexpr uint64_t kEach = 40;
  std::set<uint64_t> want;
  std::vector<std::thread> threads;
  for (int dev = 0; dev < 2; ++dev) {
    uint64_t first = dev == 0 ? 4096 : 8192;
    for (uint64_t i = 0; i < kEach; ++i) want.insert(TopSector(dev, first + i * 37) * S);
    threads.emplace_back([this, dev, first] {
      auto m = Media(dev);
      for (uint64_t i = 0; m && i < kEach; ++i) EXPECT_TRUE(m->Inject(first + i * 37, 1, {}).ok());
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(h.WaitForCount(2 * kEach)) << h.Calls().size() << " of " << 2 * kEach;
  std::set<uint64_t> got;
  for (const Call& c : h.Calls()) {
    EXPECT_EQ(c.len, S);
    got.insert(c.offset);
  }
  EXPECT_EQ(got, want);
}

// --- across processes

TEST_F(StackHolderTest, AnotherProcessesInjectionReachesTheTopHolder) {
  Pipe go;
  // Forked before any thread exists; it waits for the go-ahead.
  Child child([&]() -> int {
    go.CloseWrite();
    if (!go.Receive()) return 10;
    auto d1 = media::PmemDevice::Open(dir_.File("d1"));
    if (!d1.ok()) return 11;
    return (*d1)->Inject(8192 + 100, 2, {}).ok() ? 0 : 12;
  });
  auto top = OpenTop();
  ASSERT_TRUE(top);
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*top).ok());
  go.Send();
  EXPECT_TRUE(h.WaitForCount(1)) << "the holder was not told within the deadline";
  EXPECT_EQ(child.Wait(), 0);
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{TopSector(1, 8192 + 100) * S, 2 * S, kMedia}}));
}

TEST_F(StackHolderTest, AnotherProcessesScrubReachesTheTopHolder) {
  media::InjectOptions latent;
  latent.notify = false;
  ASSERT_TRUE(Media(0)->Inject(4096 + 4000, 1, latent).ok());
  Pipe go;
  Child child([&]() -> int {
    go.CloseWrite();
    if (!go.Receive()) return 10;
    auto d0 = media::PmemDevice::Open(dir_.File("d0"));
    if (!d0.ok() || !(*d0)->BeginScrub(static_cast<uint32_t>(getpid())).ok()) return 11;
    return (*d0)->RunScrub().ok() ? 0 : 12;
  });
  auto top = OpenTop();
  ASSERT_TRUE(top);
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*top).ok());
  go.Send();
  EXPECT_TRUE(h.WaitForCount(1)) << "the holder was not told within the deadline";
  EXPECT_EQ(child.Wait(), 0);
  EXPECT_EQ(h.Calls(), (std::vector<Call>{At(0, 4096 + 4000)}));
}

TEST_F(StackHolderTest, AnotherProcessCannotHoldAHeldStackButCanUseIt) {
  Pipe go;
  Child child([&]() -> int {
    go.CloseWrite();
    if (!go.Receive()) return 10;
    auto top = OpenDaxDevice(dir_.File("top"));  // opening claims nothing
    if (!top.ok()) return 11;
    RecordingHolder other;
    if ((*top)->RegisterHolder(&other).err() != EBUSY) return 12;
    uint8_t b = 1;
    return (*top)->Write(0, &b, 1).ok() ? 0 : 13;
  });
  auto top = OpenTop();
  ASSERT_TRUE(top);
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*top).ok());
  go.Send();
  EXPECT_EQ(child.Wait(), 0);
  EXPECT_TRUE(top->HasHolder());
}

}  // namespace
}  // namespace daxguard::dm

namespace daxguard::dm {
namespace {

using namespace testing;  // NOLINT: the dm test helpers

TEST(StackHolderPid, AStacksHolderHoldsEveryDeviceBelowForAnyOpener) {
  TempDir dir;
  MakeDevice(dir.File("d0"), 8 * kMiB);
  ASSERT_TRUE(MakeStack(dir.File("a"), {"0 8192 linear d0 0"}).ok());
  ASSERT_TRUE(MakeStack(dir.File("b"), {"0 8192 linear d0 8192"}).ok());
  auto a = OpenOrDie(dir.File("a"));
  auto b = OpenOrDie(dir.File("b"));
  auto d0 = OpenOrDie(dir.File("d0"));
  EXPECT_EQ(d0->HolderPid(), 0u);
  EXPECT_TRUE(b->CheckNotHeld().ok());
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*a).ok());
  uint32_t me = static_cast<uint32_t>(getpid());
  EXPECT_EQ(a->HolderPid(), me);
  EXPECT_EQ(d0->HolderPid(), me) << "the device below, opened apart";
  EXPECT_EQ(b->HolderPid(), me) << "another stack over the held device";
  Status s = d0->CheckNotHeld();
  EXPECT_EQ(s.err(), EBUSY);
  EXPECT_NE(s.message().find("held by pid " + std::to_string(me)), std::string::npos) << s.message();
  a->ReleaseHolder(&h);
  EXPECT_EQ(d0->HolderPid(), 0u);
  EXPECT_EQ(b->HolderPid(), 0u);
}

}  // namespace
}  // namespace daxguard::dm
