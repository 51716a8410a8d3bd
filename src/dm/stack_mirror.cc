// raid1 segments of a stack: every store reaches every leg (dm/stack.cc),
// a read takes each byte from the first leg that holds it, and what a leg
// loses is rebuilt from another on the stack's delivery thread, so the
// holder hears only of bytes no leg holds.
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

Result<size_t> Stack::ReadMirrored(const Segment& seg, uint64_t in, uint8_t* out, uint64_t len) {
  uint64_t done = 0;
  while (done < len) {
    size_t got = 0;
    for (size_t leg = 0; leg < seg.mirror.size() && got == 0; ++leg) {
      Extent c = OnLeg(seg, leg, in + done, len - done);
      Result<size_t> n = bases_[c.base].dev->ReadMcSafe(c.offset, out + done, c.len);
      if (!n.ok()) return n.status();
      got = *n;
    }
    if (got == 0) break;  // no leg holds this byte
    done += got;
  }
  return done;
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

bool Stack::RebuildPage(const Segment& seg, uint64_t in) {
  std::vector<size_t> bad;
  for (size_t leg = 0; leg < seg.mirror.size(); ++leg) {
    Extent c = OnLeg(seg, leg, in, kPageSize);
    if (bases_[c.base].dev->KnownUnreadable(c.offset, c.len)) bad.push_back(leg);
  }
  if (bad.empty()) return true;  // rebuilt already, or cleared
  // The page as the legs hold it between them (two legs may each have lost
  // a different line of it); a byte none holds stops the rebuild.
  std::array<uint8_t, kPageSize> page;
  Result<size_t> n = ReadMirrored(seg, in, page.data(), kPageSize);
  if (!n.ok() || *n != kPageSize) return false;
  for (size_t leg : bad) {
    Extent to = OnLeg(seg, leg, in, kPageSize);
    auto w = bases_[to.base].dev->RecoveryWrite(to.offset, page.data(), kPageSize);
    if (!w.ok() || *w != kPageSize) return false;
    bases_[to.base].dev->Fence();
  }
  return true;
}

std::vector<dax::Failure> Stack::CollectFailures() {
  std::vector<ByteRange> ranges;
  {
    std::lock_guard<std::mutex> g(rebuild_mu_);
    ranges.swap(to_rebuild_);
  }
  std::vector<dax::Failure> lost;
  std::lock_guard<std::mutex> g(mirror_mu_);
  for (const ByteRange& r : MergeRanges(std::move(ranges))) {
    for (uint64_t page = AlignDown(r.off, kPageSize); page < r.off + r.len; page += kPageSize) {
      const Segment& seg = segments_[SegmentAt(page)];
      if (RebuildPage(seg, page - seg.start)) continue;
      // What no leg holds is lost: the holder hears of those sectors.
      for (uint64_t at = std::max(page, r.off); at < std::min(page + kPageSize, r.off + r.len); at += kSectorSize) {
        if (!MirrorUnreadable(seg, at - seg.start, kSectorSize)) continue;
        if (!lost.empty() && lost.back().offset + lost.back().len == at)
          lost.back().len += kSectorSize;
        else
          lost.push_back({at, kSectorSize, dax::kFailureMedia});
      }
    }
  }
  return lost;
}

}  // namespace daxguard::dm
