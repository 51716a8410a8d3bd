// IntervalSet against a bitmap model: random adds and removes must leave
// the same members, merged into maximal disjoint intervals.
#include "fs/interval_set.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace daxguard::fs {
namespace {

constexpr uint64_t kSpan = 512;

// The model's maximal runs.
std::vector<IntervalSet::Interval> Runs(const std::vector<bool>& bits) {
  std::vector<IntervalSet::Interval> out;
  for (uint64_t i = 0; i < bits.size();) {
    if (!bits[i]) {
      ++i;
      continue;
    }
    uint64_t s = i;
    while (i < bits.size() && bits[i]) ++i;
    out.push_back({s, i - s});
  }
  return out;
}

std::vector<IntervalSet::Interval> Runs(const IntervalSet& set) {
  return {set.intervals().begin(), set.intervals().end()};
}

TEST(IntervalSet, AddMergesTouchingAndOverlapping) {
  IntervalSet s;
  s.Add(10, 5);
  s.Add(20, 5);
  s.Add(15, 5);  // touches both
  EXPECT_EQ(Runs(s), (std::vector<IntervalSet::Interval>{{10, 15}}));
  s.Add(0, 0);  // empty: nothing
  s.Add(5, 100);
  EXPECT_EQ(Runs(s), (std::vector<IntervalSet::Interval>{{5, 100}}));
  EXPECT_EQ(s.Total(), 100u);
}

TEST(IntervalSet, RemoveSplits) {
  IntervalSet s;
  s.Add(0, 100);
  s.Remove(40, 10);
  EXPECT_EQ(Runs(s), (std::vector<IntervalSet::Interval>{{0, 40}, {50, 50}}));
  s.Remove(0, 0);
  s.Remove(30, 30);
  EXPECT_EQ(Runs(s), (std::vector<IntervalSet::Interval>{{0, 30}, {60, 40}}));
  s.Remove(0, 1000);
  EXPECT_TRUE(s.empty());
}

TEST(IntervalSet, QueriesClipToTheRange) {
  IntervalSet s;
  s.Add(10, 10);
  s.Add(30, 10);
  EXPECT_EQ(s.FirstOverlap(0, 12), (IntervalSet::Interval{10, 2}));
  EXPECT_EQ(s.FirstOverlap(15, 100), (IntervalSet::Interval{15, 5}));
  EXPECT_FALSE(s.FirstOverlap(20, 10).has_value());
  EXPECT_FALSE(s.FirstOverlap(0, 10).has_value());
  EXPECT_TRUE(s.Contains(12, 8));
  EXPECT_FALSE(s.Contains(12, 9));
  EXPECT_EQ(s.Overlapping(15, 20), (std::vector<IntervalSet::Interval>{{15, 5}, {30, 5}}));
}

TEST(IntervalSet, MatchesABitmapModelOverRandomEdits) {
  std::mt19937_64 rng(7);
  IntervalSet s;
  std::vector<bool> model(kSpan);
  for (int step = 0; step < 20000; ++step) {
    uint64_t start = rng() % kSpan, len = rng() % 40;
    len = std::min(len, kSpan - start);
    bool add = rng() % 2;
    if (add)
      s.Add(start, len);
    else
      s.Remove(start, len);
    for (uint64_t i = start; i < start + len; ++i) model[i] = add;
    ASSERT_EQ(Runs(s), Runs(model)) << "step " << step;
    uint64_t qs = rng() % kSpan, ql = 1 + rng() % 40;
    ql = std::min(ql, kSpan - qs);
    bool any = false, all = true;
    for (uint64_t i = qs; i < qs + ql; ++i) {
      any |= model[i];
      all &= model[i];
    }
    ASSERT_EQ(s.Overlaps(qs, ql), any) << "step " << step;
    ASSERT_EQ(s.Contains(qs, ql), all) << "step " << step;
  }
}

}  // namespace
}  // namespace daxguard::fs
