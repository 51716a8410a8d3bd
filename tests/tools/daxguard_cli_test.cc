// Drives the daxguard binary as a user would and checks what it prints, its
// exit codes, and that bad input leaves the device untouched.
#include "tools/cli_harness.h"

#include <cstring>
#include <fstream>

#include "media/layout.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using CmdResult = daxguard::testing::CliRun;
using daxguard::testing::CliHarness;

class Cli : public CliHarness {
 protected:
  void SetUp() override {
    CliHarness::SetUp();
    dev_ = Path("pmem0");
  }

  Json List() {
    CmdResult r = Dg({"list", dev_, "--media-errors"});
    EXPECT_EQ(r.rc, 0) << r.err;
    return Json::parse(r.out);
  }
  void Create(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"create-device", dev_, "--size", "64m"};
    args.insert(args.end(), extra.begin(), extra.end());
    CmdResult r = Dg(args);
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  // Everything a user can observe about the device, to prove "nothing changed".
  // Timing lines are dropped; they differ from run to run.
  std::string Snapshot() {
    std::string all = Dg({"list", dev_, "-M"}).out + Dg({"inject-error", dev_, "-t"}).out +
                      Dg({"io", dev_, "-c", "pread -v 0 8k"}).out;
    std::istringstream in(all);
    std::string kept;
    for (std::string line; std::getline(in, line);)
      if (line.find(" ops; ") == std::string::npos) kept += line + "\n";
    return kept;
  }
  void ExpectOneLineError(const CmdResult& r) {
    EXPECT_NE(r.rc, 0);
    EXPECT_TRUE(r.out.empty()) << r.out;
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  }

  std::string dev_;
};

TEST_F(Cli, CreateAndListInNdctlShape) {
  Create({"--clear-unit", "512"});
  Json j = List();
  EXPECT_EQ(j["size"], 64u << 20);
  EXPECT_EQ(j["clear_unit"], 512);
  EXPECT_EQ(j["mode"], "fsdax");
  EXPECT_EQ(j["scrub_state"], "idle");
  EXPECT_EQ(j["badblock_count"], 0);
  EXPECT_TRUE(j["badblocks"].is_array());
  // The file is sparse: creating 64 MiB allocates almost nothing.
  EXPECT_LT(fs::file_size(dev_), 80u << 20);
}

TEST_F(Cli, InjectListsSectorsAndStatusAndUninjectKeepsRecords) {
  Create();
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "8", "-n", "2"}).rc, 0);
  Json j = List();
  EXPECT_EQ(j["badblock_count"], 2);
  ASSERT_EQ(j["badblocks"].size(), 1u);
  EXPECT_EQ(j["badblocks"][0]["offset"], 8);
  EXPECT_EQ(j["badblocks"][0]["length"], 2);

  Json st = Json::parse(Dg({"inject-error", dev_, "--status"}).out);
  ASSERT_EQ(st["badblocks"].size(), 1u);
  EXPECT_EQ(st["badblocks"][0]["block"], 8);
  EXPECT_EQ(st["badblocks"][0]["count"], 2);

  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "8", "-n", "2", "--uninject"}).rc, 0);
  EXPECT_TRUE(Json::parse(Dg({"inject-error", dev_, "-t"}).out)["badblocks"].empty());
  EXPECT_EQ(List()["badblock_count"], 2) << "uninject must not drop known bad blocks";
}

TEST_F(Cli, LatentErrorFoundByScrub) {
  Create();
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "100", "-N"}).rc, 0);
  EXPECT_EQ(List()["badblock_count"], 0);
  CmdResult r = Dg({"start-scrub", dev_, "--wait"});
  ASSERT_EQ(r.rc, 0) << r.err;
  Json s = Json::parse(r.out);
  EXPECT_EQ(s["scrub_state"], "idle");
  EXPECT_EQ(s["scrub_count"], 1);
  Json j = List();
  EXPECT_EQ(j["badblock_count"], 1);
  EXPECT_EQ(j["badblocks"][0]["offset"], 100);
  EXPECT_EQ(Json::parse(Dg({"wait-scrub", dev_}).out)["scrub_count"], 1);
}

