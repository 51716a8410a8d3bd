#include "dm/table.h"

#include <gtest/gtest.h>

#include <fstream>

#include "dm/stack_file.h"
#include "dm_test_util.h"

namespace daxguard::dm {
namespace {

using testing::TempDir;

TEST(ParseTableLine, ReadsDmsetupSyntax) {
  auto l = ParseTableLine("  0 2048   linear pmem0 8 ");
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(*l, (TableLine{0, 2048, "linear", {"pmem0", "8"}}));
  EXPECT_EQ(FormatTableLine(*l), "0 2048 linear pmem0 8");

  auto s = ParseTableLine("2048 4096 striped 2 16 a 0 b 0");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->target, "striped");
  EXPECT_EQ(s->args.size(), 6u);
  EXPECT_TRUE(ParseTableLine("8 8 error").ok());
}

TEST(ParseTableLine, RejectsMalformedLines) {
  for (const char* bad : {"", "0 2048", "x 8 error", "0 8k error", "0 -8 error", "0 0 error",
                          "0 12 error", "4 8 error", "0 8 mirror a b", "0 8 LINEAR a 0",
                          "0 18446744073709551615 error", "36028797018963960 8 error"}) {
    auto l = ParseTableLine(bad);
    EXPECT_FALSE(l.ok()) << "accepted '" << bad << "'";
    if (!l.ok()) {
      EXPECT_EQ(l.status().err(), EINVAL) << bad;
      EXPECT_EQ(l.status().message().find('\n'), std::string::npos);
    }
  }
  EXPECT_NE(ParseTableLine("0 8 mirror").status().message().find("unknown target 'mirror'"), std::string::npos);
}

TEST(CheckLayout, SegmentsFollowEachOtherFromZero) {
  auto T = [](uint64_t start, uint64_t len) { return TableLine{start, len, "error", {}}; };
  EXPECT_TRUE(CheckLayout({T(0, 8), T(8, 16), T(24, 8)}).ok());
  EXPECT_FALSE(CheckLayout({}).ok());
  Status gap = CheckLayout({T(0, 8), T(16, 8)});
  EXPECT_NE(gap.message().find("gap"), std::string::npos) << gap.message();
  Status overlap = CheckLayout({T(0, 16), T(8, 8)});
  EXPECT_NE(overlap.message().find("overlap"), std::string::npos) << overlap.message();
  Status late = CheckLayout({T(8, 8)});
  EXPECT_NE(late.message().find("sector 0"), std::string::npos) << late.message();
  EXPECT_FALSE(CheckLayout({T(8, 8), T(0, 8)}).ok()) << "segments come in order";
}

TEST(StackFile, RoundTripsAndSkipsCommentsAndBlankLines) {
  TempDir dir;
  std::vector<TableLine> table = {{0, 16, "linear", {"d0", "0"}}, {16, 8, "error", {}}};
  ASSERT_TRUE(WriteStackFile(dir.File("s"), table).ok());
  EXPECT_TRUE(LooksLikeStackFile(dir.File("s")));
  auto back = ReadStackFile(dir.File("s"));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, table);
  EXPECT_EQ(WriteStackFile(dir.File("s"), table).err(), EEXIST) << "never overwrites";

  std::ofstream(dir.File("c")) << "daxguard-stack 1\n# a comment\n\n0 16 linear d0 0\n  \n16 8 error\n";
  auto c = ReadStackFile(dir.File("c"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, table);
}

TEST(StackFile, RejectsWhatIsNotAValidStackFile) {
  TempDir dir;
  std::ofstream(dir.File("v2")) << "daxguard-stack 2\n0 8 error\n";
  std::ofstream(dir.File("junk")) << "hello\n";
  std::ofstream(dir.File("badline")) << "daxguard-stack 1\n0 8 error\n8 8 bogus\n";
  std::ofstream(dir.File("gap")) << "daxguard-stack 1\n0 8 error\n16 8 error\n";
  std::ofstream(dir.File("empty")) << "daxguard-stack 1\n";
  EXPECT_TRUE(LooksLikeStackFile(dir.File("v2")));
  EXPECT_FALSE(LooksLikeStackFile(dir.File("junk")));
  EXPECT_FALSE(LooksLikeStackFile(dir.File("missing")));
  for (const char* name : {"v2", "junk", "badline", "gap", "empty", "missing"}) {
    auto t = ReadStackFile(dir.File(name));
    EXPECT_FALSE(t.ok()) << name;
    EXPECT_NE(t.status().message().find(dir.File(name)), std::string::npos) << t.status().message();
  }
  EXPECT_NE(ReadStackFile(dir.File("badline")).status().message().find("line 3"), std::string::npos);
}

}  // namespace
}  // namespace daxguard::dm
