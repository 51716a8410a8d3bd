// A stack file is written all or nothing: a writer that fails or is killed
// leaves no file under the stack's name, and never touches a file there.
#include "dm/stack_file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_util.h"

namespace daxguard::dm {
namespace {

namespace fs = std::filesystem;
using daxguard::testing::Child;
using daxguard::testing::TempDir;

// About 1.4 KB of text: many writes' worth under a small size limit.
std::vector<TableLine> LongTable() {
  std::vector<TableLine> t;
  for (uint64_t i = 0; i < 100; ++i) t.push_back({i * 8, 8, "error", {}});
  return t;
}

std::vector<std::string> Names(const TempDir& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string Contents(const std::string& path) {
  std::ostringstream s;
  s << std::ifstream(path, std::ios::binary).rdbuf();
  return s.str();
}

// Runs WriteStackFile in a child whose files may not grow past `limit` bytes.
// Exits 0 if it failed with EFBIG, 1 if it succeeded, 2 on any other error.
int WriteUnderLimit(const std::string& path, rlim_t limit, bool ignore_sigxfsz) {
  signal(SIGXFSZ, ignore_sigxfsz ? SIG_IGN : SIG_DFL);
  struct rlimit rl = {limit, limit};
  if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 3;
  Status s = WriteStackFile(path, LongTable());
  return s.ok() ? 1 : s.err() == EFBIG ? 0 : 2;
}

TEST(WriteStackFile, WritesTheWholeTableAndNothingElse) {
  TempDir dir;
  ASSERT_TRUE(WriteStackFile(dir.File("s"), LongTable()).ok());
  EXPECT_EQ(Names(dir), std::vector<std::string>{"s"}) << "no temporary left";
  auto back = ReadStackFile(dir.File("s"));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, LongTable());
  mode_t mask = umask(0);
  umask(mask);
  struct stat st;
  ASSERT_EQ(stat(dir.File("s").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644 & ~mask);
}

// Every write is checked, a short one too: the error is reported and
// neither the stack file nor the temporary is left.
TEST(WriteStackFile, AFailedWriteLeavesNoFile) {
  for (rlim_t limit : {rlim_t{0}, rlim_t{10}, rlim_t{1000}}) {
    SCOPED_TRACE(limit);
    TempDir dir;
    Child child([&] { return WriteUnderLimit(dir.File("s"), limit, true); });
    EXPECT_EQ(child.Wait(), 0) << "fails with EFBIG";
    EXPECT_EQ(Names(dir), std::vector<std::string>{});
  }
}

// SIGXFSZ at its default kills the writer at the write that crosses the
// limit: a kill at a chosen byte mid-write, the worst point (a kill at any
// later step leaves the same: a temporary only). The name stays free, and
// what is left does not keep a new writer from taking it.
TEST(WriteStackFile, AKilledWriterLeavesNothingUnderTheName) {
  for (rlim_t limit : {rlim_t{0}, rlim_t{10}, rlim_t{1000}}) {
    SCOPED_TRACE(limit);
    TempDir dir;
    Child child([&] { return WriteUnderLimit(dir.File("s"), limit, false); });
    EXPECT_EQ(child.WaitKilledBy(), SIGXFSZ);
    EXPECT_FALSE(fs::exists(fs::symlink_status(dir.File("s"))));
    for (const std::string& name : Names(dir)) EXPECT_EQ(name.rfind(".s.tmp-", 0), 0u) << name;
    // A live writer's temporary file (ours, named as it would name it) stays.
    std::string live = dir.File(".s.tmp-" + std::to_string(getpid()) + "-999");
    std::ofstream(live) << "in progress";
    ASSERT_TRUE(WriteStackFile(dir.File("s"), LongTable()).ok());
    auto back = ReadStackFile(dir.File("s"));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, LongTable());
    // What the killed writer left is gone with it.
    EXPECT_EQ(Names(dir), (std::vector<std::string>{".s.tmp-" + std::to_string(getpid()) + "-999", "s"}));
  }
}

// Whatever is at the path (a file, a dangling symlink) stays as it was.
TEST(WriteStackFile, AnExistingPathIsLeftAsItWas) {
  TempDir dir;
  const std::string precious = "daxguard-stack 1\n0 8 error\nnot ours to replace\n";
  std::ofstream(dir.File("s"), std::ios::binary) << precious;
  ASSERT_EQ(symlink("nowhere", dir.File("link").c_str()), 0);
  Status s = WriteStackFile(dir.File("s"), LongTable());
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_EQ(s.message(), dir.File("s") + " already exists");
  EXPECT_EQ(Contents(dir.File("s")), precious);
  EXPECT_EQ(WriteStackFile(dir.File("link"), LongTable()).err(), EEXIST);
  EXPECT_FALSE(fs::exists(dir.File("nowhere")));
  EXPECT_EQ(Names(dir), (std::vector<std::string>{"link", "s"}));
}

}  // namespace
}  // namespace daxguard::dm
