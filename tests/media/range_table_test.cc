#include "media/range_table.h"

#include "common/units.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace daxguard::media {

// Readable failure messages (found by argument-dependent lookup).
void PrintTo(const Range& r, std::ostream* os) {
  *os << "{" << r.start << "+" << r.len << " f" << int{r.flags} << "}";
}

namespace {

constexpr uint64_t kUnitsPerBit = 64;  // as for the poison list: 64 lines per page

// A RangeTable over memory the test owns: header + entries, and the filter.
// With `shared`, the memory is a MAP_SHARED anonymous mapping that survives
// into a forked child.
class TestTable {
 public:
  TestTable(uint64_t capacity, uint64_t filter_bits, bool shared = false)
      : capacity_(capacity),
        filter_bits_(filter_bits),
        bytes_(RangeTable::BytesFor(capacity) + (filter_bits + 63) / 64 * 8),  // whole filter words
        mem_(Map(bytes_, shared)),
        table_(mem_, Filter(), filter_bits, kUnitsPerBit) {
    RangeTable::Format(mem_, capacity);
  }
  ~TestTable() {
    if (shared_) munmap(mem_, bytes_);
    else delete[] static_cast<uint64_t*>(mem_);
  }
  RangeTable& operator*() { return table_; }
  RangeTable* operator->() { return &table_; }
  RangeTableHeader* header() { return static_cast<RangeTableHeader*>(mem_); }
  uint64_t* entries() { return reinterpret_cast<uint64_t*>(header() + 1); }
  uint64_t* Filter() { return reinterpret_cast<uint64_t*>(static_cast<char*>(mem_) + RangeTable::BytesFor(capacity_)); }
  uint64_t units() const { return filter_bits_ * kUnitsPerBit; }
  uint64_t filter_bits() const { return filter_bits_; }

 private:
  void* Map(uint64_t bytes, bool shared) {
    shared_ = shared;
    if (!shared) return new uint64_t[bytes / 8]();
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    return p;
  }
  uint64_t capacity_, filter_bits_, bytes_;
  bool shared_ = false;
  void* mem_;
  RangeTable table_;
};

// A reference model: one flag per unit, -1 where nothing is covered.
class Model {
 public:
  explicit Model(uint64_t units) : unit_(units, -1) {}
  std::vector<Range> Add(const std::vector<Range>& ranges, uint8_t flags) {
    std::vector<int> added(unit_.size(), -1);
    for (const Range& r : ranges)
      for (uint64_t u = r.start; u < r.end(); ++u)
        if (unit_[u] < 0) unit_[u] = added[u] = flags;
    return Runs(added);
  }
  std::vector<Range> Remove(uint64_t start, uint64_t len, std::optional<uint8_t> only) {
    std::vector<int> removed(unit_.size(), -1);
    for (uint64_t u = start; u < std::min<uint64_t>(start + len, unit_.size()); ++u)
      if (unit_[u] >= 0 && (!only || unit_[u] == *only)) {
        removed[u] = unit_[u];
        unit_[u] = -1;
      }
    return Runs(removed);
  }
  void SetFlags(uint64_t start, uint64_t len, uint8_t flags) {
    for (uint64_t u = start; u < std::min<uint64_t>(start + len, unit_.size()); ++u)
      if (unit_[u] >= 0) unit_[u] = flags;
  }
  std::vector<Range> Ranges() const { return Runs(unit_); }
  bool PageCovered(uint64_t bit) const {
    for (uint64_t u = bit * kUnitsPerBit; u < (bit + 1) * kUnitsPerBit && u < unit_.size(); ++u)
      if (unit_[u] >= 0) return true;
    return false;
  }

  // Maximal runs of equal flags: the normalized table.
  static std::vector<Range> Runs(const std::vector<int>& v) {
    std::vector<Range> out;
    for (uint64_t u = 0; u < v.size(); ++u) {
      if (v[u] < 0) continue;
      if (!out.empty() && out.back().end() == u && out.back().flags == v[u])
        ++out.back().len;
      else
        out.push_back({u, 1, static_cast<uint8_t>(v[u])});
    }
    return out;
  }

 private:
  std::vector<int> unit_;
};

bool SortedDisjoint(const std::vector<Range>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].len == 0) return false;
    if (i && v[i - 1].end() > v[i].start) return false;
  }
  return true;
}

