// raid1_bench: what keeping the data through a leg's loss costs, against a
// plain copy measured in the same run.
//
// - Repair throughput: a whole 1 GiB leg resynced from the other (the path
//   dm replace takes: each page read from the legs, written with a recovery
//   write, a fence per 256 KiB), against memcpy of the same 1 GiB between
//   the two device files' memory. Target: at least 1 GB/s.
// - Inline repaired read: a 4 KiB read through the mirror of a page whose
//   first leg has just lost a sector (known poison; its rebuild runs on the
//   delivery thread meanwhile), against a clean 4 KiB read. Target: p99 at
//   most 50 us.
// Exit 1 if a target is missed.
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench_common.h"
#include "dax/dax_io.h"
#include "dax/stand_in_holder.h"
#include "dm/open.h"
#include "dm/stack.h"
#include "dm/stack_file.h"

namespace daxguard::bench {
namespace {

constexpr uint64_t kSize = 1ull << 30;
constexpr int kReads = 2000;

std::unique_ptr<dm::Stack> MakeMirror(ScratchDir& dir) {
  dir.CreateNamed("d0", kSize);
  dir.CreateNamed("d1", kSize);
  auto line = Must(dm::ParseTableLine("0 " + std::to_string(kSize / kSectorSize) + " raid1 2 d0 0 d1 0"), "table");
  Must(dm::WriteStackFile(dir.Path("m"), {line}), "stack file");
  auto m = Must(dm::OpenStack(dir.Path("m")), "open the mirror");
  std::vector<uint8_t> chunk(1 << 20);
  for (uint64_t off = 0; off < kSize; off += chunk.size()) {
    for (size_t i = 0; i < chunk.size(); i += 64) chunk[i] = static_cast<uint8_t>(off / chunk.size() + i);
    Must(dax::WriteAt(*m, off, chunk.data(), chunk.size()).status(), "fill");
  }
  return m;
}

// Seconds for memcpy of the whole leg, and for its resync.
std::pair<double, double> Throughput(dm::Stack& m) {
  media::PmemDevice& d0 = *m.Media()[0];
  media::PmemDevice& d1 = *m.Media()[1];
  double copy = TimeSeconds([&] { std::memcpy(d0.data(), d1.data(), kSize); });
  Must(m.StartResync({{0, 0}}), "start resync");
  double resync = TimeSeconds([&] { Must(m.RunResync().status(), "resync"); });
  return {copy, resync};
}

// Microseconds per 4 KiB read: clean pages, then pages whose first leg
// has just lost a sector.
std::pair<std::vector<double>, std::vector<double>> ReadLatencies(dm::Stack& m) {
  dax::StandInHolder holder;  // the mirror rebuilds only while held
  Must(m.RegisterHolder(&holder), "hold");
  media::PmemDevice& d0 = *m.Media()[0];
  std::vector<uint8_t> buf(kPageSize);
  std::vector<double> clean, repaired;
  for (int i = 0; i < kReads; ++i)  // warm: the pages and the stack's paths
    (void)m.ReadMcSafe(static_cast<uint64_t>(i) * 97 % (kSize / kPageSize) * kPageSize, buf.data(), kPageSize);
  auto page_of = [](int i) { return static_cast<uint64_t>(i) * 97 % (kSize / kPageSize); };
  for (int i = 0; i < kReads; ++i) {  // clean, before any error: the floor
    auto t0 = std::chrono::steady_clock::now();
    auto n = m.ReadMcSafe(page_of(i) * kPageSize, buf.data(), kPageSize);
    clean.push_back(Seconds(std::chrono::steady_clock::now() - t0) * 1e6);
    if (!n.ok() || *n != kPageSize) Die("read", n.ok() ? Status::Io("short read") : n.status());
  }
  for (int i = 0; i < kReads; ++i) {
    Must(d0.Inject(page_of(i) * kPageSize / kSectorSize + 3, 1, {}), "inject");
    auto t0 = std::chrono::steady_clock::now();
    auto r = m.ReadMcSafe(page_of(i) * kPageSize, buf.data(), kPageSize);
    repaired.push_back(Seconds(std::chrono::steady_clock::now() - t0) * 1e6);
    if (!r.ok() || *r != kPageSize) Die("read", r.ok() ? Status::Io("short read") : r.status());
  }
  m.ReleaseHolder(&holder);
  return {clean, repaired};
}

int Run() {
  ScratchDir dir;
  auto m = MakeMirror(dir);
  auto [copy, resync] = Throughput(*m);
  auto [clean, repaired] = ReadLatencies(*m);
  double gbs = kSize / resync / 1e9;
  double p99 = Percentile(repaired, 0.99);
  std::printf("\nrepair throughput (1 GiB leg resync): %.2f GB/s; memcpy of the same: %.2f GB/s; ratio %.2f "
              "(target: >= 1 GB/s)\n",
              gbs, kSize / copy / 1e9, copy / resync);
  std::printf("inline repaired 4 KiB read: p50 %.1f us, p99 %.1f us; clean read p50 %.1f us, p99 %.1f us; "
              "p99 ratio repaired/clean %.1f (target: p99 <= 50 us)\n",
              Median(repaired), p99, Median(clean), Percentile(clean, 0.99), p99 / Percentile(clean, 0.99));
  bool ok = gbs >= 1.0 && p99 <= 50.0;
  if (!ok) std::printf("raid1_bench: a target was missed\n");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace daxguard::bench

int main() { return daxguard::bench::Run(); }
