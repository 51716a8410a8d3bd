// protect_bench: what mkfs --data-protection costs and how fast it repairs,
// against daxfs without protection in the same run.
//
// - Cost: File::Read and File::Write of 4 KiB (pages in a random order over
//   a 64 MiB range of a written file, in place) and of 1 MiB, on daxfs made
//   with none, checksum and parity. Paired rounds: each round times one
//   pass of every mode over the same offsets, the order rotating; ratio =
//   none_ns / mode_ns, the median over rounds. Targets: reads >= 0.9x,
//   1 MiB writes >= 0.8x, 4 KiB overwrites >= 0.6x.
// - Capacity: the parity area's share of the device (target <= 15%).
// - Repair throughput: a stray store in one strip of every block of 256 MiB
//   of file data, then the patrol over it (ProtectedDevice::Verify: each
//   block read, rebuilt from parity, written back with a recovery write),
//   against memcpy of the same bytes (target >= 1 GB/s).
// - Inline repaired 4 KiB read: latent poison in one sector of a page, then
//   a 4 KiB File::Read of it, rebuilt from parity on the way: p99 (target
//   <= 50 us), beside clean reads.
// - Patrol rate over clean data (GB/s), and a 4 KiB reader's p99 while it runs.
// Exit 1 if a target is missed.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

#include "bench_common.h"
#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "fs/protected_device.h"