// The filter must say "maybe" exactly for the pages that hold a range.
void ExpectFilterExact(RangeTable& t, const Model& m, uint64_t filter_bits) {
  for (uint64_t bit = 0; bit < filter_bits; ++bit)
    ASSERT_EQ(t.MayOverlap(bit * kUnitsPerBit, kUnitsPerBit), m.PageCovered(bit)) << "page " << bit;
}

std::vector<Range> AddAll(RangeTable& t, const std::vector<Range>& ranges, uint8_t flags) {
  std::vector<Range> added;
  Status s = t.Add(ranges, flags, &added);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return added;
}

TEST(RangeTable, EmptyTable) {
  TestTable t(16, 128);
  EXPECT_EQ(t->Count(), 0u);
  EXPECT_TRUE(t->All().empty());
  EXPECT_FALSE(t->MayOverlap(0, t.units()));
  EXPECT_FALSE(t->FirstOverlap(0, UINT64_MAX).has_value());
  EXPECT_TRUE(AddAll(*t, {}, 0).empty());
}

TEST(RangeTable, AddReportsOnlyNewlyCoveredParts) {
  TestTable t(16, 128);
  EXPECT_EQ(AddAll(*t, {{10, 10, 0}}, 0), (std::vector<Range>{{10, 10, 0}}));
  // Overlaps both ends of the existing range: only the two new edges are new.
  EXPECT_EQ(AddAll(*t, {{5, 20, 0}}, 0), (std::vector<Range>{{5, 5, 0}, {20, 5, 0}}));
  EXPECT_EQ(t->All(), (std::vector<Range>{{5, 20, 0}}));
  // Already covered: nothing new, nothing changes.
  EXPECT_TRUE(AddAll(*t, {{7, 3, 0}}, 0).empty());
  EXPECT_EQ(t->All(), (std::vector<Range>{{5, 20, 0}}));
  // Several input ranges at once; covered parts keep their old flags.
  EXPECT_EQ(AddAll(*t, {{0, 2, 0}, {20, 10, 0}, {40, 1, 0}}, 3),
            (std::vector<Range>{{0, 2, 3}, {25, 5, 3}, {40, 1, 3}}));
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 2, 3}, {5, 20, 0}, {25, 5, 3}, {40, 1, 3}}));
}

TEST(RangeTable, AdjacentRangesWithEqualFlagsMerge) {
  TestTable t(16, 128);
  AddAll(*t, {{0, 10, 0}}, 1);
  AddAll(*t, {{10, 10, 0}}, 1);
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 20, 1}}));
  AddAll(*t, {{30, 5, 0}}, 1);
  EXPECT_EQ(t->Count(), 2u);
  // Filling the gap joins all three into one entry.
  EXPECT_EQ(AddAll(*t, {{20, 10, 0}}, 1), (std::vector<Range>{{20, 10, 1}}));
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 35, 1}}));
  EXPECT_EQ(t->Count(), 1u);
  // Touching input ranges are reported as one.
  EXPECT_EQ(AddAll(*t, {{40, 2, 0}, {42, 3, 0}}, 1), (std::vector<Range>{{40, 5, 1}}));
}

TEST(RangeTable, DifferentFlagsAreNotMerged) {
  TestTable t(16, 128);
  AddAll(*t, {{0, 10, 0}}, 0);
  AddAll(*t, {{10, 10, 0}}, 1);
  AddAll(*t, {{20, 10, 0}}, 0);
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 10, 0}, {10, 10, 1}, {20, 10, 0}}));
  EXPECT_EQ(t->Count(), 3u);
}

TEST(RangeTable, RemoveSplitsAndReports) {
  TestTable t(16, 128);
  AddAll(*t, {{0, 100, 0}}, 2);
  std::vector<Range> removed;
  t->Remove(40, 20, std::nullopt, &removed);
  EXPECT_EQ(removed, (std::vector<Range>{{40, 20, 2}}));
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 40, 2}, {60, 40, 2}}));
  // Across a gap and both remaining ranges.
  t->Remove(30, 40, std::nullopt, &removed);
  EXPECT_EQ(removed, (std::vector<Range>{{30, 10, 2}, {60, 10, 2}}));
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 30, 2}, {70, 30, 2}}));
  // Nothing there: nothing removed, and a stale `removed` is cleared.
  t->Remove(35, 30, std::nullopt, &removed);
  EXPECT_TRUE(removed.empty());
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 30, 2}, {70, 30, 2}}));
  // A huge length reaches the end without overflowing.
  t->Remove(10, UINT64_MAX, std::nullopt, &removed);
  EXPECT_EQ(removed, (std::vector<Range>{{10, 20, 2}, {70, 30, 2}}));
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 10, 2}}));
}

