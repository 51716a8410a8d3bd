#include "dm/stack.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <tuple>
#include <utility>

#include "common/units.h"

namespace daxguard::dm {

class Stack::Link final : public dax::Holder {
 public:
  Link(Stack* stack, size_t base) : stack_(stack), base_(base) {}
  void NotifyFailure(uint64_t offset, uint64_t len, int flags) override {
    if (flags == dax::kFailurePreRemove) going_.store(true);
    stack_->OnBaseFailure(base_, offset, len, flags);
  }
  // A base going away lets its holder go itself (Device::Kill), so the
  // stack must not release it too: two releases of one holder would race.
  bool going() const { return going_.load(); }

 private:
  Stack* stack_;
  size_t base_;
  std::atomic<bool> going_{false};
};

Stack::Stack(std::string name, std::vector<TableLine> table) : name_(std::move(name)), table_(std::move(table)) {}

Stack::~Stack() {
  // A holder that never released: let go of the bases before the links go.
  ReleaseBases();
  StopDelivering();  // what they reported as they let go is told first
  // Close the bases while the rest is intact: a stack below may still be
  // telling this one (through its link) that it is going away.
  bases_.clear();
}

Result<std::unique_ptr<Stack>> Stack::Build(std::string name, std::vector<TableLine> table, BaseOpener& opener) {
  DG_RETURN_IF_ERROR(CheckLayout(table));
  std::unique_ptr<Stack> s(new Stack(std::move(name), std::move(table)));
  std::map<std::string, size_t> by_id;
  for (const TableLine& line : s->table_) DG_RETURN_IF_ERROR(s->AddSegment(line, opener, &by_id));
  DG_RETURN_IF_ERROR(s->CheckNoAliasing());
  s->Finish();
  return s;
}

Status Stack::AddSegment(const TableLine& line, BaseOpener& opener, std::map<std::string, size_t>* by_id) {
  BaseResolver resolve = [&](const std::string& dev) -> Result<BaseRef> {
    auto id = opener.Identify(dev);
    if (!id.ok()) return id.status();
    auto it = by_id->find(*id);
    if (it == by_id->end()) {
      auto d = opener.Open(dev);
      if (!d.ok()) return d.status();
      bases_.push_back({dev, std::move(d).value()});
      links_.push_back(std::make_unique<Link>(this, bases_.size() - 1));
      it = by_id->emplace(*id, bases_.size() - 1).first;
    }
    return BaseRef{it->second, bases_[it->second].dev->size()};
  };
  auto target = MakeTarget(line, resolve);
  if (!target.ok()) return target.status();
  bool error = target.value()->Bases().empty();
  std::vector<Layout::Leg> mirror = target.value()->MirrorLegs();
  segments_.push_back(
      {line.start * kSectorSize, line.len * kSectorSize, error, std::move(target).value(), std::move(mirror)});
  return Status::Ok();
}

namespace {

// The bytes one leg of a segment takes from its base: a linear segment's
// whole range, or a stripe's chunks, contiguous from its offset.
struct Reach {
  size_t base;
  uint64_t off;
  uint64_t len;
  size_t segment;
  size_t stripe;
  bool striped;
};

std::string LegName(const Reach& r) {
  std::string name = "segment " + std::to_string(r.segment);
  return r.striped ? name + " stripe " + std::to_string(r.stripe) : name;
}

}  // namespace

Status Stack::CheckNoAliasing() const {
  std::vector<Reach> reach;
  for (size_t i = 0; i < segments_.size(); ++i) {
    std::optional<Layout> layout = segments_[i].target->Striping();
    if (!segments_[i].mirror.empty()) layout = Layout{segments_[i].len, segments_[i].mirror};
    if (!layout) continue;  // the error target reaches nothing
    uint64_t len = segments_[i].mirror.empty() ? segments_[i].len / layout->legs.size() : segments_[i].len;
    for (size_t j = 0; j < layout->legs.size(); ++j)
      reach.push_back({layout->legs[j].base, layout->legs[j].offset, len, i, j, layout->legs.size() > 1});
  }
  std::sort(reach.begin(), reach.end(),
            [](const Reach& a, const Reach& b) { return std::tie(a.base, a.off) < std::tie(b.base, b.off); });
  // Sorted by start, a leg overlaps an earlier one iff it starts before the
  // furthest end so far on its base.
  const Reach* furthest = nullptr;
  for (const Reach& r : reach) {
    if (furthest && furthest->base == r.base && r.off < furthest->off + furthest->len) {
      auto [a, b] = std::minmax(*furthest, r, [](const Reach& x, const Reach& y) {
        return std::tie(x.segment, x.stripe) < std::tie(y.segment, y.stripe);
      });
      std::string who = a.striped || b.striped ? LegName(a) + " and " + LegName(b)
                                               : "segments " + std::to_string(a.segment) + " and " +
                                                     std::to_string(b.segment);
      uint64_t end = std::min(furthest->off + furthest->len, r.off + r.len);
      return Status::Invalid("alias: " + who + " both reach " + bases_[r.base].label + " bytes " +
                             std::to_string(r.off) + ".." + std::to_string(end));
    }
    if (!furthest || furthest->base != r.base || r.off + r.len > furthest->off + furthest->len) furthest = &r;
  }
  return Status::Ok();
}

void Stack::Finish() {
  size_ = segments_.back().start + segments_.back().len;
  // Recovery where any base can (CanRecover says where); synchronous only
  // if every base is.
  caps_.synchronous = !bases_.empty();
  for (const Base& b : bases_) {
    caps_.recovery = caps_.recovery || b.dev->caps().recovery;
    caps_.synchronous = caps_.synchronous && b.dev->caps().synchronous;
  }
  flat_ = Flatten();
  for (const Segment& seg : segments_) mirrored_ = mirrored_ || !seg.mirror.empty();
}

std::unique_ptr<FlatMap> Stack::Flatten() const {
  std::vector<dax::DirectLayout> flat;
  for (const Segment& seg : segments_) {
    std::optional<Layout> layout = seg.target->Striping();
    if (!layout) return nullptr;
    dax::DirectLayout f{seg.start, seg.len, layout->chunk, {}};
    if (layout->legs.size() == 1) {
      // Linear: whatever its range below is, striped or not.
      std::optional<dax::DirectLayout> below = FlattenBase(layout->legs[0], seg.len);
      if (!below) return nullptr;
      f.chunk = below->chunk;
      f.legs = below->legs;
    } else {
      // Striped: each stripe must be one run of one device file.
      for (const Layout::Leg& leg : layout->legs) {
        std::optional<dax::DirectLayout> below = FlattenBase(leg, seg.len / layout->legs.size());
        if (!below || below->legs.size() != 1) return nullptr;
        f.legs.push_back(below->legs[0]);
      }
    }
    flat.push_back(std::move(f));
  }
  return std::make_unique<FlatMap>(std::move(flat));
}

std::optional<dax::DirectLayout> Stack::FlattenBase(const Layout::Leg& leg, uint64_t len) const {
  return bases_[leg.base].dev->DirectLayoutOf(leg.offset, len);
}

std::optional<dax::DirectLayout> Stack::DirectLayoutOf(uint64_t off, uint64_t len) const {
  if (!flat_ || !BytesOk(off, len)) return std::nullopt;
  return flat_->Window(off, len);
}

size_t Stack::SegmentAt(uint64_t off) const {
  if (segments_.size() == 1) return 0;  // the usual table: nothing to search
  auto it = std::upper_bound(segments_.begin(), segments_.end(), off,
                             [](uint64_t o, const Segment& s) { return o < s.start; });
  return static_cast<size_t>(it - segments_.begin()) - 1;
}

template <typename Fn>
bool Stack::ForEachRun(uint64_t off, uint64_t len, Fn&& fn) const {
  size_t i = len ? SegmentAt(off) : 0;
  while (len > 0) {
    const Segment& seg = segments_[i];
    uint64_t in = off - seg.start;
    Extent e = seg.target->Map(in, std::min(len, seg.len - in));
    if (!fn(e, off)) return false;
    off += e.len;
    len -= e.len;
    if (off - seg.start >= seg.len) ++i;
  }
  return true;
}

Status Stack::CheckNoErrorTarget(uint64_t off, uint64_t len) const {
  if (len == 0) return Status::Ok();
  for (size_t i = SegmentAt(off); i < segments_.size() && segments_[i].start < off + len; ++i) {
    if (segments_[i].error) return ErrorTargetError(std::max(off, segments_[i].start));
  }
  return Status::Ok();
}

template <typename Fn>
bool Stack::ForEachCopy(const Extent& e, uint64_t pos, Fn&& fn) const {
  const Segment& seg = segments_[SegmentAt(pos)];
  if (seg.mirror.empty()) return fn(e);
  for (size_t leg = 0; leg < seg.mirror.size(); ++leg)
    if (!fn(OnLeg(seg, leg, pos - seg.start, e.len))) return false;
  return true;
}

Status Stack::CheckNoMirror(uint64_t off, uint64_t len) const {
  for (size_t i = len ? SegmentAt(off) : segments_.size(); i < segments_.size() && segments_[i].start < off + len; ++i)
    if (!segments_[i].mirror.empty())
      return Status::Error(EOPNOTSUPP, name_ + ": sector " + std::to_string(std::max(off, segments_[i].start) / kSectorSize) +
                                           " is on a raid1 segment, which cannot be mapped (a store would reach one leg)");
  return Status::Ok();
}

Status Stack::ErrorTargetError(uint64_t off) const {
  return Status::Io(name_ + ": sector " + std::to_string(off / kSectorSize) + " is mapped to the error target");
}

std::vector<Extent> Stack::MapDown(uint64_t off, uint64_t len) const {
  std::vector<Extent> out;
  ForEachRun(off, len, [&](const Extent& e, uint64_t) {
    out.push_back(e);
    return true;
  });
  return out;
}

std::vector<ByteRange> Stack::MapUp(size_t base, uint64_t off, uint64_t len) const {
  std::vector<ByteRange> out, part;
  for (const Segment& seg : segments_) {
    part.clear();
    seg.target->Unmap(base, off, len, &part);
    for (const ByteRange& r : part) out.push_back({seg.start + r.off, r.len});
  }
  return MergeRanges(std::move(out));
}

// --- the data path

Result<dax::Mapping> Stack::DirectAccess(uint64_t pgoff, uint64_t nr_pages, dax::AccessMode mode) {
  DG_RETURN_IF_ERROR(CheckPages(pgoff, nr_pages));
  if (nr_pages == 0) return dax::Mapping{};
  uint64_t off = pgoff * kPageSize;
  // Only the part within one segment, and for a stripe one chunk: what
  // follows lives elsewhere, and the caller comes back for it.
  const Segment& seg = segments_[SegmentAt(off)];
  if (seg.error) return ErrorTargetError(off);
  uint64_t in = off - seg.start;
  if (!seg.mirror.empty()) return MirrorAccess(seg, in, std::min(nr_pages * kPageSize, seg.len - in), mode);
  Extent e = seg.target->Map(in, std::min(nr_pages * kPageSize, seg.len - in));
  return bases_[e.base].dev->DirectAccess(e.offset / kPageSize, e.len / kPageSize, mode);
}

Result<size_t> Stack::RecoveryWrite(uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  DG_RETURN_IF_ERROR(CheckNoErrorTarget(off, len));
  auto* in = static_cast<const uint8_t*>(src);
  std::unique_lock<std::shared_mutex> mirror(mirror_mu_, std::defer_lock);
  if (mirrored_) mirror.lock();
  size_t done = 0;
  Status why;
  ForEachRun(off, len, [&](const Extent& e, uint64_t pos) {
    size_t least = e.len;  // written on every leg
    bool whole = ForEachCopy(e, pos, [&](const Extent& c) {
      auto r = bases_[c.base].dev->RecoveryWrite(c.offset, in + done, c.len);
      if (!r.ok()) {
        why = r.status();
        return false;
      }
      least = std::min<size_t>(least, *r);
      return *r == c.len;
    });
    if (why.ok()) done += least;
    return whole;
  });
  if (done == 0 && !why.ok()) return why;
  return done;
}

Status Stack::ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) {
  DG_RETURN_IF_ERROR(CheckPages(pgoff, nr_pages));
  DG_RETURN_IF_ERROR(CheckNoErrorTarget(pgoff * kPageSize, nr_pages * kPageSize));
  std::unique_lock<std::shared_mutex> mirror(mirror_mu_, std::defer_lock);
  if (mirrored_) mirror.lock();
  Status s;
  ForEachRun(pgoff * kPageSize, nr_pages * kPageSize, [&](const Extent& e, uint64_t pos) {
    return ForEachCopy(e, pos, [&](const Extent& c) {
      s = bases_[c.base].dev->ZeroPageRange(c.offset / kPageSize, c.len / kPageSize);
      return s.ok();
    });
  });
  return s;
}