namespace daxguard::bench {
namespace {

using fs::DataProtection;

constexpr uint64_t kDevSize = 1ull << 30;
constexpr uint64_t kFileSize = 256ull << 20;
constexpr uint64_t kSpread = 64ull << 20;
constexpr int kRounds = 41;
constexpr int kSmallOps = 512;  // 4 KiB operations per pass
constexpr int kLargeOps = 16;   // 1 MiB operations per pass

struct Mounted {
  DataProtection mode;
  std::unique_ptr<dax::PmemDax> dev;
  std::unique_ptr<fs::Filesystem> fs;
  std::unique_ptr<fs::File> file;
};

Mounted Make(ScratchDir& dir, DataProtection mode) {
  std::string path = dir.Path(fs::ProtectionName(mode));
  media::CreateOptions opt;
  opt.size = kDevSize;
  Must(media::PmemDevice::Create(path, opt), "create");
  Mounted m{mode, Must(dax::PmemDax::Open(path), "open"), nullptr, nullptr};
  Must(fs::Filesystem::Mkfs(*m.dev, mode), "mkfs");
  m.fs = Must(fs::Filesystem::Mount(*m.dev), "mount");
  m.file = Must(m.fs->Open("/data", fs::kCreate), "create file");
  std::vector<uint8_t> chunk(1 << 20);
  std::mt19937 rng(1);
  for (uint64_t off = 0; off < kFileSize; off += chunk.size()) {
    for (auto& b : chunk) b = static_cast<uint8_t>(rng());
    auto w = m.file->Write(off, chunk.data(), chunk.size());
    if (!w.ok() || *w != chunk.size()) Die("fill", w.ok() ? Status::Io("short write") : w.status());
  }
  return m;
}

struct Case {
  const char* name;
  bool write;
  uint64_t len;
  int ops;
  double target;  // none_ns / mode_ns at least
};
const Case kCases[] = {{"4KiB read", false, 4096, kSmallOps, 0.9},
                       {"1MiB read", false, 1 << 20, kLargeOps, 0.9},
                       {"4KiB overwrite", true, 4096, kSmallOps, 0.6},
                       {"1MiB write", true, 1 << 20, kLargeOps, 0.8}};

// Seconds for one pass of `c` over `offs`.
double Pass(Mounted& m, const Case& c, const std::vector<uint64_t>& offs, uint8_t* buf) {
  return TimeSeconds([&] {
    for (int i = 0; i < c.ops; ++i) {
      auto r = c.write ? m.file->Write(offs[i], buf, c.len) : m.file->Read(offs[i], buf, c.len);
      if (!r.ok() || *r != c.len) Die(c.name, r.ok() ? Status::Io("short") : r.status());
    }
  });
}

// The median over rounds of none_ns / mode_ns, for each protected mode.
std::vector<double> Cost(std::vector<Mounted>& ms, const Case& c) {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf(c.len, 0x3c);
  std::vector<std::vector<double>> ratios(ms.size());
  for (int round = 0; round < kRounds; ++round) {
    std::vector<uint64_t> offs;
    uint64_t window = c.len == 4096 ? kSpread : kFileSize;
    for (int i = 0; i < c.ops; ++i) offs.push_back(rng() % (window / c.len) * c.len);
    std::vector<double> secs(ms.size());
    for (size_t k = 0; k < ms.size(); ++k) {
      size_t i = (k + round) % ms.size();
      secs[i] = Pass(ms[i], c, offs, buf.data());
    }
    if (round == 0) continue;  // warm-up
    for (size_t i = 1; i < ms.size(); ++i) ratios[i].push_back(secs[0] / secs[i]);
  }
  std::vector<double> out(ms.size(), 1.0);
  for (size_t i = 1; i < ms.size(); ++i) out[i] = Median(ratios[i]);
  return out;
}

uint64_t DeviceOffset(fs::File& f, uint64_t off) {
  for (const fs::FiemapExtent& e : Must(f.Fiemap(), "fiemap"))
    if (off >= e.logical && off < e.logical + e.length) return e.physical + (off - e.logical);
  Die("fiemap", Status::Io("offset not mapped"));
  return 0;
}

// GB/s of the patrol repairing a stray store in every block of the file,
// and memcpy's over the same bytes.
std::pair<double, double> RepairThroughput(Mounted& m) {
  fs::ProtectedDevice* p = m.fs->protected_device();
  uint64_t first = DeviceOffset(*m.file, 0), blocks = kFileSize / kPageSize;
  uint8_t junk[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  for (uint64_t b = 0; b < blocks; ++b)  // the file's blocks are one run
    Must(m.dev->Write(first + b * kPageSize + (b % 8) * 512 + 100, junk, sizeof junk), "scribble");
  double secs = TimeSeconds([&] {
    auto c = p->Verify(first / kPageSize, first / kPageSize + blocks);
    if (c.repaired != blocks) Die("verify", Status::Io("repaired " + std::to_string(c.repaired) + " blocks"));
  });
  std::vector<uint8_t> to(kFileSize);
  double copy = TimeSeconds([&] { std::memcpy(to.data(), m.dev->media().data() + first, kFileSize); });
  return {kFileSize / secs / 1e9, kFileSize / copy / 1e9};
}

// Microseconds per 4 KiB read: clean pages, then pages that just lost a
// sector (`known`: the poison was reported, and its rebuild runs on the
// delivery thread meanwhile; else latent, found by the read itself, which
// waits for the media's report to reach the filesystem's device).
struct Latencies {
  std::vector<double> clean, known, latent;
};
Latencies ReadLatencies(Mounted& m) {
  std::vector<uint8_t> buf(kPageSize);
  Latencies l;
  std::vector<double>& clean = l.clean;
  auto page = [](int i) { return static_cast<uint64_t>(i) * 97 % (kFileSize / kPageSize) * kPageSize; };
  for (int i = 0; i < 2000; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = m.file->Read(page(i), buf.data(), kPageSize);
    clean.push_back(Seconds(std::chrono::steady_clock::now() - t0) * 1e6);
    if (!r.ok() || *r != kPageSize) Die("read", r.ok() ? Status::Io("short") : r.status());
  }
  for (int i = 2000; i < 6000; ++i) {
    bool known = i < 4000;
    uint64_t dev_off = DeviceOffset(*m.file, page(i));
    Must(m.dev->media().Inject(dev_off / kSectorSize + 5, 1, {.notify = known, .saturate = true}), "inject");
    auto t0 = std::chrono::steady_clock::now();
    auto r = m.file->Read(page(i), buf.data(), kPageSize);
    (known ? l.known : l.latent).push_back(Seconds(std::chrono::steady_clock::now() - t0) * 1e6);
    if (!r.ok() || *r != kPageSize) Die("repaired read", r.ok() ? Status::Io("short") : r.status());
  }
  return l;
}

// The patrol's GB/s over the clean file, and a concurrent 4 KiB reader's
// p99 with and without it (microseconds).
struct PatrolFigures {
  double gbs = 0, p99_alone = 0, p99_beside = 0;
};
PatrolFigures Patrol(Mounted& m) {
  fs::ProtectedDevice* p = m.fs->protected_device();
  uint64_t b0 = DeviceOffset(*m.file, 0) / kPageSize, blocks = kFileSize / kPageSize;
  PatrolFigures f;
  f.gbs = kFileSize / TimeSeconds([&] { p->Verify(b0, b0 + blocks); }) / 1e9;
  auto reader = [&](const std::atomic<bool>& stop, std::vector<double>* lat) {
    std::vector<uint8_t> buf(kPageSize);
    for (uint64_t i = 0; !stop.load() && lat->size() < 20000; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      (void)m.file->Read(i * 7919 % (kFileSize / kPageSize) * kPageSize, buf.data(), kPageSize);
      lat->push_back(Seconds(std::chrono::steady_clock::now() - t0) * 1e6);
    }
  };
  std::atomic<bool> stop{false};
  std::vector<double> alone, beside;
  reader(stop, &alone);
  std::thread t([&] { reader(stop, &beside); });
  while (beside.size() < 20000) p->Verify(b0, b0 + blocks);
  stop = true;
  t.join();
  f.p99_alone = Percentile(alone, 0.99);
  f.p99_beside = Percentile(beside, 0.99);
  return f;
}

int Run() {
  ScratchDir dir;
  std::vector<Mounted> ms;
  for (DataProtection mode : {DataProtection::kNone, DataProtection::kChecksum, DataProtection::kParity})
    ms.push_back(Make(dir, mode));
  bool ok = true;
  std::printf("\ncost of protection (ratio none_ns / mode_ns, median of %d paired rounds):\n", kRounds - 1);
  for (const Case& c : kCases) {
    std::vector<double> r = Cost(ms, c);
    bool met = r[1] >= c.target && r[2] >= c.target;
    ok = ok && met;
    std::printf("  %-15s checksum %.2fx  parity %.2fx  (target >= %.1fx)%s\n", c.name, r[1], r[2], c.target,
                met ? "" : "  MISSED");
  }
  fs::Geometry g = fs::GeometryFor(kDevSize, DataProtection::kParity);
  double share = 100.0 * static_cast<double>(g.protect_blocks) / static_cast<double>(g.blocks);
  ok = ok && share <= 15.0;
  std::printf("parity capacity: %.1f%% of the device (checksum: %.2f%%) (target <= 15%%)\n", share,
              100.0 * static_cast<double>(fs::GeometryFor(kDevSize, DataProtection::kChecksum).protect_blocks) /
                  static_cast<double>(g.blocks));
  Mounted& par = ms[2];
  Latencies l = ReadLatencies(par);
  double p99 = Percentile(l.known, 0.99);
  ok = ok && p99 <= 50.0;
  std::printf("inline repaired 4 KiB read (known poison): p50 %.1f us, p99 %.1f us (target: p99 <= 50 us); "
              "latent poison found by the read: p50 %.1f us, p99 %.1f us; clean p50 %.1f us, p99 %.1f us\n",
              Median(l.known), p99, Median(l.latent), Percentile(l.latent, 0.99), Median(l.clean),
              Percentile(l.clean, 0.99));
  auto [gbs, copy] = RepairThroughput(par);
  ok = ok && gbs >= 1.0;
  std::printf("repair throughput (a stray store in every block of 256 MiB): %.2f GB/s; memcpy %.2f GB/s; ratio %.2f "
              "(target >= 1 GB/s)\n",
              gbs, copy, gbs / copy);
  PatrolFigures pf = Patrol(par);
  std::printf("patrol over clean data: %.2f GB/s; a 4 KiB reader's p99 %.1f us alone, %.1f us beside it\n", pf.gbs,
              pf.p99_alone, pf.p99_beside);
  if (!ok) std::printf("protect_bench: a target was missed\n");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace daxguard::bench

int main() { return daxguard::bench::Run(); }
