// MediaWatch: one thread per device file hears every change of its poison
// and known errors, from this process or another, and has its listeners look.
#include "dax/media_watch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/test_util.h"
#include "common/units.h"

namespace daxguard::dax {
namespace {

using daxguard::testing::Child;
using daxguard::testing::Eventually;
using daxguard::testing::TempDir;


class MediaWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    media::CreateOptions opt;
    opt.size = 1 << 20;
    auto m = media::PmemDevice::Create(dir_.File("d"), opt);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    watch_ = MediaWatch::Create(std::move(m).value());
  }
  TempDir dir_;
  std::shared_ptr<MediaWatch> watch_;
};

TEST_F(MediaWatchTest, ListenersHearAnotherProcessesInjection) {
  std::atomic<int> a{0}, b{0};
  uint64_t ia = watch_->Listen([&] { ++a; });
  uint64_t ib = watch_->Listen([&] { ++b; });
  Child child([&]() -> int {
    auto m = media::PmemDevice::Open(dir_.File("d"));
    return m.ok() && (*m)->Inject(3, 1, {}).ok() ? 0 : 1;
  });
  EXPECT_EQ(child.Wait(), 0);
  EXPECT_TRUE(Eventually([&] { return a.load() > 0 && b.load() > 0; }));
  watch_->Unlisten(ia);
  int before = a.load();
  ASSERT_TRUE(watch_->media().Inject(9, 1, {}).ok());
  EXPECT_TRUE(Eventually([&] { return b.load() > 1; }));
  EXPECT_EQ(a.load(), before) << "a listener let go heard a change";
  watch_->Unlisten(ib);
}

TEST_F(MediaWatchTest, ALatentInjectionAndAClearAreChangesToo) {
  std::atomic<int> n{0};
  uint64_t id = watch_->Listen([&] { ++n; });
  media::InjectOptions latent;
  latent.notify = false;
  ASSERT_TRUE(watch_->media().Inject(5, 1, latent).ok());
  EXPECT_TRUE(Eventually([&] { return n.load() >= 1; }));
  int seen = n.load();
  ASSERT_TRUE(watch_->media().ClearPoison(5 * kSectorSize, kSectorSize).ok());
  EXPECT_TRUE(Eventually([&] { return n.load() > seen; }));
  watch_->Unlisten(id);
}

// A listener may let go of itself (a mapping's callback destroying its own
// region does), and a later listener starts the watch again.
TEST_F(MediaWatchTest, AListenerMayLetGoOfItself) {
  std::atomic<int> n{0};
  std::atomic<uint64_t> self{0};
  std::atomic<bool> gone{false};
  self = watch_->Listen([&] {
    ++n;
    watch_->Unlisten(self.load());
    gone = true;
  });
  ASSERT_TRUE(watch_->media().Inject(1, 1, {}).ok());
  EXPECT_TRUE(Eventually([&] { return gone.load(); }));
  ASSERT_TRUE(watch_->media().Inject(2, 1, {}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(n.load(), 1);
  std::atomic<int> m{0};
  uint64_t id = watch_->Listen([&] { ++m; });
  ASSERT_TRUE(watch_->media().Inject(3, 1, {}).ok());
  EXPECT_TRUE(Eventually([&] { return m.load() > 0; }));
  watch_->Unlisten(id);
}

}  // namespace
}  // namespace daxguard::dax