TEST(RangeTable, RemoveOnlyFlagsTouchesOnlyMatchingRanges) {
  TestTable t(16, 128);
  AddAll(*t, {{0, 10, 0}}, 0);
  AddAll(*t, {{10, 10, 0}}, 1);
  AddAll(*t, {{20, 10, 0}}, 0);
  std::vector<Range> removed;
  t->Remove(5, 20, uint8_t{0}, &removed);
  EXPECT_EQ(removed, (std::vector<Range>{{5, 5, 0}, {20, 5, 0}}));
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 5, 0}, {10, 10, 1}, {25, 5, 0}}));
  // Splitting a matching range in the middle.
  t->Remove(12, 3, uint8_t{1}, &removed);
  EXPECT_EQ(removed, (std::vector<Range>{{12, 3, 1}}));
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 5, 0}, {10, 2, 1}, {15, 5, 1}, {25, 5, 0}}));
  // No range carries these flags: nothing changes.
  t->Remove(0, 100, uint8_t{7}, &removed);
  EXPECT_TRUE(removed.empty());
  EXPECT_EQ(t->Count(), 4u);
}

TEST(RangeTable, SetFlagsSplitsAndRemerges) {
  TestTable t(16, 128);
  AddAll(*t, {{0, 100, 0}}, 0);
  t->SetFlags(40, 20, 1);
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 40, 0}, {40, 20, 1}, {60, 40, 0}}));
  // Uncovered units stay uncovered.
  t->SetFlags(90, 50, 1);
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 40, 0}, {40, 20, 1}, {60, 30, 0}, {90, 10, 1}}));
  t->SetFlags(0, 200, 1);
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 100, 1}}));
  // A neighbour with the new flags just outside the range merges too.
  AddAll(*t, {{100, 10, 0}}, 0);
  t->SetFlags(100, 10, 1);
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 110, 1}}));
}

TEST(RangeTable, FirstOverlapAndOverlapping) {
  TestTable t(16, 128);
  AddAll(*t, {{10, 5, 0}, {100, 1, 0}, {200, 50, 0}}, 0);
  EXPECT_EQ(t->FirstOverlap(0, 10), std::nullopt);
  EXPECT_EQ(t->FirstOverlap(0, 11), (Range{10, 5, 0}));
  EXPECT_EQ(t->FirstOverlap(14, 1000), (Range{10, 5, 0}));
  EXPECT_EQ(t->FirstOverlap(15, 85), std::nullopt);
  EXPECT_EQ(t->FirstOverlap(15, 86), (Range{100, 1, 0}));
  EXPECT_EQ(t->FirstOverlap(249, UINT64_MAX), (Range{200, 50, 0}));
  EXPECT_EQ(t->FirstOverlap(250, UINT64_MAX), std::nullopt);
  EXPECT_EQ(t->Overlapping(12, 190), (std::vector<Range>{{10, 5, 0}, {100, 1, 0}, {200, 50, 0}}));
  EXPECT_EQ(t->Overlapping(15, 185), (std::vector<Range>{{100, 1, 0}}));
}

