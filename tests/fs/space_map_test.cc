// SpaceMap: owners, reference counts, free space and quarantine stay in
// step; every block is metadata, free, or owned, never two of these.
#include "fs/space_map.h"

#include <gtest/gtest.h>

#include <random>

namespace daxguard::fs {
namespace {

Geometry SmallGeometry() { return GeometryFor(kMinBlocks * kBlockSize); }

// Owned blocks, free blocks and metadata blocks partition the device.
void ExpectPartition(const SpaceMap& m, const Geometry& g) {
  IntervalSet owned;
  for (const auto& [p, r] : m.runs()) {
    ASSERT_FALSE(r.owners.empty()) << "run at " << p << " has no owner";
    ASSERT_FALSE(owned.Overlaps(r.pblk, r.len)) << "runs overlap at " << p;
    owned.Add(r.pblk, r.len);
  }
  for (uint64_t b = 0; b < g.blocks; ++b) {
    int roles = g.IsMeta(b) + m.free_space().Contains(b, 1) + owned.Contains(b, 1);
    ASSERT_EQ(roles, 1) << "block " << b;
  }
}

TEST(SpaceMap, StartsWithEverythingButMetadataFree) {
  Geometry g = SmallGeometry();
  SpaceMap m(g);
  ExpectPartition(m, g);
  EXPECT_TRUE(m.runs().empty());
}

TEST(SpaceMap, SharedRunsCountEveryOwner) {
  Geometry g = SmallGeometry();
  SpaceMap m(g);
  uint64_t p = g.AreaStart(0) + g.meta_blocks + 10;
  m.AddOwner(p, 8, {5, 0});
  m.AddOwner(p + 4, 8, {6, 100});  // half shared
  EXPECT_EQ(m.RefCount(p), 1u);
  EXPECT_EQ(m.RefCount(p + 5), 2u);
  EXPECT_EQ(m.RefCount(p + 10), 1u);
  EXPECT_TRUE(m.Exclusive(p, 4));
  EXPECT_FALSE(m.Exclusive(p, 5));
  std::vector<OwnedRun> runs = m.Lookup(p + 4, 4);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].owners, (std::vector<Owner>{{5, 4}, {6, 100}}));
  m.RemoveOwner(p, 8, {5, 0});
  EXPECT_TRUE(m.IsFree(p, 4));
  EXPECT_EQ(m.RefCount(p + 5), 1u);
  ExpectPartition(m, g);
}

// A damaged log may map the same blocks to the same owner twice: the
// owner is listed once, so the run's owners replay as they were stored.
TEST(SpaceMap, AnOwnerAddedTwiceIsListedOnce) {
  Geometry g = SmallGeometry();
  SpaceMap m(g);
  uint64_t p = g.AreaStart(0) + g.meta_blocks + 10;
  m.AddOwner(p, 4, {5, 0});
  m.AddOwner(p + 2, 4, {5, 2});
  EXPECT_EQ(m.RefCount(p + 2), 1u);
  ASSERT_EQ(m.Lookup(p, 6).size(), 1u);
  EXPECT_EQ(m.Lookup(p, 6)[0].owners, (std::vector<Owner>{{5, 0}}));
  m.RemoveOwner(p, 6, {5, 0});
  EXPECT_TRUE(m.IsFree(p, 6));
  ExpectPartition(m, g);
}

TEST(SpaceMap, FindFreeSkipsQuarantine) {
  Geometry g = SmallGeometry();
  SpaceMap m(g);
  auto first = m.FindFree(1, 0);
  ASSERT_TRUE(first.has_value());
  m.SetQuarantine(first->first, 1, true);
  auto next = m.FindFree(1, 0);
  ASSERT_TRUE(next.has_value());
  EXPECT_NE(next->first, first->first);
  m.SetQuarantine(first->first, 1, false);
  EXPECT_EQ(m.FindFree(1, 0)->first, first->first);
}

TEST(SpaceMap, RandomOwnershipKeepsThePartition) {
  Geometry g = SmallGeometry();
  SpaceMap m(g);
  std::mt19937_64 rng(11);
  struct Held {
    uint64_t pblk, len;
    Owner o;
  };
  std::vector<Held> held;
  for (int step = 0; step < 2000; ++step) {
    if (held.empty() || rng() % 3) {
      auto f = m.FindFree(1 + rng() % 16, rng() % g.blocks);
      if (!f) continue;
      Held h{f->first, f->second, {1 + rng() % 50, rng() % 1000}};
      m.AddOwner(h.pblk, h.len, h.o);
      held.push_back(h);
      if (rng() % 4 == 0) {  // a reflink of it
        Held c{h.pblk, h.len, {100 + rng() % 50, rng() % 1000}};
        m.AddOwner(c.pblk, c.len, c.o);
        held.push_back(c);
      }
    } else {
      size_t i = rng() % held.size();
      m.RemoveOwner(held[i].pblk, held[i].len, held[i].o);
      held.erase(held.begin() + i);
    }
  }
  ExpectPartition(m, g);
  for (const Held& h : held) EXPECT_GE(m.RefCount(h.pblk), 1u);
}

}  // namespace
}  // namespace daxguard::fs
