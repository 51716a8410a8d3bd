// Mappings revoked and restored while other threads keep using them: a
// reader sees SIGBUS at the page poison took out, and traps coming and
// going under a busy reader never turn into a stray SIGSEGV.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "common/fault_probe.h"
#include "common/test_util.h"
#include "common/units.h"
#include "dax/mapping.h"
#include "dax/pmem_dax.h"
#include "dax_test_util.h"

namespace daxguard::dax {
namespace {

using daxguard::testing::BusCatcher;
using daxguard::testing::BusFault;
using daxguard::testing::Probe;
using daxguard::testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr uint64_t P = kPageSize;

class MappingConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_ = testing::NewPmemDax(dir_.File("d0"), 1ull << 20);
    ASSERT_TRUE(dev_);
    auto r = MappedRegion::Reserve(dev_->size(), true, "d0");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    region_ = std::move(r).value();
    ASSERT_TRUE(dev_->MapInto(*region_, 0, 0, dev_->size(), 0).ok());
  }

  TempDir dir_;
  BusCatcher catcher_;
  std::unique_ptr<PmemDax> dev_;
  std::unique_ptr<MappedRegion> region_;
};

TEST_F(MappingConcurrencyTest, ReaderLosesThePagePoisonTakesOut) {
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> told;
  region_->OnPoison([&](uint64_t at, uint64_t len) {
    std::lock_guard<std::mutex> g(mu);
    told.emplace_back(at, len);
  });
  volatile uint8_t* target = region_->addr() + 6 * P + 128;
  std::atomic<bool> reading{false};
  BusFault seen;
  uint64_t loads = 0;
  std::thread reader([&] {
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      BusFault f = Probe(target);
      reading.store(true);
      if (f.hit) {
        seen = f;
        return;
      }
      ++loads;
    }
  });
  while (!reading.load()) std::this_thread::yield();
  ASSERT_TRUE(dev_->media().Inject(6 * P / kSectorSize + 3, 1, {}).ok());
  reader.join();
  EXPECT_GT(loads, 0u);
  EXPECT_TRUE(seen.hit);
  EXPECT_EQ(seen.code, BUS_MCEERR_AR);
  EXPECT_EQ(seen.addr, target);
  EXPECT_EQ(seen.lsb, 12);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    {
      std::lock_guard<std::mutex> g(mu);
      if (!told.empty() || Clock::now() > deadline) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::lock_guard<std::mutex> g(mu);
  EXPECT_EQ(told, (std::vector<std::pair<uint64_t, uint64_t>>{{6 * P, P}}));
}

TEST_F(MappingConcurrencyTest, TrapsComingAndGoingUnderABusyReader) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> faults{0}, wrong{0};
  std::thread reader([&] {
    volatile uint8_t* p = region_->addr() + 3 * P;
    while (!stop.load()) {
      BusFault f = Probe(p + 8, true, 1);
      if (!f.hit) continue;
      faults.fetch_add(1);
      if (f.code != BUS_ADRERR || f.addr != p + 8) wrong.fetch_add(1);
    }
  });
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(region_->Trap(2 * P, 4 * P, TrapKind::kGone).ok());
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    ASSERT_TRUE(region_->Untrap(2 * P, 4 * P).ok());
  }
  stop.store(true);
  reader.join();
  EXPECT_GT(faults.load(), 0u);
  EXPECT_EQ(wrong.load(), 0u);
}

}  // namespace
}  // namespace daxguard::dax
