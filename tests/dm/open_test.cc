// Opening device and stack files, stacks of stacks, and creating stack
// files: everything is checked first, and a bad table writes nothing.
#include "dm/open.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/units.h"
#include "dax/dax_io.h"
#include "dm/stack_file.h"
#include "dm_test_util.h"

namespace daxguard::dm {
namespace {

using namespace testing;  // NOLINT: the dm test helpers
namespace fs = std::filesystem;
constexpr uint64_t S = kSectorSize;

class OpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDevice(dir_.File("d0"), 4 * kMiB);
    MakeDevice(dir_.File("d1"), 4 * kMiB);
  }
  TempDir dir_;
};

TEST_F(OpenTest, OpensDeviceFilesAndStackFiles) {
  auto dev = OpenDaxDevice(dir_.File("d0"));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_NE(dynamic_cast<dax::PmemDax*>(dev->get()), nullptr);
  EXPECT_EQ((*dev)->size(), 4 * kMiB);
  ASSERT_TRUE(MakeStack(dir_.File("s"), {"0 1024 linear d0 0", "1024 2048 linear d1 0"}).ok());
  auto st = OpenDaxDevice(dir_.File("s"));
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  auto* stack = dynamic_cast<Stack*>(st->get());
  ASSERT_NE(stack, nullptr);
  EXPECT_EQ(stack->size(), 3072 * S);
  EXPECT_EQ(stack->name(), dir_.File("s"));
  EXPECT_EQ(stack->table().size(), 2u);
  EXPECT_EQ(OpenDaxDevice(dir_.File("missing")).status().err(), ENOENT);
}

