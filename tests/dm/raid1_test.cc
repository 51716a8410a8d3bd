// raid1 segments: every store reaches every leg, a read takes each byte
// from a leg that holds it, a leg's poison is rebuilt from another (the
// holder hears only of bytes no leg holds), and a mirror cannot be mapped.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include <unistd.h>

#include "common/units.h"
#include "dax/dax_io.h"
#include "dax/mapping.h"
#include "dm/stack.h"
#include "dm_test_util.h"

namespace daxguard::dm {
namespace {

using namespace testing;  // NOLINT: the dm test helpers
constexpr uint64_t S = kSectorSize;
constexpr uint64_t P = kPageSize;

std::vector<uint8_t> Pattern(uint64_t len, uint8_t seed) {
  std::vector<uint8_t> v(len);
  for (uint64_t i = 0; i < len; ++i) v[i] = static_cast<uint8_t>((i * 13 + i / 4093 + seed) % 251 + 1);
  return v;
}

class Raid1Test : public ::testing::Test {
 protected:
  // m: 4 MiB mirrored on d0 from sector 0 and d1 from sector 2048.
  void SetUp() override {
    MakeDevice(dir_.File("d0"), 8 * kMiB);
    MakeDevice(dir_.File("d1"), 8 * kMiB);
    ASSERT_TRUE(MakeStack(dir_.File("m"), {"0 8192 raid1 2 d0 0 d1 2048"}).ok());
    m_ = OpenOrDie(dir_.File("m"));
    ASSERT_TRUE(m_);
    data_ = Pattern(m_->size(), 3);
    auto n = dax::WriteAt(*m_, 0, data_.data(), data_.size());
    ASSERT_TRUE(n.ok() && *n == data_.size()) << n.status().ToString();
  }
  // The legs as the media holds them, through handles of the stack's own.
  media::PmemDevice& Leg(int i) { return *m_->Media()[i]; }
  uint64_t LegStart(int i) const { return i == 0 ? 0 : 2048 * S; }
  bool ReadsBack(uint64_t off, uint64_t len) {
    std::vector<uint8_t> back(len);
    auto n = m_->ReadMcSafe(off, back.data(), len);
    return n.ok() && *n == len && std::memcmp(back.data(), data_.data() + off, len) == 0;
  }

