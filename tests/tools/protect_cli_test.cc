// mkfs --data-protection from the command line: the protection named and
// shown by health; poison under a file repaired by the next mount that
// hears of it; a stray store found and repaired by scrub DEV:fs; bad input
// refused in one line, changing nothing.
#include "tools/cli_harness.h"

namespace daxguard::testing {
namespace {

using Json = nlohmann::json;

class ProtectCli : public CliHarness {
 protected:
  void SetUp() override {
    CliHarness::SetUp();
    dev_ = Path("pmem0");
    ASSERT_EQ(Dg({"create-device", dev_, "--size", "64m"}).rc, 0);
  }
  // A file of 300,000 bytes at /f, its bytes also in Path("data").
  void PutFile() {
    std::string data(300000, 'x');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 + i / 511);
    std::ofstream(Path("data"), std::ios::binary) << data;
    ASSERT_EQ(Dg({"fs", "put", Path("data"), dev_ + ":/f"}).rc, 0);
  }
  bool FileIntact() {
    std::filesystem::remove(Path("back"));
    if (Dg({"fs", "get", dev_ + ":/f", Path("back")}).rc != 0) return false;
    return Slurp(Path("back")) == Slurp(Path("data"));
  }
  std::string dev_;
};

TEST_F(ProtectCli, MkfsNamesTheProtectionAndHealthShowsIt) {
  CliRun r = Dg({"mkfs", dev_, "--data-protection", "parity"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("data protection parity ("), std::string::npos) << r.out;
  EXPECT_EQ(DgJson({"health", dev_})["data_protection"], "parity");
  ASSERT_EQ(Dg({"mkfs", "-f", dev_, "--data-protection", "checksum"}).rc, 0);
  EXPECT_EQ(DgJson({"health", dev_})["data_protection"], "checksum");
  ASSERT_EQ(Dg({"mkfs", "-f", dev_}).rc, 0);
  EXPECT_EQ(DgJson({"health", dev_})["data_protection"], "none");
}

TEST_F(ProtectCli, AnUnknownProtectionIsRefusedInOneLineAndChangesNothing) {
  ASSERT_EQ(Dg({"mkfs", dev_, "--data-protection", "parity"}).rc, 0);
  PutFile();
  for (const char* bad : {"raid5", "parity=4", ""}) {
    CliRun r = Dg({"mkfs", "-f", dev_, "--data-protection", bad});
    EXPECT_NE(r.rc, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("--data-protection must be none, checksum or parity"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(FileIntact());
  EXPECT_EQ(DgJson({"health", dev_})["data_protection"], "parity");
}

TEST_F(ProtectCli, PoisonUnderAFileIsRebuiltByTheNextMountAndReadsBackIntact) {
  ASSERT_EQ(Dg({"mkfs", dev_, "--data-protection", "parity"}).rc, 0);
  PutFile();
  uint64_t s = SectorOf(dev_ + ":/f", 200 * 512);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", std::to_string(s)}).rc, 0);
  EXPECT_TRUE(FileIntact());
  EXPECT_EQ(DgJson({"list", dev_})["badblock_count"], 0) << "the recovery write cleared it";
  Json h = DgJson({"health", dev_});
  EXPECT_EQ(h["damaged_files"], Json::array());
}

TEST_F(ProtectCli, ScrubOfTheFilesystemFindsAStrayStoreAndRepairsIt) {
  ASSERT_EQ(Dg({"mkfs", dev_, "--data-protection", "parity"}).rc, 0);
  PutFile();
  uint64_t off = SectorOf(dev_ + ":/f", 9000) * 512 + 100;
  ASSERT_EQ(Dg({"io", dev_, "-c", "pwrite -S 0x41 " + std::to_string(off) + " 64"}).rc, 0);
  CliRun r = Dg({"scrub", dev_ + ":fs", "--once"});
  ASSERT_EQ(r.rc, 0) << r.err;
  Json p = Json::parse(r.out);
  EXPECT_EQ(p["filesystem"]["data_protection"], "parity");
  EXPECT_EQ(p["filesystem"]["checksum_mismatches"], 1);
  EXPECT_EQ(p["filesystem"]["repaired_blocks"], 1);
  EXPECT_EQ(p["filesystem"]["unrepaired_blocks"], 0);
  EXPECT_TRUE(FileIntact());
  p = Json::parse(Dg({"scrub", dev_ + ":fs", "--once"}).out);
  EXPECT_EQ(p["filesystem"]["checksum_mismatches"], 0) << "written back the first time";
}

TEST_F(ProtectCli, ScrubOfAFilesystemWithoutChecksumsSaysSo) {
  ASSERT_EQ(Dg({"mkfs", dev_}).rc, 0);
  CliRun r = Dg({"scrub", dev_ + ":fs", "--once"});
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("keeps no checksums"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace daxguard::testing
