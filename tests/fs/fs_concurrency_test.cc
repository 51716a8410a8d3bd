// Errors reported from another thread (as the device's watcher thread does
// for other processes' injections) while this one reads and writes.
#include <atomic>
#include <thread>

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
  // Whatever the race, every page is either whole again or recorded damaged.
  for (uint64_t i = 0; i < pages.size(); ++i) {
    bool bad_on_device = !dev_->DirectAccess(pages[i] / 4096, 1, dax::AccessMode::kAccess).ok();
    bool recorded = false;
    for (const DamagedFile& d : fs_->Health().files)
      for (auto [off, len] : d.ranges) recorded |= off < (i + 1) * 4096 && off + len > i * 4096;
    EXPECT_EQ(bad_on_device, recorded) << "page " << i;
  }
}

}  // namespace
}  // namespace daxguard::fs
