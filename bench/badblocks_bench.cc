// badblocks_bench: known-error lookups with 1,000,000 badblocks entries.
//
// A 16 GiB sparse device gets 1,000,000 bad runs (1..3 sectors, one every 8
// sectors from 8 GiB up) through PmemDevice::AddKnown; a standalone
// RangeTable in anonymous memory gets the same runs. Random one-sector
// lookups then go to PmemDevice::HasKnownErrors and FirstKnownSector (the
// data path's lookup, answered from the exact sector bitmap; the target
// applies to these), and for context to the record fetches
// PmemDevice::FirstKnownError and RangeTable::FirstOverlap (table searches):
//   hit      a sector inside a run
//   miss     a sector in the gap between two runs (the page filter says
//            "maybe", so the table is searched)
//   mixed    hits and misses, 50/50 in random order (the headline figure)
//   filtered a sector in the lower half, which the page filter rules out
// Each lookup is timed on its own with the TSC (fenced, timer overhead
// subtracted) to give the median and p99; Google Benchmark gives the mean
// over back-to-back lookups (lookups may then overlap in the CPU).
//
// For context it also prints how the median scales with the table size
// (10k / 100k / 1M entries of 16 bytes) and this machine's load latency at
// a few working-set sizes (a dependent pointer chase): a random lookup costs
// about as many cache misses as the search has levels outside the cache.
#include <algorithm>
#include <cstdio>
#include <random>

#include "bench_common.h"
#include "media/range_table.h"

namespace daxguard::bench {
namespace {

constexpr uint64_t kDeviceSize = 16ull << 30;
constexpr uint64_t kEntries = 1'000'000;
constexpr uint64_t kFirstSector = (kDeviceSize / 2) / kSectorSize;
constexpr size_t kKeys = 1 << 20;      // per category
constexpr size_t kSamples = 400'000;   // timed one by one, per api and category

struct Key {
  uint64_t sector;
  bool hit;
};

struct Table {
  std::vector<uint64_t> mem;     // header + entries
  std::vector<uint64_t> filter;  // one bit per 4 KiB page
  std::unique_ptr<media::RangeTable> t;
};

Table MakeTable(const std::vector<media::BadBlock>& runs) {
  Table tb;
  uint64_t capacity = runs.size() + 64;
  tb.mem.assign(media::RangeTable::BytesFor(capacity) / 8 + 1, 0);
  uint64_t bits = kDeviceSize / kPageSize;
  tb.filter.assign(bits / 64, 0);
  media::RangeTable::Format(tb.mem.data(), capacity);
  tb.t = std::make_unique<media::RangeTable>(tb.mem.data(), tb.filter.data(), bits,
                                             kPageSize / kSectorSize);
  std::vector<media::Range> ranges;
  for (const auto& b : runs) ranges.push_back({b.sector, b.count, 0});
  Must(tb.t->Add(ranges, 0, nullptr), "RangeTable::Add");
  return tb;
}

std::vector<Key> MakeKeys(const std::string& kind, const std::vector<media::BadBlock>& runs,
                          std::mt19937_64& rng) {
  std::vector<Key> keys;
  keys.reserve(kKeys);
  std::uniform_int_distribution<uint64_t> pick(0, runs.size() - 1);
  for (size_t k = 0; k < kKeys; ++k) {
    bool hit = kind == "hit" || (kind == "mixed" && (rng() & 1));
    if (kind == "filtered") {
      keys.push_back({std::uniform_int_distribution<uint64_t>(0, kFirstSector - 1)(rng), false});
      continue;
    }
    const media::BadBlock& b = runs[pick(rng)];
    if (hit)
      keys.push_back({b.sector + rng() % b.count, true});
    else
      keys.push_back({b.sector + b.count + rng() % (8 - b.count), false});
  }
  return keys;
}

// The three lookups, over a sector.
struct Lookups {
  static inline bool FirstKnownError(media::PmemDevice* d, uint64_t s) {
    return d->FirstKnownError(s * kSectorSize, kSectorSize).has_value();
  }
  static inline bool FirstKnownSector(media::PmemDevice* d, uint64_t s) {
    return d->FirstKnownSector(s * kSectorSize, kSectorSize).has_value();
  }
  static inline bool HasKnownErrors(media::PmemDevice* d, uint64_t s) {
    return d->HasKnownErrors(s * kSectorSize, kSectorSize);
  }
  static inline bool FirstOverlap(media::RangeTable* t, uint64_t s) {
    return t->FirstOverlap(s, 1).has_value();
  }
};

// Latency of one dependent load over a random cycle through `bytes` of memory.
double ChaseNs(size_t bytes) {
  size_t lines = bytes / 64;
  std::vector<uint64_t> mem(bytes / 8);
  std::vector<size_t> order(lines);
  for (size_t i = 0; i < lines; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(3));
  for (size_t i = 0; i < lines; ++i) mem[order[i] * 8] = order[(i + 1) % lines] * 8;
  uint64_t x = 0;
  for (size_t i = 0; i < lines; ++i) x = mem[x];  // warm
  const size_t n = 2'000'000;
  double s = TimeSeconds([&] {
    for (size_t i = 0; i < n; ++i) x = mem[x];
  });
  benchmark::DoNotOptimize(x);
  return s * 1e9 / n;
}

template <typename F>
std::vector<double> TimeEach(const std::vector<Key>& keys, F&& lookup, uint64_t overhead,
                             double tsc_per_ns) {
  std::vector<double> ns;
  ns.reserve(kSamples);
  for (size_t i = 0; i < kSamples; ++i) {
    uint64_t s = keys[i % keys.size()].sector;
    uint64_t t0 = TscBegin();
    bool r = lookup(s);
    benchmark::DoNotOptimize(r);
    uint64_t t1 = TscEnd();
    uint64_t d = t1 - t0;
    ns.push_back(double(d > overhead ? d - overhead : 0) / tsc_per_ns);
  }
  return ns;
}

}  // namespace
}  // namespace daxguard::bench

