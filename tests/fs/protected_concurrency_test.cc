// Data protection under concurrent use: readers (whose fast path checks
// blocks without their locks), writers of whole and partial blocks, the
// patrol, and repairs of poison and stray stores all at once. A read that
// races a store may see old or new bytes, but never a failure, and no block
// is ever reported damaged for a race; at the end every block holds its
// last write and checks.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "fs/fs_fixture.h"
#include "fs/protected_device.h"

namespace daxguard::fs {
namespace {

class ProtectedConcurrencyTest : public FsTest {
 protected:
  DataProtection Protection() const override { return DataProtection::kParity; }
};

constexpr uint64_t kBlocks = 256;  // per writer
constexpr int kWriters = 2;
constexpr uint64_t kStill = 64;  // blocks after the writers', hit by errors only
constexpr uint64_t kAll = kBlocks * kWriters + kStill;

std::vector<uint8_t> Pattern(uint64_t b, uint32_t v) {
  std::vector<uint8_t> p(kBlockSize);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(b * 31 + v * 7 + i / 512);
  return p;
}

TEST_F(ProtectedConcurrencyTest, RacingReadsWritesPatrolAndRepairsNeverReportDamage) {
  auto f = Create("/f");
  std::vector<std::vector<uint8_t>> want(kAll);
  for (uint64_t b = 0; b < kAll; ++b) {
    want[b] = Pattern(b, 0);
    ASSERT_TRUE(f->Write(b * kBlockSize, want[b].data(), kBlockSize).ok());
  }
  std::vector<uint64_t> dev_off(kAll);
  for (uint64_t b = 0; b < kAll; ++b) dev_off[b] = DeviceOffset(*f, b * kBlockSize);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> read_failures{0}, reads{0};
  std::vector<std::thread> writers, others;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {  // each its own blocks; `want` follows
      auto h = OpenFile("/f");
      std::mt19937 rng(w);
      for (uint32_t v = 1; v <= 3000; ++v) {
        uint64_t b = w * kBlocks + rng() % kBlocks;
        auto p = Pattern(b, v);
        bool part = rng() % 4 == 0;  // a partial write: the block's rest is read to seal it
        uint64_t lo = part ? 512 * (rng() % 8) + 100 : 0, n = part ? 300 : kBlockSize;
        auto wrote = h->Write(b * kBlockSize + lo, p.data() + lo, n);
        ASSERT_TRUE(wrote.ok() && *wrote == n);
        std::copy(p.begin() + lo, p.begin() + lo + n, want[b].begin() + lo);
      }
    });
  for (int r = 0; r < 2; ++r)
    others.emplace_back([&, r] {
      auto h = OpenFile("/f");
      std::mt19937 rng(100 + r);
      std::vector<uint8_t> buf(64 << 10);
      while (!stop.load()) {
        uint64_t b = rng() % kAll, len = (1 + rng() % 16) * kBlockSize - (rng() % 2) * 100;
        len = std::min(len, (kAll - b) * kBlockSize);
        auto got = h->Read(b * kBlockSize, buf.data(), len);
        reads++;
        if (!got.ok() || *got != len) read_failures++;
      }
    });
  ProtectedDevice* p = fs_->protected_device();
  others.emplace_back([&] {  // the patrol
    while (!stop.load()) (void)p->Verify(0, dev_->size() / kBlockSize);
  });
  others.emplace_back([&] {  // one error in each still block: known poison or a stray store
    for (uint64_t i = 0; i < kStill && !stop.load(); ++i) {
      uint64_t at = dev_off[kBlocks * kWriters + i] + (i % 8) * 512;
      if (i % 2) {
        ASSERT_TRUE(media().Inject(at / kSectorSize, 1, {.notify = true, .saturate = true}).ok());
      } else {
        uint8_t junk[40] = {};
        ASSERT_TRUE(dev_->Write(at + 60, junk, sizeof junk).ok());
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  });
  for (auto& t : writers) t.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  for (auto& t : others) t.join();
  EXPECT_EQ(read_failures.load(), 0u) << "of " << reads.load() << " reads";
  for (uint64_t b = 0; b < kAll; ++b) ASSERT_EQ(ReadAll(*f, b * kBlockSize, kBlockSize), want[b]) << "block " << b;
  EXPECT_EQ(p->Verify(0, dev_->size() / kBlockSize).mismatches, 0u);
  HealthReport h = fs_->Health();
  EXPECT_TRUE(h.files.empty());
  EXPECT_EQ(h.unrepaired_blocks, 0u);
}

}  // namespace
}  // namespace daxguard::fs
