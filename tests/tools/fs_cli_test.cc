// The filesystem commands end to end: mkfs, io on DEV:/path, fs, who,
// health and fsck, with poison injected through the device tools.
#include "dax/pmem_dax.h"
#include "fs/log_surgery.h"
#include "tools/cli_harness.h"

namespace daxguard::testing {
namespace {

class FsCli : public CliHarness {
 protected:
  void SetUp() override {
    CliHarness::SetUp();
    dev_ = Path("pmem0");
    ASSERT_EQ(Dg({"create-device", dev_, "--size", "128m"}).rc, 0);
    CliRun r = Dg({"mkfs", dev_});
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  std::string F(const std::string& p) { return dev_ + ":" + p; }
  uint64_t SectorOf(const std::string& path, uint64_t off) { return CliHarness::SectorOf(F(path), off); }
  std::string dev_;
};

TEST_F(FsCli, MkfsRefusesToOverwriteWithoutForce) {
  CliRun r = Dg({"mkfs", dev_});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("already holds a daxfs"), std::string::npos) << r.err;
  EXPECT_EQ(Dg({"mkfs", "-f", dev_}).rc, 0);
}

TEST_F(FsCli, IoOnFilesPrintsLikeXfsIo) {
  CliRun r = Dg({"io", "-f", F("/f"), "-c", "pwrite -S 0x61 0 8k", "-c", "pread -v 4096 16", "-c", "truncate 6000",
                 "-c", "stat"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("wrote 8192/8192 bytes at offset 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("00001000:  61 61"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stat.size = 6000"), std::string::npos) << r.out;
  EXPECT_NE(Dg({"io", F("/missing"), "-c", "stat"}).rc, 0) << "without -f nothing is created";
}

TEST_F(FsCli, AtomicPwriteStaysInOnePage) {
  CliRun r = Dg({"io", "-f", F("/f"), "-c", "pwrite -S 0x61 0 8k", "-c", "pwrite -A -S 0x62 4100 20", "-c",
                 "pread -v 4096 32"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("wrote 20/20 bytes at offset 4100"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("00001000:  61 61 61 61 62 62"), std::string::npos) << r.out;
  CliRun bad = Dg({"io", F("/f"), "-c", "pwrite -A 4090 20"});
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("within one 4096-byte page"), std::string::npos) << bad.err;
}

TEST_F(FsCli, NamespaceAndHostCopies) {
  ASSERT_EQ(Dg({"fs", "mkdir", F("/d")}).rc, 0);
  {
    std::ofstream out(Path("host.txt"));
    out << "persistent memory\n";
  }
  ASSERT_EQ(Dg({"fs", "put", Path("host.txt"), F("/d/x")}).rc, 0);
  ASSERT_EQ(Dg({"fs", "mv", F("/d/x"), "/d/y"}).rc, 0);
  CliRun ls = Dg({"fs", "ls", F("/d")});
  EXPECT_EQ(ls.out, "y\n");
  ASSERT_EQ(Dg({"fs", "get", F("/d/y"), Path("back.txt")}).rc, 0);
  EXPECT_EQ(Slurp(Path("back.txt")), "persistent memory\n");
  EXPECT_NE(Dg({"fs", "rm", F("/d")}).rc, 0) << "not empty";
  EXPECT_EQ(Dg({"fs", "rm", "-r", F("/d")}).rc, 0);
  EXPECT_EQ(Dg({"fs", "ls", F("/")}).out, "");
}

TEST_F(FsCli, InjectedPoisonNamesEveryReflinkOwner) {
  ASSERT_EQ(Dg({"io", "-f", F("/a"), "-c", "pwrite 0 64k"}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/b"), "-c", "reflink " + F("/a")}).rc, 0);
  uint64_t sector = SectorOf("/a", 8192);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", std::to_string(sector)}).rc, 0);
  auto who = DgJson({"who", dev_, "--offset", std::to_string(sector * 512), "--length", "512"});
  ASSERT_EQ(who.size(), 2u);
  EXPECT_EQ(who[0]["path"], "/a");
  EXPECT_EQ(who[1]["path"], "/b");
  EXPECT_EQ(who[0]["file_offset"], 8192);
  auto h = DgJson({"health", dev_});
  ASSERT_EQ(h["damaged_files"].size(), 2u);
  EXPECT_EQ(h["damaged_files"][0]["damaged"][0]["offset"], 8192);
  CliRun r = Dg({"io", F("/b"), "-c", "pread 8192 512"});
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(r.err, "pread: Input/output error\n");
  // b repairs its copy with a whole-page write; a still reports damage.
  ASSERT_EQ(Dg({"io", F("/b"), "-c", "pwrite 8192 4096"}).rc, 0);
  h = DgJson({"health", dev_});
  ASSERT_EQ(h["damaged_files"].size(), 1u);
  EXPECT_EQ(h["damaged_files"][0]["path"], "/a");
  EXPECT_EQ(Dg({"io", F("/a"), "-c", "fzero 8192 4096"}).rc, 0);
  EXPECT_TRUE(DgJson({"health", dev_})["damaged_files"].empty());
  CliRun ck = Dg({"fsck", dev_});
  EXPECT_EQ(ck.rc, 0) << ck.out << ck.err;
}

TEST_F(FsCli, WriteOverPartOfADamagedLineFails) {
  ASSERT_EQ(Dg({"io", "-f", F("/x"), "-c", "pwrite -S 0x61 0 16k"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", std::to_string(SectorOf("/x", 8192))}).rc, 0);
  CliRun r = Dg({"io", F("/x"), "-c", "pwrite 8292 50"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "pwrite: Input/output error\n");
  auto h = DgJson({"health", dev_});
  ASSERT_EQ(h["damaged_files"].size(), 1u);
  EXPECT_EQ(h["damaged_files"][0]["damaged"][0]["offset"], 8192);
  EXPECT_EQ(h["damaged_files"][0]["damaged"][0]["length"], 512);
  // A write of the whole damaged sector repairs it, and its bytes read back.
  ASSERT_EQ(Dg({"io", F("/x"), "-c", "pwrite -S 0x62 8192 512"}).rc, 0);
  r = Dg({"io", F("/x"), "-c", "pread -v 8292 16"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("00002064:  62 62"), std::string::npos) << r.out;
  EXPECT_TRUE(DgJson({"health", dev_})["damaged_files"].empty());
}

TEST_F(FsCli, FsckFindsAndRepairsADamagedLogCopy) {
  ASSERT_EQ(Dg({"io", "-f", F("/x"), "-c", "pwrite 0 4k"}).rc, 0);
  // Scribble over copy B of the first live log block: no poison, just wrong bytes.
  CliRun who = Dg({"who", dev_, "--offset", "0", "--length", "1"});
  ASSERT_EQ(who.rc, 0);
  auto geo_b = DgJson({"who", dev_, "--offset", std::to_string(64ull << 20 | 4096), "--length", "1"});
  ASSERT_EQ(geo_b[0]["owner"], "metadata") << geo_b.dump();
  ASSERT_EQ(Dg({"io", dev_, "-c", "pwrite -S 0x5a " + std::to_string((64ull << 20) + 4096) + " 512"}).rc, 0);
  CliRun bad = Dg({"fsck", dev_});
  EXPECT_EQ(bad.rc, 1) << bad.out;
  EXPECT_NE(bad.out.find("differ between the two copies"), std::string::npos) << bad.out;
  CliRun fix = Dg({"fsck", "--repair", dev_});
  EXPECT_EQ(fix.rc, 0) << fix.out << fix.err;
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
}

TEST_F(FsCli, BadInputIsRefusedWithOneLine) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"io", F("/nope"), "-c", "pread 0 1"},
                                            {"io", "-f", F("/n"), "-c", "bogus"},
                                            {"fs", "ls", "nodev"},
                                            {"fs", "ls", Path("missing") + ":/"},
                                            {"who", dev_, "--offset", "999999999999"},
                                            {"mkfs", Path("missing")}}) {
    CliRun r = Dg(args);
    EXPECT_NE(r.rc, 0) << args[0];
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_NE(Dg({"fs", "ls", F("/n")}).rc, 0) << "the malformed io created nothing";
}

TEST_F(FsCli, MappedFileCommandsLoadAndStoreInPlace) {
  CliRun r = Dg({"io", "-f", F("/m"), "-c", "pwrite -S 0x61 0 8k", "-c", "mmap 0 8k", "-c", "mwrite -S 0x62 4096 4096",
                 "-c", "mread -v 4096 16", "-c", "msync", "-c", "munmap", "-c", "pread -v 0 16"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("00001000:  62 62"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("00000000:  61 61"), std::string::npos) << r.out;
  CliRun p = Dg({"io", F("/m"), "-c", "pread -v 4096 16"});
  EXPECT_NE(p.out.find("00001000:  62 62"), std::string::npos) << "stores reached the file: " << p.out;
}

TEST_F(FsCli, MappedReadOfPoisonNamesTheFileOffset) {
  ASSERT_EQ(Dg({"io", "-f", F("/p"), "-c", "pwrite -S 0x61 0 8k"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", std::to_string(SectorOf("/p", 4096 + 512))}).rc, 0);
  CliRun r = Dg({"io", F("/p"), "-c", "mmap -r 0 8k", "-c", "mread 0 8k", "-c", "mread 0 4k"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("mread: media error at offset 4096 of /p: 4096 bytes from offset 4096 are lost"),
            std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("mread:"), r.err.rfind("mread:")) << "the first page read fine on its own: " << r.err;
}

TEST_F(FsCli, MappingCommandsRefuseBadInput) {
  ASSERT_EQ(Dg({"io", "-f", F("/b"), "-c", "pwrite 0 4k"}).rc, 0);
  CliRun r = Dg({"io", F("/b"), "-c", "mread 0 4k"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("no mapped regions"), std::string::npos) << r.err;
  r = Dg({"io", F("/b"), "-c", "mmap 100 4k"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("multiple of 4096"), std::string::npos) << r.err;
  r = Dg({"io", F("/b"), "-c", "mmap 0 4k", "-c", "mread 0 8k"});
  EXPECT_NE(r.err.find("not within the mapping"), std::string::npos) << r.err;
  r = Dg({"io", F("/b"), "-c", "mmap"});
  EXPECT_NE(r.err.find("expected OFFSET LENGTH"), std::string::npos) << r.err;
}

TEST_F(FsCli, MappedDeviceCommands) {
  std::string raw = Path("raw0");
  ASSERT_EQ(Dg({"create-device", raw, "--size", "16m"}).rc, 0);
  CliRun r = Dg({"io", raw, "-c", "mmap 64k 64k", "-c", "mwrite -S 0x70 64k 4k", "-c", "pread -v 64k 16"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("00010000:  70 70"), std::string::npos) << r.out;
  ASSERT_EQ(Dg({"inject-error", raw, "-B", std::to_string((64 * 1024 + 8192) / 512)}).rc, 0);
  r = Dg({"io", raw, "-c", "mmap 64k 64k", "-c", "mread 64k 64k"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("media error at offset 73728 of " + raw), std::string::npos) << r.err;
}

TEST_F(FsCli, FsckNamesALostLogRecordAndRepairKeepsTheRest) {
  for (const char* f : {"/a", "/b", "/c"}) ASSERT_EQ(Dg({"io", "-f", F(f), "-c", "pwrite 0 4k"}).rc, 0);
  {
    auto dev = dax::PmemDax::Open(dev_);
    ASSERT_TRUE(dev.ok());
    fs::LogSurgery s(**dev);
    fs::LogRecord r = s.RecordLinking("b");
    s.Scribble(r.pos, r.span, 0x5a);  // that record, in both copies
  }
  CliRun bad = Dg({"fsck", dev_});
  EXPECT_EQ(bad.rc, 1) << bad.out;
  EXPECT_NE(bad.out.find("lost: metadata log record"), std::string::npos) << bad.out;
  EXPECT_EQ(Dg({"fs", "ls", F("/")}).out, "a\nc\n") << "records after the lost one are replayed";
  CliRun ro = Dg({"io", F("/a"), "-c", "truncate 0"});
  EXPECT_NE(ro.rc, 0);
  EXPECT_NE(ro.err.find("read-only"), std::string::npos) << ro.err;
  CliRun fix = Dg({"fsck", "--repair", dev_});
  EXPECT_EQ(fix.rc, 0) << fix.out << fix.err;
  EXPECT_NE(fix.out.find("fixed: lost: metadata log record"), std::string::npos) << fix.out;
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
  EXPECT_EQ(Dg({"io", F("/a"), "-c", "truncate 0"}).rc, 0);
}

TEST_F(FsCli, LostExtentRecordIsDamageUntilRewritten) {
  ASSERT_EQ(Dg({"io", "-f", F("/a"), "-c", "pwrite -S 0x61 0 64k"}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/b"), "-c", "pwrite 0 4k"}).rc, 0);
  {
    auto dev = dax::PmemDax::Open(dev_);
    ASSERT_TRUE(dev.ok());
    fs::LogSurgery s(**dev);
    uint64_t ino = s.RecordLinking("a").ops[1].ino;
    fs::LogRecord r = s.RecordWith(fs::OpType::kMap, ino);
    s.Scribble(r.pos, r.span, 0x5a);  // that record, in both copies
  }
  CliRun r = Dg({"io", F("/a"), "-c", "pread 0 4k"});
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_EQ(r.err, "pread: Input/output error\n");
  auto h = DgJson({"health", dev_});
  ASSERT_EQ(h["damaged_files"].size(), 1u) << h.dump();
  EXPECT_EQ(h["damaged_files"][0]["path"], "/a");
  EXPECT_EQ(h["damaged_files"][0]["damaged"][0]["offset"], 0);
  EXPECT_EQ(h["damaged_files"][0]["damaged"][0]["length"], 65536);
  CliRun fix = Dg({"fsck", "--repair", dev_});
  EXPECT_EQ(fix.rc, 0) << fix.out << fix.err;
  EXPECT_EQ(DgJson({"health", dev_})["damaged_files"].size(), 1u) << "fsck --repair keeps the damage";
  EXPECT_NE(Dg({"io", F("/a"), "-c", "pread 0 4k"}).rc, 0);
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
  ASSERT_EQ(Dg({"io", F("/a"), "-c", "pwrite -S 0x62 0 64k"}).rc, 0);
  EXPECT_TRUE(DgJson({"health", dev_})["damaged_files"].empty());
  r = Dg({"io", F("/a"), "-c", "pread -v 65520 16"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("0000fff0:  62 62"), std::string::npos) << r.out;
}

TEST_F(FsCli, LossOfUnknownReachOutlivesTheRepair) {
  for (const char* f : {"/a", "/b", "/c", "/d"}) ASSERT_EQ(Dg({"io", "-f", F(f), "-c", "stat"}).rc, 0);
  {
    auto dev = dax::PmemDax::Open(dev_);
    ASSERT_TRUE(dev.ok());
    fs::LogSurgery s(**dev);
    fs::LogRecord b = s.RecordLinking("b"), c = s.RecordLinking("c");
    s.Scribble(b.pos, c.pos + c.span - b.pos, 0x5a);  // two records in a row, in both copies
  }
  CliRun fix = Dg({"fsck", "--repair", dev_});
  EXPECT_EQ(fix.rc, 0) << fix.out << fix.err;
  CliRun ck = Dg({"fsck", dev_});
  EXPECT_EQ(ck.rc, 0) << ck.out;
  EXPECT_NE(ck.out.find("note: lost earlier: metadata log record"), std::string::npos) << ck.out;
  EXPECT_NE(ck.out.find("0 problem(s)"), std::string::npos) << ck.out;
  auto h = DgJson({"health", dev_});
  EXPECT_FALSE(h["read_only"]);
  ASSERT_EQ(h["lost_metadata"].size(), 1u) << h.dump();
  EXPECT_NE(h["lost_metadata"][0].get<std::string>().find("what it changed is unknown"), std::string::npos);
}

// A repair that cannot finish (here: the log slot it writes lies under an
// error segment) says what it left, exits 1, and leaves the filesystem
// read-only until a repair succeeds.
TEST_F(FsCli, RepairThatCannotFinishLeavesTheFilesystemReadOnly) {
  ASSERT_EQ(Dg({"create-device", Path("a"), "--size", "64m"}).rc, 0);
  fs::Geometry g = fs::GeometryFor(64ull << 20);
  uint64_t from = g.SlotStart(1, 1) * 8, n = g.SlotBlocks() * 8, all = (64ull << 20) / 512;
  std::string good = Path("good"), broken = Path("broken");
  ASSERT_EQ(Dg({"dm", "create", good, "--table", "0 " + std::to_string(all) + " linear a 0"}).rc, 0);
  ASSERT_EQ(Dg({"dm", "create", broken, "--table", "0 " + std::to_string(from) + " linear a 0", "--table",
                std::to_string(from) + " " + std::to_string(n) + " error", "--table",
                std::to_string(from + n) + " " + std::to_string(all - from - n) + " linear a " + std::to_string(from + n)})
                .rc,
            0);
  ASSERT_EQ(Dg({"mkfs", good}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", good + ":/x", "-c", "pwrite 0 4k"}).rc, 0);
  ASSERT_EQ(Dg({"fs", "mkdir", good + ":/d"}).rc, 0);
  ASSERT_EQ(Dg({"fs", "mkdir", good + ":/d/e"}).rc, 0);
  {
    auto dev = dax::PmemDax::Open(Path("a"));
    ASSERT_TRUE(dev.ok());
    fs::LogSurgery s(**dev);
    ASSERT_EQ(s.log().super().active_slot, 0u) << "the slot a repair writes is slot 1";
    uint64_t d = s.RecordLinking("d").ops[1].ino, e = s.RecordLinking("e").ops[1].ino;
    ASSERT_TRUE(s.log().Append({fs::Op::Link(e, "loop", d)}).ok());  // d named twice: mounts writable
  }
  ASSERT_FALSE(DgJson({"health", good})["read_only"]);
  CliRun fix = Dg({"fsck", "--repair", broken});
  EXPECT_EQ(fix.rc, 1) << fix.out << fix.err;
  EXPECT_NE(fix.out.find("not repaired: fsck --repair failed: "), std::string::npos) << fix.out;
  EXPECT_NE(fix.out.find("left read-only until daxguard fsck --repair succeeds"), std::string::npos) << fix.out;
  auto h = DgJson({"health", good});
  EXPECT_TRUE(h["read_only"]) << h.dump();
  CliRun ro = Dg({"io", good + ":/x", "-c", "truncate 0"});
  EXPECT_NE(ro.rc, 0);
  EXPECT_NE(ro.err.find("fsck --repair could not repair"), std::string::npos) << ro.err;
  CliRun ck = Dg({"fsck", good});
  EXPECT_EQ(ck.rc, 1);
  EXPECT_NE(ck.out.find("an earlier fsck --repair could not repair: fsck --repair failed"), std::string::npos) << ck.out;
  fix = Dg({"fsck", "--repair", good});
  EXPECT_EQ(fix.rc, 0) << fix.out << fix.err;
  EXPECT_EQ(Dg({"io", good + ":/x", "-c", "truncate 0"}).rc, 0);
  ck = Dg({"fsck", good});
  EXPECT_EQ(ck.rc, 0) << ck.out;
}

TEST_F(FsCli, UnsupportedFormatVersionIsRefusedWithOneLine) {
  {
    auto dev = dax::PmemDax::Open(dev_);
    ASSERT_TRUE(dev.ok());
    fs::LogSurgery(**dev).SetVersion(fs::kFormatVersion + 1);
  }
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{{"fs", "ls", F("/")}, {"fsck", dev_}}) {
    CliRun r = Dg(args);
    EXPECT_NE(r.rc, 0) << args[0];
    EXPECT_NE(r.err.find("daxfs format version " + std::to_string(fs::kFormatVersion + 1) + " is not supported"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace daxguard::testing