  TempDir dir_;
  std::unique_ptr<dax::Device> m_;
  std::vector<uint8_t> data_;
};

TEST_F(Raid1Test, EveryStoreReachesEveryLeg) {
  for (int i : {0, 1}) EXPECT_EQ(std::memcmp(Leg(i).data() + LegStart(i), data_.data(), data_.size()), 0) << i;
  std::vector<uint8_t> page(P, 0x5a);
  ASSERT_TRUE(m_->WriteClean(3 * P, page.data(), P));
  ASSERT_TRUE(dax::ZeroAt(*m_, 5 * P, P).ok());
  for (int i : {0, 1}) {
    EXPECT_EQ(std::memcmp(Leg(i).data() + LegStart(i) + 3 * P, page.data(), P), 0) << i;
    EXPECT_EQ(Leg(i).data()[LegStart(i) + 5 * P], 0) << i;
  }
}

TEST_F(Raid1Test, AReadTakesEachByteFromALegThatHoldsIt) {
  // Poison on each leg, in different places, latent: no holder, no rebuild.
  ASSERT_TRUE(Leg(0).Inject(16, 1, {.notify = false}).ok());
  ASSERT_TRUE(Leg(1).Inject(2048 + 40, 1, {.notify = false}).ok());
  EXPECT_TRUE(ReadsBack(0, 64 * P));
  EXPECT_TRUE(m_->BadBlocks().empty()) << "each sector is held by a leg";
  EXPECT_FALSE(m_->KnownUnreadable(0, 64 * P));
  // Both legs lose the same sector: the read stops there, and it is bad.
  ASSERT_TRUE(Leg(1).Inject(2048 + 16, 1, {}).ok());
  std::vector<uint8_t> back(P);
  auto n = m_->ReadMcSafe(2 * P, back.data(), P);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(m_->BadBlocks(), (std::vector<media::BadBlock>{{16, 1, false}}));
  EXPECT_TRUE(m_->KnownUnreadable(16 * S, S));
  EXPECT_FALSE(m_->KnownUnreadable(40 * S, S));
}

TEST_F(Raid1Test, AHeldMirrorRebuildsALegAndTellsItsHolderOnlyOfLosses) {
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*m_).ok());
  ASSERT_TRUE(Leg(0).Inject(24, 2, {}).ok());  // known at once: rebuilt from d1
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>&) { return Leg(0).BadBlocks().empty(); }))
      << "leg 0 was not rebuilt";
  EXPECT_FALSE(Leg(0).HasPoison(24 * S, 2 * S));
  EXPECT_EQ(std::memcmp(Leg(0).data() + 3 * P, data_.data() + 3 * P, P), 0);
  EXPECT_TRUE(ReadsBack(0, m_->size()));
  // Both legs lose sector 100: that the holder hears of, at the stack's offset.
  ASSERT_TRUE(Leg(0).Inject(100, 1, {.notify = false}).ok());
  ASSERT_TRUE(Leg(1).Inject(2048 + 100, 1, {}).ok());
  ASSERT_TRUE(Leg(0).Inject(100, 1, {}).ok());
  ASSERT_TRUE(h.WaitForCount(1));
  EXPECT_EQ(h.Calls().front(), (Call{100 * S, S, dax::kFailureMedia}));
  EXPECT_EQ(m_->BadBlocks().size(), 1u);
  // Two legs that each lost a different sector of one page hold it
  // between them: both are rebuilt, and the holder hears nothing.
  ASSERT_TRUE(Leg(1).Inject(2048 + 200, 1, {.notify = false}).ok());
  ASSERT_TRUE(Leg(0).Inject(202, 1, {}).ok());
  ASSERT_TRUE(Leg(1).Inject(2048 + 200, 1, {}).ok());
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>&) {
    return !Leg(0).HasPoison(202 * S, S) && !Leg(1).HasPoison((2048 + 200) * S, S);
  })) << "the page was not rebuilt from its two halves";
  for (const Call& c : h.Calls()) EXPECT_EQ(c, (Call{100 * S, S, dax::kFailureMedia})) << "told of a sector a leg held";
  EXPECT_TRUE(ReadsBack(25 * P, P));
  // A whole-page recovery write through the stack clears both legs.
  ASSERT_TRUE(dax::WriteAt(*m_, 12 * P, data_.data() + 12 * P, P).ok());
  EXPECT_TRUE(m_->BadBlocks().empty());
  EXPECT_TRUE(ReadsBack(0, m_->size()));
}

// A leg whose device file was cut short under the stack fails its reads
// (device file shrank): the other leg serves them.
TEST_F(Raid1Test, AReadPassesOverALegThatFails) {
  ASSERT_EQ(truncate(dir_.File("d0").c_str(), static_cast<off_t>(Leg(0).geometry().data_off + kMiB)), 0);
  EXPECT_TRUE(ReadsBack(0, m_->size()));
  EXPECT_TRUE(m_->BadBlocks().empty());
}

// clear-errors on a leg of a mirror nobody holds leaves zeroes there; the
// next holder's stack hears of the loss and rebuilds the leg from the other.
TEST_F(Raid1Test, ALegClearedWhileUnheldIsRebuiltWhenNextHeld) {
  ASSERT_TRUE(Leg(0).Inject(48, 1, {}).ok());
  uint64_t untold = 0;
  ASSERT_TRUE(Leg(0).ClearErrors(48 * S, S, &untold).ok());
  ASSERT_EQ(untold, 1u);
  ASSERT_EQ(Leg(0).data()[48 * S], 0) << "cleared to zeroes";
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*m_).ok());
  EXPECT_EQ(std::memcmp(Leg(0).data() + 6 * P, data_.data() + 6 * P, P), 0) << "leg 0 not rebuilt";
  EXPECT_TRUE(Leg(0).BadBlocks().empty());
  EXPECT_TRUE(h.Calls().empty());
  EXPECT_TRUE(ReadsBack(0, m_->size()));
}