TEST(RangeTable, FilterAtPageBoundaries) {
  TestTable t(16, 128);
  // Units 63 and 64: the last unit of page 0 and the first of page 1.
  AddAll(*t, {{63, 2, 0}}, 0);
  EXPECT_TRUE(t->MayOverlap(0, 1));  // same page as unit 63
  EXPECT_TRUE(t->MayOverlap(64, 64));
  EXPECT_FALSE(t->MayOverlap(128, 64));
  // Dropping unit 63 empties page 0 but not page 1.
  t->Remove(63, 1, std::nullopt, nullptr);
  EXPECT_FALSE(t->MayOverlap(0, 64));
  EXPECT_TRUE(t->MayOverlap(64, 1));
  EXPECT_TRUE(t->MayOverlap(0, 65));
  t->Remove(64, 1, std::nullopt, nullptr);
  EXPECT_FALSE(t->MayOverlap(0, t.units()));

  // Across the boundary between filter words (page 63 | page 64).
  const uint64_t w = 64 * kUnitsPerBit;
  AddAll(*t, {{w - 1, 2, 0}}, 0);
  EXPECT_TRUE(t->MayOverlap(w - kUnitsPerBit, kUnitsPerBit));
  EXPECT_TRUE(t->MayOverlap(w, kUnitsPerBit));
  EXPECT_FALSE(t->MayOverlap(0, w - kUnitsPerBit));
  EXPECT_FALSE(t->MayOverlap(w + kUnitsPerBit, t.units()));
  t->Remove(w, 1, std::nullopt, nullptr);
  EXPECT_TRUE(t->MayOverlap(w - 1, 1));
  EXPECT_FALSE(t->MayOverlap(w, kUnitsPerBit));
  // Another range in the same page keeps its bit on when one is removed.
  AddAll(*t, {{w + 10, 1, 0}, {w + 20, 1, 0}}, 0);
  t->Remove(w + 10, 1, std::nullopt, nullptr);
  EXPECT_TRUE(t->MayOverlap(w, kUnitsPerBit));
  // A range reaching the last unit; queries past the filter end are safe.
  AddAll(*t, {{t.units() - 1, 1, 0}}, 0);
  EXPECT_TRUE(t->MayOverlap(t.units() - 1, UINT64_MAX));
  EXPECT_EQ(t->FirstOverlap(t.units() - 1, UINT64_MAX), (Range{t.units() - 1, 1, 0}));
  EXPECT_FALSE(t->MayOverlap(0, 0));
}

// Random edits checked against the model: contents, reports and filter.
TEST(RangeTable, RandomEditsMatchModel) {
  TestTable t(4096, 128);
  Model m(t.units());
  std::mt19937_64 rng(12345);
  auto rnd = [&](uint64_t n) { return rng() % n; };
  for (int iter = 0; iter < 3000; ++iter) {
    uint8_t flags = static_cast<uint8_t>(rnd(3));
    switch (rnd(3)) {
      case 0: {
        std::vector<Range> in;
        uint64_t pos = rnd(t.units() / 2);
        for (int k = 0, n = 1 + rnd(4); k < n && pos < t.units(); ++k) {
          uint64_t len = 1 + rnd(std::min<uint64_t>(200, t.units() - pos));
          in.push_back({pos, len, 0});
          pos += len + rnd(100);
        }
        std::vector<Range> want = m.Add(in, flags);
        ASSERT_EQ(AddAll(*t, in, flags), want) << "iteration " << iter;
        break;
      }
      case 1: {
        uint64_t start = rnd(t.units()), len = 1 + rnd(400);
        std::optional<uint8_t> only;
        if (rnd(2)) only = flags;
        std::vector<Range> removed;
        t->Remove(start, len, only, &removed);
        ASSERT_EQ(removed, m.Remove(start, len, only)) << "iteration " << iter;
        break;
      }
      default: {
        uint64_t start = rnd(t.units()), len = 1 + rnd(400);
        t->SetFlags(start, len, flags);
        m.SetFlags(start, len, flags);
      }
    }
    ASSERT_EQ(t->All(), m.Ranges()) << "iteration " << iter;
    ASSERT_EQ(t->Count(), m.Ranges().size());
    if (iter % 10 == 0) ExpectFilterExact(*t, m, t.filter_bits());
  }
}

TEST(RangeTable, FullTableReturnsEnospcAndChangesNothing) {
  TestTable t(4, 128);
  AddAll(*t, {{0, 1, 0}, {10, 1, 0}, {20, 1, 0}, {30, 1, 0}}, 0);
  ASSERT_EQ(t->Count(), 4u);
  std::vector<Range> before = t->All();
  std::vector<Range> added = {{99, 9, 9}};
  Status s = t->Add({{5000, 2, 0}}, 0, &added);
  EXPECT_EQ(s.err(), ENOSPC);
  EXPECT_EQ(t->All(), before);
  EXPECT_FALSE(t->MayOverlap(5000, 2));  // the filter did not change either
  EXPECT_EQ(added, (std::vector<Range>{{99, 9, 9}}));
  // Several ranges where only some would fit: all or nothing.
  EXPECT_EQ(t->Add({{1, 1, 0}, {40, 1, 0}}, 0, nullptr).err(), ENOSPC);
  EXPECT_EQ(t->All(), before);
  // Growing an existing range needs no new entry and still works.
  EXPECT_EQ(AddAll(*t, {{1, 3, 0}}, 0), (std::vector<Range>{{1, 3, 0}}));
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 4, 0}, {10, 1, 0}, {20, 1, 0}, {30, 1, 0}}));
}

