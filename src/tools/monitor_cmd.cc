// daxguard monitor DEV: one JSON object per line for each change in the
// device's known media errors and in its scrubs, for log collectors, in
// the shape of ndctl monitor's events: {"timestamp", "pid", "dev",
// "event": {NAME: true}, ...}. It opens DEV read-only and waits on each
// device file's change word, so it watches a mounted device or a stack
// without holding it; a stack's errors are in the stack's sectors. What
// the filesystem on DEV does about them (a block repaired, a file's bytes
// lost, free space quarantined) comes from the process holding it, through
// its event journal (fs/event_journal.h).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "dm/open.h"
#include "fs/event_journal.h"
#include "tools/cli_util.h"

namespace daxguard::tools {
namespace {

struct MonitorArgs {
  std::string dev;
  uint64_t count = 0;  // events before exiting; 0: no limit
  double timeout = 0;  // seconds before exiting; 0: none
};

using Runs = std::vector<media::BadBlock>;

// Sorted, adjacent runs joined, acknowledgement dropped: only which sectors are bad.
Runs Normal(Runs runs) {
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return a.sector < b.sector; });
  Runs out;
  for (const media::BadBlock& r : runs) {
    if (!out.empty() && r.sector <= out.back().sector + out.back().count)
      out.back().count = std::max(out.back().count, r.sector + r.count - out.back().sector);
    else
      out.push_back({r.sector, r.count});
  }
  return out;
}

// The sectors of `a` that `b` lacks (both Normal).
Runs Minus(const Runs& a, const Runs& b) {
  Runs out;
  size_t j = 0;
  for (const media::BadBlock& r : a) {
    uint64_t lo = r.sector, hi = r.sector + r.count;
    while (j < b.size() && b[j].sector + b[j].count <= lo) ++j;
    for (size_t k = j; k < b.size() && b[k].sector < hi; ++k) {
      if (b[k].sector > lo) out.push_back({lo, b[k].sector - lo});
      lo = std::max(lo, b[k].sector + b[k].count);
    }
    if (lo < hi) out.push_back({lo, hi - lo});
  }
  return out;
}

class Monitor {
 public:
  Monitor(const MonitorArgs& a, dax::Device& dev)
      : a_(a), dev_(dev), media_(dev.Media()), journal_(fs::EventJournalPath(dev)) {
    bad_ = Normal(dev_.BadBlocks());
    for (media::PmemDevice* m : media_) {
      seen_.push_back(m->ChangeEvents());
      scrub_.push_back(m->GetScrubStatus());
    }
  }

  // Until `count` events or `timeout` seconds: an error that becomes known
  // or is cleared, a scrub that starts, moves by a tenth, or ends.
  void Run() {
    auto start = std::chrono::steady_clock::now();
    std::fprintf(stderr, "daxguard monitor: watching %s\n", a_.dev.c_str());
    while (!Done()) {
      if (a_.timeout > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= a_.timeout)
        return;
      WaitForAnyChange();
      Look();
    }
  }

 private:
  bool Done() const { return a_.count && printed_ >= a_.count; }

  // A device file's change word moves with every change of its errors;
  // scrub progress does not move it, so each wait is short.
  void WaitForAnyChange() {
    int slice = std::max(10, 100 / static_cast<int>(media_.size()));
    for (size_t i = 0; i < media_.size(); ++i) {
      media_[i]->WaitForChange(seen_[i], slice);
      seen_[i] = media_[i]->ChangeEvents();
    }
  }

  // In the order they happened: a scrub's start (and progress) before the
  // errors it found, its end after them.
  void Look() {
    std::vector<media::ScrubStatus> now;
    for (media::PmemDevice* m : media_) now.push_back(m->GetScrubStatus());
    for (size_t i = 0; i < media_.size(); ++i) ScrubRunning(i, scrub_[i], now[i]);
    Runs bad = Normal(dev_.BadBlocks());
    Runs found = Minus(bad, bad_), cleared = Minus(bad_, bad);
    bad_ = bad;
    if (!found.empty()) Event("media-error-found", {{"badblocks", BadBlocksJson(found)}});
    if (!cleared.empty()) Event("media-error-cleared", {{"badblocks", BadBlocksJson(cleared)}});
    for (size_t i = 0; i < media_.size(); ++i) ScrubEnded(i, scrub_[i], now[i]);
    scrub_ = std::move(now);
    for (const nlohmann::json& e : journal_.Next()) Print(Json::parse(e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  }

  void ScrubRunning(size_t i, const media::ScrubStatus& was, const media::ScrubStatus& now) {
    if (!now.active || now.count != was.count) return;  // a new one after an end: see ScrubEnded
    uint64_t size = media_[i]->size();
    if (!was.active) Event("scrub-started", {{"media", media_[i]->path()}});
    if (size && now.progress * 10 / size > (was.active ? was.progress : 0) * 10 / size)
      Event("scrub-progress", {{"media", media_[i]->path()}, {"progress", now.progress}, {"size", size}});
  }

  void ScrubEnded(size_t i, const media::ScrubStatus& was, const media::ScrubStatus& now) {
    if (now.count <= was.count) return;
    Event("scrub-finished", {{"media", media_[i]->path()}, {"scrub_count", now.count}});
    if (now.active) Event("scrub-started", {{"media", media_[i]->path()}});
  }

  void Event(const char* name, const Json& detail) {
    Json j{{"timestamp", fs::EventTimestamp()}, {"event", {{name, true}}}};
    for (const auto& [k, v] : detail.items()) j[k] = v;
    Print(std::move(j));
  }

  // As ndctl monitor: our pid and the device we were asked about first.
  void Print(Json j) {
    if (Done()) return;
    Json out{{"timestamp", j.value("timestamp", "")}, {"pid", getpid()}, {"dev", a_.dev}};
    for (auto& [k, v] : j.items())
      if (k != "timestamp") out[k] = std::move(v);
    std::printf("%s\n", out.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
    std::fflush(stdout);
    ++printed_;
  }

  const MonitorArgs& a_;
  dax::Device& dev_;
  std::vector<media::PmemDevice*> media_;
  std::vector<uint32_t> seen_;
  std::vector<media::ScrubStatus> scrub_;
  Runs bad_;
  fs::EventJournalReader journal_;
  uint64_t printed_ = 0;
};

int RunMonitor(const MonitorArgs& a) {
  auto dev = dm::OpenDaxDevice(a.dev, kReadOnly);
  if (!dev.ok()) return Fail("monitor", dev.status());
  if (a.timeout < 0) return Fail("monitor", "--timeout must not be negative");
  Monitor(a, **dev).Run();
  return 0;
}

}  // namespace

void AddMonitorCommand(CLI::App& app, int* rc) {
  auto args = std::make_shared<MonitorArgs>();
  auto* m = app.add_subcommand("monitor", "print one JSON line per media-error, repair or scrub event on a device");
  m->add_option("DEV", args->dev, "device file or stack")->required();
  m->add_option("--count", args->count, "exit after this many events");
  m->add_option("--timeout", args->timeout, "exit after this many seconds");
  m->callback([args, rc] { *rc = RunMonitor(*args); });
}

}  // namespace daxguard::tools