Result<size_t> Stack::ReadMcSafe(uint64_t off, void* dst, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  auto* out = static_cast<uint8_t*>(dst);
  std::shared_lock<std::shared_mutex> mirror(mirror_mu_, std::defer_lock);
  if (mirrored_) mirror.lock();
  size_t done = 0;
  Status failed;
  ForEachRun(off, len, [&](const Extent& e, uint64_t pos) {
    if (e.base == Extent::kNoBase) return false;
    const Segment& seg = segments_[SegmentAt(pos)];
    Result<size_t> n = seg.mirror.empty() ? bases_[e.base].dev->ReadMcSafe(e.offset, out + done, e.len)
                                          : ReadMirrored(seg, pos - seg.start, out + done, e.len);
    if (!n.ok()) {
      failed = n.status();
      return false;
    }
    done += *n;
    return *n == e.len;
  });
  if (!failed.ok()) return failed;
  return done;
}

template <typename Fn>
Status Stack::StoreEachRun(uint64_t off, uint64_t len, Fn&& fn) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  DG_RETURN_IF_ERROR(CheckNoErrorTarget(off, len));
  std::unique_lock<std::shared_mutex> mirror(mirror_mu_, std::defer_lock);
  if (mirrored_) mirror.lock();
  Status s;
  ForEachRun(off, len, [&](const Extent& e, uint64_t pos) {
    return ForEachCopy(e, pos, [&](const Extent& c) {
      s = fn(*bases_[c.base].dev, c.offset, pos, c.len);
      return s.ok();
    });
  });
  return s;
}

