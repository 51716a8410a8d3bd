// Errors reported from another thread (as the device's watcher thread does
// for other processes' injections) while this one reads and writes.
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "common/faulty_device.h"
#include "fs/fs_fixture.h"

namespace daxguard::fs {
namespace {

TEST_F(FsTest, FailuresFromAnotherThreadWhileReadingAndWriting) {
  auto f = Create("/busy");
  Fill(*f, 0, 64 << 10, 7);
  std::vector<uint64_t> pages;
  for (uint64_t off = 0; off < (64u << 10); off += 4096) pages.push_back(DeviceOffset(*f, off));
  std::atomic<bool> stop{false};
  std::thread io([&] {
    std::vector<uint8_t> buf(4096, 9);
    for (int i = 0; !stop.load(); ++i) {
      uint64_t off = (i % 16) * 4096;
      (void)f->Read(off, buf.data(), buf.size());
      if (i % 3 == 0) (void)f->Write(off, buf.data(), buf.size());  // repairs what it covers
    }
  });
  for (uint64_t at : pages) ASSERT_TRUE(media().Inject(at / 512, 1, {}).ok());
  stop.store(true);
  io.join();
  // The device's watcher thread may deliver some errors moments after the
  // injection; the filesystem has handled each one once it is acknowledged.
  for (int i = 0; i < 1000 && !media().Unacknowledged().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(media().Unacknowledged().empty()) << "errors left undelivered";
  // Whatever the race, every page is either whole again or recorded damaged.
  for (uint64_t i = 0; i < pages.size(); ++i) {
    bool bad_on_device = !dev_->DirectAccess(pages[i] / 4096, 1, dax::AccessMode::kAccess).ok();
    bool recorded = false;
    for (const DamagedFile& d : fs_->Health().files)
      for (auto [off, len] : d.ranges) recorded |= off < (i + 1) * 4096 && off + len > i * 4096;
    EXPECT_EQ(bad_on_device, recorded) << "page " << i;
  }
}

// A failure another thread reports while an operation runs is left to that
// operation, which may itself be waiting for the report to return (a device
// call returns once its error is told): the report does not wait for it.
// (Reported straight to the filesystem: through FaultyDevice's link, TSan
// sees that device's and its base's holder locks taken in both orders.)
TEST_F(FsTest, FailureReportedDuringAnOperationIsLeftToIt) {
  Fill(*Create("/a"), 0, 4096, 1);
  fs_.reset();
  std::thread reporter;
  std::atomic<bool> reported{false};
  bool in_time = false;
  testing::FaultyDevice faulty(*dev_);
  auto fs = Filesystem::Mount(faulty);
  ASSERT_TRUE(fs.ok()) << fs.status().message();
  auto a = (*fs)->Open("/a");
  ASSERT_TRUE(a.ok());
  Filesystem* holder = fs->get();
  faulty.BeforeStep([&](uint64_t) {  // inside the write, under the filesystem's lock
    if (reporter.joinable()) return;
    reporter = std::thread([&] {
      holder->NotifyFailure(kDevSize - 4096, 512, dax::kFailureMedia);
      reported.store(true);
    });
    for (int i = 0; i < 400 && !reported.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    in_time = reported.load();
  });
  std::vector<uint8_t> buf(4096, 3);
  auto w = (*a)->Write(4096, buf.data(), buf.size());  // a new block: allocates and commits
  faulty.BeforeStep(nullptr);
  ASSERT_TRUE(reporter.joinable()) << "the write took no step";
  reporter.join();
  EXPECT_TRUE(w.ok()) << w.status().message();
  EXPECT_TRUE(in_time) << "the report waited for the operation";
}

// Fast-path readers and writers of one handle (no filesystem lock) while
// another thread frees that file's blocks and hands them to another file:
// no write may land in the other file's blocks, no read may return its
// bytes, and (under TSan) no access may race with the new owner's.
TEST_F(FsTest, FastPathNeverTouchesBlocksGivenToAnotherFile) {
  constexpr uint64_t kLen = 64 << 10, P = 4096;
  auto a = Create("/a");
  auto b = Create("/b");
  Fill(*a, 0, kLen, 0xaa);
  std::atomic<bool> stop{false};
  std::atomic<int> foreign{0};
  auto io = [&](bool writer) {
    std::vector<uint8_t> buf(P, 0xaa);
    for (uint64_t i = writer; !stop.load(); i += 2) {
      uint64_t off = (i * 7 % (kLen / P)) * P;
      if (writer) (void)a->Write(off, buf.data(), P);
      auto r = a->Read(off, buf.data(), P);
      for (size_t k = 0; r.ok() && k < *r; ++k)
        if (buf[k] != 0xaa && buf[k] != 0) foreign.fetch_add(1);
      std::fill(buf.begin(), buf.end(), 0xaa);
    }
  };
  std::thread writer(io, true), reader(io, false);
  std::vector<uint8_t> bb(kLen, 0xbb), back(kLen);
  bool ok = true;
  for (int round = 0; round < 100 && ok; ++round) {
    bool cut = a->Truncate(0).ok();
    auto w = b->Write(0, bb.data(), kLen);
    auto r = b->Read(0, back.data(), kLen);
    ok = cut && w.ok() && r.ok() && *r == kLen && back == bb && b->Truncate(0).ok();
    EXPECT_TRUE(ok) << "round " << round << ": another file's write landed in /b, or an operation failed";
  }
  stop.store(true);
  writer.join();
  reader.join();
  EXPECT_EQ(foreign.load(), 0) << "/a returned bytes of /b";
}

}  // namespace
}  // namespace daxguard::fs
