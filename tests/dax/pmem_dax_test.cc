#include "dax/pmem_dax.h"
#include "common/recording_holder.h"
#include "common/test_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "common/units.h"
#include "dax_test_util.h"

namespace daxguard::dax {
using daxguard::testing::TempDir;
using daxguard::testing::Child;
using daxguard::testing::Pipe;
namespace {

using media::BadBlock;
using media::InjectOptions;
using media::PmemDevice;

constexpr uint64_t kMiB = 1ull << 20;


using daxguard::testing::Call;
// These tests wait 5 s for a notification.
struct RecordingHolder : daxguard::testing::RecordingHolder {
  RecordingHolder() : daxguard::testing::RecordingHolder(std::chrono::seconds(5)) {}
};

class PmemDaxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dax_ = testing::NewPmemDax(path(), 4 * kMiB, 256);
    ASSERT_TRUE(dax_);
  }
  std::string path() const { return dir_.File("dev"); }
  PmemDax& dax() { return *dax_; }
  PmemDevice& media() { return dax_->media(); }
  void Fill() {
    std::vector<uint8_t> buf(dax().size());
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i % 251 + 1);
    ASSERT_TRUE(dax().Write(0, buf.data(), buf.size()).ok());
  }
  static bool HasPattern(const uint8_t* p, uint64_t off, size_t len) {
    for (size_t i = 0; i < len; ++i)
      if (p[i] != static_cast<uint8_t>((off + i) % 251 + 1)) return false;
    return true;
  }
  static bool AllZero(const uint8_t* p, size_t len) {
    for (size_t i = 0; i < len; ++i)
      if (p[i]) return false;
    return true;
  }
  static InjectOptions Latent() {
    InjectOptions o;
    o.notify = false;
    return o;
  }
  static InjectOptions Saturated() {
    InjectOptions o;
    o.saturate = true;
    return o;
  }
  bool AllAcknowledged() {
    for (const BadBlock& b : media().BadBlocks())
      if (!b.acknowledged) return false;
    return true;
  }

  TempDir dir_;
  std::unique_ptr<PmemDax> dax_;
};



// --- persistence

TEST_F(PmemDaxTest, PersistenceCallsReachTheMediaAndAreRangeChecked) {
  std::vector<uint8_t> buf(3 * kPageSize, 0x6b);
  ASSERT_TRUE(dax().WritePersist(kPageSize + 7, buf.data(), buf.size()).ok());
  EXPECT_EQ(media().data()[kPageSize + 7], 0x6b);
  EXPECT_EQ(media().data()[4 * kPageSize + 6], 0x6b);
  EXPECT_EQ(media().data()[4 * kPageSize + 7], 0);
  ASSERT_TRUE(dax().Write(0, buf.data(), 64).ok());
  EXPECT_TRUE(dax().WriteBack(0, 64).ok());
  dax().Fence();
  EXPECT_EQ(dax().WriteBack(dax().size(), 1).err(), ERANGE);
  EXPECT_EQ(dax().WritePersist(dax().size() - 1, buf.data(), 2).err(), ERANGE);
  EXPECT_EQ(media().data()[dax().size() - 1], 0);
  dax().Kill();
  EXPECT_FALSE(dax().WriteBack(0, 64).ok()) << "a removed device takes no more calls";
  EXPECT_FALSE(dax().WritePersist(0, buf.data(), 64).ok());
}

// --- direct access

TEST_F(PmemDaxTest, CleanDeviceMapsEverything) {
  EXPECT_EQ(dax().pages(), 1024u);
  EXPECT_TRUE(dax().caps().recovery);
  EXPECT_TRUE(dax().caps().synchronous);
  EXPECT_FALSE(dax().caps().devdax);
  EXPECT_EQ(dax().caps().fault_unit, kPageSize);
  auto m = dax().DirectAccess(5, 100, AccessMode::kAccess);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->addr, media().data() + 5 * kPageSize);
  EXPECT_EQ(m->pages, 100u);
  EXPECT_EQ(dax().DirectAccess(1000, 25, AccessMode::kAccess).status().err(), ERANGE);
  EXPECT_EQ(dax().DirectAccess(1025, 0, AccessMode::kAccess).status().err(), ERANGE);
  EXPECT_TRUE(dax().DirectAccess(1000, 24, AccessMode::kAccess).ok());
}

