// The daxguard command's handling of input: every io command checked before
// any runs, one-line errors that say what is wrong once, and listings and
// reads that work on read-only device files.
#include <sys/resource.h>
#include <unistd.h>

#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "tools/cli_harness.h"

namespace daxguard::testing {
namespace {

class CliInput : public CliHarness {
 protected:
  void SetUp() override {
    CliHarness::SetUp();
    dev_ = Path("f");
    ASSERT_EQ(Dg({"create-device", dev_, "--size", "32m"}).rc, 0);
  }
  void Mkfs() { ASSERT_EQ(Dg({"mkfs", dev_}).rc, 0); }
  std::string F(const std::string& path) const { return dev_ + ":" + path; }
  // The first 8 KiB of the device (or of a file), as a hex dump.
  std::string Dump(const std::string& target) {
    CliRun r = Dg({"io", target, "-c", "pread -v 0 8k"});
    return r.out.substr(0, r.out.find("read "));
  }
  static void ExpectOneLineError(const CliRun& r, const std::string& says) {
    EXPECT_NE(r.rc, 0);
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
  }

  std::string dev_;
};

TEST_F(CliInput, DeviceIoChecksEveryCommandBeforeTheFirstRuns) {
  std::string before = Dump(dev_);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"zero 1 3", "multiples of 4096"},
      {"zero 4k 100", "multiples of 4096"},
      {"pread 32m 1", "beyond the device end"},
      {"mmap 1 4096", "must start and end on 4 KiB boundaries"},
      {"mmap 0 0", "length"},
      {"mmap 0 64m", "beyond the device end"},
      {"mread 0 4k", "no mapped regions"},
      {"mwrite 0 4k", "no mapped regions"},
      {"msync", "no mapped regions"},
  };
  for (const auto& [cmd, says] : bad) {
    SCOPED_TRACE(cmd);
    ExpectOneLineError(Dg({"io", dev_, "-c", "pwrite -S 0x11 0 4k", "-c", cmd}), says);
    EXPECT_TRUE(Dump(dev_) == before) << "the pwrite before it ran";
  }
  // The mapping each access falls in is the one the commands before it made.
  ExpectOneLineError(Dg({"io", dev_, "-c", "mmap 0 4k", "-c", "mwrite -S 0x11 0 4k", "-c", "mwrite 4k 4k"}),
                     "not within the mapping");
  ExpectOneLineError(Dg({"io", dev_, "-c", "mmap 0 4k", "-c", "munmap", "-c", "mwrite -S 0x11 0 4k"}),
                     "no mapped regions");
  EXPECT_TRUE(Dump(dev_) == before);
  CliRun ok = Dg({"io", dev_, "-c", "mmap 0 8k", "-c", "mwrite -S 0x22 4k 4k", "-c", "munmap", "-c",
                  "mmap 4k 4k", "-c", "mread 4k 4k", "-c", "zero 0 4k"});
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_FALSE(Dump(dev_) == before);
}

TEST_F(CliInput, FileIoChecksEveryCommandBeforeTheFirstRuns) {
  Mkfs();
  ASSERT_EQ(Dg({"io", "-f", F("/a"), "-c", "pwrite -S 0x61 0 8k"}).rc, 0);
  std::string before = Dump(F("/a"));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"pwrite 0 64m", "beyond the device size"},
      {"fzero 0 0", "length must not be zero"},
      {"fpunch 4k 64m", "beyond the device size"},
      {"falloc 0 0", "length must not be zero"},
      {"truncate 64m", "beyond the device size"},
      {"reflink /a 1 0 4k", "multiples of 4096"},
      {"mmap 100 4k", "multiple of 4096"},
      {"mmap 0 0", "length non-zero"},
      {"mread 0 4k", "no mapped regions"},
  };
  for (const auto& [cmd, says] : bad) {
    SCOPED_TRACE(cmd);
    ExpectOneLineError(Dg({"io", F("/a"), "-c", "pwrite -S 0x11 0 4k", "-c", cmd}), says);
    EXPECT_TRUE(Dump(F("/a")) == before) << "the pwrite before it ran";
  }
  ExpectOneLineError(Dg({"io", F("/a"), "-c", "mmap 0 4k", "-c", "mwrite -S 0x11 0 4k", "-c", "mread 0 8k"}),
                     "not within the mapping");
  EXPECT_TRUE(Dump(F("/a")) == before);
  // -f creates nothing when a command is refused.
  ExpectOneLineError(Dg({"io", "-f", F("/new"), "-c", "pwrite 0 4k", "-c", "fzero 0 0"}), "length must not be zero");
  EXPECT_NE(Dg({"fs", "ls", F("/new")}).rc, 0);
}

TEST_F(CliInput, HelpPrintsTheUsage) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"help"}, std::vector<std::string>{}}) {
    CliRun r = Dg(args);
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(r.err.empty()) << r.err;
    for (const char* cmd : {"create-device", "inject-error", "io", "fsck", "help"})
      EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd << " missing from\n" << r.out;
  }
  CliRun io = Dg({"help", "io"});
  EXPECT_EQ(io.rc, 0) << io.err;
  EXPECT_NE(io.out.find("--command"), std::string::npos) << io.out;
  ExpectOneLineError(Dg({"help", "frobnicate"}), "no command 'frobnicate'");
}

TEST_F(CliInput, ArgumentErrorsNameWhatIsWrong) {
  Mkfs();
  ExpectOneLineError(Dg({"fs", "badverb", F("/"), F("/x")}), "daxguard fs: unknown verb 'badverb' (ls, mkdir, rm, mv, put, get)");
  ExpectOneLineError(Dg({"fs", "badverb"}), "unknown verb 'badverb'");
  ExpectOneLineError(Dg({"who", dev_, "--offset", "0", "--length", "0"}), "daxguard who: --length must be positive");
}

TEST_F(CliInput, ErrorsNameTheirSubjectOnce) {
  Mkfs();
  ASSERT_EQ(Dg({"io", "-f", F("/x"), "-c", "pwrite 0 4k"}).rc, 0);
  auto dev = dax::PmemDax::Open(dev_);
  ASSERT_TRUE(dev.ok()) << dev.status().message();
  auto mounted = fs::Filesystem::Mount(**dev);  // this process holds the device
  ASSERT_TRUE(mounted.ok()) << mounted.status().message();
  std::string held = dev_ + ": device already has a holder (pid " + std::to_string(getpid()) + ")";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"io", F("/x"), "-c", "pread 0 1"}, {"fs", "ls", F("/")}, {"health", dev_},
        {"who", dev_, "--offset", "0"}, {"fs", "get", F("/x"), Path("copy")}}) {
    SCOPED_TRACE(args[0]);
    CliRun r = Dg(args);
    ExpectOneLineError(r, held);
    EXPECT_EQ(r.err.find(dev_ + ": " + dev_), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace daxguard::testing
