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

using Json = nlohmann::json;

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
      {"pwrite -A 4000 200", "within one 4096-byte page"},
      {"pwrite -A 0 0", "within one 4096-byte page"},
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
  std::string held = dev_ + ": device is held by pid " + std::to_string(getpid());
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"io", F("/x"), "-c", "pread 0 1"}, {"fs", "ls", F("/")}, {"health", dev_},
        {"who", dev_, "--offset", "0"}, {"fs", "get", F("/x"), Path("copy")}}) {
    SCOPED_TRACE(args[0]);
    CliRun r = Dg(args);
    ExpectOneLineError(r, held);
    EXPECT_EQ(r.err.find(dev_ + ": " + dev_), std::string::npos) << r.err;
  }
}

TEST_F(CliInput, LsEscapesNamesAsLsBDoes) {
  Mkfs();
  ASSERT_EQ(Dg({"fs", "mkdir", F("/two\nlines")}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/\033[31mred"), "-c", "pwrite 0 1"}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/back\\slash\t\x7f\xff"), "-c", "pwrite 0 1"}).rc, 0);
  CliRun r = Dg({"fs", "ls", F("/")});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "\\033[31mred\nback\\\\slash\\t\\177\\377\ntwo\\nlines/\n");
  r = Dg({"fs", "ls", "-l", F("/")});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;
  EXPECT_EQ(r.out.find('\033'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" two\\nlines\n"), std::string::npos) << r.out;
  r = Dg({"fs", "ls", F("/\033[31mred")});
  EXPECT_EQ(r.out, "/\\033[31mred\n");
}

TEST_F(CliInput, JsonOfANameThatIsNotUtf8) {
  Mkfs();
  std::string name = "/bad\xff";
  ASSERT_EQ(Dg({"io", "-f", F(name), "-c", "pwrite 0 4k"}).rc, 0);
  uint64_t sector = SectorOf(F(name), 0);
  CliRun who = Dg({"who", dev_, "--offset", std::to_string(sector * 512)});
  ASSERT_EQ(who.rc, 0) << who.err;
  Json owners = Json::parse(who.out);
  ASSERT_EQ(owners.size(), 1u) << who.out;
  EXPECT_EQ(owners[0]["path"], "/bad\ufffd") << "the byte that is not UTF-8 is replaced, the rest kept";
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", std::to_string(sector)}).rc, 0);
  CliRun health = Dg({"health", dev_});
  ASSERT_EQ(health.rc, 0) << health.err;
  EXPECT_EQ(Json::parse(health.out)["damaged_files"][0]["path"], "/bad\ufffd");
}

// Runs daxguard unable to write a device file made read-only (as root,
// chmod alone would not stop it: then it runs without CAP_DAC_OVERRIDE).
class ReadOnlyDevice : public CliInput {
 protected:
  CliRun DgReadOnly(const std::vector<std::string>& args) {
    std::string cmd = geteuid() == 0 ? "setpriv --bounding-set=-dac_override,-dac_read_search " : "";
    cmd += DAXGUARD_BIN;
    for (const std::string& a : args) cmd += " '" + a + "'";
    cmd += " >" + (dir_ / "out").string() + " 2>" + (dir_ / "err").string();
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(dir_ / "out"), Slurp(dir_ / "err")};
  }
};

TEST_F(ReadOnlyDevice, CommandsThatWriteNothingRead) {
  Mkfs();
  ASSERT_EQ(Dg({"io", "-f", F("/x"), "-c", "pwrite -S 0x78 0 8k"}).rc, 0);
  ASSERT_EQ(Dg({"io", "-f", F("/y"), "-c", "pwrite -S 0x79 0 5000"}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", std::to_string(SectorOf(F("/x"), 4096))}).rc, 0);
  ASSERT_EQ(Dg({"inject-error", dev_, "-B", "60000", "-N"}).rc, 0);  // latent: a read would make it known
  ASSERT_EQ(Dg({"dm", "create", Path("s"), "--table", "0 65536 linear f 0"}).rc, 0);
  std::filesystem::permissions(dev_, std::filesystem::perms::owner_read | std::filesystem::perms::group_read |
                                         std::filesystem::perms::others_read);
  std::string before = Slurp(dev_);
  CliRun denied = DgReadOnly({"io", dev_, "-c", "pwrite 0 4k"});
  ASSERT_NE(denied.rc, 0) << "the device file is writable after all: the test proves nothing";
  EXPECT_NE(denied.err.find("Permission denied"), std::string::npos) << denied.err;

  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"list", dev_, "-M"},
           {"list", Path("s")},
           {"dm", "status", Path("s")},
           {"inject-error", dev_, "-t"},
           {"io", dev_, "-c", "pread -v 0 4k", "-c", "pread 0 64k"},
           {"io", F("/x"), "-c", "pread 0 4k", "-c", "stat", "-c", "fiemap"},
           {"fs", "ls", "-l", F("/")},
           {"fs", "get", F("/y"), Path("copy")},
           {"health", dev_},
           {"who", dev_, "--offset", "0"},
           {"fsck", dev_}}) {
    SCOPED_TRACE(args[0] + " " + args[1]);
    CliRun r = DgReadOnly(args);
    EXPECT_EQ(r.rc, 0) << r.err;
  }
  EXPECT_EQ(DgReadOnly({"fs", "ls", F("/")}).out, "x\ny\n");
  EXPECT_EQ(Slurp(Path("copy")), std::string(5000, 'y'));
  CliRun health = DgReadOnly({"health", dev_});
  ASSERT_EQ(health.rc, 0) << health.err;
  EXPECT_EQ(Json::parse(health.out)["damaged_files"][0]["path"], "/x") << health.out;
  CliRun poisoned = DgReadOnly({"io", dev_, "-c", "pread 0 32m"});
  EXPECT_NE(poisoned.rc, 0);
  EXPECT_NE(poisoned.err.find("Input/output error"), std::string::npos) << poisoned.err;

  // Whatever writes is refused in one line, and nothing changed.
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"io", dev_, "-c", "pwrite 0 4k"},
           {"io", F("/x"), "-c", "pwrite 0 4k"},
           {"io", dev_, "-c", "mmap -r 0 4k"},
           {"fs", "mkdir", F("/d")},
           {"inject-error", dev_, "-B", "8"},
           {"clear-errors", dev_},
           {"fsck", dev_, "--repair"},
           {"mkfs", "-f", dev_}}) {
    SCOPED_TRACE(args[0] + " " + args[1]);
    ExpectOneLineError(DgReadOnly(args), "Permission denied");
  }
  EXPECT_TRUE(Slurp(dev_) == before) << "a read-only command changed the device file";
}

}  // namespace
}  // namespace daxguard::testing