TEST_F(PmemDaxTest, AccessFailsOnKnownBadFirstPage) {
  ASSERT_TRUE(media().Inject(3 * 8 + 5, 1, {}).ok());  // a sector inside page 3
  auto m = dax().DirectAccess(3, 4, AccessMode::kAccess);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().err(), EHWPOISON);
  // Recovery mode maps the bad page, one page only.
  auto r = dax().DirectAccess(3, 4, AccessMode::kRecoveryWrite);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->addr, media().data() + 3 * kPageSize);
  EXPECT_EQ(r->pages, 1u);
}

TEST_F(PmemDaxTest, AccessStopsBeforeABadPage) {
  ASSERT_TRUE(media().Inject(3 * 8 + 7, 1, {}).ok());  // last sector of page 3
  for (AccessMode mode : {AccessMode::kAccess, AccessMode::kRecoveryWrite}) {
    auto m = dax().DirectAccess(0, 10, mode);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->addr, media().data());
    EXPECT_EQ(m->pages, 3u);
    m = dax().DirectAccess(2, 10, mode);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->pages, 1u);
  }
  // Past the bad page all is clean again.
  auto m = dax().DirectAccess(4, 10, AccessMode::kAccess);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->pages, 10u);
}

TEST_F(PmemDaxTest, RecordStartingInAnEarlierPageStillBlocks) {
  // Sectors 23 and 24: the end of page 2 and the start of page 3.
  ASSERT_TRUE(media().AddKnown({{23, 2, false}}).ok());
  EXPECT_EQ(dax().DirectAccess(3, 5, AccessMode::kAccess).status().err(), EHWPOISON);
  EXPECT_EQ(dax().DirectAccess(2, 5, AccessMode::kAccess).status().err(), EHWPOISON);
  auto m = dax().DirectAccess(0, 5, AccessMode::kAccess);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->pages, 2u);
}

TEST_F(PmemDaxTest, LatentPoisonIsNotKnownToDirectAccess) {
  ASSERT_TRUE(media().Inject(8, 1, Latent()).ok());
  auto m = dax().DirectAccess(0, 4, AccessMode::kAccess);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->pages, 4u);
}

// --- recovery write, zeroing, plain write

TEST_F(PmemDaxTest, AlignedRecoveryWriteRepairsPoison) {
  Fill();
  ASSERT_TRUE(media().Inject(9, 1, Saturated()).ok());
  ASSERT_TRUE(media().Inject(12, 1, Latent()).ok());
  std::vector<uint8_t> buf(kPageSize, 0xab);
  auto n = dax().RecoveryWrite(kPageSize, buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, kPageSize);
  EXPECT_FALSE(media().HasPoison(kPageSize, kPageSize));
  EXPECT_TRUE(media().BadBlocks().empty());
  EXPECT_EQ(std::memcmp(media().data() + kPageSize, buf.data(), kPageSize), 0);
  std::vector<uint8_t> back(kPageSize);
  EXPECT_EQ(dax().ReadMcSafe(kPageSize, back.data(), back.size()).value_or(SIZE_MAX), kPageSize);
  EXPECT_EQ(back, buf);
  EXPECT_TRUE(dax().DirectAccess(1, 1, AccessMode::kAccess).ok());
  // Neighbours are untouched.
  EXPECT_TRUE(HasPattern(media().data(), 0, kPageSize));
  EXPECT_TRUE(HasPattern(media().data() + 2 * kPageSize, 2 * kPageSize, kPageSize));
}

TEST_F(PmemDaxTest, MisalignedRecoveryWriteOverPoisonWritesNothing) {
  Fill();
  ASSERT_TRUE(media().Inject(8, 1, Saturated()).ok());  // bytes 4096..4607
  auto errs = media().MediaErrors().size();
  std::vector<uint8_t> buf(2 * kPageSize, 0xcd);
  for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{
           {kPageSize + 256, 512}, {kPageSize, 512}, {0, kPageSize + 512}, {kPageSize - 512, kPageSize}}) {
    auto n = dax().RecoveryWrite(off, buf.data(), len);
    ASSERT_FALSE(n.ok()) << off << "+" << len;
    EXPECT_EQ(n.status().err(), EIO);
  }
  EXPECT_TRUE(HasPattern(media().data(), 0, dax().size()));
  EXPECT_TRUE(media().HasPoison(kPageSize, 512));
  EXPECT_EQ(media().MediaErrors().size(), errs);
  EXPECT_EQ(media().BadBlocks(), (std::vector<BadBlock>{{8, 1, false}}));
}

