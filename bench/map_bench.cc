// map_bench: loads through a device mapping against anonymous memory.
//
// Sums 8-byte words sequentially over a 64 MiB fsdax device mapped with
// dax::MappedRegion (PmemDax::MapInto: the media file's pages, trap-free)
// and over a 64 MiB anonymous mapping, both written first so no fault is
// timed. Google Benchmark runs the two in interleaved repetitions; the
// summary is the ratio of medians, anonymous time / device time (1.0 = as
// fast as plain memory), target >= 0.98.
#include <sys/mman.h>

#include <cstdio>

#include "bench_common.h"
#include "dax/mapping.h"
#include "dax/pmem_dax.h"
#include "map_common.h"

int main(int argc, char** argv) {
  using namespace daxguard;
  using namespace daxguard::bench;
  constexpr uint64_t kSize = 64ull << 20;
  constexpr double kTarget = 0.98;
  InitBenchmark(&argc, argv, {"--benchmark_enable_random_interleaving=true"});
  const int reps = 15;
  const double min_time = 0.1;

  ScratchDir dir;
  media::CreateOptions opt;
  opt.size = kSize;
  std::string path = dir.Path("map_dev");
  dax::PmemDax dev(Must(media::PmemDevice::Create(path, opt), "create " + path));
  auto region = Must(dax::MappedRegion::Reserve(kSize, true, path), "reserve");
  Must(dev.MapInto(*region, 0, 0, kSize, 0), "map the device");
  void* anon = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (anon == MAP_FAILED) Die("mmap anonymous", Status::FromErrno(errno, "mmap"));
  PreFault(region->addr(), kSize);
  PreFault(static_cast<uint8_t*>(anon), kSize);

  RegisterLoadSum("sum64MiB/anonymous", static_cast<uint8_t*>(anon), kSize, reps, min_time);
  RegisterLoadSum("sum64MiB/device", region->addr(), kSize, reps, min_time);
  CaptureReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);

  auto base = rep.Get("sum64MiB/anonymous"), dev_t = rep.Get("sum64MiB/device");
  std::printf("\n== map_bench summary: sequential 8-byte loads over 64 MiB, device mapping vs "
              "anonymous memory (median of %d interleaved repetitions; ratio = anon_ns / device_ns) ==\n",
              reps);
  std::printf("%-10s %12s %8s | %12s %8s %8s  %-6s %s\n", "mapping", "anon_us", "GB/s", "device_us",
              "wall", "cpu", "target", "verdict");
  if (base.real > 0 && dev_t.real > 0) {
    double wall = base.real / dev_t.real, cpu = base.cpu / dev_t.cpu;
    const char* verdict = wall >= kTarget && cpu >= kTarget   ? "ok"
                          : wall >= kTarget || cpu >= kTarget ? "borderline"
                                                              : "MISSED";
    std::printf("%-10s %12.1f %8.2f | %12.1f %7.3fx %7.3fx  >=%.2f   %s\n", "fsdax", base.real / 1e3,
                kSize / base.real, dev_t.real / 1e3, wall, cpu, kTarget, verdict);
  }
  munmap(anon, kSize);
  benchmark::Shutdown();
  return 0;
}
