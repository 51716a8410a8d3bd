// Device-dax through the command line: a device used whole and by mapping
// only, whose badblocks list (which Linux's device-dax lacks) is shown both
// device-relative and region-relative, and whose errors clear-errors clears
// in either terms.
#include "tools/cli_harness.h"

namespace daxguard::testing {
namespace {

using Json = nlohmann::json;

// The region is the whole device file; the device's data begins 2 MiB in.
constexpr uint64_t kRegionShift = (2u << 20) / 512;

class DevdaxCli : public CliHarness {
 protected:
  // clear-errors' summary (a second line names errors no holder was told of).
  static std::string FirstLine(const std::string& out) { return out.substr(0, out.find('\n') + 1); }
  void SetUp() override {
    CliHarness::SetUp();
    dev_ = Path("dax0");
    CliRun r = Dg({"create-device", dev_, "--size", "64m", "--mode", "devdax", "--align", "2m", "--clear-unit", "4096"});
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  static Json Blocks(std::initializer_list<std::pair<uint64_t, uint64_t>> runs) {
    Json j = Json::array();
    for (auto [off, len] : runs) j.push_back({{"offset", off}, {"length", len}});
    return j;
  }
  Json Injected() { return DgJson({"inject-error", dev_, "-t"})["badblocks"]; }
  std::string Snapshot() { return Dg({"list", dev_, "-M"}).out + Dg({"inject-error", dev_, "-t"}).out; }
  static void ExpectOneLineError(const CliRun& r, const std::string& says) {
    EXPECT_NE(r.rc, 0);
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
  }
  std::string dev_;
};

TEST_F(DevdaxCli, ListShowsBadBlocksDeviceAndRegionRelative) {
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "8", "-n", "2"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "5000"}).rc, 0);
  Json j = DgJson({"list", dev_, "-M"});
  EXPECT_EQ(j["mode"], "devdax");
  EXPECT_EQ(j["align"], 2u << 20);
  EXPECT_EQ(j["region_offset"], kRegionShift * 512);
  EXPECT_EQ(j["badblock_count"], 3);
  EXPECT_EQ(j["badblocks"], Blocks({{8, 2}, {5000, 1}}));
  EXPECT_EQ(j["region_badblocks"], Blocks({{kRegionShift + 8, 2}, {kRegionShift + 5000, 1}}));
  Json plain = DgJson({"list", dev_});
  EXPECT_FALSE(plain.contains("badblocks"));
  EXPECT_FALSE(plain.contains("region_badblocks"));
  // An fsdax device has no region listing.
  ASSERT_EQ(Dg({"create-device", Path("pmem0"), "--size", "8m"}).rc, 0);
  Json f = DgJson({"list", Path("pmem0"), "-M"});
  EXPECT_FALSE(f.contains("region_badblocks"));
  EXPECT_FALSE(f.contains("align"));
}

TEST_F(DevdaxCli, EveryAlignmentIsAccepted) {
  for (auto [align, bytes] : {std::pair<const char*, uint64_t>{"4k", 4096}, {"2m", 2u << 20}, {"1g", 1u << 30}}) {
    std::string path = Path(std::string("dax-") + align);
    CliRun r = Dg({"create-device", path, "--size", "1g", "--mode", "devdax", "--align", align});
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(DgJson({"list", path})["align"], bytes);
  }
}

