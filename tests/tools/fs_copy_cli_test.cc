// fs put and fs get: copies between the host and daxfs are all or nothing
// in both directions, and never replace what is not a regular file.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "tools/cli_harness.h"

namespace daxguard::testing {
namespace {

constexpr uint64_t kDevSize = 32ull << 20;

class FsCopyCli : public CliHarness {
 protected:
  void SetUp() override {
    CliHarness::SetUp();
    dev_ = Path("pmem0");
    ASSERT_EQ(Dg({"create-device", dev_, "--size", "32m"}).rc, 0);
    CliRun r = Dg({"mkfs", dev_});
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  std::string F(const std::string& p) { return dev_ + ":" + p; }
  // Free bytes on the device, from `who`.
  uint64_t FreeBytes() {
    uint64_t free = 0;
    for (const auto& o : DgJson({"who", dev_, "--offset", "0", "--length", std::to_string(kDevSize)}))
      if (o["owner"] == "free") free += o["length"].get<uint64_t>();
    return free;
  }
  void WriteHost(const std::string& name, const std::string& bytes) {
    std::ofstream(Path(name), std::ios::binary) << bytes;
  }
  // What DEV:/path holds, through a fresh get.
  std::string Content(const std::string& path) {
    std::filesystem::remove(Path("check"));
    CliRun r = Dg({"fs", "get", F(path), Path("check")});
    EXPECT_EQ(r.rc, 0) << r.err;
    return Slurp(Path("check"));
  }
  // Entries of the scratch directory other than the device and `keep`.
  std::vector<std::string> HostLeftovers(const std::vector<std::string>& keep) {
    std::vector<std::string> left;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      std::string n = e.path().filename();
      if (n != "pmem0" && n != "out" && n != "err" && std::find(keep.begin(), keep.end(), n) == keep.end())
        left.push_back(n);
    }
    return left;
  }
  static bool OneLine(const CliRun& r) {
    return !r.err.empty() && r.err.find('\n') == r.err.size() - 1 && r.err.rfind("daxguard fs ", 0) == 0;
  }
  std::string dev_;
};

TEST_F(FsCopyCli, PutLargerThanFreeSpaceKeepsTheOldFileAndTheSpace) {
  std::string old(300000, 'o');
  WriteHost("old", old);
  ASSERT_EQ(Dg({"fs", "put", Path("old"), F("/f")}).rc, 0);
  uint64_t free = FreeBytes();
  WriteHost("big", "");
  std::filesystem::resize_file(Path("big"), kDevSize);  // sparse: reads as zeros
  CliRun r = Dg({"fs", "put", Path("big"), F("/f")});
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(OneLine(r)) << r.err;
  EXPECT_NE(r.err.find("no free space"), std::string::npos) << r.err;
  std::string now = Content("/f");
  EXPECT_TRUE(now == old) << "the old file now holds " << now.size() << " bytes";
  EXPECT_EQ(FreeBytes(), free);
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
}

TEST_F(FsCopyCli, FailedPutOfANewNameLeavesNoFile) {
  uint64_t free = FreeBytes();
  WriteHost("big", "");
  std::filesystem::resize_file(Path("big"), kDevSize);
  CliRun r = Dg({"fs", "put", Path("big"), F("/new")});
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(OneLine(r)) << r.err;
  EXPECT_EQ(Dg({"fs", "ls", F("/")}).out, "");
  EXPECT_EQ(FreeBytes(), free);
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
}

TEST_F(FsCopyCli, PutThatCannotReadTheHostFileKeepsTheOldFile) {
  WriteHost("old", "old bytes");
  ASSERT_EQ(Dg({"fs", "put", Path("old"), F("/f")}).rc, 0);
  // A regular file whose first read fails (EIO: nothing is mapped at 0).
  CliRun r = Dg({"fs", "put", "/proc/self/mem", F("/f")});
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(OneLine(r)) << r.err;
  EXPECT_EQ(Content("/f"), "old bytes");
  EXPECT_EQ(Dg({"fs", "ls", F("/")}).out, "f\n");
}

TEST_F(FsCopyCli, PutReplacesAWholeFileAndKeepsItsMode) {
  WriteHost("long", std::string(100000, 'l'));
  WriteHost("short", "short");
  ASSERT_EQ(Dg({"fs", "put", Path("long"), F("/f")}).rc, 0);
  uint64_t free = FreeBytes();
  CliRun r = Dg({"fs", "put", Path("short"), F("/f")});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Content("/f"), "short");
  EXPECT_EQ(FreeBytes(), free + 100000 / 4096 * 4096) << "the old file's blocks are freed";
  EXPECT_NE(Dg({"io", F("/f"), "-c", "stat"}).out.find("stat.mode = 0644"), std::string::npos);
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
}

TEST_F(FsCopyCli, PutRefusesNonRegularHostFilesBeforeCreatingAnything) {
  std::filesystem::create_directory(Path("dir"));
  ASSERT_EQ(mkfifo(Path("fifo").c_str(), 0644), 0);
  for (const std::string& host : {Path("dir"), Path("fifo"), std::string("/dev/null"), Path("missing")}) {
    CliRun r = Dg({"fs", "put", host, F("/x")});
    EXPECT_NE(r.rc, 0) << host;
    EXPECT_TRUE(OneLine(r)) << r.err;
    EXPECT_EQ(Dg({"fs", "ls", F("/")}).out, "") << host;
  }
  CliRun r = Dg({"fs", "put", Path("dir"), F("/x")});
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

TEST_F(FsCopyCli, PutOverADirectoryIsRefused) {
  WriteHost("h", "data");
  ASSERT_EQ(Dg({"fs", "mkdir", F("/d")}).rc, 0);
  CliRun r = Dg({"fs", "put", Path("h"), F("/d")});
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(OneLine(r)) << r.err;
  EXPECT_EQ(Dg({"fs", "ls", F("/")}).out, "d/\n");
  EXPECT_EQ(Dg({"fsck", dev_}).rc, 0);
}

TEST_F(FsCopyCli, GetBeyondTheFileSizeLimitFailsAndLeavesNothing) {
  ASSERT_EQ(Dg({"io", "-f", F("/f"), "-c", "pwrite -S 0x61 0 64k"}).rc, 0);
  WriteHost("kept", "kept bytes");
  for (const std::string dest : {"absent", "kept"}) {
    std::string cmd = "ulimit -f 20; " + std::string(DAXGUARD_BIN) + " fs get '" + F("/f") + "' '" + Path(dest) +
                      "' 2>" + Path("err");
    int status = std::system(("bash -c \"" + cmd + "\"").c_str());
    ASSERT_TRUE(WIFEXITED(status)) << dest << ": killed by a signal";
    EXPECT_NE(WEXITSTATUS(status), 0) << dest;
    std::string err = Slurp(Path("err"));
    EXPECT_NE(err.find("daxguard fs get: "), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
  EXPECT_FALSE(std::filesystem::exists(Path("absent")));
  EXPECT_EQ(Slurp(Path("kept")), "kept bytes");
  EXPECT_EQ(HostLeftovers({"kept"}), std::vector<std::string>{}) << "temporary files are removed";
}

TEST_F(FsCopyCli, GetRefusesDestinationsThatAreNotRegularFiles) {
  ASSERT_EQ(Dg({"io", "-f", F("/f"), "-c", "pwrite -S 0x61 0 4k"}).rc, 0);
  WriteHost("target", "link target");
  std::filesystem::create_symlink(Path("target"), Path("link"));
  std::filesystem::create_directory(Path("dir"));
  ASSERT_EQ(mkfifo(Path("fifo").c_str(), 0644), 0);
  std::vector<std::string> dests = {Path("link"), Path("dir"), Path("fifo")};
  // A device node of our own (a copy of /dev/null's), where we may make one.
  bool node = mknod(Path("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0;
  if (node) dests.push_back(Path("null"));
  for (const std::string& dest : dests) {
    CliRun r = Dg({"fs", "get", F("/f"), dest});
    EXPECT_NE(r.rc, 0) << dest;
    EXPECT_TRUE(OneLine(r)) << r.err;
    EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(std::filesystem::is_symlink(Path("link")));
  EXPECT_EQ(Slurp(Path("target")), "link target");
  EXPECT_TRUE(std::filesystem::is_directory(Path("dir")));
  EXPECT_TRUE(std::filesystem::is_empty(Path("dir")));
  EXPECT_TRUE(std::filesystem::is_fifo(Path("fifo")));
  EXPECT_TRUE(!node || std::filesystem::is_character_file(Path("null")));
  EXPECT_EQ(HostLeftovers({"target", "link", "dir", "fifo", "null"}), std::vector<std::string>{});
}

TEST_F(FsCopyCli, GetKeepsAnExistingDestinationsModeAndGivesNewOnesTheSourceMode) {
  ASSERT_EQ(Dg({"io", "-f", F("/f"), "-c", "pwrite -S 0x61 0 4k"}).rc, 0);
  WriteHost("existing", "old");
  std::filesystem::permissions(Path("existing"), std::filesystem::perms(0600));
  ASSERT_EQ(Dg({"fs", "get", F("/f"), Path("existing")}).rc, 0);
  EXPECT_EQ(Slurp(Path("existing")), std::string(4096, 'a'));
  EXPECT_EQ(static_cast<int>(std::filesystem::status(Path("existing")).permissions()), 0600);

  mode_t mask = umask(027);
  CliRun r = Dg({"fs", "get", F("/f"), Path("new")});
  umask(mask);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(static_cast<int>(std::filesystem::status(Path("new")).permissions()), 0640) << "0644 minus the umask";
  EXPECT_EQ(HostLeftovers({"existing", "new"}), std::vector<std::string>{});
}

}  // namespace
}  // namespace daxguard::testing
