// raid1 segments of a stack: every store reaches every leg (dm/stack.cc),
// a read takes each byte from the first leg that holds it, and what a leg
// loses is rebuilt from another on the stack's delivery thread, so the
// holder hears only of bytes no leg holds. A leg put in anew (dm replace)
// is resynced from the others, and read only where the copy has passed.
#include <algorithm>
#include <array>
#include <optional>

#include "common/units.h"
#include "dm/stack.h"

namespace daxguard::dm {

Extent Stack::OnLeg(const Segment& seg, size_t leg, uint64_t in, uint64_t len) {
  return {seg.mirror[leg].base, seg.mirror[leg].offset + in, len};
}

Result<dax::Mapping> Stack::MirrorAccess(const Segment& seg, uint64_t in, uint64_t len, dax::AccessMode mode) {
  uint64_t pages = len / kPageSize;
  dax::Mapping m{nullptr, pages, this, seg.start + in};
  if (!MirrorUnreadable(seg, in, len)) return m;
  for (uint64_t p = 0; p < pages; ++p) {
    if (!MirrorUnreadable(seg, in + p * kPageSize, kPageSize)) continue;
    if (p > 0) {
      m.pages = p;
    } else if (mode == dax::AccessMode::kAccess) {
      return Status::Poison(name_ + ": page " + std::to_string((seg.start + in) / kPageSize) +
                            " holds known poison on every raid1 leg");
    } else {
      m.pages = 1;
    }
    break;
  }
  return m;
}

Result<size_t> Stack::ReadMirrored(const Segment& seg, uint64_t in, uint8_t* out, uint64_t len,
                                   std::optional<size_t> skip) {
  uint64_t done = 0;
  while (done < len) {
    size_t got = 0, answered = 0;
    Status failed;
    for (size_t leg = 0; leg < seg.mirror.size() && got == 0; ++leg) {
      uint64_t run = SyncedRun(seg, leg, in + done, len - done);
      if (leg == skip || run == 0) continue;
      Extent c = OnLeg(seg, leg, in + done, run);
      Result<size_t> n = bases_[c.base].dev->ReadMcSafe(c.offset, out + done, c.len);
      if (!n.ok()) {  // a leg that fails (gone, shrunk) is passed over like poison
        failed = n.status();
        continue;
      }
      ++answered;
      got = *n;
    }
    if (got == 0 && answered == 0 && done == 0 && !failed.ok()) return failed;  // no leg could be read at all
    if (got == 0) break;  // no leg holds this byte
    done += got;
  }
  return done;
}

uint64_t Stack::SyncedRun(const Segment& seg, size_t leg, uint64_t in, uint64_t len) const {
  for (const Resync& r : resyncing_)
    if (r.seg == &seg && r.leg == leg) return in >= r.upto ? 0 : std::min(len, r.upto - in);
  return len;
}

bool Stack::MirrorUnreadable(const Segment& seg, uint64_t in, uint64_t len) const {
  auto leg_unreadable = [&](size_t leg, uint64_t at, uint64_t n) {
    Extent c = OnLeg(seg, leg, at, n);
    return bases_[c.base].dev->KnownUnreadable(c.offset, c.len);
  };
  // The usual case first: a leg that reads the whole range.
  for (size_t leg = 0; leg < seg.mirror.size(); ++leg)
    if (!leg_unreadable(leg, in, len)) return false;
  // Each sector (the unit of known errors) from some leg.
  for (uint64_t at = in; at < in + len; at = AlignDown(at, kSectorSize) + kSectorSize) {
    uint64_t n = std::min(in + len, AlignDown(at, kSectorSize) + kSectorSize) - at;
    bool all = true;
    for (size_t leg = 0; leg < seg.mirror.size() && all; ++leg) all = leg_unreadable(leg, at, n);
    if (all) return true;
  }
  return false;
}

bool Stack::QueueRebuild(const Segment& seg, size_t base, uint64_t off, uint64_t len) {
  bool queued = false;
  for (size_t leg = 0; leg < seg.mirror.size(); ++leg) {
    const Layout::Leg& l = seg.mirror[leg];
    uint64_t lo = std::max(off, l.offset), hi = std::min(off + len, l.offset + seg.len);
    if (l.base != base || lo >= hi) continue;
    std::lock_guard<std::mutex> g(rebuild_mu_);
    to_rebuild_.push_back({&seg, leg, lo - l.offset, hi - lo});
    queued = true;
  }
  return queued;
}

bool Stack::RebuildPage(const LegLoss& loss, uint64_t in) {
  const Segment& seg = *loss.seg;
  std::vector<size_t> rewrite = {loss.leg};
  for (size_t leg = 0; leg < seg.mirror.size(); ++leg) {
    Extent c = OnLeg(seg, leg, in, kPageSize);
    if (leg != loss.leg && bases_[c.base].dev->KnownUnreadable(c.offset, c.len)) rewrite.push_back(leg);
  }
  // The page as the legs hold it between them (two legs may each have lost
  // a different line of it), the lost bytes from the other legs.
  std::array<uint8_t, kPageSize> page;
  uint64_t lo = std::clamp(loss.off, in, in + kPageSize), hi = std::clamp(loss.off + loss.len, in, in + kPageSize);
  auto read = [&](uint64_t from, uint64_t to, std::optional<size_t> skip) {
    Result<size_t> n = ReadMirrored(seg, from, page.data() + (from - in), to - from, skip);
    return n.ok() && *n == to - from;
  };
  if (!read(in, lo, std::nullopt) || !read(lo, hi, loss.leg) || !read(hi, in + kPageSize, std::nullopt)) return false;
  for (size_t leg : rewrite) {
    Extent to = OnLeg(seg, leg, in, kPageSize);
    auto w = bases_[to.base].dev->RecoveryWrite(to.offset, page.data(), kPageSize);
    if (!w.ok() || *w != kPageSize) return false;
    bases_[to.base].dev->Fence();
  }
  return true;
}

std::vector<dax::Failure> Stack::CollectFailures() {
  std::vector<LegLoss> losses;
  {
    std::lock_guard<std::mutex> g(rebuild_mu_);
    losses.swap(to_rebuild_);
  }
  std::vector<dax::Failure> lost;
  std::lock_guard<std::shared_mutex> g(mirror_mu_);
  for (const LegLoss& loss : losses) {
    for (uint64_t page = AlignDown(loss.off, kPageSize); page < loss.off + loss.len; page += kPageSize) {
      if (RebuildPage(loss, page)) continue;
      // The leg's lost bytes in this page, which no other leg could give.
      uint64_t lo = loss.seg->start + std::max(page, loss.off);
      uint64_t hi = loss.seg->start + std::min(page + kPageSize, loss.off + loss.len);
      if (!lost.empty() && lost.back().offset + lost.back().len == lo)
        lost.back().len += hi - lo;
      else
        lost.push_back({lo, hi - lo, dax::kFailureMedia});
    }
  }
  return lost;
}

Status Stack::ResyncPage(const Segment& seg, size_t leg, uint64_t in, ResyncReport* report) {
  std::array<uint8_t, kPageSize> page{};
  std::vector<uint64_t> gone;  // segment offsets of sectors no other leg holds
  for (uint64_t at = in; at < in + kPageSize;) {
    Result<size_t> n = ReadMirrored(seg, at, page.data() + (at - in), in + kPageSize - at, leg);
    if (!n.ok()) return n.status();
    at += *n;
    if (at == in + kPageSize) break;
    gone.push_back(AlignDown(at, kSectorSize));
    at = gone.back() + kSectorSize;
  }
  Extent to = OnLeg(seg, leg, in, kPageSize);
  dax::Device& dev = *bases_[to.base].dev;
  Result<size_t> w = dev.RecoveryWrite(to.offset, page.data(), kPageSize);
  if (!w.ok()) return w.status();
  if (*w != kPageSize) return Status::Io(name_ + ": resync could not write leg " + std::to_string(leg));
  for (uint64_t sector : gone) {
    auto runs = dev.MapToMedia(to.offset + (sector - in), kSectorSize);
    if (!runs.ok()) return runs.status();
    for (const dax::MediaRun& r : *runs) {
      DG_RETURN_IF_ERROR(r.media->Inject(r.offset / kSectorSize, std::max<uint64_t>(1, r.len / kSectorSize),
                                         {.notify = false, .saturate = true, .source = media::Source::kInternal}));
      report->lost_media.push_back(r);
    }
    report->lost_sectors.push_back((seg.start + sector) / kSectorSize);
  }
  return Status::Ok();
}

Status Stack::StartResync(const std::vector<std::pair<size_t, size_t>>& legs) {
  std::lock_guard<std::shared_mutex> g(mirror_mu_);
  if (!resyncing_.empty()) return Status::Busy(name_ + ": a resync is already running");
  for (const auto& [s, leg] : legs) {
    if (s >= segments_.size() || leg >= segments_[s].mirror.size())
      return Status::Invalid(name_ + ": segment " + std::to_string(s) + " has no raid1 leg " + std::to_string(leg));
    size_t seg = s;
    auto same = std::count_if(legs.begin(), legs.end(), [seg](const auto& l) { return l.first == seg; });
    if (static_cast<size_t>(same) >= segments_[s].mirror.size())
      return Status::Invalid(name_ + ": segment " + std::to_string(s) + " would have no leg left to copy from");
  }
  for (auto [s, leg] : legs) resyncing_.push_back({&segments_[s], leg, 0});
  return Status::Ok();
}

Result<Stack::ResyncReport> Stack::RunResync(const Progress& progress) {
  std::vector<Resync> todo;
  {
    std::lock_guard<std::shared_mutex> g(mirror_mu_);
    todo = resyncing_;
  }
  uint64_t total = 0;
  for (const Resync& r : todo) total += r.seg->len;
  // Stores wait for at most one chunk's copy.
  constexpr uint64_t kChunk = 64 * kPageSize;
  ResyncReport report;
  for (size_t i = 0; i < todo.size(); ++i) {
    const Segment& seg = *todo[i].seg;
    for (uint64_t in = 0; in < seg.len; in += kChunk) {
      uint64_t end = std::min(seg.len, in + kChunk);
      {
        std::lock_guard<std::shared_mutex> g(mirror_mu_);
        for (uint64_t p = in; p < end; p += kPageSize)
          DG_RETURN_IF_ERROR(ResyncPage(seg, todo[i].leg, p, &report));
        Fence();
        resyncing_[i].upto = end;
      }
      report.bytes += end - in;
      if (progress) progress(report.bytes, total);
    }
  }
  std::lock_guard<std::shared_mutex> g(mirror_mu_);
  resyncing_.clear();
  return report;
}

}  // namespace daxguard::dm