TEST_F(DevdaxCli, ClearErrorsTakesDeviceOrRegionSectors) {
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "100", "-n", "3"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "9000"}).rc, 0);
  // Region sector 4196 is device sector 100.
  CliRun r = Dg({"clear-errors", dev_, "--region", "-B", std::to_string(kRegionShift + 100), "-n", "3"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(FirstLine(r.out), "cleared 3 bad blocks in 1 ranges on " + dev_ + " (their data now reads as zeroes)\n");
  Json j = DgJson({"list", dev_, "-M"});
  EXPECT_EQ(j["badblocks"], Blocks({{9000, 1}}));
  EXPECT_EQ(j["region_badblocks"], Blocks({{kRegionShift + 9000, 1}}));
  r = Dg({"clear-errors", dev_, "-B", "8990", "-n", "20"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(FirstLine(r.out), "cleared 1 bad blocks in 1 ranges on " + dev_ + " (their data now reads as zeroes)\n");
  EXPECT_EQ(DgJson({"list", dev_, "-M"})["badblock_count"], 0);
  EXPECT_TRUE(Injected().empty());
}

TEST_F(DevdaxCli, ClearErrorsClearsWholeClearUnitsOverTheKnownRanges) {
  // Clear unit 4 KiB: sectors 8..15 are one unit, 16..23 the next.
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "9", "-S"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "12", "-S", "-N"}).rc, 0);  // latent, same unit
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "20", "-S", "-N"}).rc, 0);  // latent, next unit
  CliRun r = Dg({"clear-errors", dev_});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(FirstLine(r.out), "cleared 1 bad blocks in 1 ranges on " + dev_ + " (their data now reads as zeroes)\n");
  EXPECT_EQ(Injected(), Json::parse(R"([{"block": 20, "count": 1}])"))
      << "the unit holding the known error is cleared whole; a unit with only latent poison is not";
  r = Dg({"clear-errors", dev_, "--scrub", "--region", "-B", std::to_string(kRegionShift + 16), "-n", "8"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(Injected().empty());
}

TEST_F(DevdaxCli, UsedWholeAndByMappingOnly) {
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "8"}).rc, 0);
  std::string before = Snapshot();
  ExpectOneLineError(Dg({"mkfs", dev_}), "devdax device (used whole, by mapping only): daxfs needs an fsdax device");
  ExpectOneLineError(Dg({"mkfs", "-f", dev_}), "daxfs needs an fsdax device");
  for (const char* cmd : {"pread 0 4k", "pwrite 0 4k", "zero 0 4k"})
    ExpectOneLineError(Dg({"io", dev_, "-c", cmd}), "is byte I/O; use mmap, mread and mwrite");
  ExpectOneLineError(Dg({"io", "-f", dev_ + ":/f", "-c", "pwrite 0 4k"}), "it holds no filesystem");
  ExpectOneLineError(Dg({"health", dev_}), "it holds no filesystem");
  ExpectOneLineError(Dg({"who", dev_, "--offset", "0"}), "it holds no filesystem");
  ExpectOneLineError(Dg({"fsck", dev_}), "it holds no filesystem");
  ExpectOneLineError(Dg({"dm", "create", Path("s"), "--table", "0 64 linear dax0 0"}),
                     "dax0 is a devdax device (used whole, by mapping only): it cannot be a stack's base");
  EXPECT_FALSE(std::filesystem::exists(Path("s")));
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(DevdaxCli, OptionsOfTheOtherModeAreRefused) {
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "8"}).rc, 0);
  ASSERT_EQ(Dg({"create-device", Path("pmem0"), "--size", "8m"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", Path("pmem0"), "-B", "8"}).rc, 0);
  std::string before = Snapshot() + Dg({"list", Path("pmem0"), "-M"}).out;
  ExpectOneLineError(Dg({"create-device", Path("fs1"), "--size", "8m", "--align", "2m"}),
                     "--align is the fault size of a devdax device; it does not apply to --mode fsdax");
  ExpectOneLineError(Dg({"create-device", Path("fs2"), "--size", "8m", "--mode", "fsdax", "--align", "4k"}),
                     "does not apply to --mode fsdax");
  ExpectOneLineError(Dg({"create-device", Path("dx"), "--size", "8m", "--mode", "devdax", "--align", "64k"}),
                     "alignment must be 4k, 2m or 1g");
  EXPECT_FALSE(std::filesystem::exists(Path("fs1")) || std::filesystem::exists(Path("fs2")) ||
               std::filesystem::exists(Path("dx")));
  ExpectOneLineError(Dg({"clear-errors", Path("pmem0"), "--region", "-B", "4104"}), "is not one");
  ExpectOneLineError(Dg({"clear-errors", dev_, "--region"}), "need -B");
  ExpectOneLineError(Dg({"clear-errors", dev_, "-n", "4"}), "need -B");
  ExpectOneLineError(Dg({"clear-errors", dev_, "--region", "-B", "8"}), "is before the device's data (region sector 4096)");
  ExpectOneLineError(Dg({"clear-errors", dev_, "-B", "131072"}), "reach past the device's last block (131071)");
  ExpectOneLineError(Dg({"clear-errors", dev_, "--region", "-B", "135160", "-n", "16"}),
                     "reach past the device's last block (135167)");
  ExpectOneLineError(Dg({"clear-errors", dev_, "-B", "8", "-n", "0"}), "count must be at least 1");
  EXPECT_EQ(Snapshot() + Dg({"list", Path("pmem0"), "-M"}).out, before);
}

TEST_F(DevdaxCli, MappedInWholeFaultUnitsAndPoisonTakesOutTheUnit) {
  CliRun r = Dg({"io", dev_, "-c", "mmap 2m 2m", "-c", "mwrite -S 0x41 2m 4k", "-c", "mread -v 2m 16"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("00200000:  41 41"), std::string::npos) << r.out;
  ExpectOneLineError(Dg({"io", dev_, "-c", "mmap 4k 4k"}), "must start and end on 2 MiB boundaries");
  // One poisoned sector 1 MiB into the second unit: the whole 2 MiB unit is lost.
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", std::to_string((3u << 20) / 512)}).rc, 0);
  r = Dg({"io", dev_, "-c", "mmap 0 4m", "-c", "mread 0 2m", "-c", "mread 2m 2m"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("mread: media error at offset 2097152 of " + dev_ + ": 2097152 bytes from offset 2097152 are lost"),
            std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("mread:"), r.err.rfind("mread:")) << "the first unit read fine: " << r.err;
}

}  // namespace
}  // namespace daxguard::testing
