// daxguard monitor, run in the background as a log collector would run it,
// while other daxguard commands change the device.
#include "tools/cli_harness.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

namespace {

using daxguard::testing::CliHarness;
using Json = nlohmann::json;

class MonitorCli : public CliHarness {
 protected:
  // Starts `monitor DEV` in the background; returns once it watches.
  void Start(const std::string& dev) {
    std::string cmd = std::string(DAXGUARD_BIN) + " monitor '" + dev + "' --timeout 60 >" + Path("events") + " 2>" +
                      Path("monitor.err") + " & echo $! >" + Path("monitor.pid");
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    ASSERT_TRUE(WaitFor([&] { return Slurp(Path("monitor.err")).find("watching") != std::string::npos; }))
        << Slurp(Path("monitor.err"));
  }
  void TearDown() override {
    std::string pid = Slurp(Path("monitor.pid"));
    if (!pid.empty()) kill(std::stoi(pid), SIGTERM);
    CliHarness::TearDown();
  }
  // The events printed, once there are `n` of them (or after 30 s).
  std::vector<Json> Events(size_t n) {
    std::vector<Json> out;
    WaitFor([&] {
      out.clear();
      std::istringstream in(Slurp(Path("events")));
      for (std::string line; std::getline(in, line);) out.push_back(Json::parse(line));
      return out.size() >= n;
    });
    return out;
  }
  static bool WaitFor(const std::function<bool()>& ok) {
    for (int i = 0; i < 3000; ++i) {
      if (ok()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  static std::string Name(const Json& e) { return e["event"].begin().key(); }
  // A 64 MiB device, a filesystem with parity, and /f: 64 KiB, also in Path("data").
  void MakeParityFsWithFile(const std::string& dev) {
    ASSERT_EQ(Dg({"create-device", dev, "--size", "64M"}).rc, 0);
    ASSERT_EQ(Dg({"mkfs", dev, "--data-protection", "parity"}).rc, 0);
    std::ofstream(Path("data"), std::ios::binary) << std::string(64 << 10, 'x');
    ASSERT_EQ(Dg({"fs", "put", Path("data"), dev + ":/f"}).rc, 0);
  }
};

TEST_F(MonitorCli, PrintsEachErrorFoundClearedAndEachScrub) {
  std::string dev = Path("pmem0");
  ASSERT_EQ(Dg({"create-device", dev, "--size", "64M"}).rc, 0);
  Start(dev);
  ASSERT_EQ(Dg({"inject-error", dev, "-B", "100", "-n", "3"}).rc, 0);
  std::vector<Json> ev = Events(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(Name(ev[0]), "media-error-found");
  EXPECT_EQ(ev[0]["badblocks"], Json::parse(R"([{"offset":100,"length":3}])"));
  EXPECT_EQ(ev[0]["dev"], dev);
  EXPECT_GT(ev[0]["pid"].get<int>(), 0);
  EXPECT_NE(ev[0]["timestamp"].get<std::string>().find('.'), std::string::npos);
  ASSERT_EQ(Dg({"inject-error", dev, "-B", "200", "-N"}).rc, 0);  // latent: only the scrub finds it
  ASSERT_EQ(Dg({"start-scrub", dev, "--wait"}).rc, 0);
  // the scrub's find and its end (it may have started and ended between looks)
  ev = Events(3);
  ASSERT_GE(ev.size(), 3u);
  size_t next = Name(ev[1]) == "scrub-started" ? 2 : 1;
  ev = Events(next + 2);
  ASSERT_EQ(ev.size(), next + 2) << Slurp(Path("events"));
  EXPECT_EQ(Name(ev[next]), "media-error-found");
  EXPECT_EQ(ev[next]["badblocks"], Json::parse(R"([{"offset":200,"length":1}])"));
  EXPECT_EQ(Name(ev[next + 1]), "scrub-finished");
  EXPECT_EQ(ev[next + 1]["scrub_count"], 1);
  ASSERT_EQ(Dg({"clear-errors", dev, "-B", "96", "-n", "8"}).rc, 0);
  ev = Events(next + 3);
  ASSERT_EQ(ev.size(), next + 3) << Slurp(Path("events"));
  EXPECT_EQ(Name(ev[next + 2]), "media-error-cleared");
  EXPECT_EQ(ev[next + 2]["badblocks"], Json::parse(R"([{"offset":100,"length":3}])"));
}

// A stack's events are in its own sectors, from whichever device below.
TEST_F(MonitorCli, AStackSpeaksInItsOwnSectors) {
  for (const char* d : {"d0", "d1"}) ASSERT_EQ(Dg({"create-device", Path(d), "--size", "64M"}).rc, 0);
  std::string stack = Path("stack");
  ASSERT_EQ(Dg({"dm", "create", stack, "--table", "0 131072 linear d0 0", "--table", "131072 131072 linear d1 0"}).rc,
            0);
  Start(stack);
  ASSERT_EQ(Dg({"inject-error", Path("d1"), "-B", "8"}).rc, 0);
  std::vector<Json> ev = Events(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(Name(ev[0]), "media-error-found");
  EXPECT_EQ(ev[0]["badblocks"], Json::parse(R"([{"offset":131080,"length":1}])"));
}

TEST_F(MonitorCli, MistakesGetOneLine) {
  auto r = Dg({"monitor", Path("missing")});
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  ASSERT_EQ(Dg({"create-device", Path("pmem0"), "--size", "64M"}).rc, 0);
  r = Dg({"monitor", Path("pmem0"), "--timeout", "-1"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--timeout"), std::string::npos) << r.err;
  r = Dg({"monitor", Path("pmem0"), "--timeout", "0.2"});  // nothing happens: no event, exit 0
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

// What the filesystem did about each error, told by the process that held
// it (here: each daxguard command that mounts it) as it happened.
TEST_F(MonitorCli, PrintsEachRepairEachLossAndEachQuarantine) {
  std::string dev = Path("pmem0");
  ASSERT_NO_FATAL_FAILURE(MakeParityFsWithFile(dev));
  uint64_t one = SectorOf(dev + ":/f", 8192), two = SectorOf(dev + ":/f", 4 * 4096);
  uint64_t free_sector = 90000;  // 44 MiB in: neither the file, metadata nor the parity area
  ASSERT_EQ(DgJson({"who", dev, "--offset", std::to_string(free_sector * 512)})[0]["owner"], "free");
  Start(dev);
  // One strip of a block: rebuilt from parity by the next mount.
  ASSERT_EQ(Dg({"inject-error", dev, "-B", std::to_string(one)}).rc, 0);
  ASSERT_EQ(Dg({"fs", "get", dev + ":/f", Path("back")}).rc, 0);
  EXPECT_EQ(Slurp(Path("back")), Slurp(Path("data")));
  // Two strips of one block: the file's bytes there are gone. Free space: quarantined.
  ASSERT_EQ(Dg({"inject-error", dev, "-B", std::to_string(two + 1), "-n", "2"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev, "-B", std::to_string(free_sector)}).rc, 0);
  (void)Dg({"health", dev});
  auto find = [&](const std::vector<Json>& ev, const std::string& name) -> Json {
    for (const Json& e : ev)
      if (Name(e) == name) return e;
    return nullptr;
  };
  std::vector<Json> ev;
  ASSERT_TRUE(WaitFor([&] {
    ev = Events(0);
    return !find(ev, "media-error-repaired").is_null() && !find(ev, "media-error-unrepairable").is_null() &&
           !find(ev, "media-error-quarantined").is_null();
  })) << Slurp(Path("events"));
  Json rep = find(ev, "media-error-repaired");
  EXPECT_EQ(rep["offset"], one * 512 / 4096 * 4096);
  EXPECT_EQ(rep["length"], 4096);
  EXPECT_EQ(rep["cause"], "poison");
  EXPECT_EQ(rep["source"], "parity");
  EXPECT_EQ(rep["dev"], dev);
  EXPECT_GT(rep["holder_pid"].get<int>(), 0);
  Json lost = find(ev, "media-error-unrepairable");
  EXPECT_EQ(lost["path"], "/f");
  EXPECT_EQ(lost["file_offset"].get<uint64_t>() / 4096, 4u);
  Json q = find(ev, "media-error-quarantined");
  EXPECT_EQ(q["offset"], free_sector * 512 / 4096 * 4096);
  EXPECT_EQ(q["length"], 4096);
}

// scrub DEV:fs: the media pass as the media's scrub, the checksum pass as
// fs-scrub events, its counts in the last.
TEST_F(MonitorCli, PrintsTheFilesystemPatrolsStartProgressAndEnd) {
  std::string dev = Path("pmem0");
  ASSERT_NO_FATAL_FAILURE(MakeParityFsWithFile(dev));
  uint64_t off = SectorOf(dev + ":/f", 9000) * 512 + 100;
  ASSERT_EQ(Dg({"io", dev, "-c", "pwrite -S 0x41 " + std::to_string(off) + " 64"}).rc, 0);  // a stray store
  Start(dev);
  ASSERT_EQ(Dg({"scrub", dev + ":fs", "--once", "--rate", "200"}).rc, 0);
  std::vector<Json> ev;
  ASSERT_TRUE(WaitFor([&] {
    ev = Events(0);
    return !ev.empty() && Name(ev.back()) == "fs-scrub-finished";
  })) << Slurp(Path("events"));
  std::vector<std::string> names;
  for (const Json& e : ev) names.push_back(Name(e));
  auto at = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) - names.begin(); };
  EXPECT_LT(at("scrub-finished"), at("fs-scrub-started")) << "the media pass first";
  EXPECT_LT(at("fs-scrub-started"), at("fs-scrub-progress"));
  EXPECT_LT(at("media-error-repaired"), static_cast<long>(names.size()) - 1);
  EXPECT_EQ(ev[at("media-error-repaired")]["cause"], "checksum mismatch");
  Json end = ev.back();
  EXPECT_EQ(end["repaired_blocks"], 1);
  EXPECT_EQ(end["unrepaired_blocks"], 0);
  EXPECT_EQ(end["checksum_mismatches"], 1);
  EXPECT_GT(end["blocks"].get<uint64_t>(), 10000u);
}

}  // namespace