Status Stack::Write(uint64_t off, const void* src, size_t len) {
  auto* in = static_cast<const uint8_t*>(src);
  return StoreEachRun(off, len, [&](dax::Device& d, uint64_t at, uint64_t pos, uint64_t n) {
    return d.Write(at, in + (pos - off), n);
  });
}

Status Stack::WriteBack(uint64_t off, uint64_t len) {
  return StoreEachRun(off, len, [](dax::Device& d, uint64_t at, uint64_t, uint64_t n) { return d.WriteBack(at, n); });
}

void Stack::Fence() {
  for (Base& b : bases_) b.dev->Fence();
}

Status Stack::WritePersist(uint64_t off, const void* src, size_t len) {
  auto* in = static_cast<const uint8_t*>(src);
  return StoreEachRun(off, len, [&](dax::Device& d, uint64_t at, uint64_t pos, uint64_t n) {
    return d.WritePersist(at, in + (pos - off), n);
  });
}

Status Stack::MapInto(dax::MappedRegion& region, uint64_t at, uint64_t off, uint64_t len, uint64_t label_off) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  DG_RETURN_IF_ERROR(CheckNoErrorTarget(off, len));
  DG_RETURN_IF_ERROR(CheckNoMirror(off, len));
  Status s;
  ForEachRun(off, len, [&](const Extent& e, uint64_t pos) {
    s = bases_[e.base].dev->MapInto(region, at + (pos - off), e.offset, e.len, label_off + (pos - off));
    return s.ok();
  });
  return s;
}

