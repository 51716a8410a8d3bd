// map_bench: loads through a device mapping and through a daxfs file
// mapping against anonymous memory.
//
// Sums 8-byte words sequentially over 64 MiB of an fsdax device mapped with
// dax::MappedRegion (PmemDax::MapInto: the media file's pages, trap-free),
// over a 64 MiB daxfs file mapped with File::Map (its extents placed in
// place), and over a 64 MiB anonymous mapping, all written first so no
// fault is timed. Google Benchmark runs them in interleaved repetitions of
// one pass each; the summary is the ratio of medians, anonymous time /
// mapping time (1.0 = as fast as plain memory), target >= 0.98.
#include <sys/mman.h>

#include <cstdio>

#include "bench_common.h"
#include "dax/mapping.h"
#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "map_common.h"

int main(int argc, char** argv) {
  using namespace daxguard;
  using namespace daxguard::bench;
  constexpr uint64_t kSize = 64ull << 20;
  constexpr double kTarget = 0.98;
  InitBenchmark(&argc, argv, {"--benchmark_enable_random_interleaving=true"});
  const int reps = 301;

  ScratchDir dir;
  media::CreateOptions opt;
  opt.size = kSize;
  std::string path = dir.Path("map_dev");
  dax::PmemDax dev(Must(media::PmemDevice::Create(path, opt), "create " + path));
  auto region = Must(dax::MappedRegion::Reserve(kSize, true, path), "reserve");
  Must(dev.MapInto(*region, 0, 0, kSize, 0), "map the device");
  // A file of its own on a second device: 64 MiB written, so its extents are allocated.
  std::string fs_path = dir.Path("map_fs");
  opt.size = 4 * kSize;
  dax::PmemDax fs_dev(Must(media::PmemDevice::Create(fs_path, opt), "create " + fs_path));
  Must(fs::Filesystem::Mkfs(fs_dev), "mkfs");
  auto fs = Must(fs::Filesystem::Mount(fs_dev), "mount");
  auto file = Must(fs->Open("/bench", fs::kCreate), "create /bench");
  Must(file->Fallocate(0, 0, kSize), "allocate /bench");
  auto file_map = Must(file->Map(0, kSize, true), "map /bench");
  void* anon = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (anon == MAP_FAILED) Die("mmap anonymous", Status::FromErrno(errno, "mmap"));
  PreFault(region->addr(), kSize);
  PreFault(static_cast<uint8_t*>(anon), kSize);
  PreFault(file_map->addr(), kSize);

  RegisterLoadSum("sum64MiB/anonymous", static_cast<uint8_t*>(anon), kSize, reps);
  RegisterLoadSum("sum64MiB/device", region->addr(), kSize, reps);
  RegisterLoadSum("sum64MiB/file", file_map->addr(), kSize, reps);
  CaptureReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);

  auto base = rep.Get("sum64MiB/anonymous");
  std::printf("\n== map_bench summary: sequential 8-byte loads over 64 MiB, mappings vs anonymous memory "
              "(median of %d interleaved single passes; ratio = anon_ns / mapping_ns) ==\n",
              reps);
  std::printf("%-12s %12s %8s | %12s %8s %8s  %-6s %s\n", "mapping", "anon_us", "GB/s", "mapping_us", "wall",
              "cpu", "target", "verdict");
  int misses = 0;
  for (const char* kind : {"device", "file"}) {
    auto t = rep.Get(std::string("sum64MiB/") + kind);
    if (base.real <= 0 || t.real <= 0) continue;
    double wall = base.real / t.real, cpu = base.cpu / t.cpu;
    const char* verdict = wall >= kTarget && cpu >= kTarget   ? "ok"
                          : wall >= kTarget || cpu >= kTarget ? "borderline"
                                                              : "MISSED";
    misses += wall < kTarget && cpu < kTarget;
    std::printf("%-12s %12.1f %8.2f | %12.1f %7.3fx %7.3fx  >=%.2f   %s\n", kind, base.real / 1e3,
                kSize / base.real, t.real / 1e3, wall, cpu, kTarget, verdict);
  }
  std::printf("targets missed (by both wall and CPU time): %d\n", misses);
  munmap(anon, kSize);
  benchmark::Shutdown();
  return misses ? 1 : 0;  // a missed target fails the run
}