TEST_F(PmemDaxTest, RecoveryWriteOfACleanRangeIsAPlainWrite) {
  Fill();
  ASSERT_TRUE(media().Inject(8, 1, Saturated()).ok());
  std::vector<uint8_t> buf(1000, 0xee);
  // Right after the poisoned sector, in the same page: clean, so written.
  auto n = dax().RecoveryWrite(kPageSize + 512, buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, buf.size());
  EXPECT_EQ(std::memcmp(media().data() + kPageSize + 512, buf.data(), buf.size()), 0);
  EXPECT_TRUE(media().HasPoison(kPageSize, 512));
  EXPECT_EQ(dax().RecoveryWrite(dax().size() - 10, buf.data(), 11).status().err(), ERANGE);
}

TEST_F(PmemDaxTest, ZeroPageRangeClearsPoisonOverManyPages) {
  Fill();
  ASSERT_TRUE(media().Inject(2 * 8, 1, {}).ok());
  ASSERT_TRUE(media().Inject(30 * 8 + 3, 20, Saturated()).ok());
  ASSERT_TRUE(media().Inject(60 * 8 + 7, 1, Latent()).ok());
  ASSERT_TRUE(dax().ZeroPageRange(1, 62).ok());
  EXPECT_TRUE(AllZero(media().data() + kPageSize, 62 * kPageSize));
  EXPECT_TRUE(HasPattern(media().data(), 0, kPageSize));
  EXPECT_TRUE(HasPattern(media().data() + 63 * kPageSize, 63 * kPageSize, kPageSize));
  EXPECT_FALSE(media().HasPoison(0, dax().size()));
  EXPECT_TRUE(media().BadBlocks().empty());
  auto m = dax().DirectAccess(0, 64, AccessMode::kAccess);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->pages, 64u);
  EXPECT_EQ(dax().ZeroPageRange(1000, 25).err(), ERANGE);
}

TEST_F(PmemDaxTest, PlainWriteNeverClearsPoison) {
  ASSERT_TRUE(media().Inject(8, 1, {}).ok());
  std::vector<uint8_t> buf(kPageSize, 1);
  ASSERT_TRUE(dax().Write(kPageSize, buf.data(), buf.size()).ok());
  EXPECT_TRUE(media().HasPoison(kPageSize, 256));
  EXPECT_EQ(media().BadBlocks().size(), 1u);
  EXPECT_EQ(dax().DirectAccess(1, 1, AccessMode::kAccess).status().err(), EHWPOISON);
  EXPECT_EQ(dax().Write(dax().size(), buf.data(), 1).err(), ERANGE);
}

