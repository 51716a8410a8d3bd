// daxfs on a raid1 stack through the command line: poison on one leg under
// a file is rebuilt from the other when the filesystem is mounted, and the
// file reads back intact with no damage recorded; poison on both legs at
// once is the file's loss, named by health as on any device.
#include "tools/cli_harness.h"

#include <unistd.h>

#include "common/recording_holder.h"
#include "dm/open.h"

namespace daxguard::testing {
namespace {

using Json = nlohmann::json;

class Raid1Cli : public CliHarness {
 protected:
  // m: 32 MiB mirrored on d0 from sector 0 and d1 from sector 8192.
  void SetUp() override {
    CliHarness::SetUp();
    for (const char* d : {"d0", "d1"}) ASSERT_EQ(Dg({"create-device", Path(d), "--size", "40m"}).rc, 0);
    CliRun r = Dg({"dm", "create", Path("m"), "--table", "0 65536 raid1 2 d0 0 d1 8192"});
    ASSERT_EQ(r.rc, 0) << r.err;
    ASSERT_EQ(Dg({"mkfs", Path("m")}).rc, 0);
    std::string data(300000, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 997);
    std::ofstream(Path("data"), std::ios::binary) << data;
    ASSERT_EQ(Dg({"fs", "put", Path("data"), F("/f")}).rc, 0);
  }
  std::string F(const std::string& p) { return Path("m") + ":" + p; }
  std::string Status() { return Dg({"dm", "status", Path("m")}).out; }
  bool ReadsBackIntact() {
    CliRun r = Dg({"fs", "get", F("/f"), Path("back")});
    return r.rc == 0 && Slurp(Path("back")) == Slurp(Path("data"));
  }
};

TEST_F(Raid1Cli, APoisonedLegIsRebuiltAndTheFileKept) {
  uint64_t sector = SectorOf(F("/f"), 100000);
  ASSERT_EQ(Dg({"inject-error", Path("d0"), "-B", std::to_string(sector)}).rc, 0);
  EXPECT_NE(Status().find("leg_badblocks=1,0"), std::string::npos) << Status();
  EXPECT_TRUE(ReadsBackIntact());
  EXPECT_NE(Status().find("leg_badblocks=0,0"), std::string::npos) << "not rebuilt: " << Status();
  Json health = DgJson({"health", Path("m")});
  EXPECT_TRUE(health["damaged_files"].empty()) << health.dump();
  // The other leg too, later and elsewhere: rebuilt from the first.
  uint64_t sector2 = SectorOf(F("/f"), 200000);
  ASSERT_EQ(Dg({"inject-error", Path("d1"), "-B", std::to_string(8192 + sector2)}).rc, 0);
  EXPECT_TRUE(ReadsBackIntact());
  EXPECT_NE(Status().find("leg_badblocks=0,0"), std::string::npos) << Status();
}

TEST_F(Raid1Cli, PoisonOnEveryLegIsTheFilesLoss) {
  uint64_t sector = SectorOf(F("/f"), 100000);
  ASSERT_EQ(Dg({"inject-error", Path("d0"), "-B", std::to_string(sector)}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", Path("d1"), "-B", std::to_string(8192 + sector)}).rc, 0);
  CliRun r = Dg({"fs", "get", F("/f"), Path("back")});
  EXPECT_NE(r.rc, 0);
  Json health = DgJson({"health", Path("m")});
  ASSERT_EQ(health["damaged_files"].size(), 1u) << health.dump();
  EXPECT_EQ(health["damaged_files"][0]["path"], "/f");
  EXPECT_NE(Status().find("badblocks=" + std::to_string(sector) + "+1"), std::string::npos) << Status();
}

// dm replace: a leg whose device is gone moves to a new device and is
// resynced; bad input changes nothing.
TEST_F(Raid1Cli, ALostLegIsReplacedAndTheFileKept) {
  std::string table = Slurp(Path("m"));
  ASSERT_EQ(Dg({"create-device", Path("d2"), "--size", "40m"}).rc, 0);
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"dm", "replace", Path("m"), Path("nothere"), Path("d2")},
           {"dm", "replace", Path("m"), Path("d0"), Path("missing")},
           {"dm", "replace", Path("m"), Path("d0"), Path("d2"), "--offset", "3"},
           {"dm", "replace", Path("m"), Path("d0"), Path("d2"), "--offset", "81920"},
           {"dm", "replace", Path("data"), Path("d0"), Path("d2")}}) {
    CliRun r = Dg(bad);
    EXPECT_NE(r.rc, 0) << bad[3] << " " << bad[4];
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(Slurp(Path("m")), table) << r.err;
  }
  {  // held (as a mount holds it): refused
    auto held = dm::OpenDaxDevice(Path("m"));
    ASSERT_TRUE(held.ok());
    RecordingHolder h;
    ASSERT_TRUE(h.RegisterWith(**held).ok());
    CliRun r = Dg({"dm", "replace", Path("m"), Path("d0"), Path("d2")});
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.err.find("held by process " + std::to_string(getpid())), std::string::npos) << r.err;
    EXPECT_EQ(Slurp(Path("m")), table);
  }
  ASSERT_EQ(unlink(Path("d0").c_str()), 0);
  EXPECT_NE(Dg({"fs", "get", F("/f"), Path("back")}).rc, 0) << "a mirror missing a leg does not open";
  CliRun r = Dg({"dm", "replace", Path("m"), Path("d0"), Path("d2")});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, Path("m") + ": 1 leg(s) moved from " + Path("d0") + " to " + Path("d2") +
                       ", 65536 sectors resynced, lost=-\n");
  EXPECT_EQ(Dg({"dm", "table", Path("m")}).out, "0 65536 raid1 2 " + Path("d2") + " 0 d1 8192\n");
  EXPECT_TRUE(ReadsBackIntact());
  EXPECT_FALSE(std::filesystem::exists(Path(".m.replace")));
  // The new leg serves reads alone: d1 poisoned under the file is rebuilt.
  uint64_t sector = SectorOf(F("/f"), 100000);
  ASSERT_EQ(Dg({"inject-error", Path("d1"), "-B", std::to_string(8192 + sector)}).rc, 0);
  EXPECT_TRUE(ReadsBackIntact());
  EXPECT_NE(Status().find("leg_badblocks=0,0"), std::string::npos) << Status();
}

