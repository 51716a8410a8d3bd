// scrub_bench: an address-range scrub of a 64 GiB sparse device holding
// 10,000 latent errors (Inject with notify=false at random sectors).
//
// Per repetition, on a fresh device: the time of BeginScrub + RunScrub, set
// against the time of just listing the media errors (PmemDevice::
// MediaErrors, the poison list the scrub has to turn into badblocks). Also
// shown: a second scrub that finds nothing new, and the same scrub on a
// device driven by PmemDax with a registered holder, so that every error
// found is delivered and acknowledged inside the scrub.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <set>

#include "bench_common.h"
#include "dax/pmem_dax.h"

namespace daxguard::bench {
namespace {

constexpr uint64_t kDeviceSize = 64ull << 30;
constexpr uint64_t kErrors = 10'000;
constexpr int kReps = 5;

std::vector<uint64_t> RandomSectors(std::mt19937_64& rng) {
  std::uniform_int_distribution<uint64_t> pick(0, kDeviceSize / kSectorSize - 1);
  std::set<uint64_t> seen;
  std::vector<uint64_t> out;
  while (out.size() < kErrors) {
    uint64_t s = pick(rng);
    if (seen.insert(s).second) out.push_back(s);  // random order, distinct
  }
  return out;
}

double Inject(media::PmemDevice& dev, const std::vector<uint64_t>& sectors) {
  media::InjectOptions opt;
  opt.notify = false;
  return TimeSeconds([&] {
    for (uint64_t s : sectors) Must(dev.Inject(s, 1, opt), "Inject");
  });
}

uint64_t KnownSectors(const media::PmemDevice& dev) {
  uint64_t n = 0;
  for (const auto& b : dev.BadBlocks()) n += b.count;
  return n;
}

long MinorFaults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt + ru.ru_majflt;
}

class CountingHolder : public dax::Holder {
 public:
  void NotifyFailure(uint64_t, uint64_t len, int flags) override {
    if (flags == dax::kFailureMedia) {
      calls.fetch_add(1);
      bytes.fetch_add(len);
    }
  }
  std::atomic<uint64_t> calls{0}, bytes{0};
};

}  // namespace
}  // namespace daxguard::bench

int main() {
  using namespace daxguard;
  using namespace daxguard::bench;
  ScratchDir dir;
  std::mt19937_64 rng(7);
  const uint32_t pid = static_cast<uint32_t>(getpid());

  std::vector<double> inject_s, list_s, scrub_s, rescrub_s, holder_scrub_s, scrub_faults;
  uint64_t delivered = 0;
  for (int rep = 0; rep < kReps; ++rep) {
    auto sectors = RandomSectors(rng);

    // --- the bare media device
    auto dev = dir.Create("scrub_" + std::to_string(rep), kDeviceSize);
    inject_s.push_back(Inject(*dev, sectors));
    if (dev->MediaErrors().size() != kErrors || !dev->BadBlocks().empty()) {
      std::fprintf(stderr, "fatal: expected %llu latent errors and no badblocks\n",
                   static_cast<unsigned long long>(kErrors));
      return 1;
    }
    // Listing: median of many calls (it takes microseconds).
    std::vector<double> lists;
    for (int i = 0; i < 41; ++i)
      lists.push_back(TimeSeconds([&] { benchmark::DoNotOptimize(dev->MediaErrors()); }));
    list_s.push_back(Median(lists));

    long faults0 = MinorFaults();
    scrub_s.push_back(TimeSeconds([&] {
      Must(dev->BeginScrub(pid), "BeginScrub");
      Must(dev->RunScrub(), "RunScrub");
    }));
    // The badblocks table and its page filter live in the sparse file: the
    // first scrub faults in every page of them it writes.
    scrub_faults.push_back(double(MinorFaults() - faults0));
    if (KnownSectors(*dev) != kErrors) {
      std::fprintf(stderr, "fatal: scrub found %llu of %llu bad sectors\n",
                   static_cast<unsigned long long>(KnownSectors(*dev)),
                   static_cast<unsigned long long>(kErrors));
      return 1;
    }
    rescrub_s.push_back(TimeSeconds([&] {
      Must(dev->BeginScrub(pid), "BeginScrub");
      Must(dev->RunScrub(), "RunScrub");
    }));
    dev.reset();

    // --- through PmemDax, with a holder told of every error
    auto pd = std::make_unique<dax::PmemDax>(dir.Create("scrub_dax_" + std::to_string(rep), kDeviceSize));
    CountingHolder holder;
    Must(pd->RegisterHolder(&holder), "RegisterHolder");
    (void)Inject(pd->media(), sectors);
    holder_scrub_s.push_back(TimeSeconds([&] {
      Must(pd->media().BeginScrub(pid), "BeginScrub");
      Must(pd->media().RunScrub(), "RunScrub");
    }));
    delivered = holder.bytes.load() / kSectorSize;
    if (delivered != kErrors || !pd->media().Unacknowledged().empty()) {
      std::fprintf(stderr, "fatal: holder was told of %llu of %llu bad sectors\n",
                   static_cast<unsigned long long>(delivered),
                   static_cast<unsigned long long>(kErrors));
      return 1;
    }
    pd->ReleaseHolder(&holder);
    pd.reset();
    std::printf("rep %d: inject %.3f s, list %.1f us, scrub %.3f ms (%.0f page faults), "
                "rescrub %.3f ms, scrub+holder %.3f ms (%llu notifications)\n",
                rep, inject_s.back(), list_s.back() * 1e6, scrub_s.back() * 1e3, scrub_faults.back(),
                rescrub_s.back() * 1e3, holder_scrub_s.back() * 1e3,
                static_cast<unsigned long long>(holder.calls.load()));
    std::fflush(stdout);
  }

  double list = Median(list_s), scrub = Median(scrub_s), rescrub = Median(rescrub_s),
         hscrub = Median(holder_scrub_s);
  std::printf("\n== scrub_bench summary: 64 GiB sparse device, %llu latent errors "
              "(median of %d fresh devices) ==\n",
              static_cast<unsigned long long>(kErrors), kReps);
  std::printf("%-40s %12s %14s %12s\n", "operation", "time", "per error", "vs listing");
  auto row = [&](const char* what, double s) {
    std::printf("%-40s %9.3f ms %11.1f ns %10.1fx\n", what, s * 1e3, s * 1e9 / kErrors, s / list);
  };
  row("MediaErrors() (listing, baseline)", list);
  row("BeginScrub+RunScrub (finds 10,000)", scrub);
  row("BeginScrub+RunScrub again (none new)", rescrub);
  row("scrub via PmemDax, holder told each", hscrub);
  std::printf("first scrub page faults (badblocks table + filter pages first touched): median %.0f\n",
              Median(scrub_faults));
  std::printf("inject 10,000 latent errors (setup): median %.3f s\n", Median(inject_s));
  return 0;
}
