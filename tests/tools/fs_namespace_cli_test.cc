// The namespace commands end to end: how `fs` reads paths, rm -r and the
// root, trailing slashes, and listings over damaged directory entries.
#include <algorithm>

#include "tools/cli_harness.h"

namespace daxguard::testing {
namespace {

class FsNamespaceCli : public CliHarness {
 protected:
  void SetUp() override {
    CliHarness::SetUp();
    dev_ = Path("pmem0");
    ASSERT_EQ(Dg({"create-device", dev_, "--size", "32m"}).rc, 0);
    CliRun r = Dg({"mkfs", dev_});
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  std::string F(const std::string& p) { return dev_ + ":" + p; }
  std::string Ls(const std::string& p) { return Dg({"fs", "ls", F(p)}).out; }
  // A failure as the README promises it: exit 1, one line naming the command.
  static void OneLineFailure(const CliRun& r, const std::string& cmd, const std::string& reason) {
    EXPECT_EQ(r.rc, 1) << r.out << r.err;
    EXPECT_EQ(r.err.rfind("daxguard " + cmd + ": ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(reason), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  std::string dev_;
};

TEST_F(FsNamespaceCli, RecursiveRemoveRefusesTheRootBeforeRemovingAnything) {
  ASSERT_EQ(Dg({"fs", "mkdir", F("/a")}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/a/f"), "-c", "pwrite 0 4k"}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/x"), "-c", "pwrite 0 4k"}).rc, 0);
  for (const char* root : {"/", "//", "/.", "/./", "/..", "/a/..", "/a/../", "/./a/../."}) {
    SCOPED_TRACE(root);
    OneLineFailure(Dg({"fs", "rm", "-r", F(root)}), "fs rm", "names the root");
    EXPECT_EQ(Ls("/"), "a/\nx\n");
    EXPECT_EQ(Ls("/a"), "f\n");
  }
  OneLineFailure(Dg({"fs", "rm", "-r", F("/a/.")}), "fs rm", "'.' or '..'");
  EXPECT_EQ(Ls("/a"), "f\n") << "rm -r a/. removes nothing, as rm(1) refuses it";
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
}

TEST_F(FsNamespaceCli, EveryFormOfAPathNamesTheSameEntry) {
  ASSERT_EQ(Dg({"fs", "mkdir", F("/a")}).rc, 0);
  ASSERT_EQ(Dg({"fs", "mkdir", F("//a//b/")}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/a/./b/../b/f"), "-c", "pwrite 0 4k"}).rc, 0);
  EXPECT_EQ(Ls("/a/b"), "f\n");
  EXPECT_EQ(Ls("/../a/./b/"), "f\n");
  ASSERT_EQ(Dg({"fs", "mv", F("/a/b/../b/f"), "/a/./g"}).rc, 0);
  EXPECT_EQ(Ls("/a"), "b/\ng\n");
  EXPECT_EQ(Dg({"fs", "rm", "-r", F("/a/b/../b")}).rc, 0);
  EXPECT_EQ(Ls("/a"), "g\n");
  OneLineFailure(Dg({"fs", "ls", F("/missing/../a")}), "fs ls", "no such file or directory");
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
}

TEST_F(FsNamespaceCli, ATrailingSlashOnAFileIsNotADirectory) {
  ASSERT_EQ(Dg({"io", "-f", F("/f"), "-c", "pwrite 0 4k"}).rc, 0);
  ASSERT_EQ(Dg({"fs", "mkdir", F("/d")}).rc, 0);
  OneLineFailure(Dg({"fs", "rm", F("/f/")}), "fs rm", "not a directory");
  OneLineFailure(Dg({"fs", "rm", "-r", F("/f/")}), "fs rm", "not a directory");
  OneLineFailure(Dg({"fs", "rm", F("/f/.")}), "fs rm", "not a directory");
  OneLineFailure(Dg({"fs", "mv", F("/f/"), "/g"}), "fs mv", "not a directory");
  OneLineFailure(Dg({"fs", "mv", F("/f"), "/g/"}), "fs mv", "not a directory");
  OneLineFailure(Dg({"fs", "ls", F("/f/")}), "fs ls", "not a directory");
  OneLineFailure(Dg({"io", F("/f/"), "-c", "stat"}), "io", "not a directory");
  OneLineFailure(Dg({"fs", "get", F("/f/"), Path("out")}), "fs get", "not a directory");
  EXPECT_EQ(Ls("/"), "d/\nf\n");
  EXPECT_EQ(Dg({"fs", "mv", F("/d/"), "/e/"}).rc, 0) << "a directory may be named with a slash";
  EXPECT_EQ(Dg({"fs", "rm", F("/e/")}).rc, 0);
  EXPECT_EQ(Ls("/"), "f\n");
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
}

TEST_F(FsNamespaceCli, MovingADirectoryOverAnEmptyOneLeavesFsckClean) {
  ASSERT_EQ(Dg({"fs", "mkdir", F("/a")}).rc, 0);
  ASSERT_EQ(Dg({"fs", "mkdir", F("/b")}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/a/f"), "-c", "pwrite 0 4k"}).rc, 0);
  CliRun mv = Dg({"fs", "mv", F("/a"), "/b"});
  ASSERT_EQ(mv.rc, 0) << mv.err;
  EXPECT_EQ(Ls("/"), "b/\n");
  EXPECT_EQ(Ls("/b"), "f\n");
  CliRun fsck = Dg({"fsck", dev_});
  EXPECT_EQ(fsck.rc, 0) << fsck.out << fsck.err;
  OneLineFailure(Dg({"fs", "mv", F("/b"), "/b/c"}), "fs mv", "inside itself");
}

}  // namespace
}  // namespace daxguard::testing