bool Stack::ReadClean(uint64_t off, void* dst, size_t len) {
  if (flat_) return BytesOk(off, len) && flat_->Read(off, dst, len);
  auto* out = static_cast<uint8_t*>(dst);
  std::shared_lock<std::shared_mutex> mirror(mirror_mu_, std::defer_lock);
  if (mirrored_) mirror.lock();
  return BytesOk(off, len) && ForEachRun(off, len, [&](const Extent& e, uint64_t pos) {
           return e.base != Extent::kNoBase && bases_[e.base].dev->ReadClean(e.offset, out + (pos - off), e.len);
         });
}

bool Stack::WriteClean(uint64_t off, const void* src, size_t len) {
  if (flat_) return BytesOk(off, len) && flat_->Write(off, src, len);  // no error segments there
  auto* in = static_cast<const uint8_t*>(src);
  std::unique_lock<std::shared_mutex> mirror(mirror_mu_, std::defer_lock);
  if (mirrored_) mirror.lock();
  // Refused writes change nothing, as with Write.
  return BytesOk(off, len) && CheckNoErrorTarget(off, len).ok() && ForEachRun(off, len, [&](const Extent& e, uint64_t pos) {
           return e.base != Extent::kNoBase && ForEachCopy(e, pos, [&](const Extent& c) {
                    return bases_[c.base].dev->WriteClean(c.offset, in + (pos - off), c.len);
                  });
         });
}