// dm fail: a mirror whose leg is gone runs degraded on the other (the
// filesystem reads and writes), the last leg cannot be failed, and
// `dm replace STACK - NEW` puts a device where the missing leg was.
TEST_F(Raid1Cli, ALegFailedRunsDegradedUntilReplaced) {
  ASSERT_EQ(unlink(Path("d0").c_str()), 0);
  CliRun gone = Dg({"fs", "get", F("/f"), Path("back")});
  EXPECT_NE(gone.rc, 0);
  EXPECT_NE(gone.err.find("dm fail"), std::string::npos) << "no hint: " << gone.err;
  EXPECT_NE(Dg({"dm", "fail", Path("m"), Path("d9")}).rc, 0);
  CliRun r = Dg({"dm", "fail", Path("m"), Path("d0")});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Dg({"dm", "table", Path("m")}).out, "0 65536 raid1 2 - 0 d1 8192\n");
  EXPECT_NE(Status().find("leg_badblocks=0 missing_legs=1"), std::string::npos) << Status();
  EXPECT_TRUE(ReadsBackIntact());
  ASSERT_EQ(Dg({"fs", "put", Path("data"), F("/g")}).rc, 0) << "degraded, it takes writes";
  std::string table = Slurp(Path("m"));
  CliRun last = Dg({"dm", "fail", Path("m"), Path("d1")});
  EXPECT_NE(last.rc, 0);
  EXPECT_NE(last.err.find("at least one leg"), std::string::npos) << last.err;
  EXPECT_EQ(Slurp(Path("m")), table);
  ASSERT_EQ(Dg({"create-device", Path("d2"), "--size", "40m"}).rc, 0);
  r = Dg({"dm", "replace", Path("m"), "-", Path("d2"), "--offset", "8"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(Status().find("leg_badblocks=0,0"), std::string::npos) << Status();
  EXPECT_EQ(Status().find("missing_legs"), std::string::npos) << Status();
  // d1 poisoned under /g: the new leg gives it back.
  uint64_t sector = SectorOf(F("/g"), 100000);
  ASSERT_EQ(Dg({"inject-error", Path("d1"), "-B", std::to_string(8192 + sector)}).rc, 0);
  CliRun g = Dg({"fs", "get", F("/g"), Path("back")});
  EXPECT_EQ(g.rc, 0) << g.err;
  EXPECT_EQ(Slurp(Path("back")), Slurp(Path("data")));
  EXPECT_NE(Dg({"fsck", Path("m")}).out.find(" 0 problem(s)"), std::string::npos);
}

}  // namespace
}  // namespace daxguard::testing
