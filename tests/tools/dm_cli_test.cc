// Drives `daxguard dm` and the device commands on stack files as a user
// would: a three-level stack (striped over linear over two device files,
// with an error segment at the end), listed, injected, read and written in
// the stack's own sectors.
#include "tools/cli_harness.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using CmdResult = daxguard::testing::CliRun;
using daxguard::testing::CliHarness;

class DmCli : public CliHarness {
 protected:
  // top: sectors 0..32767 in chunks of 16, even chunks on l0, odd on l1;
  // then 8192 sectors of error target.  l0 = d0 from sector 8192, l1 = d1.
  void SetUp() override {
    CliHarness::SetUp();
    for (const char* d : {"d0", "d1"}) ASSERT_EQ(Dg({"create-device", P(d), "--size", "16m"}).rc, 0);
    ASSERT_EQ(Dg({"dm", "create", P("l0"), "--table", "0 16384 linear d0 8192"}).rc, 0);
    ASSERT_EQ(Dg({"dm", "create", P("l1"), "--table", "0 16384 linear d1 0"}).rc, 0);
    CmdResult r = Dg({"dm", "create", P("top"), "--table", "0 32768 striped 2 16 l0 0 l1 0", "--table",
                      "32768 8192 error"});
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(r.out.empty() && r.err.empty()) << r.out << r.err;
  }

  std::string P(const std::string& name) const { return (dir_ / name).string(); }
  Json List(const std::string& name) {
    CmdResult r = Dg({"list", P(name), "-M"});
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.rc == 0 ? Json::parse(r.out) : Json();
  }
  static Json Blocks(std::initializer_list<std::pair<uint64_t, uint64_t>> runs) {
    Json j = Json::array();
    for (auto [off, len] : runs) j.push_back({{"offset", off}, {"length", len}});
    return j;
  }
  // Everything a user can observe, to prove "nothing changed".
  std::string Snapshot() {
    std::string all;
    for (const char* name : {"d0", "d1", "top"}) all += Dg({"list", P(name), "-M"}).out;
    all += Dg({"inject-error", P("d0"), "-t"}).out + Dg({"inject-error", P("d1"), "-t"}).out;
    for (const char* name : {"l0", "l1", "top"}) all += Dg({"dm", "table", P(name)}).out;
    return all;
  }
  void ExpectOneLineError(const CmdResult& r) {
    EXPECT_NE(r.rc, 0);
    EXPECT_TRUE(r.out.empty()) << r.out;
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  }

};

TEST_F(DmCli, CreateTableAndStatus) {
  EXPECT_EQ(Slurp(P("top")), "daxguard-stack 1\n0 32768 striped 2 16 l0 0 l1 0\n32768 8192 error\n");
  CmdResult t = Dg({"dm", "table", P("top")});
  ASSERT_EQ(t.rc, 0) << t.err;
  EXPECT_EQ(t.out, "0 32768 striped 2 16 l0 0 l1 0\n32768 8192 error\n");
  CmdResult s = Dg({"dm", "status", P("top")});
  ASSERT_EQ(s.rc, 0) << s.err;
  EXPECT_EQ(s.out,
            "0 32768 striped devices=l0,l1 recovery=yes badblocks=-\n"
            "32768 8192 error devices=- recovery=no badblocks=-\n");
  ASSERT_EQ(Dg({"inject-error", P("d1"), "-B", "20"}).rc, 0);  // l1 20: top chunk 3, sector 52
  s = Dg({"dm", "status", P("top")});
  EXPECT_NE(s.out.find("0 32768 striped devices=l0,l1 recovery=yes badblocks=52+1\n"), std::string::npos) << s.out;
  EXPECT_EQ(Dg({"dm", "status", P("l1")}).out, "0 16384 linear devices=d1 recovery=yes badblocks=20+1\n");
}

