// A device file truncated under an open device: its reads and writes fail
// with an I/O error instead of the process dying of SIGBUS.
#include "media/shrink_guard.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "common/units.h"
#include "media/pmem_device.h"

namespace daxguard::media {
namespace {

using daxguard::testing::Child;
using daxguard::testing::TempDir;

constexpr uint64_t kMiB = 1ull << 20;

class ShrinkGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CreateOptions opt;
    opt.size = 4 * kMiB;
    auto dev = PmemDevice::Create(dir_.File("dev"), opt);
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    dev_ = std::move(dev).value();
  }
  // Cuts the file to the header and the first `data` bytes of the data area.
  void Shrink(uint64_t data) {
    ASSERT_EQ(truncate(dev_->path().c_str(), static_cast<off_t>(dev_->geometry().data_off + data)), 0);
  }

  TempDir dir_;
  std::unique_ptr<PmemDevice> dev_;
};

TEST_F(ShrinkGuardTest, ReadPastTheNewEndFails) {
  std::vector<uint8_t> buf(8192, 0x5a);
  ASSERT_TRUE(dev_->Write(2 * kMiB, buf.data(), buf.size()).ok());
  Shrink(kMiB);
  EXPECT_EQ(dev_->ReadMcSafe(2 * kMiB, buf.data(), buf.size()), 0u);
  EXPECT_TRUE(dev_->shrunk());
}

TEST_F(ShrinkGuardTest, WritePastTheNewEndFails) {
  Shrink(kMiB);
  std::vector<uint8_t> buf(4096, 0x5a);
  Status s = dev_->Write(3 * kMiB, buf.data(), buf.size());
  EXPECT_EQ(s.err(), EIO);
  EXPECT_NE(s.message().find("device file shrank under us"), std::string::npos) << s.message();
}

// Once the file lost its tail, nothing the device reads or writes is to be
// trusted, even within what is left.
TEST_F(ShrinkGuardTest, EverythingFailsOnceShrunk) {
  Shrink(kMiB);
  std::vector<uint8_t> buf(4096, 0x5a);
  EXPECT_EQ(dev_->ReadMcSafe(3 * kMiB, buf.data(), buf.size()), 0u);
  EXPECT_EQ(dev_->ReadMcSafe(0, buf.data(), buf.size()), 0u);
  EXPECT_EQ(dev_->Write(0, buf.data(), buf.size()).err(), EIO);
}

TEST_F(ShrinkGuardTest, UnshrunkDeviceWorks) {
  std::vector<uint8_t> in(4096, 0x5a), out(4096);
  ASSERT_TRUE(dev_->Write(3 * kMiB, in.data(), in.size()).ok());
  EXPECT_EQ(dev_->ReadMcSafe(3 * kMiB, out.data(), out.size()), out.size());
  EXPECT_EQ(in, out);
  EXPECT_FALSE(dev_->shrunk());
}

// A SIGBUS outside every device mapping is not the guard's: the process
// still dies of it (the previous handler's action: the default, or ASan's
// report and exit code 1).
TEST_F(ShrinkGuardTest, OtherFaultsGoToThePreviousHandler) {
  std::string path = dir_.File("other");
  Child child([&] {
    int fd = open(path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, 8192) != 0) return 2;
    void* p = mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED || ftruncate(fd, 0) != 0) return 3;
    return static_cast<volatile uint8_t*>(p)[4096] == 0 ? 10 : 11;  // survived
  });
  int rc = child.Wait();
  EXPECT_TRUE(rc == -1 || rc == 1) << rc;
}

}  // namespace
}  // namespace daxguard::media