std::vector<media::BadBlock> Stack::BadBlocks() const {
  std::vector<media::BadBlock> all;
  for (size_t i = 0; i < bases_.size(); ++i)
    for (const media::BadBlock& b : bases_[i].dev->BadBlocks())
      for (const ByteRange& r : MapUp(i, b.sector * kSectorSize, b.count * kSectorSize))
        for (uint64_t s = r.off / kSectorSize, end = (r.off + r.len) / kSectorSize; s < end;) {
          const Segment& seg = segments_[SegmentAt(s * kSectorSize)];
          uint64_t stop = std::min(end, (seg.start + seg.len) / kSectorSize);
          if (seg.mirror.empty()) {
            all.push_back({s, stop - s, b.acknowledged});
            s = stop;
            continue;
          }
          // a mirror's sector is bad only where no leg holds it
          for (; s < stop; ++s)
            if (MirrorUnreadable(seg, s * kSectorSize - seg.start, kSectorSize)) all.push_back({s, 1, b.acknowledged});
        }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.sector < b.sector; });
  std::vector<media::BadBlock> out;
  for (const media::BadBlock& b : all) {
    if (!out.empty() && b.sector <= out.back().sector + out.back().count) {
      media::BadBlock& last = out.back();
      last.count = std::max(last.sector + last.count, b.sector + b.count) - last.sector;
      last.acknowledged = last.acknowledged && b.acknowledged;
    } else {
      out.push_back(b);
    }
  }
  return out;
}

Status Stack::Retell(uint64_t off, uint64_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  Status s;
  ForEachRun(off, len, [&](const Extent& e, uint64_t pos) {
    return e.base == Extent::kNoBase || ForEachCopy(e, pos, [&](const Extent& c) {
             s = bases_[c.base].dev->Retell(c.offset, c.len);
             return s.ok();
           });
  });
  return s;
}