int main(int argc, char** argv) {
  using namespace daxguard;
  using namespace daxguard::bench;
  InitBenchmark(&argc, argv, {});

  ScratchDir dir;
  auto dev = dir.Create("badblocks", kDeviceSize);
  auto runs = BadRuns(kFirstSector, kEntries);
  double load_s = TimeSeconds([&] { Must(dev->AddKnown(runs), "AddKnown"); });
  Table tb;
  double table_s = TimeSeconds([&] { tb = MakeTable(runs); });
  if (dev->BadBlocks().size() != kEntries || tb.t->Count() != kEntries) {
    std::fprintf(stderr, "fatal: tables do not hold %llu entries\n",
                 static_cast<unsigned long long>(kEntries));
    return 1;
  }
  std::printf("1,000,000 badblocks: PmemDevice::AddKnown %.3f s, RangeTable::Add %.3f s\n", load_s,
              table_s);

  std::mt19937_64 rng(42);
  const std::vector<std::string> kinds = {"mixed", "hit", "miss", "filtered"};
  std::map<std::string, std::vector<Key>> keys;
  for (const auto& k : kinds) keys[k] = MakeKeys(k, runs, rng);

  media::PmemDevice* d = dev.get();
  media::RangeTable* t = tb.t.get();
  // The target is for the lookup every access makes (is it bad, where
  // first: the exact sector bitmap). Fetching the whole record searches the
  // table and happens only on error paths; it is shown for context.
  struct ApiFn {
    std::string name;
    bool (*fn)(void*, uint64_t);
    void* obj;
    bool targeted;
  };
  std::vector<ApiFn> apis = {
      {"PmemDevice::HasKnownErrors",
       [](void* o, uint64_t s) { return Lookups::HasKnownErrors(static_cast<media::PmemDevice*>(o), s); }, d, true},
      {"PmemDevice::FirstKnownSector",
       [](void* o, uint64_t s) { return Lookups::FirstKnownSector(static_cast<media::PmemDevice*>(o), s); }, d, true},
      {"PmemDevice::FirstKnownError",
       [](void* o, uint64_t s) { return Lookups::FirstKnownError(static_cast<media::PmemDevice*>(o), s); }, d, false},
      {"RangeTable::FirstOverlap",
       [](void* o, uint64_t s) { return Lookups::FirstOverlap(static_cast<media::RangeTable*>(o), s); }, t, false},
  };

  // Every answer must be right before anything is timed.
  for (const auto& api : apis)
    for (const auto& k : kinds)
      for (size_t i = 0; i < 20000; ++i)
        if (api.fn(api.obj, keys[k][i].sector) != keys[k][i].hit) {
          std::fprintf(stderr, "fatal: %s gave a wrong answer for sector %llu (%s)\n",
                       api.name.c_str(), static_cast<unsigned long long>(keys[k][i].sector),
                       k.c_str());
          return 1;
        }

  // Mean per lookup, back to back, through Google Benchmark.
  for (const auto& api : apis)
    for (const auto& k : kinds) {
      const std::vector<Key>* ks = &keys[k];
      ApiFn a = api;
      benchmark::RegisterBenchmark((api.name + "/" + k).c_str(), [ks, a](benchmark::State& s) {
        size_t i = 0;
        for (auto _ : s) {
          bool r = a.fn(a.obj, (*ks)[i].sector);
          benchmark::DoNotOptimize(r);
          if (++i == ks->size()) i = 0;
        }
      })
          ->Repetitions(3)
          ->MinTime(0.2)
          ->ReportAggregatesOnly(true)
          ->Unit(benchmark::kNanosecond);
    }
  CaptureReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);

  // One at a time, for the distribution.
  double tsc_per_ns = TscPerNs();
  std::vector<double> empty;
  for (int i = 0; i < 100000; ++i) {
    uint64_t t0 = TscBegin();
    uint64_t t1 = TscEnd();
    empty.push_back(double(t1 - t0));
  }
  uint64_t overhead = static_cast<uint64_t>(Median(empty));
  std::printf("\nTSC %.3f ticks/ns; timer overhead %llu ticks (%.1f ns), subtracted\n", tsc_per_ns,
              static_cast<unsigned long long>(overhead), overhead / tsc_per_ns);

  std::printf("\n== badblocks_bench summary: one-sector lookups, 1,000,000 entries "
              "(%zu timed lookups per row) ==\n", kSamples);
  std::printf("%-28s %-9s %9s %9s %9s %10s  %s\n", "api", "keys", "median", "p90", "p99",
              "GB mean", "target median<100ns");
  int misses = 0;
  for (const auto& api : apis)
    for (const auto& k : kinds) {
      // Warm up with the same key stream, then measure.
      for (size_t i = 0; i < 50000; ++i) benchmark::DoNotOptimize(api.fn(api.obj, keys[k][i].sector));
      auto ns = TimeEach(keys[k], [&](uint64_t s) { return api.fn(api.obj, s); }, overhead, tsc_per_ns);
      double med = Percentile(ns, 0.5), p90 = Percentile(ns, 0.9), p99 = Percentile(ns, 0.99);
      bool ok = med < 100;
      misses += api.targeted && !ok;
      std::printf("%-28s %-9s %7.1fns %7.1fns %7.1fns %8.1fns  %s\n", api.name.c_str(), k.c_str(),
                  med, p90, p99, rep.Ns(api.name + "/" + k),
                  !api.targeted ? "(record fetch, context)" : ok ? "ok" : "MISSED");
    }
  std::printf("targets missed: %d\n", misses);

  // Why: the same search at smaller table sizes, and the memory it runs on.
  std::printf("\n-- context: RangeTable::FirstOverlap median (mixed keys) by table size\n");
  for (uint64_t n : {uint64_t{10'000}, uint64_t{100'000}, kEntries}) {
    auto r = BadRuns(kFirstSector, n);
    Table small = MakeTable(r);
    std::mt19937_64 rng2(5);
    auto ks = MakeKeys("mixed", r, rng2);
    auto fn = [&](uint64_t s) { return small.t->FirstOverlap(s, 1).has_value(); };
    for (size_t i = 0; i < 50000; ++i) benchmark::DoNotOptimize(fn(ks[i].sector));
    auto ns = TimeEach(ks, fn, overhead, tsc_per_ns);
    std::printf("   %8llu entries (%5.1f MiB table): median %6.1f ns, p99 %6.1f ns\n",
                static_cast<unsigned long long>(n), n * 16.0 / (1 << 20), Percentile(ns, 0.5),
                Percentile(ns, 0.99));
  }
  std::printf("-- context: dependent-load latency by working set (pointer chase)\n  ");
  for (size_t mib : {1, 4, 8, 16, 64}) std::printf(" %zu MiB: %.1f ns;", mib, ChaseNs(mib << 20));
  std::printf("\n");
  benchmark::Shutdown();
  return misses ? 1 : 0;  // a missed target fails the run
}
