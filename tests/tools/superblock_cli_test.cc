// Both superblocks poisoned, both log copies intact: every command finds
// the filesystem, fsck --repair rewrites the superblocks, and mkfs without
// -f refuses while any trace of a daxfs is there.
#include <algorithm>

#include "tools/cli_harness.h"

namespace daxguard::testing {
namespace {

class SuperblockCli : public CliHarness {
 protected:
  void SetUp() override {
    CliHarness::SetUp();
    dev_ = Path("pmem0");
    ASSERT_EQ(Dg({"create-device", dev_, "--size", "32m"}).rc, 0);
    ASSERT_EQ(Dg({"mkfs", dev_}).rc, 0);
    ASSERT_EQ(Dg({"io", "-f", F("/a"), "-c", "pwrite -S 0x61 0 64k"}).rc, 0);
    ASSERT_EQ(Dg({"fs", "mkdir", F("/d")}).rc, 0);
  }
  void PoisonBothSuperblocks() {
    // 32 MiB: 8192 blocks, the second superblock in block 4096 (sector 32768).
    ASSERT_EQ(Dg({"inject-error", dev_, "-B", "0"}).rc, 0);
    ASSERT_EQ(Dg({"inject-error", dev_, "-B", "32768"}).rc, 0);
  }
  static void ExpectNoMkfsAdvice(const CliRun& r) {
    EXPECT_EQ(r.out.find("mkfs"), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find("mkfs"), std::string::npos) << r.err;
  }
  void ExpectFilesIntact() {
    CliRun ls = Dg({"fs", "ls", F("/")});
    EXPECT_EQ(ls.rc, 0) << ls.err;
    EXPECT_EQ(ls.out, "a\nd/\n");
    ExpectNoMkfsAdvice(ls);
    CliRun read = Dg({"io", F("/a"), "-c", "pread -v 65532 4"});
    EXPECT_EQ(read.rc, 0) << read.err;
    EXPECT_NE(read.out.find("0000fffc:  61 61 61 61"), std::string::npos) << read.out;
  }
  std::string F(const std::string& p) { return dev_ + ":" + p; }
  std::string dev_;
};

TEST_F(SuperblockCli, MkfsRefusesAndFsckNamesThemWithoutChangingAnything) {
  PoisonBothSuperblocks();
  CliRun mkfs = Dg({"mkfs", dev_});
  EXPECT_NE(mkfs.rc, 0);
  EXPECT_NE(mkfs.err.find("already holds a daxfs filesystem (found superblock copy A (unreadable))"),
            std::string::npos)
      << mkfs.err;
  EXPECT_EQ(std::count(mkfs.err.begin(), mkfs.err.end(), '\n'), 1) << mkfs.err;
  CliRun check = Dg({"fsck", dev_});
  EXPECT_EQ(check.rc, 1) << check.err;
  EXPECT_NE(check.out.find("superblock copy A is unreadable or invalid"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("superblock copy B is unreadable or invalid"), std::string::npos) << check.out;
  ExpectNoMkfsAdvice(check);
  EXPECT_EQ(Dg({"fsck", dev_}).out, check.out) << "a check changes nothing";

  CliRun repair = Dg({"fsck", "--repair", dev_});
  EXPECT_EQ(repair.rc, 0) << repair.out << repair.err;
  EXPECT_NE(repair.out.find("fixed: superblock copy A is unreadable or invalid"), std::string::npos) << repair.out;
  CliRun clean = Dg({"fsck", dev_});
  EXPECT_EQ(clean.rc, 0) << clean.out;
  EXPECT_EQ(DgJson({"list", dev_})["badblock_count"], 0) << "rewriting them cleared the poison";
  ExpectFilesIntact();
  EXPECT_NE(Dg({"mkfs", dev_}).rc, 0);
}

TEST_F(SuperblockCli, ListingAndHealthMountAndRebuildThem) {
  PoisonBothSuperblocks();
  ExpectFilesIntact();
  CliRun health = Dg({"health", dev_});
  EXPECT_EQ(health.rc, 0) << health.err;
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0) << "the first mount rewrote both";
}

TEST_F(SuperblockCli, MkfsRefusesOverAnyTraceAndFormatsABlankDevice) {
  // Superblocks gone for good (zeroed), the log copies still there.
  ASSERT_EQ(Dg({"io", dev_, "-c", "zero 0 4096", "-c", "zero 16m 4096"}).rc, 0);
  CliRun mkfs = Dg({"mkfs", dev_});
  EXPECT_NE(mkfs.rc, 0);
  EXPECT_NE(mkfs.err.find("found a record of metadata log copy A slot 0"), std::string::npos) << mkfs.err;
  ExpectFilesIntact();  // rebuilt from the log
  std::string blank = Path("blank");
  ASSERT_EQ(Dg({"create-device", blank, "--size", "32m"}).rc, 0);
  EXPECT_EQ(Dg({"mkfs", blank}).rc, 0) << "nothing there: no -f needed";
  EXPECT_EQ(Dg({"mkfs", "-f", dev_}).rc, 0) << "-f overwrites whatever is there";
  EXPECT_EQ(Dg({"fs", "ls", F("/")}).out, "");
}

}  // namespace
}  // namespace daxguard::testing
