// daxguard scrub, the patrol: latent poison found, a raid1 leg's rebuilt on
// the spot and counted as repaired, what no leg holds counted, kept known
// and told to the filesystem mounted next; the rate kept; bad input.
#include "tools/cli_harness.h"

#include <unistd.h>

#include "common/recording_holder.h"
#include "dm/open.h"

namespace daxguard::testing {
namespace {

using Json = nlohmann::json;

class PatrolCli : public CliHarness {
 protected:
  Json Pass(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"scrub", dev_, "--once"};
    args.insert(args.end(), extra.begin(), extra.end());
    CliRun r = Dg(args);
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    return r.rc == 0 ? Json::parse(r.out) : Json{};
  }
  void Latent(const std::string& dev, uint64_t sector) {
    ASSERT_EQ(Dg({"inject-error", Path(dev), "-B", std::to_string(sector), "-N"}).rc, 0);
  }
  std::string dev_;
};

TEST_F(PatrolCli, FindsLatentPoisonOnADeviceAndCountsIt) {
  dev_ = Path("pmem0");
  ASSERT_EQ(Dg({"create-device", dev_, "--size", "64m"}).rc, 0);
  Latent("pmem0", 100);
  Latent("pmem0", 101);
  Latent("pmem0", 9000);
  Json p = Pass();
  EXPECT_EQ(p["pass"], 1);
  EXPECT_EQ(p["bytes"], 64u << 20);
  EXPECT_EQ(p["found"], 3);
  EXPECT_EQ(p["repaired"], 0) << "nothing holds a second copy";
  EXPECT_EQ(p["unrepaired"], 3);
  EXPECT_EQ(p["badblocks"], Json::parse(R"([{"offset":100,"length":2},{"offset":9000,"length":1}])"));
  EXPECT_EQ(DgJson({"list", dev_})["badblock_count"], 3);
  p = Pass();
  EXPECT_EQ(p["found"], 0) << "known already";
  EXPECT_EQ(p["unrepaired"], 0);
}

// A raid1 stack nobody holds: the patrol holds it, so a leg's poison is
// rebuilt from the other as it is found; poison on both legs stays, and
// the filesystem mounted next hears of it and names the file.
TEST_F(PatrolCli, RebuildsAMirrorsLegsAndLeavesOnlyWhatNoLegHolds) {
  for (const char* d : {"d0", "d1"}) ASSERT_EQ(Dg({"create-device", Path(d), "--size", "40m"}).rc, 0);
  dev_ = Path("m");
  ASSERT_EQ(Dg({"dm", "create", dev_, "--table", "0 65536 raid1 2 d0 0 d1 8192"}).rc, 0);
  ASSERT_EQ(Dg({"mkfs", dev_}).rc, 0);
  std::string data(300000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 + i / 511);
  std::ofstream(Path("data"), std::ios::binary) << data;
  ASSERT_EQ(Dg({"fs", "put", Path("data"), dev_ + ":/f"}).rc, 0);
  uint64_t s = SectorOf(dev_ + ":/f", 100 * 512);
  Latent("d0", s);             // under the file, on one leg
  Latent("d1", 8192 + 60000);  // free space, on one leg
  Latent("d0", s + 40);        // under the file, on both legs
  Latent("d1", 8192 + s + 40);
  Json p = Pass();
  EXPECT_EQ(p["found"], 4);
  EXPECT_EQ(p["repaired"], 2);
  EXPECT_EQ(p["unrepaired"], 1);
  EXPECT_EQ(p["badblocks"], Json::parse("[{\"offset\":" + std::to_string(s + 40) + ",\"length\":1}]"));
  EXPECT_NE(Dg({"dm", "status", dev_}).out.find("leg_badblocks=1,1"), std::string::npos);
  Json health = DgJson({"health", dev_});
  ASSERT_EQ(health["damaged_files"].size(), 1u) << health.dump();
  EXPECT_EQ(health["damaged_files"][0]["damaged"],
            Json::parse("[{\"offset\":" + std::to_string(140 * 512) + ",\"length\":512}]"));
  CliRun back = Dg({"fs", "get", dev_ + ":/f", Path("back")});
  EXPECT_NE(back.rc, 0);
}

// A device another process holds (a mount): the patrol runs beside it, and
// the holder hears of what it finds.
TEST_F(PatrolCli, RunsBesideTheDevicesHolder) {
  dev_ = Path("pmem0");
  ASSERT_EQ(Dg({"create-device", dev_, "--size", "64m"}).rc, 0);
  auto held = dm::OpenDaxDevice(dev_);
  ASSERT_TRUE(held.ok());
  RecordingHolder h;
  ASSERT_TRUE(h.RegisterWith(**held).ok());
  Latent("pmem0", 700);
  EXPECT_EQ(Pass()["found"], 1);
  ASSERT_TRUE(h.WaitForCount(1));
  EXPECT_EQ(h.Calls().front(), (Call{700 * 512, 512, 0}));
}

TEST_F(PatrolCli, KeepsTheRateAndRefusesBadInput) {
  dev_ = Path("pmem0");
  ASSERT_EQ(Dg({"create-device", dev_, "--size", "128m"}).rc, 0);
  // 134 MB at 400 MB/s: a third of a second at least, however fast the media.
  Json p = Pass({"--rate", "400"});
  EXPECT_GE(p["seconds"].get<double>(), 0.3);
  EXPECT_LE(p["rate_mb_s"].get<double>(), 450);
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"scrub", dev_, "--once", "--rate", "-1"}, {"scrub", Path("nothere"), "--once"}, {"scrub"}}) {
    CliRun r = Dg(bad);
    EXPECT_NE(r.rc, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace daxguard::testing