// A recovery write clears the media, writes, and only then drops the
// records: a reader racing it gets EIO until the new data is all in place,
// never the zeroes of the clear or a mix.
TEST_F(PmemDaxTest, ReaderNeverSeesARepairHalfDone) {
  Fill();
  constexpr uint64_t kPages = 64;
  for (uint64_t pg = 0; pg < kPages; ++pg) ASSERT_TRUE(media().Inject(pg * 8 + pg % 8, 1, Saturated()).ok());
  auto value = [](uint64_t pg) { return static_cast<uint8_t>(pg * 2 + 1); };
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> good_reads{0}, bad_reads{0};
  std::thread reader([&] {
    std::vector<uint8_t> buf(kPageSize);
    while (!stop.load()) {
      for (uint64_t pg = 0; pg < kPages; ++pg) {
        auto m = dax().DirectAccess(pg, 1, AccessMode::kAccess);
        if (!m.ok()) continue;
        if (!dax().ReadAll(pg * kPageSize, buf.data(), kPageSize)) {
          bad_reads.fetch_add(1);  // a clean page must read whole
          continue;
        }
        if (std::count(buf.begin(), buf.end(), value(pg)) != static_cast<long>(kPageSize)) bad_reads.fetch_add(1);
        good_reads.fetch_add(1);
      }
    }
  });
  std::vector<uint8_t> buf(kPageSize);
  for (uint64_t pg = 0; pg < kPages; ++pg) {
    std::fill(buf.begin(), buf.end(), value(pg));
    auto n = dax().RecoveryWrite(pg * kPageSize, buf.data(), buf.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    std::this_thread::yield();
  }
  while (good_reads.load() < 2 * kPages) std::this_thread::yield();
  stop.store(true);
  reader.join();
  EXPECT_EQ(bad_reads.load(), 0u);
  EXPECT_TRUE(media().BadBlocks().empty());
}

// --- the holder

TEST_F(PmemDaxTest, OnlyOneHolder) {
  RecordingHolder a, b;
  EXPECT_FALSE(dax().HasHolder());
  ASSERT_TRUE(dax().RegisterHolder(&a).ok());
  EXPECT_TRUE(dax().HasHolder());
  EXPECT_EQ(dax().RegisterHolder(&b).err(), EBUSY);
  EXPECT_EQ(dax().RegisterHolder(&a).err(), EBUSY);
  dax().ReleaseHolder(&b);  // not the holder: nothing happens
  EXPECT_TRUE(dax().HasHolder());
  EXPECT_EQ(dax().RegisterHolder(&b).err(), EBUSY);
  dax().ReleaseHolder(&a);
  EXPECT_FALSE(dax().HasHolder());
  ASSERT_TRUE(dax().RegisterHolder(&b).ok());
  // A second handle on the same device file cannot take it either.
  auto other = PmemDax::Open(path());
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->RegisterHolder(&a).err(), EBUSY);
  dax().ReleaseHolder(&b);
  EXPECT_TRUE((*other)->RegisterHolder(&a).ok());
  (*other)->ReleaseHolder(&a);
}

TEST_F(PmemDaxTest, HolderToldOfInjectionInBytes) {
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  ASSERT_TRUE(media().Inject(10, 2, {}).ok());
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>& v) { return !v.empty(); }));
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>&) { return AllAcknowledged(); }));
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{10 * 512, 2 * 512, kFailureMedia}}));
  EXPECT_EQ(media().BadBlocks(), (std::vector<BadBlock>{{10, 2, true}}));
  EXPECT_TRUE(media().Unacknowledged().empty());
  // Latent injection tells nobody.
  ASSERT_TRUE(media().Inject(50, 1, Latent()).ok());
  EXPECT_EQ(h.Calls().size(), 1u);
  dax().ReleaseHolder(&h);
}

TEST_F(PmemDaxTest, HolderToldOfScrubFinds) {
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  ASSERT_TRUE(media().Inject(33, 1, Latent()).ok());
  ASSERT_TRUE(media().Inject(4000, 5, Latent()).ok());
  EXPECT_TRUE(h.Calls().empty());
  ASSERT_TRUE(media().BeginScrub(static_cast<uint32_t>(getpid())).ok());
  ASSERT_TRUE(media().RunScrub().ok());
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>& v) { return v.size() >= 2 && AllAcknowledged(); }));
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{33 * 512, 512, kFailureMedia}, {4000 * 512, 5 * 512, kFailureMedia}}));
  dax().ReleaseHolder(&h);
}

TEST_F(PmemDaxTest, HolderToldOfConsumption) {
  Fill();
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  ASSERT_TRUE(media().Inject(20, 1, Latent()).ok());
  std::vector<uint8_t> buf(1000);
  EXPECT_EQ(dax().ReadMcSafe(20 * 512 - 100, buf.data(), buf.size()).value_or(SIZE_MAX), 100u);
  EXPECT_TRUE(HasPattern(buf.data(), 20 * 512 - 100, 100));
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>& v) { return !v.empty() && AllAcknowledged(); }));
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{20 * 512, 512, kFailureMedia}}));
  dax().ReleaseHolder(&h);
}

