// Helpers shared by the benchmark programs: a scratch directory under /tmp
// whose device files are removed at exit, the badblocks layout the
// benchmarks load, a TSC clock for per-operation latencies, and a capturing
// Google Benchmark reporter so each program can print ratios at the end.
#pragma once

#include <benchmark/benchmark.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/units.h"
#include "media/pmem_device.h"

namespace daxguard::bench {

[[noreturn]] inline void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "fatal: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what, r.status());
  return std::move(r).value();
}

inline void Must(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what, s);
}

// A private directory under $DAXGUARD_BENCH_DIR (default /tmp). Device files
// made through Create() are unlinked as soon as they are mapped (the mapping
// and descriptor keep them alive), so nothing is left behind even if the
// benchmark is killed; the directory itself goes when this object does.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("DAXGUARD_BENCH_DIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/daxguard-bench.XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
      std::perror("mkdtemp");
      std::exit(1);
    }
    dir_ = buf.data();
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  // Where a file named `name` goes; removed with the directory.
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::unique_ptr<media::PmemDevice> Create(const std::string& name, uint64_t size) {
    std::string path = Path(name);
    media::CreateOptions opt;
    opt.size = size;
    auto dev = Must(media::PmemDevice::Create(path, opt), "create " + path);
    ::unlink(path.c_str());
    return dev;
  }
  // A device file left in place, for stack files to name; it goes with the directory.
  std::string CreateNamed(const std::string& name, uint64_t size) {
    media::CreateOptions opt;
    opt.size = size;
    Must(media::PmemDevice::Create(Path(name), opt), "create " + Path(name));
    return Path(name);
  }

 private:
  std::string dir_;
};

// The badblocks layout: `n` runs of 1..3 sectors, one every 8 sectors,
// starting at `first_sector` (never adjacent, so they stay separate entries).
inline std::vector<media::BadBlock> BadRuns(uint64_t first_sector, uint64_t n) {
  std::vector<media::BadBlock> runs;
  runs.reserve(n);
  for (uint64_t i = 0; i < n; ++i) runs.push_back({first_sector + 8 * i, 1 + i % 3, false});
  return runs;
}

inline double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

template <typename F>
double TimeSeconds(F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return Seconds(std::chrono::steady_clock::now() - t0);
}

// --- TSC timing for single operations (tens of nanoseconds).
inline uint64_t TscBegin() {
  _mm_lfence();
  uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}
inline uint64_t TscEnd() {
  unsigned aux;
  uint64_t t = __rdtscp(&aux);
  _mm_lfence();
  return t;
}
// TSC ticks per nanosecond, measured against steady_clock.
inline double TscPerNs() {
  auto c0 = std::chrono::steady_clock::now();
  uint64_t t0 = TscBegin();
  while (std::chrono::steady_clock::now() - c0 < std::chrono::milliseconds(100)) {
  }
  uint64_t t1 = TscEnd();
  double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - c0).count();
  return double(t1 - t0) / ns;
}

inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}
inline double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

// Console output as usual, and the median of each benchmark's repetitions
// (or its single run) kept by name: real (wall) and CPU time, in
// nanoseconds per iteration. On a shared machine the CPU time leaves out the
// time this process was descheduled; the wall time does not.
class CaptureReporter : public benchmark::ConsoleReporter {
 public:
  struct Times {
    double real = -1, cpu = -1;
  };
  CaptureReporter() : ConsoleReporter(OO_Tabular) {}  // no colour codes
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      std::string name = r.run_name.function_name;
      double m = Multiplier(r.time_unit);
      Times t{r.GetAdjustedRealTime() * m, r.GetAdjustedCPUTime() * m};
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median")
        median_[name] = t;
      else if (r.run_type == Run::RT_Iteration)
        single_[name] = t;
    }
    // Show only the medians (or the single runs): the summary uses those.
    std::vector<Run> shown;
    for (const Run& r : runs)
      if (r.run_type == Run::RT_Iteration ? r.repetitions <= 1 : r.aggregate_name == "median")
        shown.push_back(r);
    if (!shown.empty()) ConsoleReporter::ReportRuns(shown);
  }
  // Times per iteration (-1 if the benchmark did not run).
  Times Get(const std::string& name) const {
    if (auto it = median_.find(name); it != median_.end()) return it->second;
    if (auto it = single_.find(name); it != single_.end()) return it->second;
    return {};
  }
  double Ns(const std::string& name) const { return Get(name).real; }

 private:
  static double Multiplier(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kNanosecond: return 1;
      case benchmark::kMicrosecond: return 1e3;
      case benchmark::kMillisecond: return 1e6;
      case benchmark::kSecond: return 1e9;
    }
    return 1;
  }
  std::map<std::string, Times> median_, single_;
};

// Google Benchmark's flags, with our defaults placed first so the command
// line can still override them.
inline void InitBenchmark(int* argc, char** argv, std::vector<std::string> defaults) {
  static std::vector<std::string> store;
  static std::vector<char*> args;
  store.assign(1, argv[0]);
  for (auto& d : defaults) store.push_back(d);
  for (int i = 1; i < *argc; ++i) store.push_back(argv[i]);
  args.clear();
  for (auto& s : store) args.push_back(s.data());
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) std::exit(1);
}

// I/O benchmarks run many short repetitions and report their median: the
// VMs these run on stall a thread now and then for 10-35 ms, and with a few
// long repetitions one such stall moved a median by 2x either way.
constexpr int kIoReps = 61;
constexpr double kIoMinTime = 0.005;  // seconds per repetition

// Registers a benchmark that runs `fn(offset)` over `offs` (a power-of-two
// count) round robin, `n` bytes each; fn is inlined into the loop.
template <typename F>
void RegisterIo(const std::string& name, F fn, const std::vector<uint64_t>* offs, uint64_t n) {
  benchmark::RegisterBenchmark(name.c_str(), [fn, offs, n](benchmark::State& s) {
    const uint64_t* o = offs->data();
    const size_t mask = offs->size() - 1;  // a power of two
    size_t i = 0;
    for (auto _ : s) {
      if (!fn(o[i++ & mask])) {
        s.SkipWithError("short or failed I/O");
        break;
      }
      benchmark::ClobberMemory();
    }
    s.SetBytesProcessed(static_cast<int64_t>(s.iterations() * n));
  })
      ->Repetitions(kIoReps)
      ->MinTime(kIoMinTime)
      ->ReportAggregatesOnly(true)
      ->Unit(benchmark::kNanosecond);
}

}  // namespace daxguard::bench
