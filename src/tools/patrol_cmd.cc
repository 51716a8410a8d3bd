// daxguard scrub DEV[:fs] [--rate MB/s] [--once]: a patrol that walks every
// device file below DEV, as address range scrub does, at a rate it keeps,
// pass after pass (one with --once). Latent poison it finds becomes known;
// a raid1 stack rebuilds it from another leg then and there (the patrol
// holds a stack nobody holds while it runs; a mount that holds it rebuilds
// in its own process). DEV:fs mounts the filesystem on DEV, made with
// --data-protection, and also reads every block against its checksum,
// rebuilding from parity what fails. Each pass ends with one JSON line:
// bytes, seconds, sectors found, repaired and unrepaired (and for :fs the
// blocks checked, mismatched, rebuilt, reported). On a terminal, a progress
// bar with the rate, ETA and counts. Monitors (daxguard monitor) see the
// media pass as the media's scrub, and the filesystem's as fs-scrub events.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>

#include "dax/stand_in_holder.h"
#include "dm/open.h"
#include "fs/filesystem.h"
#include "tools/cli_util.h"

namespace daxguard::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct PatrolArgs {
  std::string dev;
  double rate = 0;  // MB/s (10^6 bytes); 0: as fast as it goes
  bool once = false;
};

// Every known-bad sector of each media device below, as (device, sector).
std::set<std::pair<size_t, uint64_t>> KnownSectors(const std::vector<media::PmemDevice*>& media) {
  std::set<std::pair<size_t, uint64_t>> out;
  for (size_t i = 0; i < media.size(); ++i)
    for (const media::BadBlock& b : media[i]->BadBlocks())
      for (uint64_t s = b.sector; s < b.sector + b.count; ++s) out.insert({i, s});
  return out;
}

// The poisoned sectors of each media device below that are not known yet:
// what a pass will find (the scan, or a rebuild's read before it).
std::set<std::pair<size_t, uint64_t>> LatentSectors(const std::vector<media::PmemDevice*>& media) {
  auto known = KnownSectors(media);
  std::set<std::pair<size_t, uint64_t>> out;
  for (size_t i = 0; i < media.size(); ++i)
    for (const media::MediaError& e : media[i]->MediaErrors())
      for (uint64_t s = e.offset / kSectorSize; s * kSectorSize < e.offset + e.length; ++s)
        if (!known.count({i, s})) out.insert({i, s});
  return out;
}

uint64_t SectorCount(const std::vector<media::BadBlock>& runs) {
  uint64_t n = 0;
  for (const media::BadBlock& b : runs) n += b.count;
  return n;
}

class Patrol {
 public:
  // `protect`: the mounted filesystem's checksums, read through as well.
  Patrol(const PatrolArgs& a, dax::Device& dev, fs::ProtectedDevice* protect)
      : a_(a), dev_(dev), protect_(protect), media_(dev.Media()), journal_(fs::EventJournalPath(dev)) {
    for (media::PmemDevice* m : media_) total_ += m->size();
    if (protect_) total_ += protect_->geometry().ProtectStart() * fs::kBlockSize;
  }

  // One pass over every media device below; its summary as JSON.
  Result<Json> Pass(uint64_t number) {
    auto latent = LatentSectors(media_);
    uint64_t lost_before = SectorCount(dev_.BadBlocks());
    start_ = Clock::now();
    done_ = 0;
    found_ = 0;
    for (media::PmemDevice* m : media_) {
      Status s = m->BeginScrub(static_cast<uint32_t>(getpid()));
      if (!s.ok()) return Status::Busy(m->path() + ": a scrub is already running (" + s.message() + ")");
      uint64_t base = done_;
      s = m->RunScrub([&](uint64_t d, uint64_t) { Paced(base + d); }, Chunk(), &found_);  // found_: for the bar
      if (!s.ok()) return s;
      done_ = base + m->size();
    }
    Json blocks = protect_ ? CheckBlocks() : Json();
    if (tty_) ShowProgress("scrub", total_, total_);
    double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    auto after = Settled();
    uint64_t still = 0;
    for (const auto& s : latent) still += after.count(s);
    uint64_t lost = SectorCount(dev_.BadBlocks());
    Json out{{"dev", a_.dev},
                {"pass", number},
                {"bytes", total_},
                {"seconds", secs},
                {"rate_mb_s", secs > 0 ? static_cast<double>(total_) / secs / 1e6 : 0.0},
                {"found", latent.size()},
                {"repaired", latent.size() - still},
                {"unrepaired", lost > lost_before ? lost - lost_before : 0},
                {"badblocks", BadBlocksJson(dev_.BadBlocks())}};
    if (protect_) out["filesystem"] = blocks;
    return out;
  }

