// Clearing poison under a power failure: the clear's zeroes, the new data
// and the dropping of the known-error records happen in an order such that
// no crash image holds a page that reads as good (no poison, no known error)
// with anything but the data the call was putting there.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "common/test_util.h"
#include "dax/pmem_dax.h"
#include "dax_test_util.h"
#include "media/crash_states.h"

namespace daxguard::dax {
namespace {

using daxguard::testing::TempDir;
constexpr uint64_t P = kPageSize;
constexpr uint64_t kPage = 2;  // the poisoned page

class RecoveryCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dax_ = testing::NewPmemDax(dir_.File("dev"), 1 << 20);
    ASSERT_TRUE(dax_);
    std::vector<uint8_t> old(P, 0x11);
    ASSERT_TRUE(dax_->WritePersist(kPage * P, old.data(), P).ok());
    ASSERT_TRUE(media().Inject(kPage * P / kSectorSize + 1, 1, {}).ok());  // known
  }
  media::PmemDevice& media() { return dax_->media(); }

  // Runs `call` tracked, then checks every crash image: where the page reads
  // as good it holds `want`. Returns {images where it reads as good, where not}.
  std::pair<int, int> CrashDuring(const std::function<void()>& call, uint8_t want) {
    media::PersistTrace trace(std::span<const uint8_t>(media().data(), media().size()), media().ErrorState());
    media().Track(&trace);
    call();
    dax_->Fence();
    media().Track(nullptr);
    int good = 0, failing = 0;
    media::ForEachCrashState(trace, {}, [&](const media::CrashPoint& p, std::span<const uint8_t> img) {
      const media::MediaErrorState& e = trace.error_state(p.errors);
      bool bad = false;
      for (const ByteRange& r : e.poison_lines) bad |= r.off < (kPage + 1) * P / kLineSize && kPage * P / kLineSize < r.off + r.len;
      for (const ByteRange& r : e.known_sectors)
        bad |= r.off < (kPage + 1) * P / kSectorSize && kPage * P / kSectorSize < r.off + r.len;
      if (bad) {
        ++failing;
        return true;
      }
      ++good;
      std::vector<uint8_t> page(img.begin() + kPage * P, img.begin() + (kPage + 1) * P);
      EXPECT_EQ(page, std::vector<uint8_t>(P, want)) << "event " << p.event << ": reads as good";
      return !HasFailure();
    });
    return {good, failing};
  }

  TempDir dir_;
  std::unique_ptr<PmemDax> dax_;
};

TEST_F(RecoveryCrashTest, ARecoveryWriteIsDurableBeforeItsErrorsGo) {
  std::vector<uint8_t> fresh(P, 0x22);
  auto [good, failing] = CrashDuring([&] { ASSERT_TRUE(dax_->RecoveryWrite(kPage * P, fresh.data(), P).ok()); }, 0x22);
  EXPECT_GT(good, 0);
  EXPECT_GT(failing, 0) << "crashes before the records went still fail reads";
}

// Only the poisoned clear unit is cleared: the rest of the page holds its
// old data or the new, in every crash image, never the clear's zeroes.
TEST_F(RecoveryCrashTest, ARecoveryWriteClearsOnlyThePoisonedUnits) {
  media::PersistTrace trace(std::span<const uint8_t>(media().data(), media().size()), media().ErrorState());
  media().Track(&trace);
  std::vector<uint8_t> fresh(P, 0x22);
  ASSERT_TRUE(dax_->RecoveryWrite(kPage * P, fresh.data(), P).ok());
  dax_->Fence();
  media().Track(nullptr);
  const uint64_t unit_lo = kPage * P + kSectorSize, unit_hi = unit_lo + media().clear_unit();
  int images = 0;
  media::ForEachCrashState(trace, {}, [&](const media::CrashPoint& p, std::span<const uint8_t> img) {
    ++images;
    for (uint64_t b = kPage * P; b < (kPage + 1) * P; ++b)
      if ((b < unit_lo || b >= unit_hi) && img[b] != 0x11 && img[b] != 0x22) {
        ADD_FAILURE() << "event " << p.event << ": byte " << b << " = " << int(img[b]);
        return false;
      }
    return true;
  });
  EXPECT_GT(images, 1);
}

TEST_F(RecoveryCrashTest, ZeroingIsDurableBeforeItsErrorsGo) {
  auto [good, failing] = CrashDuring([&] { ASSERT_TRUE(dax_->ZeroPageRange(kPage, 1).ok()); }, 0);
  EXPECT_GT(good, 0);
  EXPECT_GT(failing, 0);
}

// The error state in a crash image is the one in effect at that point:
// poison found during the trace shows only in images after it.
TEST_F(RecoveryCrashTest, ErrorChangesArePointsOfTheirOwn) {
  media::PersistTrace trace(std::span<const uint8_t>(media().data(), media().size()), media().ErrorState());
  media().Track(&trace);
  ASSERT_TRUE(media().Inject(40 * 8, 1, {}).ok());
  media().Track(nullptr);
  std::vector<size_t> known;
  media::ForEachCrashState(trace, {}, [&](const media::CrashPoint& p, std::span<const uint8_t>) {
    known.push_back(trace.error_state(p.errors).known_sectors.size());
    return true;
  });
  EXPECT_EQ(known, (std::vector<size_t>{1, 2}));
}

}  // namespace
}  // namespace daxguard::dax
