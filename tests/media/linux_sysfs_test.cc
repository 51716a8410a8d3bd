// Reading a device-dax node's facts and its region's known errors from
// sysfs, on fake trees laid out as Linux 6.1 lays them out (seen in the
// oracle guest, see media/linux_sysfs.h): numbers in both spellings,
// errors clipped to the node and shifted to its offsets, and every
// malformed or missing attribute refused with one clear error.
#include "media/linux_sysfs.h"

#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <fstream>

#include "common/test_util.h"

namespace daxguard::media::sysfs {
namespace {

namespace stdfs = std::filesystem;

class SysfsTest : public ::testing::Test {
 protected:
  // region0 at 4 GiB; dax0.0 16 MiB into it (past its info block), 992 MiB.
  void SetUp() override {
    root_ = dir_.path();
    region_ = root_ / "devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0";
    node_ = region_ / "dax0.0/dax0.0";
    stdfs::create_directories(node_);
    stdfs::create_directories(root_ / "bus/dax/devices");
    stdfs::create_directories(root_ / "class/dax");
    stdfs::create_directories(root_ / "dev/char");
    stdfs::create_directory_symlink(node_, root_ / "bus/dax/devices/dax0.0");
    stdfs::create_directory_symlink(node_, root_ / "dev/char/252:0");
    stdfs::create_directory_symlink(root_ / "class/dax", node_ / "subsystem");
    Put(node_ / "size", "1040187392\n");
    Put(node_ / "align", "2097152\n");
    Put(node_ / "resource", "0x101000000\n");
    Put(region_ / "resource", "0x100000000\n");
    Put(region_ / "badblocks", "");
  }
  static void Put(const stdfs::path& p, const std::string& text) { std::ofstream(p) << text; }
  std::string root() const { return root_.string(); }

  testing::TempDir dir_;
  stdfs::path root_, region_, node_;
};

TEST_F(SysfsTest, DescribesANodeAsTheKernelLaysItOut) {
  auto d = DescribeDevDax(root(), "dax0.0");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->name, "dax0.0");
  EXPECT_EQ(d->size, 1040187392u);
  EXPECT_EQ(d->align, 2u << 20);
  EXPECT_EQ(d->phys, 0x101000000u);
  EXPECT_EQ(d->region_phys, 0x100000000u);
  EXPECT_EQ(stdfs::path(d->region_dir).filename(), "region0");
  auto name = DevDaxNameOf(root(), makedev(252, 0));
  ASSERT_TRUE(name.ok()) << name.status().ToString();
  EXPECT_EQ(*name, "dax0.0");
}

TEST_F(SysfsTest, RegionErrorsAreClippedToTheNodeAndInItsSectors) {
  // The node starts 16 MiB (sector 32768) into the region and is 2031616 sectors long.
  Put(region_ / "badblocks",
      "100 8\n"            // before the node (its info block): not ours
      "32760 16\n"         // crosses the node's start: its last 8 sectors are ours
      "40000 1\n"          // inside
      "2064380 10\n");     // crosses the node's end (sector 2064384 of the region)
  auto d = DescribeDevDax(root(), "dax0.0");
  ASSERT_TRUE(d.ok());
  auto bad = DevDaxBadBlocks(*d);
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  EXPECT_EQ(*bad, (std::vector<BadBlock>{{0, 8, false}, {40000 - 32768, 1, false}, {2064380 - 32768, 4, false}}));
}

TEST_F(SysfsTest, BadBlocksParsingAcceptsTheKernelsFormOnly) {
  auto ok = ParseBadBlocks("  7 1\n\n123456789012 40\n", "x");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, (std::vector<BadBlock>{{7, 1, false}, {123456789012ull, 40, false}}));
  for (const char* bad : {"7\n", "7 x\n", "-1 2\n", "7 0\n", "7 1 2\n", "0x10 1\n", "18446744073709551615 2\n"}) {
    auto r = ParseBadBlocks(bad, "region0/badblocks");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().err(), EUCLEAN);
    EXPECT_NE(r.status().message().find("region0/badblocks line 1"), std::string::npos) << r.status().message();
  }
}

TEST_F(SysfsTest, AHugeRegionErrorNeverOverflowsIntoTheNode) {
  auto clipped = ClipToDevice({{UINT64_MAX / 512, 1, false}, {1ull << 60, 1ull << 60, false}}, 0x100000000, 0x101000000,
                              1 << 20);
  EXPECT_TRUE(clipped.empty());
}

TEST_F(SysfsTest, MissingOrMalformedAttributesAreOneClearError) {
  EXPECT_EQ(DescribeDevDax(root(), "dax9.9").status().err(), ENODEV);
  EXPECT_EQ(DevDaxNameOf(root(), makedev(8, 0)).status().err(), ENODEV);
  Put(node_ / "align", "2M\n");
  auto d = DescribeDevDax(root(), "dax0.0");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().err(), EUCLEAN);
  EXPECT_NE(d.status().message().find("align: not a number: \"2M\""), std::string::npos) << d.status().message();
  Put(node_ / "align", "3000\n");
  EXPECT_EQ(DescribeDevDax(root(), "dax0.0").status().err(), EUCLEAN) << "not a power of two";
  Put(node_ / "align", "2097152\n");
  stdfs::remove(region_ / "resource");
  EXPECT_EQ(DescribeDevDax(root(), "dax0.0").status().err(), ENOENT);
  Put(region_ / "resource", "0x100000000\n");
  auto ok = DescribeDevDax(root(), "dax0.0");
  ASSERT_TRUE(ok.ok());
  stdfs::remove(region_ / "badblocks");
  EXPECT_FALSE(DevDaxBadBlocks(*ok).ok());
}

// On this machine's own /sys: what can never be a device is refused in one
// line; a regular file or a missing path is left to the emulated layers.
TEST(Classify, NamesWhatAPathIsAndRefusesWhatCanNeverBeADevice) {
  testing::TempDir dir;
  std::string file = dir.File("f");
  std::ofstream(file) << "x";
  auto k = Classify(file);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->kind, RealKind::kNotReal) << "tmpfs and ext4 are not DAX";
  EXPECT_EQ(Classify(dir.File("missing"))->kind, RealKind::kNotReal);
  auto d = Classify(dir.path());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("is not a device file"), std::string::npos);
  auto null = Classify("/dev/null");
  ASSERT_FALSE(null.ok());
  EXPECT_EQ(null.status().message(), "/dev/null is a character device but not a device-dax node (/dev/daxX.Y)");
}

}  // namespace
}  // namespace daxguard::media::sysfs