TEST_F(Cli, LatentErrorFoundByConsumption) {
  Create();
  ASSERT_EQ(Dg({"io", dev_, "-c", "pwrite -S 0x5a 0 16k"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "17", "-N"}).rc, 0);  // 8.5 KiB in
  CmdResult r = Dg({"io", dev_, "-c", "pread 0 16k"});
  EXPECT_NE(r.rc, 0);
  // The copy stops at the first poisoned line, inside the third page.
  EXPECT_NE(r.out.find("read 8704/16384 bytes at offset 0"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("pread: Input/output error"), std::string::npos) << r.err;
  Json j = List();
  EXPECT_EQ(j["badblock_count"], 1);
  // Now known: the whole page is refused up front.
  r = Dg({"io", dev_, "-c", "pread 8k 4k"});
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(r.err, "pread: Input/output error\n");
}

TEST_F(Cli, IoPrintsLikeXfsIo) {
  Create();
  CmdResult r = Dg({"io", dev_, "-c", "pwrite -S 0x41 0 4k", "-c", "pread -v 0 32"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("wrote 4096/4096 bytes at offset 0\n4 KiB, 1 ops; "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("00000000:  41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41  AAAAAAAAAAAAAAAA\n"
                       "00000010:  41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41  AAAAAAAAAAAAAAAA\n"
                       "read 32/32 bytes at offset 0\n"),
            std::string::npos)
      << r.out;
}

TEST_F(Cli, PwriteOverPoisonTakesRecoveryPathOnlyForWholePages) {
  Create();
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "16"}).rc, 0);  // page 2
  CmdResult partial = Dg({"io", dev_, "-c", "pwrite 8192 512"});
  EXPECT_NE(partial.rc, 0);
  EXPECT_EQ(partial.err, "pwrite: Input/output error\n");
  EXPECT_EQ(List()["badblock_count"], 1);

  CmdResult whole = Dg({"io", dev_, "-c", "pwrite -S 0x77 8192 4096", "-c", "pread -v 8192 16"});
  ASSERT_EQ(whole.rc, 0) << whole.err;
  EXPECT_NE(whole.out.find("00002000:  77 77"), std::string::npos) << whole.out;
  EXPECT_EQ(List()["badblock_count"], 0);
}

TEST_F(Cli, ZeroClearsPoisonAndMisalignedZeroIsRefused) {
  Create();
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "8", "-S"}).rc, 0);
  std::string before = Snapshot();
  ExpectOneLineError(Dg({"io", dev_, "-c", "zero 4096 100"}));
  EXPECT_EQ(Snapshot(), before);
  ASSERT_EQ(Dg({"io", dev_, "-c", "zero 4096 4096"}).rc, 0);
  EXPECT_EQ(List()["badblock_count"], 0);
  EXPECT_TRUE(Json::parse(Dg({"inject-error", dev_, "-t"}).out)["badblocks"].empty());
}

TEST_F(Cli, ClearErrorsWithScrubClearsLatentAndKnown) {
  Create();
  ASSERT_EQ(Dg({"io", dev_, "-c", "pwrite 0 64k"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "3"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "40", "-N"}).rc, 0);
  CmdResult r = Dg({"clear-errors", dev_, "--scrub"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(List()["badblock_count"], 0);
  CmdResult read = Dg({"io", dev_, "-c", "pread -v 1536 16", "-c", "pread 0 64k"});
  EXPECT_EQ(read.rc, 0) << read.err;
  EXPECT_NE(read.out.find("00000600:  00 00"), std::string::npos) << "cleared lines read as zeroes";
}

TEST_F(Cli, CxlListsMediaErrorsWithSource) {
  Create({"--kind", "cxl"});
  EXPECT_EQ(List()["clear_unit"], 64);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "2"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "9", "--source", "internal", "-N"}).rc, 0);
  Json me = List()["media_errors"];
  ASSERT_EQ(me.size(), 2u);
  EXPECT_EQ(me[0]["offset"], 1024);
  EXPECT_EQ(me[0]["length"], 64);
  EXPECT_EQ(me[0]["source"], "Injected");
  EXPECT_EQ(me[1]["offset"], 9 * 512);
  EXPECT_EQ(me[1]["source"], "Internal");
  ExpectOneLineError(Dg({"create-device", (dir_ / "c2").string(), "--size", "1m", "--kind", "cxl",
                         "--clear-unit", "256"}));
}