// Five levels: each stack shifts by its offset, so a byte written at the
// top lands at the sum of them on the device.
TEST_F(OpenTest, StacksOfStacksGoAsDeepAsNeeded) {
  ASSERT_TRUE(MakeStack(dir_.File("s1"), {"0 4096 linear d0 2048"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("s2"), {"0 2048 linear s1 1024"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("s3"), {"0 1024 linear s2 512"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("s4"), {"0 512 striped 2 8 s3 0 d1 0"}).ok());
  auto top = OpenOrDie(dir_.File("s4"));
  ASSERT_TRUE(top);
  uint8_t b = 0x99;
  ASSERT_TRUE(top->Write(8 * S + 3, &b, 1).ok());  // chunk 1: d1 sector 0
  ASSERT_TRUE(top->Write(16 * S + 5, &b, 1).ok());  // chunk 2: s3 sector 8
  auto d0 = media::PmemDevice::Open(dir_.File("d0"));
  auto d1 = media::PmemDevice::Open(dir_.File("d1"));
  ASSERT_TRUE(d0.ok() && d1.ok());
  EXPECT_EQ((*d1)->data()[3], 0x99);
  EXPECT_EQ((*d0)->data()[(2048 + 1024 + 512 + 8) * S + 5], 0x99);
  ASSERT_TRUE((*d0)->Inject(2048 + 1024 + 512 + 9, 1, {}).ok());
  EXPECT_EQ(top->BadBlocks(), (std::vector<media::BadBlock>{{17, 1, false}}));
}

TEST_F(OpenTest, RelativeDevicesAreFoundFromTheStackFilesDirectory) {
  fs::create_directories(dir_.File("sub/deeper"));
  ASSERT_TRUE(MakeStack(dir_.File("sub/s"), {"0 64 linear ../d0 0"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("sub/deeper/t"), {"0 64 linear ../s 0"}).ok());
  EXPECT_TRUE(OpenOrDie(dir_.File("sub/deeper/t")));
  // The test runs elsewhere: the paths were never taken from the cwd.
  EXPECT_NE(fs::current_path().string(), dir_.File("sub"));
  Status s = MakeStack(dir_.File("sub/u"), {"0 64 linear d0 0"});
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_NE(s.message().find(dir_.File("sub/d0")), std::string::npos) << s.message();
}

TEST_F(OpenTest, TwoSpellingsOfOneDeviceAreOneBase) {
  ASSERT_TRUE(MakeStack(dir_.File("s"), {"0 64 linear d0 0", "64 64 linear ./d0 64",
                                         "128 64 linear " + dir_.File("d0") + " 128"}).ok());
  auto st = OpenOrDie(dir_.File("s"));
  ASSERT_TRUE(st);
  EXPECT_EQ(dynamic_cast<Stack&>(*st).base_count(), 1u);
  RecordingHolder h;
  EXPECT_TRUE(h.RegisterWith(*st).ok()) << "one device, one claim";
}

TEST_F(OpenTest, BadTablesAreRefusedAndWriteNothing) {
  ASSERT_TRUE(MakeStack(dir_.File("ok"), {"0 64 linear d0 0"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("ok2"), {"0 64 linear d0 64"}).ok());
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"0 64 linear d0 0", "32 64 linear d1 0"}, "overlap"},
      {{"0 64 linear d0 0", "128 64 linear d1 0"}, "gap"},
      {{"64 64 linear d0 0"}, "start at sector 0"},
      {{"0 8192 linear d0 8"}, "beyond the end of d0"},
      {{"0 64 striped 2 12 d0 0 d1 0"}, "chunk size '12'"},
      {{"0 64 linear missing 0"}, "No such file"},
      {{"0 64 linear new 0"}, "includes itself"},
      {{"0 64 linear ok 0", "64 64 linear ok2 0"}, "lies under both ok and ok2"},
      {{"0 64 linear ok 0", "64 64 linear d0 512"}, "lies under both"},
      {{}, "no segments"},
  };
  for (const auto& [lines, want] : bad) {
    Status s = MakeStack(dir_.File("new"), lines);
    EXPECT_FALSE(s.ok()) << want;
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos);
    EXPECT_FALSE(fs::exists(dir_.File("new"))) << want;
  }
  Status exists = MakeStack(dir_.File("ok"), {"0 64 linear d1 0"});
  EXPECT_EQ(exists.err(), EEXIST);
  EXPECT_EQ(ReadStackFile(dir_.File("ok"))->front().args[0], "d0") << "an existing stack stays as it was";
}

// A cycle made by hand (or by replacing a file) is found on open.
TEST_F(OpenTest, CyclesAreRefused) {
  std::ofstream(dir_.File("a")) << "daxguard-stack 1\n0 64 linear b 0\n";
  std::ofstream(dir_.File("b")) << "daxguard-stack 1\n0 64 linear c 0\n";
  std::ofstream(dir_.File("c")) << "daxguard-stack 1\n0 64 linear a 0\n";
  std::ofstream(dir_.File("self")) << "daxguard-stack 1\n0 64 linear self 0\n";
  // A hard link is the same file under another name.
  std::ofstream(dir_.File("h")) << "daxguard-stack 1\n0 64 linear hlink 0\n";
  fs::create_hard_link(dir_.File("h"), dir_.File("hlink"));
  for (const char* name : {"a", "b", "self", "h", "hlink"}) {
    auto d = OpenDaxDevice(dir_.File(name));
    ASSERT_FALSE(d.ok()) << name;
    EXPECT_NE(d.status().message().find("includes itself"), std::string::npos) << d.status().message();
  }
  // A new stack over one that (after being replaced) would include it.
  ASSERT_TRUE(MakeStack(dir_.File("x"), {"0 64 linear d0 0"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("y"), {"0 64 linear x 0"}).ok());
  fs::remove(dir_.File("x"));
  Status s = MakeStack(dir_.File("x"), {"0 64 linear y 0"});
  EXPECT_NE(s.message().find("includes itself"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(dir_.File("x")));
}

TEST_F(OpenTest, BrokenStackFilesAreRefused) {
  std::ofstream(dir_.File("junk")) << "daxguard-stack 1\n0 64 linear d0\n";
  std::ofstream(dir_.File("short")) << "daxguard-stack 1\n0 64 linear d0 0\n64 64 error\n";
  ASSERT_TRUE(OpenOrDie(dir_.File("short")));
  ASSERT_TRUE(MakeStack(dir_.File("over"), {"0 128 linear short 0"}).ok());
  // The stack below shrinks under the one above.
  std::ofstream(dir_.File("short")) << "daxguard-stack 1\n0 64 linear d0 0\n";
  for (const char* name : {"junk", "over"}) {
    auto d = OpenDaxDevice(dir_.File(name));
    EXPECT_FALSE(d.ok()) << name;
  }
  EXPECT_NE(OpenDaxDevice(dir_.File("over")).status().message().find("beyond the end of short"),
            std::string::npos);
}

// Refused both by `dm create` (nothing written) and when a stack file
// written by hand is opened; the error is one line naming both segments.
void ExpectAlias(const TempDir& dir, const std::vector<std::string>& lines, const std::string& want) {
  std::string trace;
  for (const std::string& l : lines) trace += l + "; ";
  SCOPED_TRACE(trace);
  Status s = MakeStack(dir.File("new"), lines);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(dir.File("new")));
  std::string text = "daxguard-stack 1\n";
  for (const std::string& l : lines) text += l + "\n";
  std::ofstream(dir.File("hand")) << text;
  auto d = OpenDaxDevice(dir.File("hand"));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find(want), std::string::npos) << d.status().message();
  fs::remove(dir.File("hand"));
}

TEST_F(OpenTest, SegmentsReachingTheSameBytesAreRefused) {
  ExpectAlias(dir_, {"0 64 linear d0 0", "64 64 linear d0 32"}, "alias: segments 0 and 1 both reach d0 bytes 16384..32768");
  ExpectAlias(dir_, {"0 64 linear d1 0", "64 64 linear d0 0", "128 64 linear d1 0"},
              "alias: segments 0 and 2 both reach d1 bytes 0..32768");
  // Other names of one file: a symlink, a hard link.
  fs::create_symlink(dir_.File("d0"), dir_.File("sym"));
  fs::create_hard_link(dir_.File("d0"), dir_.File("hard"));
  ExpectAlias(dir_, {"0 64 linear d0 0", "64 64 linear sym 0"}, "alias: segments 0 and 1 both reach d0 bytes 0..32768");
  ExpectAlias(dir_, {"0 64 linear hard 8", "64 64 error", "128 64 linear d0 64"},
              "alias: segments 0 and 2 both reach hard bytes 32768..36864");
}

TEST_F(OpenTest, StripesReachingTheSameBytesAreRefused) {
  // Each stripe takes LEN / N contiguous sectors from its offset.
  ExpectAlias(dir_, {"0 64 striped 2 8 d0 0 d0 24"}, "alias: segment 0 stripe 0 and segment 0 stripe 1 both reach d0 bytes 12288..16384");
  ExpectAlias(dir_, {"0 64 striped 2 8 d1 0 d0 0", "64 64 linear d0 24"},
              "alias: segment 0 stripe 1 and segment 1 both reach d0 bytes 12288..16384");
  ExpectAlias(dir_, {"0 64 striped 2 8 d0 0 d1 0", "64 64 striped 2 8 d1 16 d0 64"},
              "alias: segment 0 stripe 1 and segment 1 stripe 0 both reach d1 bytes 8192..16384");
}

TEST_F(OpenTest, AliasingThroughStacksBelowIsRefused) {
  ASSERT_TRUE(MakeStack(dir_.File("s1"), {"0 128 linear d0 0"}).ok());
  ASSERT_TRUE(MakeStack(dir_.File("s2"), {"0 128 linear d0 64"}).ok());
  // One stack below, used twice over the same range.
  ExpectAlias(dir_, {"0 64 linear s1 0", "64 64 linear s1 56"}, "alias: segments 0 and 1 both reach s1 bytes 28672..32768");
  // Two stacks over overlapping ranges of d0: one device under two bases.
  Status s = MakeStack(dir_.File("new"), {"0 128 linear s1 0", "128 128 linear s2 0"});
  EXPECT_NE(s.message().find("lies under both s1 and s2"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(dir_.File("new")));
  // A stack below that aliases by itself (written by hand).
  std::ofstream(dir_.File("bad")) << "daxguard-stack 1\n0 64 linear d0 0\n64 64 striped 2 8 d1 0 d0 56\n";
  s = MakeStack(dir_.File("new"), {"0 128 linear bad 0"});
  EXPECT_NE(s.message().find("alias: segment 0 and segment 1 stripe 1 both reach d0 bytes 28672..32768"),
            std::string::npos)
      << s.message();
  EXPECT_FALSE(fs::exists(dir_.File("new")));
}

TEST_F(OpenTest, DisjointRangesOfOneDeviceAreAccepted) {
  ASSERT_TRUE(MakeStack(dir_.File("s"), {"0 64 linear d0 64", "64 64 linear d0 0", "128 64 striped 2 8 d0 128 d1 0",
                                         "192 64 striped 2 8 d1 32 d0 160", "256 8 error"})
                  .ok());
  ASSERT_TRUE(MakeStack(dir_.File("t"), {"0 128 linear s 0", "128 128 linear s 128", "256 8 error"}).ok());
  auto top = OpenOrDie(dir_.File("t"));
  ASSERT_TRUE(top);
  // Every page reads back its own tag: nothing below is shared.
  const uint64_t pages = 256 * S / kPageSize;
  for (uint64_t p = 0; p < pages; ++p) ASSERT_TRUE(top->Write(p * kPageSize, &p, sizeof p).ok());
  for (uint64_t p = 0; p < pages; ++p) {
    uint64_t tag = ~p;
    ASSERT_EQ(top->ReadMcSafe(p * kPageSize, &tag, sizeof tag).value_or(SIZE_MAX), sizeof tag);
    EXPECT_EQ(tag, p);
  }
}

// s1 over d0, s2 over s1, ...: a chain `n` stacks deep.
void MakeChain(const TempDir& dir, int n) {
  std::ofstream(dir.File("c1")) << "daxguard-stack 1\n0 64 linear d0 0\n";
  for (int i = 2; i <= n; ++i)
    std::ofstream(dir.File("c" + std::to_string(i))) << "daxguard-stack 1\n0 64 linear c" << i - 1 << " 0\n";
}

TEST_F(OpenTest, NestingIsLimited) {
  MakeChain(dir_, kMaxStackDepth);
  EXPECT_TRUE(OpenOrDie(dir_.File("c" + std::to_string(kMaxStackDepth))));
  std::string top = "c" + std::to_string(kMaxStackDepth);
  Status s = MakeStack(dir_.File("new"), {"0 64 linear " + top + " 0"});
  EXPECT_NE(s.message().find("stack nesting deeper than 16"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_.File("new")));
  // Thousands of levels: refused at the limit, not a stack overflow.
  MakeChain(dir_, 4000);
  for (const char* name : {"c17", "c4000"}) {
    auto d = OpenDaxDevice(dir_.File(name));
    ASSERT_FALSE(d.ok()) << name;
    EXPECT_NE(d.status().message().find("stack nesting deeper than 16"), std::string::npos);
  }
}

}  // namespace
}  // namespace daxguard::dm