TEST_F(PmemDaxTest, ErrorsKnownBeforeRegistrationAreDeliveredThenAcknowledged) {
  ASSERT_TRUE(media().Inject(7, 1, {}).ok());
  ASSERT_TRUE(media().AddKnown({{100, 3, false}}).ok());
  EXPECT_EQ(media().Unacknowledged().size(), 2u);
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  // Delivered during registration itself.
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{7 * 512, 512, kFailureMedia}, {100 * 512, 3 * 512, kFailureMedia}}));
  EXPECT_TRUE(media().Unacknowledged().empty());
  EXPECT_EQ(media().BadBlocks(), (std::vector<BadBlock>{{7, 1, true}, {100, 3, true}}));
  // A later holder does not hear them again.
  dax().ReleaseHolder(&h);
  RecordingHolder h2;
  ASSERT_TRUE(h2.RegisterWith(dax()).ok());
  EXPECT_TRUE(h2.Calls().empty());
  dax().ReleaseHolder(&h2);
}

TEST_F(PmemDaxTest, ErrorsWhileNobodyHoldsWaitForTheNextHolder) {
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  dax().ReleaseHolder(&h);
  ASSERT_TRUE(media().Inject(40, 1, {}).ok());
  EXPECT_TRUE(h.Calls().empty());
  EXPECT_EQ(media().Unacknowledged(), (std::vector<BadBlock>{{40, 1, false}}));
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{40 * 512, 512, kFailureMedia}}));
  dax().ReleaseHolder(&h);
}

TEST_F(PmemDaxTest, HolderMayTouchTheDeviceFromItsCallback) {
  Fill();
  RecordingHolder h;
  ASSERT_TRUE(media().Inject(60, 1, Latent()).ok());
  // On the first error the holder reads elsewhere and hits latent poison:
  // a notification raised from inside a notification.
  bool once = false;
  h.OnNotify([&] {
    if (once) return;
    once = true;
    uint8_t b[64];
    (void)dax().ReadMcSafe(60 * 512, b, sizeof b);
  });
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  ASSERT_TRUE(media().Inject(5, 1, {}).ok());
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>& v) { return v.size() >= 2 && AllAcknowledged(); }));
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{5 * 512, 512, kFailureMedia}, {60 * 512, 512, kFailureMedia}}));
  dax().ReleaseHolder(&h);
}

// A read that makes an error known while another thread (the watcher,
// telling of another handle's injection) is still delivering returns only
// once the holder has heard of the error it found, however long that takes.
TEST_F(PmemDaxTest, ReadReturnsOnlyOnceItsErrorIsToldWhileTheWatcherDelivers) {
  Fill();
  ASSERT_TRUE(media().Inject(90, 1, Latent()).ok());
  RecordingHolder h;
  std::mutex mu;
  std::condition_variable cv;
  bool watcher_in = false, reader_back = false;
  // The first notification (the watcher's) is held until the reader is
  // back, or for half a second if the reader waits for it.
  h.OnNotify([&] {
    std::unique_lock<std::mutex> g(mu);
    if (watcher_in) return;
    watcher_in = true;
    cv.notify_all();
    cv.wait_for(g, std::chrono::milliseconds(500), [&] { return reader_back; });
  });
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  auto other = PmemDevice::Open(path());  // without a listener: only the watcher tells of its errors
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Inject(10, 1, {}).ok());
  {
    std::unique_lock<std::mutex> g(mu);
    ASSERT_TRUE(cv.wait_for(g, std::chrono::seconds(5), [&] { return watcher_in; }));
  }
  uint8_t buf[512];
  EXPECT_EQ(dax().ReadMcSafe(90 * 512, buf, sizeof buf).value_or(SIZE_MAX), 0u);
  std::vector<Call> told = h.Calls();
  {
    std::lock_guard<std::mutex> g(mu);
    reader_back = true;
  }
  cv.notify_all();
  EXPECT_NE(std::find(told.begin(), told.end(), Call{90 * 512, 512, kFailureMedia}), told.end())
      << "the read returned before the holder was told of its error";
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>& v) { return v.size() == 2 && AllAcknowledged(); }));
  dax().ReleaseHolder(&h);
}