 private:
  // Every protected block read against its checksum, paced as the media.
  // Monitors hear of its start, each tenth and its end (fs-scrub-*).
  Json CheckBlocks() {
    fs::ProtectedDevice::Counts before = protect_->counts();
    uint64_t blocks = protect_->geometry().ProtectStart(), base = done_;
    uint64_t step = std::max<uint64_t>(1, std::min<uint64_t>(Chunk(), 64ull << 20) / fs::kBlockSize);
    journal_.Publish("fs-scrub-started", {{"blocks", blocks}});
    for (uint64_t b = 0; b < blocks; b += step) {
      uint64_t next = std::min(blocks, b + step);
      (void)protect_->Verify(b, next);
      Paced(base + next * fs::kBlockSize);
      if (next < blocks && next * 10 / blocks > b * 10 / blocks)
        journal_.Publish("fs-scrub-progress", {{"progress", next}, {"blocks", blocks}});
    }
    done_ = base + blocks * fs::kBlockSize;
    fs::ProtectedDevice::Counts after = protect_->counts();
    nlohmann::json counts{{"data_protection", fs::ProtectionName(protect_->geometry().protection)},
                          {"blocks", blocks},
                          {"checksum_mismatches", after.mismatches - before.mismatches},
                          {"repaired_blocks", after.repaired - before.repaired},
                          {"unrepaired_blocks", after.unrepaired - before.unrepaired}};
    journal_.Publish("fs-scrub-finished", counts);
    return Json::parse(counts.dump());
  }

  // Small enough steps to keep the rate (about ten a second), whole
  // sectors; the media's own default when unpaced.
  uint64_t Chunk() const {
    if (a_.rate <= 0) return 1ull << 30;
    return std::max<uint64_t>(1 << 20, AlignDown(static_cast<uint64_t>(a_.rate * 1e5), kSectorSize));
  }

  // After each step: sleeps until the rate allows `done` bytes, and draws.
  void Paced(uint64_t done) {
    if (a_.rate > 0) {
      auto due = start_ + std::chrono::duration<double>(static_cast<double>(done) / (a_.rate * 1e6));
      std::this_thread::sleep_until(std::chrono::time_point_cast<Clock::duration>(due));
    }
    if (!tty_) return;
    double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    ShowProgress("scrub", done, total_);
    std::fprintf(stderr, " %.0f MB/s ETA %.0fs found %llu", rate / 1e6,
                 rate > 0 ? static_cast<double>(total_ - std::min(done, total_)) / rate : 0.0,
                 static_cast<unsigned long long>(found_));
  }

  // The known sectors once rebuilds (here or in a mount) have stopped
  // changing them: three looks 50 ms apart alike, for at most 5 s.
  std::set<std::pair<size_t, uint64_t>> Settled() {
    auto last = KnownSectors(media_);
    for (int same = 0, looks = 0; same < 3 && looks < 100; ++looks) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto now = KnownSectors(media_);
      same = now == last ? same + 1 : 0;
      last = std::move(now);
    }
    return last;
  }

  const PatrolArgs& a_;
  dax::Device& dev_;
  fs::ProtectedDevice* protect_;
  std::vector<media::PmemDevice*> media_;
  fs::EventJournal journal_;
  bool tty_ = isatty(STDERR_FILENO);
  uint64_t total_ = 0, done_ = 0, found_ = 0;
  Clock::time_point start_;
};

int RunPatrol(const PatrolArgs& a) {
  const char* cmd = "scrub";
  if (a.rate < 0) return Fail(cmd, "--rate must not be negative");
  std::string path = a.dev;
  bool with_fs = path.size() > 3 && path.ends_with(":fs");
  if (with_fs) path.resize(path.size() - 3);
  auto dev = dm::OpenDaxDevice(path);
  if (!dev.ok()) return Fail(cmd, dev.status());
  std::unique_ptr<fs::Filesystem> mounted;
  if (with_fs) {
    auto m = fs::Filesystem::Mount(**dev);
    if (!m.ok()) return Fail(cmd, path + ": " + m.status().message());
    if (!(*m)->protected_device())
      return Fail(cmd, path + ": the filesystem keeps no checksums (made without --data-protection); scrub " + path +
                           " checks the media alone");
    mounted = std::move(m).value();
  }
  dax::Device& target = mounted ? mounted->mounted_device() : **dev;
  dax::StandInHolder holder;  // a mirror rebuilds what the pass finds
  bool holding = target.HolderPid() == 0 && target.RegisterHolder(&holder).ok();
  Patrol patrol(a, target, mounted ? mounted->protected_device() : nullptr);
  Status failed;
  for (uint64_t pass = 1; failed.ok(); ++pass) {
    auto summary = patrol.Pass(pass);
    if (!summary.ok()) {
      failed = summary.status();
      break;
    }
    std::printf("%s\n", summary->dump().c_str());
    std::fflush(stdout);
    if (a.once) break;
  }
  if (holding) {
    target.ReleaseHolder(&holder);
    if (Status s = holder.RetellTo(target); !s.ok() && failed.ok()) failed = s;
  }
  return failed.ok() ? 0 : Fail(cmd, failed);
}

}  // namespace

void AddPatrolCommand(CLI::App& app, int* rc) {
  auto args = std::make_shared<PatrolArgs>();
  auto* s = app.add_subcommand("scrub",
                               "patrol: scrub every device below DEV at --rate, pass after pass, rebuilding what a "
                               "raid1 leg or (DEV:fs) parity can; one JSON summary line per pass");
  s->add_option("DEV", args->dev, "device or stack file; DEV:fs also checks the filesystem's data checksums")
      ->required();
  s->add_option("--rate", args->rate, "MB/s to keep to (default: as fast as it goes)");
  s->add_flag("--once", args->once, "one pass, then exit");
  s->callback([args, rc] { *rc = RunPatrol(*args); });
}

}  // namespace daxguard::tools