TEST(RangeTable, FullTableRemoveThatCannotSplitReportsNothing) {
  TestTable t(2, 128);
  AddAll(*t, {{0, 10, 0}, {20, 10, 0}}, 0);
  std::vector<Range> removed;
  t->Remove(4, 2, std::nullopt, &removed);  // would need a third entry
  EXPECT_EQ(t->All(), (std::vector<Range>{{0, 10, 0}, {20, 10, 0}}));
  EXPECT_TRUE(removed.empty()) << "Remove reported a removal it did not make";
  EXPECT_TRUE(t->MayOverlap(0, 64));
  // Trimming an end needs no room.
  t->Remove(0, 2, std::nullopt, &removed);
  EXPECT_EQ(removed, (std::vector<Range>{{0, 2, 0}}));
  EXPECT_EQ(t->All(), (std::vector<Range>{{2, 8, 0}, {20, 10, 0}}));
}

TEST(RangeTable, MoreThan512RangesKept) {
  TestTable t(4096, 128);
  std::vector<Range> in;
  for (uint64_t i = 0; i < 2000; ++i) in.push_back({i * 3, 1, 0});
  // Added in two interleaved batches so the second inserts between the first.
  std::vector<Range> evens, odds;
  for (size_t i = 0; i < in.size(); ++i) (i % 2 ? odds : evens).push_back(in[i]);
  AddAll(*t, odds, 0);
  AddAll(*t, evens, 0);
  EXPECT_EQ(t->Count(), 2000u);
  EXPECT_EQ(t->All(), in);
  EXPECT_EQ(t->FirstOverlap(1999 * 3, 1), (Range{1999 * 3, 1, 0}));
  EXPECT_EQ(t->FirstOverlap(1998 * 3 + 1, 2), std::nullopt);
}

// A writer that died mid-edit leaves seq odd, the table half-shifted and
// the filter stale: here an insert at the front stopped after making room
// (count already 5) and copying two entries up, so one entry is listed twice.
TEST(RangeTable, RepairAfterTornWrite) {
  TestTable t(16, 128);
  AddAll(*t, {{100, 5, 0}, {300, 5, 0}}, 0);
  AddAll(*t, {{200, 5, 0}, {400, 5, 0}}, 1);
  std::vector<Range> before = t->All();
  ASSERT_EQ(before.size(), 4u);
  uint64_t* e = t.entries();
  // Entries [A B C D] -> [A B C C D].
  e[8] = e[6], e[9] = e[7];
  e[6] = e[4], e[7] = e[5];
  t.header()->count = 5;
  t.header()->seq += 1;
  t.Filter()[0] = 0;
  t.Filter()[1] = ~0ull;

  t->Repair();
  EXPECT_EQ(t.header()->seq % 2, 0u);
  std::vector<Range> after = t->All();
  EXPECT_TRUE(SortedDisjoint(after));
  EXPECT_EQ(after, before);  // every entry survives, once, with its flags
  EXPECT_EQ(t->Count(), 4u);
  Model m(t.units());
  for (const Range& r : after) m.Add({r}, r.flags);
  ExpectFilterExact(*t, m, t.filter_bits());
  // The table works normally afterwards.
  AddAll(*t, {{105, 95, 0}}, 0);
  EXPECT_EQ(t->All(), (std::vector<Range>{{100, 100, 0}, {200, 5, 1}, {300, 5, 0}, {400, 5, 1}}));
}

