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
#include "dm/replace.h"
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

// A leg whose device is gone moves to a new device, resynced from the
// other: the new leg holds the mirror's bytes, and a sector the other leg
// had lost too is poisoned there (it reads as lost, not as the new
// device's zeroes) and known to the next holder.
TEST_F(Raid1Test, ALostLegIsReplacedAndResynced) {
  ASSERT_TRUE(Leg(1).Inject(2048 + 300, 1, {.notify = false}).ok());  // latent: nobody knows yet
  m_.reset();
  ASSERT_EQ(unlink(dir_.File("d0").c_str()), 0);
  EXPECT_FALSE(OpenDaxDevice(dir_.File("m")).ok()) << "a stack with a leg gone";
  MakeDevice(dir_.File("d2"), 8 * kMiB);
  EXPECT_EQ(ReplaceLeg(dir_.File("m"), dir_.File("d9"), dir_.File("d2"), std::nullopt).status().err(), EINVAL);
  auto r = ReplaceLeg(dir_.File("m"), "d0", dir_.File("d2"), 16);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->legs, 1u);
  EXPECT_EQ(r->bytes, data_.size());
  EXPECT_EQ(r->lost_sectors, std::vector<uint64_t>{300});
  m_ = OpenOrDie(dir_.File("m"));
  ASSERT_TRUE(m_);
  EXPECT_EQ(FormatTableLine(static_cast<Stack&>(*m_).table()[0]), "0 8192 raid1 2 " + dir_.File("d2") + " 16 d1 2048");
  const uint8_t* leg = Leg(0).data() + 16 * S;
  EXPECT_EQ(std::memcmp(leg, data_.data(), 300 * S), 0);
  EXPECT_EQ(std::memcmp(leg + 301 * S, data_.data() + 301 * S, data_.size() - 301 * S), 0);
  EXPECT_TRUE(Leg(0).HasPoison((16 + 300) * S, S));
  EXPECT_EQ(m_->BadBlocks(), (std::vector<media::BadBlock>{{300, 1, false}}));
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*m_).ok());
  ASSERT_TRUE(h.WaitForCount(1));
  EXPECT_EQ(h.Calls().front(), (Call{300 * S, S, dax::kFailureMedia})) << "the next holder hears of the loss";
  EXPECT_TRUE(ReadsBack(0, 300 * S));
  EXPECT_TRUE(ReadsBack(301 * S, data_.size() - 301 * S));
}

// A failed leg ("-") leaves the mirror on the other; an error there nobody
// had heard of, which dm fail's own holder was told, is told again to the
// next holder, since no leg holds those bytes now.
TEST_F(Raid1Test, AFailedLegLeavesTheOtherAndItsLossesAreToldToTheNextHolder) {
  ASSERT_TRUE(Leg(1).Inject(2048 + 40, 1, {}).ok());  // known, unacknowledged: nobody holds m
  m_.reset();
  ASSERT_TRUE(FailLeg(dir_.File("m"), "d0").ok());
  m_ = OpenOrDie(dir_.File("m"));
  ASSERT_TRUE(m_);
  EXPECT_EQ(m_->Media().size(), 1u) << "d0 is no longer read";
  EXPECT_EQ(m_->BadBlocks(), (std::vector<media::BadBlock>{{40, 1, false}}));
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*m_).ok());
  ASSERT_TRUE(h.WaitForCount(1));
  EXPECT_EQ(h.Calls().front(), (Call{40 * S, S, dax::kFailureMedia}));
  EXPECT_TRUE(ReadsBack(0, 40 * S));
  std::vector<uint8_t> page(P, 0x77);
  ASSERT_TRUE(dax::WriteAt(*m_, 9 * P, page.data(), P).ok());
  std::memcpy(data_.data() + 9 * P, page.data(), P);
  EXPECT_TRUE(ReadsBack(9 * P, P));
}

// Stores go on while a leg resyncs: once it is done, both legs hold every
// page's last write, and no read met the new leg's unsynced bytes (leg 0,
// which reads would try first).
TEST_F(Raid1Test, AResyncRacingStoresAndReadsLeavesTheLegsEqual) {
  auto& stack = static_cast<Stack&>(*m_);
  EXPECT_EQ(stack.StartResync({{0, 0}, {0, 1}}).err(), EINVAL) << "no leg would be left to copy from";
  ASSERT_TRUE(stack.StartResync({{0, 0}}).ok());
  std::vector<uint8_t> blank(data_.size(), 0);
  ASSERT_TRUE(Leg(0).Write(0, blank.data(), blank.size()).ok());
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*m_).ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0};
  std::thread writer([&] {
    for (uint8_t round = 1; !stop.load(); ++round)
      for (uint64_t p = 0; p < m_->size() / P && !stop.load(); p += 97) {
        std::vector<uint8_t> page(P, round | 1);
        ASSERT_TRUE(dax::WriteAt(*m_, p * P, page.data(), P).ok());
        std::memcpy(data_.data() + p * P, page.data(), P);  // only this thread changes data_
      }
  });
  std::thread reader([&] {
    std::vector<uint8_t> back(P);
    while (!stop.load())
      for (uint64_t p = 0; p < m_->size() / P; p += 31) {
        auto n = m_->ReadMcSafe(p * P, back.data(), P);
        if (!n.ok() || *n != P || std::all_of(back.begin(), back.end(), [](uint8_t b) { return b == 0; })) ++wrong;
      }
  });
  auto r = stack.RunResync();
  stop = true;
  writer.join();
  reader.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(wrong.load(), 0u) << "a read met the blank leg";
  EXPECT_TRUE(r->lost_sectors.empty());
  EXPECT_EQ(std::memcmp(Leg(1).data() + 2048 * S, Leg(0).data(), data_.size()), 0) << "the legs differ";
  EXPECT_EQ(std::memcmp(Leg(0).data(), data_.data(), data_.size()), 0);
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