TEST_F(Cli, BadInputFailsWithOneLineAndChangesNothing) {
  Create();
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "4"}).rc, 0);
  std::string before = Snapshot();
  const std::vector<std::vector<std::string>> bad = {
      {"inject-error", dev_, "-B", "999999999"},
      {"inject-error", dev_, "-B", "12x"},
      {"inject-error", dev_, "-B", "1", "-n", "0"},
      {"inject-error", dev_, "-B", "1", "--source", "cosmic"},
      {"io", dev_, "-c", "pwrite 0 4k", "-c", "bogus 1 2"},
      {"io", dev_, "-c", "pwrite 0 4k", "-c", "pread 64m 1"},
      {"io", dev_, "-c", "pwrite -S 300 0 4k"},
      {"list", (dir_ / "missing").string()},
      {"io", (dir_ / "missing").string(), "-c", "pread 0 1"},
      {"create-device", (dir_ / "tiny").string(), "--size", "4k"},
      {"create-device", (dir_ / "odd").string(), "--size", "1m", "--clear-unit", "100"},
      {"create-device", dev_, "--size", "1m"},
      {"frobnicate", dev_},
      {"inject-error"},
  };
  for (const auto& args : bad) {
    SCOPED_TRACE(args[0] + (args.size() > 2 ? " " + args[2] : ""));
    ExpectOneLineError(Dg(args));
    EXPECT_EQ(Snapshot(), before);
  }
  EXPECT_FALSE(fs::exists(dir_ / "tiny"));
  EXPECT_FALSE(fs::exists(dir_ / "odd"));
}

TEST_F(Cli, CorruptImageIsRefused) {
  {
    std::ofstream f(dir_ / "junk");
    f << std::string(8192, 'x');
  }
  CmdResult r = Dg({"list", (dir_ / "junk").string()});
  ExpectOneLineError(r);
  EXPECT_NE(r.err.find("not a daxguard device"), std::string::npos) << r.err;
  Create();
  fs::resize_file(dev_, 1 << 20);  // truncated
  r = Dg({"list", dev_});
  ExpectOneLineError(r);
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
}

// A flipped bit in the badblocks table's entry count: every command that
// opens the device says so in one line, and nothing is written.
TEST_F(Cli, DamagedErrorTableIsRefused) {
  ASSERT_EQ(Dg({"create-device", dev_, "--size", "4m"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "8"}).rc, 0);
  std::string image = Slurp(dev_);
  daxguard::media::Header h;
  std::memcpy(&h, image.data(), sizeof h);
  uint64_t at = h.geo.badblocks_off + 8 + 7;  // the entry count's top byte
  image[at] ^= 1;
  {
    std::fstream f(dev_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(image[at]);
  }
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"list", dev_}, {"inject-error", dev_, "-B", "9"}, {"io", dev_, "-c", "pread 0 4k"}}) {
    SCOPED_TRACE(args[0]);
    CmdResult r = Dg(args);
    ExpectOneLineError(r);
    EXPECT_NE(r.err.find(dev_ + ": device file damaged: badblocks table: entry count"), std::string::npos) << r.err;
    EXPECT_TRUE(Slurp(dev_) == image);
  }
}

TEST_F(Cli, DemoWalksTheLifecycle) {
  CmdResult r = Dg({"demo", (dir_ / "var" / "demo.dev").string()});
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* want : {"holder notified: media failure", "-> 8192 bytes", "refused",
                           "PRE_REMOVE", "badblocks: none",
                           "media error at offset 1048576 of /db/table: 4096 bytes from offset 1048576 are lost"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  // A second run on the same device works too.
  EXPECT_EQ(Dg({"demo", (dir_ / "var" / "demo.dev").string()}).rc, 0);
}

}  // namespace
