// daxfs on a three-level stack through the command line: `dm create`,
// `mkfs` and file I/O on the stack, poison injected on a bottom device
// file, and `who` / `health` on the stack naming the exact (file, offset)
// owners. Each command is its own process, so the filesystem hears of the
// errors at mount, from the stack, in the stack's offsets.
#include "tools/cli_harness.h"

namespace daxguard::testing {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kChunk = 64 * 1024;  // 128 sectors
constexpr uint64_t kL0Sector = 8192;    // l0 starts 4 MiB into d0

class FsStackCli : public CliHarness {
 protected:
  // top: 64 KiB chunks, even ones on l0 (d0 from sector 8192), odd ones on l1 (d1 from 0).
  void SetUp() override {
    CliHarness::SetUp();
    for (const char* d : {"d0", "d1"}) ASSERT_EQ(Dg({"create-device", Path(d), "--size", "40m"}).rc, 0);
    ASSERT_EQ(Dg({"dm", "create", Path("l0"), "--table", "0 65536 linear d0 8192"}).rc, 0);
    ASSERT_EQ(Dg({"dm", "create", Path("l1"), "--table", "0 65536 linear d1 0"}).rc, 0);
    CliRun r = Dg({"dm", "create", Path("top"), "--table", "0 131072 striped 2 128 l0 0 l1 0"});
    ASSERT_EQ(r.rc, 0) << r.err;
    r = Dg({"mkfs", Path("top")});
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  std::string F(const std::string& p) { return Path("top") + ":" + p; }
  uint64_t SectorOf(const std::string& path, uint64_t off) { return CliHarness::SectorOf(F(path), off); }
  // The bottom device and sector under a stack sector, by the table.
  static std::pair<std::string, uint64_t> Down(uint64_t sector) {
    uint64_t chunk = sector * 512 / kChunk;
    uint64_t in_leg = (chunk / 2 * kChunk + sector * 512 % kChunk) / 512;
    return chunk % 2 == 0 ? std::make_pair(std::string("d0"), kL0Sector + in_leg) : std::make_pair(std::string("d1"), in_leg);
  }
  Json Damage(const Json& health, const std::string& path) {
    for (const Json& f : health["damaged_files"])
      if (f["path"] == path) return f["damaged"];
    return Json::array();
  }
};

TEST_F(FsStackCli, PoisonOnABottomDeviceNamesTheFilesOnTheStack) {
  ASSERT_EQ(Dg({"io", "-f", F("/a"), "-c", "pwrite -S 0x61 0 512k"}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/b"), "-c", "reflink " + F("/a")}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/c"), "-c", "pwrite 0 512k"}).rc, 0);
  // Notified: a sector in an odd chunk of /a (and /b), on d1.
  const uint64_t at_a = kChunk + 1024;
  uint64_t top_a = SectorOf("/a", at_a);
  ASSERT_EQ(SectorOf("/b", at_a), top_a);
  auto [dev_a, sec_a] = Down(top_a);
  ASSERT_EQ(dev_a, "d1");
  CliRun r = Dg({"inject-error", Path(dev_a), "-B", std::to_string(sec_a)});
  ASSERT_EQ(r.rc, 0) << r.err;
  // Latent, then found by a scrub of the bottom device: a sector of /c on d0.
  const uint64_t at_c = 2 * kChunk + 8192;
  uint64_t top_c = SectorOf("/c", at_c);
  auto [dev_c, sec_c] = Down(top_c);
  ASSERT_EQ(dev_c, "d0");
  ASSERT_EQ(Dg({"inject-error", Path(dev_c), "-B", std::to_string(sec_c), "-N"}).rc, 0);
  EXPECT_TRUE(Damage(DgJson({"health", Path("top")}), "/c").empty()) << "latent: nobody knows yet";
  ASSERT_EQ(Dg({"start-scrub", Path(dev_c), "--wait"}).rc, 0);

  // The stack lists both in its own sectors, each device in its own.
  Json list = DgJson({"list", Path("top"), "-M"});
  Json want = Json::array({{{"offset", std::min(top_a, top_c)}, {"length", 1}},
                           {{"offset", std::max(top_a, top_c)}, {"length", 1}}});
  EXPECT_EQ(list["badblocks"], want);
  EXPECT_EQ(DgJson({"list", Path("d1"), "-M"})["badblocks"], Json::parse("[{\"offset\": " + std::to_string(sec_a) + ", \"length\": 1}]"));

  Json h = DgJson({"health", Path("top")});
  EXPECT_EQ(Damage(h, "/a"), Json::parse("[{\"offset\": " + std::to_string(at_a) + ", \"length\": 512}]")) << h.dump();
  EXPECT_EQ(Damage(h, "/b"), Damage(h, "/a")) << h.dump();
  EXPECT_EQ(Damage(h, "/c"), Json::parse("[{\"offset\": " + std::to_string(at_c) + ", \"length\": 512}]")) << h.dump();
  EXPECT_EQ(h["damaged_files"].size(), 3u) << h.dump();

  Json who = DgJson({"who", Path("top"), "--offset", std::to_string(top_a * 512), "--length", "512"});
  ASSERT_EQ(who.size(), 2u) << who.dump();
  EXPECT_EQ(who[0]["path"], "/a");
  EXPECT_EQ(who[1]["path"], "/b");
  EXPECT_EQ(who[0]["file_offset"], at_a);
  EXPECT_EQ(who[1]["file_offset"], at_a);
  who = DgJson({"who", Path("top"), "--offset", std::to_string(top_c * 512), "--length", "512"});
  ASSERT_EQ(who.size(), 1u) << who.dump();
  EXPECT_EQ(who[0]["path"], "/c");
  EXPECT_EQ(who[0]["file_offset"], at_c);

  CliRun read = Dg({"io", F("/b"), "-c", "pread " + std::to_string(at_a) + " 512"});
  EXPECT_NE(read.rc, 0);
  EXPECT_EQ(read.err, "pread: Input/output error\n");
  CliRun ck = Dg({"fsck", Path("top")});
  EXPECT_EQ(ck.rc, 0) << ck.out << ck.err;
}

TEST_F(FsStackCli, TheErrorTargetUnderAFilesystemFailsClearly) {
  ASSERT_EQ(Dg({"create-device", Path("d2"), "--size", "64m"}).rc, 0);
  ASSERT_EQ(Dg({"dm", "create", Path("head"), "--table", "0 65536 error", "--table", "65536 65536 linear d2 0"}).rc, 0);
  CliRun r = Dg({"mkfs", Path("head")});
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(r.err, "daxguard mkfs: " + Path("head") + ": sector 0 is mapped to the error target\n");
  r = Dg({"health", Path("head")});
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  // 48 MiB of d2, then 16 MiB of error: a file growing into it stops there.
  ASSERT_EQ(Dg({"dm", "create", Path("tail"), "--table", "0 98304 linear d2 0", "--table", "98304 32768 error"}).rc, 0);
  ASSERT_EQ(Dg({"mkfs", Path("tail")}).rc, 0);
  r = Dg({"io", "-f", Path("tail") + ":/big", "-c", "pwrite 0 60m"});
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(r.err, "pwrite: Input/output error\n");
  EXPECT_NE(r.out.find("wrote "), std::string::npos) << "what fit below the error target was written: " << r.out;
  CliRun ck = Dg({"fsck", Path("tail")});
  EXPECT_EQ(ck.rc, 0) << ck.out << ck.err;
}

}  // namespace
}  // namespace daxguard::testing