// Stores and rebuilds take turns: a rebuild copies a page whole from a leg
// no store is half-way through, so once the errors are gone both legs hold
// each page's last write, never an older one.
TEST_F(Raid1Test, RebuildsRacingStoresNeverPutBackOldBytes) {
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*m_).ok());
  constexpr uint64_t kPages = 32;
  std::atomic<bool> stop{false};
  std::vector<uint8_t> last(kPages, 0);
  std::thread writer([&] {
    for (uint8_t round = 1; !stop.load(); round = round == 255 ? 1 : round + 1)
      for (uint64_t p = 0; p < kPages; ++p) {
        std::vector<uint8_t> page(P, round);
        auto n = dax::WriteAt(*m_, p * P, page.data(), P);
        ASSERT_TRUE(n.ok() && *n == P) << n.status().ToString();
        last[p] = round;
      }
  });
  for (uint64_t i = 0; i < 200; ++i) {
    ASSERT_TRUE(Leg(0).Inject(i % kPages * 8 + i % 8, 1, {}).ok());
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  stop = true;
  writer.join();
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>&) { return Leg(0).BadBlocks().empty(); })) << "not all rebuilt";
  EXPECT_TRUE(h.Calls().empty()) << "the holder heard of an error a leg still held";
  for (uint64_t p = 0; p < kPages; ++p)
    for (int i : {0, 1}) {
      const uint8_t* at = Leg(i).data() + LegStart(i) + p * P;
      EXPECT_TRUE(std::all_of(at, at + P, [&](uint8_t b) { return b == last[p]; }))
          << "leg " << i << " page " << p << " holds " << int(at[0]) << ", not " << int(last[p]);
    }
}

// A rebuild clears the lost units to zeroes before it writes the page back:
// reads wait for it, so none returns those zeroes for bytes a leg held.
TEST_F(Raid1Test, ReadsRacingRebuildsReturnTheMirroredBytes) {
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*m_).ok());
  constexpr uint64_t kPages = 16;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, reads{0};
  std::thread reader([&] {
    while (!stop.load())
      for (uint64_t p = 0; p < kPages; ++p, ++reads)
        if (!ReadsBack(p * P, P)) ++wrong;
  });
  for (uint64_t i = 0; i < 400; ++i) {
    ASSERT_TRUE(Leg(i % 2).Inject((i % 2) * 2048 + i % kPages * 8 + i % 8, 1, {}).ok());
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>&) { return Leg(0).BadBlocks().empty() && Leg(1).BadBlocks().empty(); }));
  stop = true;
  reader.join();
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(wrong.load(), 0u) << "of " << reads.load() << " page reads";
  EXPECT_TRUE(h.Calls().empty());
}

TEST_F(Raid1Test, AMirrorIsNotMappedAndItsLegsMayNotOverlap) {
  // Direct access hands out the stack itself, so copies stay mirrored.
  auto a = m_->DirectAccess(0, 4, dax::AccessMode::kAccess);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->addr, nullptr);
  EXPECT_EQ(a->source, m_.get());
  EXPECT_EQ(a->pages, 4u);
  EXPECT_FALSE(m_->DirectLayoutOf(0, P)) << "no fast path may copy to one leg";
  auto region = dax::MappedRegion::Reserve(4 * P, true, "m");
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  Status mapped = m_->MapInto(**region, 0, 0, 4 * P, 0);
  EXPECT_EQ(mapped.err(), EOPNOTSUPP) << mapped.ToString();
  Status s = MakeStack(dir_.File("bad"), {"0 4096 raid1 2 d0 0 d0 2048"});
  if (s.ok()) {
    auto o = OpenDaxDevice(dir_.File("bad"));
    EXPECT_FALSE(o.ok());
    s = o.status();
  }
  EXPECT_NE(s.message().find("alias"), std::string::npos) << s.ToString();
  EXPECT_FALSE(MakeStack(dir_.File("one"), {"0 4096 raid1 1 d0 0"}).ok());
  EXPECT_FALSE(MakeStack(dir_.File("short"), {"0 4096 raid1 2 d0 0"}).ok());
}

}  // namespace
}  // namespace daxguard::dm