TEST_F(PmemDaxTest, KillSendsPreRemoveAndLaterAccessFails) {
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  EXPECT_TRUE(dax().alive());
  dax().Kill();
  EXPECT_FALSE(dax().alive());
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{0, dax().size(), kFailurePreRemove}}));
  EXPECT_FALSE(dax().HasHolder()) << "a killed device lets its holder go";
  EXPECT_TRUE(media().ClaimHolder(42).ok()) << "and frees its claim for others";
  media().ReleaseHolder(42);
  dax().Kill();  // only once
  EXPECT_EQ(h.Calls().size(), 1u);
  std::vector<uint8_t> buf(kPageSize, 1);
  EXPECT_EQ(dax().DirectAccess(0, 1, AccessMode::kAccess).status().err(), ENXIO);
  EXPECT_EQ(dax().DirectAccess(0, 1, AccessMode::kRecoveryWrite).status().err(), ENXIO);
  EXPECT_EQ(dax().RecoveryWrite(0, buf.data(), buf.size()).status().err(), ENXIO);
  EXPECT_EQ(dax().ZeroPageRange(0, 1).err(), ENXIO);
  EXPECT_EQ(dax().Write(0, buf.data(), buf.size()).err(), ENXIO);
  EXPECT_EQ(dax().ReadMcSafe(0, buf.data(), buf.size()).status().err(), ENXIO);
  dax().ReleaseHolder(&h);
  RecordingHolder h2;
  EXPECT_EQ(dax().RegisterHolder(&h2).err(), ENXIO);
}

TEST_F(PmemDaxTest, DestroyingAHeldDeviceFreesItsClaim) {
  RecordingHolder h, other;  // outlive the handle
  {
    auto a = PmemDax::Open(path());
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE((*a)->RegisterHolder(&h).ok());
    EXPECT_EQ(dax().RegisterHolder(&other).err(), EBUSY);
    // Gone without ReleaseHolder, as when its owner is torn down in a hurry.
  }
  RecordingHolder h2;
  EXPECT_TRUE(dax().RegisterHolder(&h2).ok()) << "the claim outlived the handle that made it";
  dax().ReleaseHolder(&h2);
}

// --- across processes

TEST_F(PmemDaxTest, HolderToldOfAnotherProcessesInjection) {
  Pipe go;
  // Forked before the watcher thread exists; it waits for the go-ahead.
  Child child([&]() -> int {
    go.CloseWrite();
    if (!go.Receive()) return 10;
    auto mine = PmemDevice::Open(path());
    if (!mine.ok()) return 11;
    return (*mine)->Inject(12, 3, {}).ok() ? 0 : 12;
  });
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  go.Send();
  EXPECT_TRUE(h.WaitFor([&](const std::vector<Call>& v) { return !v.empty() && AllAcknowledged(); }))
      << "the holder was not told within 5 s";
  EXPECT_EQ(h.Calls(), (std::vector<Call>{{12 * 512, 3 * 512, kFailureMedia}}));
  EXPECT_EQ(child.Wait(), 0);
  dax().ReleaseHolder(&h);
}

TEST_F(PmemDaxTest, HolderToldOfAnotherProcessesScrub) {
  ASSERT_TRUE(media().Inject(77, 1, Latent()).ok());
  Pipe go;
  Child child([&]() -> int {
    go.CloseWrite();
    if (!go.Receive()) return 10;
    auto mine = PmemDevice::Open(path());
    if (!mine.ok() || !(*mine)->BeginScrub(static_cast<uint32_t>(getpid())).ok()) return 11;
    return (*mine)->RunScrub().ok() ? 0 : 12;
  });
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  EXPECT_TRUE(h.Calls().empty());
  go.Send();
  EXPECT_TRUE(h.WaitForCall({77 * 512, 512, kFailureMedia})) << "the holder was not told within 5 s";
  EXPECT_EQ(child.Wait(), 0);
  dax().ReleaseHolder(&h);
}

TEST_F(PmemDaxTest, AnotherProcessCannotRegisterWhileHeld) {
  Pipe go;
  Child child([&]() -> int {
    go.CloseWrite();
    if (!go.Receive()) return 10;
    auto mine = PmemDax::Open(path());
    if (!mine.ok()) return 11;
    RecordingHolder other;
    return (*mine)->RegisterHolder(&other).err() == EBUSY ? 0 : 12;
  });
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(dax()).ok());
  go.Send();
  EXPECT_EQ(child.Wait(), 0);
  dax().ReleaseHolder(&h);
}

}  // namespace
}  // namespace daxguard::dax