TEST(RangeTable, RepairSortsAndKeepsTheUnionOfOverlaps) {
  TestTable t(16, 128);
  uint64_t* e = t.entries();
  auto put = [&](int i, Range r) {
    e[2 * i] = r.start;
    e[2 * i + 1] = (uint64_t{r.flags} << 56) | r.len;
  };
  // Out of order, an empty entry, and two overlapping entries.
  put(0, {500, 10, 0});
  put(1, {100, 10, 0});
  put(2, {0, 0, 0});
  put(3, {105, 20, 0});
  put(4, {110, 5, 0});
  t.header()->count = 5;
  t.header()->seq = 7;
  t->Repair();
  EXPECT_EQ(t.header()->seq % 2, 0u);
  EXPECT_EQ(t->All(), (std::vector<Range>{{100, 25, 0}, {500, 10, 0}}));
  EXPECT_TRUE(t->MayOverlap(100, 1));
  EXPECT_TRUE(t->MayOverlap(500, 1));
  EXPECT_FALSE(t->MayOverlap(200, 200));
}

// Many real torn writes: a child process edits a table in shared memory and
// is killed at a random moment, mostly while an edit shifts the entries.
// Whatever the moment, Repair must leave a sorted table that still lists
// every unit listed both before and after the interrupted edit. (A unit
// listed by neither may appear: a torn store of one entry can over-cover,
// which errs on the safe side, so that is not checked.)
TEST(RangeTable, RepairAfterWriterKilledMidEdit) {
  constexpr uint64_t kBase = 20000;  // entries that every edit shifts
  TestTable t(kBase + 64, AlignUp((2 * kBase + 8192) / kUnitsPerBit + 1, 64), /*shared=*/true);
  std::vector<Range> base;
  for (uint64_t i = 0; i < kBase; ++i) base.push_back({8192 + 2 * i, 1, 0});
  ASSERT_TRUE(t->Add(base, 0, nullptr).ok());
  // One cycle of edits at the front: insert, split, merge, delete, with flag
  // changes that split and re-merge; it ends where it began.
  struct Op {
    int kind;  // 0 add, 1 remove, 2 set flags
    uint64_t start, len;
    uint8_t flags;
  };
  const std::vector<Op> cycle = {{0, 0, 1000, 0}, {1, 400, 200, 0}, {2, 100, 100, 1},
                                 {0, 400, 200, 0}, {2, 0, 1000, 0}, {1, 0, 1000, 0}};
  auto apply = [&](RangeTable& rt, const Op& op) {
    if (op.kind == 0) (void)rt.Add({{op.start, op.len, 0}}, op.flags, nullptr);
    if (op.kind == 1) rt.Remove(op.start, op.len, std::nullopt, nullptr);
    if (op.kind == 2) rt.SetFlags(op.start, op.len, op.flags);
  };
  // Coverage after each step of the cycle, computed on a scratch table.
  auto coverage = [](const std::vector<Range>& v) {
    std::set<uint64_t> s;
    for (const Range& r : v)
      if (r.start < 2000) for (uint64_t u = r.start; u < r.end(); ++u) s.insert(u);
    return s;
  };
  std::vector<std::set<uint64_t>> states;
  {
    TestTable scratch(64, 128);
    states.push_back(coverage(scratch->All()));
    for (const Op& op : cycle) {
      apply(*scratch, op);
      states.push_back(coverage(scratch->All()));
    }
    ASSERT_EQ(states.front(), states.back());
  }

  void* shm = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shm, MAP_FAILED);
  std::atomic_ref<uint64_t> done(*static_cast<uint64_t*>(shm));  // edits the child finished
  std::mt19937 rng(99);
  int torn = 0;
  for (int trial = 0; trial < 40; ++trial) {
    done.store(0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (uint64_t k = 0;; ++k) {
        apply(*t, cycle[k % cycle.size()]);
        done.store(k + 1);
      }
    }
    while (done.load() < 2) sched_yield();  // let it get going
    usleep(200 + rng() % 3000);
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    uint64_t k = done.load();
    torn += t.header()->seq % 2;
    t->Repair();
    ASSERT_EQ(t.header()->seq % 2, 0u);
    std::vector<Range> all = t->All();
    ASSERT_TRUE(SortedDisjoint(all)) << "trial " << trial;
    // The base entries are in every state: none may be lost.
    std::vector<Range> tail(all.end() - std::min<size_t>(all.size(), kBase), all.end());
    ASSERT_EQ(tail, base) << "trial " << trial << " after " << k << " edits";
    const std::set<uint64_t>& pre = states[k % cycle.size()];
    const std::set<uint64_t>& post = states[k % cycle.size() + 1];
    std::set<uint64_t> got = coverage(all);
    for (uint64_t u : pre) {
      if (post.count(u)) {
        ASSERT_TRUE(got.count(u)) << "lost unit " << u << " in trial " << trial;
      }
    }
    // Reset to the cycle's start for the next trial.
    t->Remove(0, 2000, std::nullopt, nullptr);
  }
  munmap(shm, 4096);
  // Most kills land mid-edit, since the edits spend their time shifting.
  EXPECT_GT(torn, 0);
}