TEST_F(DmCli, ListShowsBadBlocksInEachObjectsOwnSectors) {
  Json j = List("top");
  EXPECT_EQ(j["kind"], "dm");
  EXPECT_EQ(j["size"], 40960u * 512);
  EXPECT_EQ(j["devices"], Json::array({P("d0"), P("d1")}));
  EXPECT_EQ(j["badblock_count"], 0);
  ASSERT_EQ(Dg({"inject-error", P("d1"), "-B", "20"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", P("d0"), "-B", "8200", "-n", "2"}).rc, 0);  // l0 8, 9: top 8, 9
  ASSERT_EQ(Dg({"inject-error", P("d0"), "-B", "100"}).rc, 0);              // not under the stack
  j = List("top");
  EXPECT_EQ(j["badblock_count"], 3);
  EXPECT_EQ(j["badblocks"], Blocks({{8, 2}, {52, 1}}));
  EXPECT_EQ(List("l0")["badblocks"], Blocks({{8, 2}}));
  EXPECT_EQ(List("d0")["badblocks"], Blocks({{100, 1}, {8200, 2}}));
  EXPECT_EQ(List("d1")["badblocks"], Blocks({{20, 1}}));
  // With -M a stack also shows each device below in that device's own sectors.
  EXPECT_EQ(j["device_badblocks"],
            Json::array({{{"dev", P("d0")}, {"badblock_count", 3}, {"badblocks", Blocks({{100, 1}, {8200, 2}})}},
                         {{"dev", P("d1")}, {"badblock_count", 1}, {"badblocks", Blocks({{20, 1}})}}}));
  EXPECT_EQ(List("l0")["device_badblocks"],
            Json::array({{{"dev", P("d0")}, {"badblock_count", 3}, {"badblocks", Blocks({{100, 1}, {8200, 2}})}}}));
  Json plain = Json::parse(Dg({"list", P("top")}).out);
  EXPECT_EQ(plain["badblock_count"], 3);
  EXPECT_FALSE(plain.contains("badblocks"));
  EXPECT_FALSE(plain.contains("device_badblocks"));
}

TEST_F(DmCli, InjectErrorTakesStackSectors) {
  // Across a chunk boundary: top 30, 31 are l1 14, 15; top 32, 33 are l0 16, 17.
  CmdResult r = Dg({"inject-error", P("top"), "-B", "30", "-n", "4"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(List("top")["badblocks"], Blocks({{30, 4}}));
  EXPECT_EQ(List("d1")["badblocks"], Blocks({{14, 2}}));
  EXPECT_EQ(List("d0")["badblocks"], Blocks({{8192 + 16, 2}}));
  Json st = Json::parse(Dg({"inject-error", P("top"), "-t"}).out);
  EXPECT_EQ(st["badblocks"], Json::parse(R"([{"block": 30, "count": 4}])"));
  ASSERT_EQ(Dg({"inject-error", P("top"), "-B", "30", "-n", "4", "-d"}).rc, 0);
  EXPECT_TRUE(Json::parse(Dg({"inject-error", P("top"), "-t"}).out)["badblocks"].empty());
  EXPECT_EQ(List("top")["badblock_count"], 4) << "uninject keeps the known records";
}

TEST_F(DmCli, LatentErrorUnderAStackFoundByScrub) {
  ASSERT_EQ(Dg({"inject-error", P("top"), "-B", "100", "-N"}).rc, 0);
  EXPECT_EQ(List("top")["badblock_count"], 0);
  CmdResult r = Dg({"start-scrub", P("top"), "--wait"});
  ASSERT_EQ(r.rc, 0) << r.err;
  Json s = Json::parse(r.out);
  EXPECT_EQ(s["scrub_state"], "idle");
  EXPECT_EQ(s["scrub_count"], 1);
  EXPECT_EQ(s["badblock_count"], 1);
  EXPECT_EQ(List("top")["badblocks"], Blocks({{100, 1}}));
  EXPECT_EQ(List("d0")["scrub_count"], 1);
  EXPECT_EQ(List("d1")["scrub_count"], 1);
  EXPECT_EQ(Json::parse(Dg({"wait-scrub", P("top")}).out)["scrub_count"], 1);
}

TEST_F(DmCli, IoGoesThroughTheStack) {
  CmdResult w = Dg({"io", P("top"), "-c", "pwrite -S 0x61 8k 8k", "-c", "pread -v 8k 16"});
  ASSERT_EQ(w.rc, 0) << w.err;
  EXPECT_NE(w.out.find("wrote 8192/8192 bytes at offset 8192"), std::string::npos) << w.out;
  EXPECT_NE(w.out.find("00002000:  61 61"), std::string::npos) << w.out;
  // Top bytes 8k..16k are chunk 1: l1 sectors 0..15, so d1 bytes 0..8k.
  CmdResult d1 = Dg({"io", P("d1"), "-c", "pread -v 0 16"});
  EXPECT_NE(d1.out.find("00000000:  61 61"), std::string::npos) << d1.out;
  // The error segment fails; a read running into it stops there.
  CmdResult e = Dg({"io", P("top"), "-c", "pread 16m 4k"});
  EXPECT_NE(e.rc, 0);
  EXPECT_EQ(e.err, "pread: Input/output error\n");
  e = Dg({"io", P("top"), "-c", "pread 16380k 8k"});
  EXPECT_NE(e.out.find("read 4096/8192 bytes"), std::string::npos) << e.out;
  // Poison under the stack: refused, then repaired by a whole-page write.
  ASSERT_EQ(Dg({"inject-error", P("top"), "-B", "17"}).rc, 0);
  CmdResult r = Dg({"io", P("top"), "-c", "pread 8k 4k"});
  EXPECT_EQ(r.err, "pread: Input/output error\n");
  r = Dg({"io", P("top"), "-c", "pwrite -S 0x62 8k 4k", "-c", "pread -v 8k 16"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("00002000:  62 62"), std::string::npos) << r.out;
  EXPECT_EQ(List("top")["badblock_count"], 0);
  EXPECT_EQ(List("d1")["badblock_count"], 0);
}

TEST_F(DmCli, ClearErrorsOnAStackClearsTheDevicesBelow) {
  ASSERT_EQ(Dg({"io", P("top"), "-c", "pwrite 0 64k"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", P("top"), "-B", "3"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", P("top"), "-B", "40", "-N"}).rc, 0);
  CmdResult r = Dg({"clear-errors", P("top"), "--scrub"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("cleared 2 bad blocks in 2 ranges on " + P("top")), std::string::npos) << r.out;
  EXPECT_EQ(List("top")["badblock_count"], 0);
  EXPECT_EQ(List("d0")["badblock_count"], 0);
  EXPECT_EQ(Dg({"io", P("top"), "-c", "pread 0 64k"}).rc, 0);
}

TEST_F(DmCli, BadInputFailsWithOneLineAndChangesNothing) {
  ASSERT_EQ(Dg({"inject-error", P("top"), "-B", "4"}).rc, 0);
  std::string before = Snapshot();
  const std::vector<std::vector<std::string>> bad = {
      {"inject-error", P("top"), "-B", "32768"},        // the error segment
      {"inject-error", P("top"), "-B", "32760", "-n", "16"},  // running into it
      {"inject-error", P("top"), "-B", "40960"},
      {"inject-error", P("top"), "-B", "8", "-n", "0"},
      {"io", P("top"), "-c", "pwrite 0 4k", "-c", "pread 20m 4k"},
      {"dm", "table", P("d0")},
      {"dm", "status", P("d0")},
      {"dm", "status", P("missing")},
      {"list", P("missing")},
  };
  for (const auto& args : bad) {
    std::string trace;
    for (const std::string& a : args) trace += a + " ";
    SCOPED_TRACE(trace);
    ExpectOneLineError(Dg(args));
    EXPECT_EQ(Snapshot(), before);
  }
}

TEST_F(DmCli, BadTablesLeaveNothingBehind) {
  std::ofstream(P("cyc")) << "daxguard-stack 1\n0 64 linear new 0\n";
  const std::vector<std::vector<std::string>> bad = {
      {"--table", "0 64 linear d0 0", "--table", "32 64 linear d1 0"},  // overlap
      {"--table", "0 64 linear d0 0", "--table", "128 64 linear d1 0"},  // gap
      {"--table", "0 64 linear d0 32768"},                                // beyond d0's end
      {"--table", "0 64 striped 2 12 d0 0 d1 0"},                         // chunk not 4 KiB
      {"--table", "0 64 mirror d0 d1"},                                   // unknown target
      {"--table", "0 64 linear nothere 0"},                               // missing file
      {"--table", "0 64 linear new 0"},                                   // itself
      {"--table", "0 64 linear cyc 0"},                                   // through another
      {"--table", "0 64 linear l0 0", "--table", "64 64 linear d0 0"},    // d0 under two bases
      {"--table", "0 64 linear d0 0", "--table", "64 64 linear d0 32"},   // d0 sectors 32..63 twice
      {"--table", "0 6x linear d0 0"},
      {"--table", "0 12 linear d0 0"},
  };
  for (const auto& extra : bad) {
    std::vector<std::string> args = {"dm", "create", P("new")};
    args.insert(args.end(), extra.begin(), extra.end());
    SCOPED_TRACE(extra[1]);
    CmdResult r = Dg(args);
    ExpectOneLineError(r);
    EXPECT_EQ(r.err.rfind("daxguard dm create: ", 0), 0u) << r.err;
    EXPECT_FALSE(fs::exists(P("new")));
  }
  ExpectOneLineError(Dg({"dm", "create", P("top"), "--table", "0 64 linear d0 0"}));
  EXPECT_EQ(Dg({"dm", "table", P("top")}).out, "0 32768 striped 2 16 l0 0 l1 0\n32768 8192 error\n");
  EXPECT_NE(Dg({"dm", "create", P("new")}).rc, 0) << "--table is required";
  EXPECT_FALSE(fs::exists(P("new")));
}

// A table reaching the same bytes twice would let mkfs and writes corrupt
// both copies of everything.
TEST_F(DmCli, AliasingTablesAreRefused) {
  CmdResult r = Dg({"dm", "create", P("new"), "--table", "0 8192 linear d0 0", "--table", "8192 8192 linear d0 0"});
  ExpectOneLineError(r);
  EXPECT_EQ(r.err, "daxguard dm create: " + P("new") + ": alias: segments 0 and 1 both reach d0 bytes 0..4194304\n");
  r = Dg({"dm", "create", P("new"), "--table", "0 32 striped 2 8 l1 0 l1 8"});
  ExpectOneLineError(r);
  EXPECT_NE(r.err.find("alias: segment 0 stripe 0 and segment 0 stripe 1 both reach l1 bytes 4096..8192"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(P("new")));
}

}  // namespace