bool Stack::KnownUnreadable(uint64_t off, uint64_t len) const {
  if (!BytesOk(off, len)) return true;
  return !ForEachRun(off, len, [&](const Extent& e, uint64_t pos) {
    if (e.base == Extent::kNoBase) return false;
    const Segment& seg = segments_[SegmentAt(pos)];
    if (!seg.mirror.empty()) return !MirrorUnreadable(seg, pos - seg.start, e.len);
    return !bases_[e.base].dev->KnownUnreadable(e.offset, e.len);
  });
}

bool Stack::CanRecover(uint64_t off, uint64_t len) const {
  if (off > size_ || len > size_ - off) return false;
  return ForEachRun(off, len, [&](const Extent& e, uint64_t) {
    return e.base != Extent::kNoBase && bases_[e.base].dev->CanRecover(e.offset, e.len);
  });
}

uint32_t Stack::HolderPid() const {
  for (const Base& b : bases_)
    if (uint32_t pid = b.dev->HolderPid()) return pid;
  return Device::HolderPid();  // a stack of error targets alone holds no base
}

std::vector<SegmentStatus> Stack::SegmentStatuses() const {
  std::vector<media::BadBlock> bad = BadBlocks();
  std::vector<SegmentStatus> out;
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& seg = segments_[i];
    SegmentStatus st;
    st.line = table_[i];
    for (size_t b : seg.target->Bases()) st.devices.push_back(bases_[b].label);
    st.can_recover = CanRecover(seg.start, seg.len);
    uint64_t lo = seg.start / kSectorSize, hi = lo + seg.len / kSectorSize;
    for (const media::BadBlock& b : bad) {
      uint64_t s = std::max(b.sector, lo), e = std::min(b.sector + b.count, hi);
      if (s < e) st.bad.push_back({s, e - s, b.acknowledged});
    }
    for (const Layout::Leg& leg : seg.mirror) {
      uint64_t lo = leg.offset / kSectorSize, hi = lo + seg.len / kSectorSize, n = 0;
      for (const media::BadBlock& b : bases_[leg.base].dev->BadBlocks()) {
        uint64_t s = std::max(b.sector, lo), e = std::min(b.sector + b.count, hi);
        if (s < e) n += e - s;
      }
      st.leg_bad.push_back(n);
    }
    out.push_back(std::move(st));
  }
  return out;
}

// --- the holder: the stack holds its bases while it has a holder itself

Status Stack::ClaimForHolder(uint64_t) {
  for (size_t i = 0; i < bases_.size(); ++i) {
    Status s = bases_[i].dev->RegisterHolder(links_[i].get());
    if (!s.ok()) {
      ReleaseBases();
      return s;
    }
  }
  return Status::Ok();
}

// The bases were let go in OnHolderReleasing, before the holder lock is
// taken: releasing a base waits for its threads, best done holding nothing.
void Stack::UnclaimForHolder(uint64_t) {}

// The bases are let go before the stack's delivery stops (dax::Device), so
// what they report as they go is told.
void Stack::OnHolderReleasing() { ReleaseBases(); }

void Stack::ReleaseBases() {
  for (size_t i = 0; i < bases_.size(); ++i)
    if (!links_[i]->going()) bases_[i].dev->ReleaseHolder(links_[i].get());
}

void Stack::OnBaseFailure(size_t base, uint64_t off, uint64_t len, int flags) {
  // Without one of its devices the stack as a whole is going away.
  if (flags == dax::kFailurePreRemove) {
    ReportFailure({0, size_, dax::kFailurePreRemove});
    return;
  }
  std::vector<ByteRange> part;
  bool rebuild = false;
  for (const Segment& seg : segments_) {
    if (!seg.mirror.empty()) {
      rebuild = QueueRebuild(seg, base, off, len) || rebuild;
      continue;
    }
    part.clear();
    seg.target->Unmap(base, off, len, &part);
    for (const ByteRange& r : part) ReportFailure({seg.start + r.off, r.len, dax::kFailureMedia});
  }
  if (rebuild) DeliverFailures(false);  // the delivery thread rebuilds
}

}  // namespace daxguard::dm
