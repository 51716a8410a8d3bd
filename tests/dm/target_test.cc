// The targets on their own: argument checks, and translation down and back
// up, property-style, against a model written independently here.
#include "dm/target.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "common/units.h"

namespace daxguard::dm {
namespace {

constexpr uint64_t S = kSectorSize;

// Bases "a" (index 0, 1 MiB) and "b" (index 1, 2 MiB).
Result<BaseRef> Resolve(const std::string& dev) {
  static const std::map<std::string, BaseRef> kBases = {{"a", {0, 1 << 20}}, {"b", {1, 2 << 20}}};
  auto it = kBases.find(dev);
  if (it == kBases.end()) return Status::Error(ENOENT, dev + ": No such file or directory");
  return it->second;
}

std::unique_ptr<Target> Make(const std::string& text) {
  auto line = ParseTableLine(text);
  EXPECT_TRUE(line.ok()) << line.status().ToString();
  auto t = MakeTarget(*line, Resolve);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

Status MakeError(const std::string& text) {
  auto line = ParseTableLine(text);
  if (!line.ok()) return line.status();
  return MakeTarget(*line, Resolve).status();
}

// Every byte maps down somewhere, and that place maps back up to it.
void CheckRoundTrip(const Target& t, uint64_t seg_len) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 2000; ++i) {
    uint64_t off = rng() % seg_len, len = 1 + rng() % (seg_len - off);
    Extent e = t.Map(off, len);
    ASSERT_GT(e.len, 0u);
    ASSERT_LE(e.len, len);
    std::vector<ByteRange> up;
    t.Unmap(e.base, e.offset, e.len, &up);
    EXPECT_EQ(MergeRanges(up), (std::vector<ByteRange>{{off, e.len}})) << "offset " << off;
  }
}

TEST(LinearTarget, MapsOneToOneFromItsOffset) {
  auto t = Make("0 64 linear b 16");
  ASSERT_TRUE(t);
  Extent e = t->Map(100, 5000);
  EXPECT_EQ(e.base, 1u);
  EXPECT_EQ(e.offset, 16 * S + 100);
  EXPECT_EQ(e.len, 5000u);
  std::vector<ByteRange> up;
  t->Unmap(1, 0, 20 * S, &up);  // the first 4 sectors it uses
  EXPECT_EQ(up, (std::vector<ByteRange>{{0, 4 * S}}));
  up.clear();
  t->Unmap(0, 16 * S, S, &up);  // the other base
  t->Unmap(1, 80 * S, S, &up);  // past its end
  EXPECT_TRUE(up.empty());
  EXPECT_EQ(t->Bases(), (std::vector<size_t>{1}));
  CheckRoundTrip(*t, 64 * S);
}

TEST(StripedTarget, DealsChunksToStripesInTurn) {
  // Chunks of 16 sectors: 0 -> a@8, 1 -> b@0, 2 -> a@24, 3 -> b@16, ...
  auto t = Make("0 128 striped 2 16 a 8 b 0");
  ASSERT_TRUE(t);
  const uint64_t C = 16 * S;
  auto expect = [&](uint64_t off, size_t base, uint64_t base_off, uint64_t len) {
    Extent e = t->Map(off, 128 * S - off);
    EXPECT_EQ(e.base, base) << off;
    EXPECT_EQ(e.offset, base_off) << off;
    EXPECT_EQ(e.len, len) << off;
  };
  expect(0, 0, 8 * S, C);
  expect(C, 1, 0, C);
  expect(2 * C + 100, 0, 8 * S + C + 100, C - 100);
  expect(7 * C, 1, 3 * C, C);
  // A base range spanning two of its chunks backs two separate stack ranges.
  std::vector<ByteRange> up;
  t->Unmap(1, C - 512, 1024, &up);
  EXPECT_EQ(up, (std::vector<ByteRange>{{2 * C - 512, 512}, {3 * C, 512}}));
  EXPECT_EQ(t->Bases(), (std::vector<size_t>{0, 1}));
  CheckRoundTrip(*t, 128 * S);
}

TEST(StripedTarget, OneDeviceTwiceIsTwoStripes) {
  auto t = Make("0 64 striped 2 8 a 0 a 512");
  ASSERT_TRUE(t);
  std::vector<ByteRange> up;
  t->Unmap(0, 0, 1 << 20, &up);
  uint64_t total = 0;
  for (const ByteRange& r : MergeRanges(up)) total += r.len;
  EXPECT_EQ(total, 64 * S);
  CheckRoundTrip(*t, 64 * S);
}

TEST(ErrorTarget, HasNoBase) {
  auto t = Make("0 64 error");
  ASSERT_TRUE(t);
  Extent e = t->Map(512, 4096);
  EXPECT_EQ(e.base, Extent::kNoBase);
  EXPECT_EQ(e.len, 4096u);
  std::vector<ByteRange> up;
  t->Unmap(0, 0, 1 << 20, &up);
  EXPECT_TRUE(up.empty());
  EXPECT_TRUE(t->Bases().empty());
}

TEST(Targets, RejectBadArguments) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"0 8 linear a", "linear takes DEV OFFSET"},
      {"0 8 linear a 0 1", "linear takes DEV OFFSET"},
      {"0 8 linear a 4", "multiple of 8"},
      {"0 8 linear a x", "not a sector count"},
      {"0 8 linear nope 0", "nope: No such file"},
      {"0 2048 linear a 8", "beyond the end of a (2048 sectors)"},
      {"0 16 striped 2 8 a 0", "needs 2 pairs"},
      {"0 16 striped 0 8", "N CHUNK"},
      {"0 16 striped 2 12 a 0 b 0", "chunk size '12'"},
      {"0 16 striped 2 0 a 0 b 0", "chunk size '0'"},
      {"0 24 striped 2 8 a 0 b 0", "multiple of N * CHUNK"},
      {"0 16 striped 2 16 a 0 b 0", "multiple of N * CHUNK"},
      {"0 4112 striped 2 8 a 0 b 0", "stripe 0 reaches beyond the end of a"},
      {"0 16 striped 2 8 a 0 b 3", "multiple of 8"},
      {"0 8 error x", "error takes no arguments"},
  };
  for (const auto& [text, want] : bad) {
    Status s = MakeError(text);
    EXPECT_FALSE(s.ok()) << text;
    EXPECT_NE(s.message().find(want), std::string::npos) << text << " -> " << s.message();
    EXPECT_NE(s.message().find("segment '" + text + "'"), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace daxguard::dm