// A reader that finds a range listed must find its page marked in the filter
// too: the data path trusts a clear filter bit without looking at the table,
// so a range listed before its bit is set is an error a read can miss.
TEST(RangeTable, AListedRangeIsAlwaysMarkedInTheFilter) {
  constexpr uint64_t kRanges = 2000;
  uint64_t listed = 0, unmarked = 0, rounds = 0;
  // The window is a few stores wide: repeat on fresh tables for a while.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < deadline || rounds < 10) {
    TestTable t(kRanges, 2 * kRanges);
    std::thread reader([&] {
      uint64_t next = 0, seen = 0;  // next: the first unit not yet seen listed
      while (seen < kRanges) {
        std::optional<Range> r = t->FirstOverlap(next, t.units() - next);
        if (!r) continue;
        if (!t->MayOverlap(r->start, r->len)) ++unmarked;
        ++seen;
        next = r->end();
      }
      listed += seen;
    });
    // Ranges a page apart, so each is a new entry and a new filter bit.
    for (uint64_t i = 0; i < kRanges; ++i) AddAll(*t, {{2 * i * kUnitsPerBit, 1, 0}}, 0);
    reader.join();
    ++rounds;
  }
  EXPECT_EQ(unmarked, 0u) << "of " << listed << " ranges seen listed in " << rounds << " tables";
}

// One writer edits, one reader reads: the reader must only ever see a table
// that some whole edit produced, never a half-made one.
TEST(RangeTable, ConcurrentReaderSeesOnlyWholeTables) {
  TestTable t(1024, 128);
  // A fixed cycle of edits; the set of tables it passes through is known.
  std::vector<std::vector<Range>> cycle_in;
  for (uint64_t i = 0; i < 40; ++i) cycle_in.push_back({{i * 50, 1 + i % 20, 0}, {i * 50 + 30, 5, 0}});
  auto step = [&](RangeTable& rt, size_t k) {
    size_t n = cycle_in.size();
    k %= 2 * n;
    if (k % (2 * n) < n) {
      (void)rt.Add(cycle_in[k % n], static_cast<uint8_t>(k % 3), nullptr);
    } else {
      const Range& r = cycle_in[k % n][0];
      rt.Remove(r.start, r.len + 40, std::nullopt, nullptr);
    }
  };
  std::vector<std::vector<Range>> valid;
  {
    TestTable scratch(1024, 128);
    valid.push_back(scratch->All());
    for (size_t k = 0; k < 2 * cycle_in.size(); ++k) {
      step(*scratch, k);
      valid.push_back(scratch->All());
    }
    ASSERT_TRUE(scratch->All().empty());
  }

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, bad{0}, bad_first{0};
  std::thread reader([&] {
    while (!stop.load()) {
      std::vector<Range> snap = t->All();
      if (!SortedDisjoint(snap) || std::find(valid.begin(), valid.end(), snap) == valid.end())
        bad.fetch_add(1);
      // A point query agrees with some whole table too.
      auto first = t->FirstOverlap(500, 600);
      if (first && (first->len == 0 || first->end() <= 500 || first->start >= 1100)) bad_first.fetch_add(1);
      reads.fetch_add(1);
    }
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(700);
  uint64_t edits = 0;
  while (std::chrono::steady_clock::now() < deadline || reads.load() < 100) {
    step(*t, edits++);
  }
  // Finish the cycle so the writer ends on a known table.
  while (edits % (2 * cycle_in.size())) step(*t, edits++);
  stop.store(true);
  reader.join();
  EXPECT_EQ(bad.load(), 0u) << "of " << reads.load() << " reads";
  EXPECT_EQ(bad_first.load(), 0u);
  EXPECT_GE(reads.load(), 100u);
  EXPECT_GT(edits, 100u);
  EXPECT_TRUE(t->All().empty());
}

}  // namespace
}  // namespace daxguard::media
