// Shared by benchmarks of mapped access: the loop they time (sequential
// 8-byte loads summed over a whole mapping) and its registration, so every
// kind of mapping (anonymous memory, a device, later a file) is measured by
// the same machine code.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "bench_common.h"

namespace daxguard::bench {

// Not inlined: one copy of the loop serves every mapping.
[[gnu::noinline]] inline uint64_t SumWords(const uint8_t* p, uint64_t len) {
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  uint64_t sum = 0;
  for (uint64_t i = 0; i < len / 8; ++i) sum += w[i];
  return sum;
}

// Writes every page, so no fault is timed (and the pages are present).
inline void PreFault(uint8_t* p, uint64_t len) {
  for (uint64_t off = 0; off < len; off += kPageSize) std::memset(p + off, static_cast<int>(off >> 12), kPageSize);
}

// One pass of SumWords over [p, p+len) per repetition, so the median is of
// single passes: the VM this runs on stalls a pass now and then for 10-35 ms
// (seen on every kind of mapping alike), and a repetition of many passes
// that catches one reads several percent slow.
inline void RegisterLoadSum(const std::string& name, const uint8_t* p, uint64_t len, int reps) {
  benchmark::RegisterBenchmark(name.c_str(), [p, len](benchmark::State& s) {
    for (auto _ : s) benchmark::DoNotOptimize(SumWords(p, len));
    s.SetBytesProcessed(static_cast<int64_t>(s.iterations() * len));
  })
      ->Repetitions(reps)
      ->Iterations(1)
      ->ReportAggregatesOnly(true)
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace daxguard::bench
