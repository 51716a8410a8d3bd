// The device-dax driver on a fake sysfs tree (laid out as Linux 6.1's), with
// a regular file standing in for the node: stores and reads through the
// mapping, the region's known errors clipped to the node and never touched
// (a read stops before them, a store or direct access over them is
// refused), told to a holder at once, and a new one found by the rescan
// told within moments. (A real machine check: tests/kernel/mc_copy.sh; the
// real node: tests/kernel/devdax_fs.sh, in the oracle's guest.)
#include "dax/devdax_device.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "common/recording_holder.h"
#include "common/test_util.h"

namespace daxguard::dax {
namespace {

namespace stdfs = std::filesystem;
using testing::Call;

constexpr uint64_t kSize = 16ull << 20, kAlign = 2ull << 20;

class DevDaxTest : public ::testing::Test {
 protected:
  // region0 at 4 GiB; dax0.0 2 MiB into it, 16 MiB long.
  void SetUp() override {
    stdfs::path root = dir_.path();
    region_ = root / "devices/ndbus0/region0";
    stdfs::path node = region_ / "dax0.0/dax0.0";
    stdfs::create_directories(node);
    stdfs::create_directories(root / "bus/dax/devices");
    stdfs::create_directory_symlink(node, root / "bus/dax/devices/dax0.0");
    std::ofstream(node / "size") << kSize << "\n";
    std::ofstream(node / "align") << kAlign << "\n";
    std::ofstream(node / "resource") << "0x100200000\n";
    std::ofstream(region_ / "resource") << "0x100000000\n";
    SetRegionBad("");
    file_ = dir_.File("node");
    std::ofstream(file_).close();
    stdfs::resize_file(file_, kSize);
  }
  void SetRegionBad(const std::string& text) { std::ofstream(region_ / "badblocks") << text; }
  std::unique_ptr<DevDaxDevice> OpenNode() {
    auto d = DevDaxDevice::Open(file_, "dax0.0", true, dir_.path());
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? std::move(d).value() : nullptr;
  }

  testing::TempDir dir_;
  stdfs::path region_;
  std::string file_;
};

TEST_F(DevDaxTest, StoresAndReadsGoThroughTheMapping) {
  auto d = OpenNode();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->size(), kSize);
  std::vector<uint8_t> data(3 * 4096 + 100);
  std::iota(data.begin(), data.end(), 1);
  ASSERT_TRUE(d->Write(5000, data.data(), data.size()).ok());
  ASSERT_TRUE(d->WriteBack(5000, data.size()).ok());
  d->Fence();
  std::vector<uint8_t> back(data.size());
  EXPECT_EQ(d->ReadMcSafe(5000, back.data(), back.size()).value_or(0), back.size());
  EXPECT_EQ(back, data);
  d.reset();
  auto again = OpenNode();  // what the next open sees
  ASSERT_TRUE(again);
  std::fill(back.begin(), back.end(), 0);
  EXPECT_TRUE(again->ReadAll(5000, back.data(), back.size()));
  EXPECT_EQ(back, data);
  EXPECT_FALSE(again->ReadMcSafe(kSize - 10, back.data(), 20).ok()) << "beyond the end";
}

TEST_F(DevDaxTest, KnownErrorsAreClippedNeverTouchedAndRefused) {
  // Region sectors 4096.. are the node's 0..: region sector 4100 is node sector 4.
  SetRegionBad("10 2\n4100 1\n");
  auto d = OpenNode();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->BadBlocks(), (std::vector<media::BadBlock>{{4, 1, false}}));
  std::vector<uint8_t> buf(8192);
  EXPECT_EQ(d->ReadMcSafe(0, buf.data(), buf.size()).value_or(99), 4u * 512) << "stops before the known error";
  EXPECT_EQ(d->ReadMcSafe(4 * 512 + 100, buf.data(), 10).value_or(99), 0u);
  EXPECT_TRUE(d->KnownUnreadable(0, 4096));
  EXPECT_FALSE(d->KnownUnreadable(4096, 4096));
  EXPECT_EQ(d->Write(2048, buf.data(), 100).err(), EIO);
  EXPECT_EQ(d->DirectAccess(0, 2, AccessMode::kAccess).status().err(), EHWPOISON);
  auto m = d->DirectAccess(1, 4, AccessMode::kAccess);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->pages, 4u);
  EXPECT_FALSE(d->CanRecover(0, 4096));
  EXPECT_EQ(d->RecoveryWrite(0, buf.data(), 4096).status().err(), EIO) << "the kernel is not asked to clear yet";
}

TEST_F(DevDaxTest, AHolderHearsOfKnownErrorsAndOfNewOnesTheRescanFinds) {
  SetRegionBad("4100 1\n");
  auto d = OpenNode();
  ASSERT_TRUE(d);
  testing::RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(*d).ok());
  EXPECT_TRUE(h.WaitForCall({4 * 512, 512, kFailureMedia}));
  SetRegionBad("4100 1\n8192 8\n");  // the kernel learns of more
  EXPECT_TRUE(h.WaitForCall({4096 * 512, 8 * 512, kFailureMedia}));
  EXPECT_EQ(h.Calls().size(), 2u) << "each told once";
  EXPECT_EQ(d->HolderPid(), static_cast<uint32_t>(getpid()));
}

TEST_F(DevDaxTest, AMalformedRegionListIsOneClearError) {
  SetRegionBad("10 x\n");
  auto d = DevDaxDevice::Open(file_, "dax0.0", true, dir_.path());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().err(), EUCLEAN);
  EXPECT_NE(d.status().message().find("badblocks line 1"), std::string::npos) << d.status().message();
}

}  // namespace
}  // namespace daxguard::dax
