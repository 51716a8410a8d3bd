#include "dax/mapping.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "common/units.h"
#include "dax/fault_table.h"
#include "dax/mapping_spans.h"
#include "dax/media_watch.h"
#include "media/pmem_device.h"

namespace daxguard::dax {
namespace {
constexpr size_t kConsumeSlots = 32;
enum SlotState : uint32_t { kFree, kFilling, kReady };
}  // namespace

namespace internal {

struct ConsumeSlot {
  std::atomic<uint32_t> state{kFree};
  uint64_t off = 0, len = 0;  // written between kFilling and kReady
};

// One media device whose pages regions of this process hold. Its watch
// keeps the pages and the poison list reachable whatever happens to the
// dax::Device that placed them; on the watch's thread it retraps the regions
// and consumes what faults post.
struct MediaFile {
  std::shared_ptr<MediaWatch> watch;
  media::PmemDevice* dev = nullptr;  // watch's
  uint64_t listening = 0;            // our id with the watch
  int users = 0;  // regions that placed its pages; guarded by the registry lock
  std::array<ConsumeSlot, kConsumeSlots> slots;

  void ConsumePosted() {
    for (ConsumeSlot& s : slots) {
      if (s.state.load(std::memory_order_acquire) != kReady) continue;
      uint64_t off = s.off, len = s.len;
      s.state.store(kFree, std::memory_order_release);
      dev->Consume(off, len);  // the trapped load consumed the unit's poison
    }
  }
};

bool PostConsumption(MediaFile* file, uint64_t off, uint64_t len) {
  for (ConsumeSlot& s : file->slots) {
    uint32_t expected = kFree;
    if (!s.state.compare_exchange_strong(expected, kFilling)) continue;
    s.off = off;
    s.len = len;
    s.state.store(kReady, std::memory_order_release);
    file->dev->SignalChange();  // wakes the watch (and, harmlessly, other processes')
    return true;
  }
  return false;
}

// The owner's OnPoison callback; outlives the region while a call is running.
struct PoisonCallback {
  std::recursive_mutex mu;  // a callback may destroy its own region
  std::function<void(uint64_t, uint64_t)> fn;
  bool alive = true;
  void Call(uint64_t at, uint64_t len) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (alive && fn) fn(at, len);
  }
};

struct RegionState {
  uint8_t* base = nullptr;
  uint64_t length = 0;
  bool writable = false;
  bool awaits_repair = false;  // guarded by the registry lock
  std::string name;
  uint64_t ino = 0;
  // All guarded by the registry lock.
  Spans placed;  // kMedia, kZero, kGone: what was placed where
  Spans held;    // kNone, kHeldPoison, kHeldGone: the owner's traps
  Spans spans;   // in force: the page protections match these
  std::vector<std::shared_ptr<MediaFile>> files;
  std::shared_ptr<PoisonCallback> on_poison = std::make_shared<PoisonCallback>();

  bool Uses(const MediaFile* f) const {
    return std::any_of(files.begin(), files.end(), [f](const auto& p) { return p.get() == f; });
  }
};
}  // namespace internal

using internal::MediaFile;
using internal::PoisonCallback;
using internal::RegionState;
using internal::Span;
using internal::SpanKind;
using internal::Spans;

namespace {

// Every live region and media file of the process. One lock: changes are
// rare next to accesses, which never take it.
class Registry {
 public:
  static Registry& Get() {
    static Registry* r = new Registry;  // never destroyed: watch threads may outlive main
    return *r;
  }
  std::mutex mu;

  void Add(RegionState* r) {
    std::lock_guard<std::mutex> g(mu);
    regions_[reinterpret_cast<uintptr_t>(r->base)] = r;
    PublishLocked();
  }
  void Remove(RegionState* r);
  MediaFile* UseLocked(RegionState& r, const std::shared_ptr<MediaWatch>& watch);
  Status CommitLocked(RegionState& r, const Spans& kernel);
  void PublishLocked();
  void Refresh(MediaFile* f);

 private:
  std::map<uintptr_t, RegionState*> regions_;
  std::vector<std::shared_ptr<MediaFile>> files_;
};

// What the region should look like now: placements, the units of their
// poison and of their known errors, then the owner's traps. A known error
// traps even where its poison is gone: a recovery write clears the poison
// (zeroes) first and drops the record only once the new data is durable,
// so no load sees the zeroes in between.
Spans Build(const RegionState& r) {
  Spans want = r.placed;
  for (const Span& s : r.placed) {
    if (s.kind != SpanKind::kMedia) continue;
    auto trap = [&](uint64_t media_off, uint64_t len) {
      uint64_t x0 = s.base_at + (media_off - s.media_base), x1 = x0 + len;
      uint64_t lo = std::max(s.at, s.UnitStart(x0)), hi = std::min(s.end(), s.UnitStart(x1 - 1) + s.unit);
      want = internal::Mark(want, lo, hi - lo, SpanKind::kPoison, 0);
    };
    const media::PmemDevice& dev = *s.file->dev;
    for (const media::MediaError& e : dev.MediaErrorsIn(s.Media(s.at), s.len)) trap(e.offset, e.length);
    for (uint64_t at = s.Media(s.at), end = at + s.len; at < end;) {
      std::optional<media::BadBlock> b = dev.FirstKnownError(at, end - at);
      if (!b) break;
      uint64_t lo = std::max(b->sector * kSectorSize, at), hi = std::min((b->sector + b->count) * kSectorSize, end);
      trap(lo, hi - lo);
      at = hi;
    }
  }
  for (const Span& h : r.held)
    if (h.kind != SpanKind::kNone) want = internal::Mark(want, h.at, h.len, h.kind, kPageSize);
  return want;
}

// Changes page protections from `kernel` to `want`. A run that cannot be
// changed is left trapped in `want` (ADRERR), never shown as accessible while
// its pages are not.
Status Protect(const RegionState& r, const Spans& kernel, Spans* want) {
  struct Run {
    uint64_t lo, hi;
    int prot;
  };
  std::vector<Run> runs;
  internal::ForEachPair(kernel, *want, [&](uint64_t lo, uint64_t hi, const Span& a, const Span& b) {
    int prot = internal::Protection(b.kind, r.writable);
    if (internal::Protection(a.kind, r.writable) == prot) return;
    if (!runs.empty() && runs.back().hi == lo && runs.back().prot == prot)
      runs.back().hi = hi;
    else
      runs.push_back({lo, hi, prot});
  });
  Status s;
  for (const Run& run : runs) {
    if (mprotect(r.base + run.lo, run.hi - run.lo, run.prot) == 0) continue;
    if (s.ok()) s = Status::FromErrno(errno, "cannot change the protection of " + r.name);
    *want = internal::Mark(*want, run.lo, run.hi - run.lo, SpanKind::kGone, 0);
  }
  return s;
}

// Region ranges that poison has just taken out of accessible media.
std::vector<std::pair<uint64_t, uint64_t>> NewlyPoisoned(const Spans& before, const Spans& after) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  internal::ForEachPair(before, after, [&](uint64_t lo, uint64_t hi, const Span& a, const Span& b) {
    if (a.kind != SpanKind::kMedia || b.kind != SpanKind::kPoison) return;
    if (!out.empty() && out.back().first + out.back().second == lo)
      out.back().second += hi - lo;
    else
      out.emplace_back(lo, hi - lo);
  });
  return out;
}

MediaFile* Registry::UseLocked(RegionState& r, const std::shared_ptr<MediaWatch>& watch) {
  auto it = std::find_if(files_.begin(), files_.end(), [&](const auto& f) { return f->watch == watch; });
  if (it == files_.end()) {
    auto f = std::make_shared<MediaFile>();
    f->watch = watch;
    f->dev = &watch->media();
    // Listening before any region reads the poison, so no change goes unseen.
    // The listener keeps the file alive while it runs; letting it go (the
    // last region's Remove) ends the cycle.
    f->listening = watch->Listen([f] {
      f->ConsumePosted();
      Registry::Get().Refresh(f.get());
    });
    it = files_.insert(files_.end(), std::move(f));
  }
  if (!r.Uses(it->get())) {
    r.files.push_back(*it);
    ++(*it)->users;
  }
  return it->get();
}

Status Registry::CommitLocked(RegionState& r, const Spans& kernel) {
  Spans want = Build(r);
  Status s = Protect(r, kernel, &want);
  r.spans = std::move(want);
  return s;
}

void Registry::PublishLocked() {
  std::vector<internal::FaultSpan> out;
  for (const auto& [addr, r] : regions_)
    for (const Span& s : r->spans)
      out.push_back({addr + s.at, addr + s.end(), s, addr, r->writable, r->awaits_repair, r->name.c_str(), r->ino});
  internal::PublishFaultSpans(std::move(out));
}

void Registry::Refresh(MediaFile* f) {
  std::vector<std::pair<std::shared_ptr<PoisonCallback>, std::pair<uint64_t, uint64_t>>> tell;
  {
    std::lock_guard<std::mutex> g(mu);
    for (auto& [addr, r] : regions_) {
      if (!r->Uses(f)) continue;
      Spans before = r->spans;
      (void)CommitLocked(*r, before);  // nobody to report to: a failed run stays trapped
      for (const auto& range : NewlyPoisoned(before, r->spans)) tell.emplace_back(r->on_poison, range);
    }
    PublishLocked();
  }
  for (auto& [cb, range] : tell) cb->Call(range.first, range.second);
}

void Registry::Remove(RegionState* r) {
  std::vector<std::shared_ptr<MediaFile>> unused;
  {
    std::lock_guard<std::mutex> g(mu);
    regions_.erase(reinterpret_cast<uintptr_t>(r->base));
    for (const auto& f : r->files) {
      if (--f->users > 0) continue;
      files_.erase(std::find(files_.begin(), files_.end(), f));
      unused.push_back(f);
    }
    r->files.clear();
    PublishLocked();
  }
  munmap(r->base, r->length);
  // Not under the lock: a listener running now may be waiting for it. From
  // a listener itself (a callback destroying the last region) this returns
  // at once, and the watch outlives the call.
  for (const auto& f : unused) f->watch->Unlisten(f->listening);
  std::lock_guard<std::mutex> g(mu);
  for (auto& f : unused) internal::RetireAfterPublish(std::move(f));
}

// A range just mapped (PROT_NONE) at `placed`: the kernel's view of it is
// gone until the commit opens what no poison or trap holds. Caller holds reg.mu.
Status CommitPlacement(Registry& reg, RegionState& r, const Span& placed) {
  Spans kernel = internal::Mark(r.spans, placed.at, placed.len, SpanKind::kGone, 0);
  r.placed = internal::Carve(r.placed, placed);
  Status s = reg.CommitLocked(r, kernel);
  reg.PublishLocked();
  return s;
}

Status CheckPlacement(const RegionState& r, uint64_t at, uint64_t len) {
  if (len == 0 || !IsAligned(at, kPageSize) || !IsAligned(len, kPageSize) || at > r.length ||
      len > r.length - at)
    return Status::Invalid(r.name + ": region range " + std::to_string(at) + "+" + std::to_string(len) +
                           " is not whole pages within the " + std::to_string(r.length) + "-byte region");
  return Status::Ok();
}

}  // namespace

MappedRegion::MappedRegion(std::unique_ptr<RegionState> impl) : impl_(std::move(impl)) {}

MappedRegion::~MappedRegion() {
  {
    std::lock_guard<std::recursive_mutex> g(impl_->on_poison->mu);
    impl_->on_poison->alive = false;
  }
  Registry::Get().Remove(impl_.get());
}

Result<std::unique_ptr<MappedRegion>> MappedRegion::Reserve(uint64_t length, bool writable, std::string name,
                                                            uint64_t ino) {
  if (length == 0 || !IsAligned(length, kPageSize))
    return Status::Invalid(name + ": mapping length must be a non-zero multiple of 4096 bytes");
  void* p = mmap(nullptr, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Status::FromErrno(errno, "cannot reserve address space for " + name);
  auto impl = std::make_unique<RegionState>();
  impl->base = static_cast<uint8_t*>(p);
  impl->length = length;
  impl->writable = writable;
  impl->name = std::move(name);
  impl->ino = ino;
  Span all;
  all.len = length;
  impl->placed = impl->spans = {all};
  all.kind = SpanKind::kNone;
  impl->held = {all};
  Registry::Get().Add(impl.get());
  return std::unique_ptr<MappedRegion>(new MappedRegion(std::move(impl)));
}

uint8_t* MappedRegion::addr() const { return impl_->base; }
uint64_t MappedRegion::length() const { return impl_->length; }
bool MappedRegion::writable() const { return impl_->writable; }

Status MappedRegion::PlaceMedia(const std::shared_ptr<MediaWatch>& watch, uint64_t at, uint64_t media_off,
                                uint64_t len, uint64_t label_off, uint64_t fault_unit) {
  DG_RETURN_IF_ERROR(CheckPlacement(*impl_, at, len));
  const std::string& media_path = watch->media().path();
  if (!IsPowerOfTwo(fault_unit) || fault_unit < kPageSize || !IsAligned(media_off, fault_unit) ||
      !IsAligned(len, fault_unit))
    return Status::Invalid(media_path + ": media range must be whole " + std::to_string(fault_unit) +
                           "-byte fault units");
  Registry& reg = Registry::Get();
  std::lock_guard<std::mutex> g(reg.mu);
  MediaFile* file = reg.UseLocked(*impl_, watch);
  const media::PmemDevice& dev = *file->dev;
  if (media_off > dev.size() || len > dev.size() - media_off)
    return Status::Range(media_path + ": media range is beyond the device end");
  // Mapped inaccessible first; Commit opens what holds no poison.
  if (mmap(impl_->base + at, len, PROT_NONE, MAP_SHARED | MAP_FIXED, dev.fd(),
           static_cast<off_t>(dev.geometry().data_off + media_off)) == MAP_FAILED)
    return Status::FromErrno(errno, "cannot map " + media_path);
  return CommitPlacement(reg, *impl_, {at, len, SpanKind::kMedia, fault_unit, at, label_off, media_off, file});
}

Status MappedRegion::PlaceZeroes(uint64_t at, uint64_t len, uint64_t label_off) {
  DG_RETURN_IF_ERROR(CheckPlacement(*impl_, at, len));
  Registry& reg = Registry::Get();
  std::lock_guard<std::mutex> g(reg.mu);
  if (mmap(impl_->base + at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) ==
      MAP_FAILED)
    return Status::FromErrno(errno, "cannot map zeroes into " + impl_->name);
  return CommitPlacement(reg, *impl_, {at, len, SpanKind::kZero, kPageSize, at, label_off, 0, nullptr});
}

Status MappedRegion::Trap(uint64_t at, uint64_t len, TrapKind kind) {
  DG_RETURN_IF_ERROR(CheckPlacement(*impl_, at, len));
  Registry& reg = Registry::Get();
  std::lock_guard<std::mutex> g(reg.mu);
  SpanKind k = kind == TrapKind::kPoison ? SpanKind::kHeldPoison : SpanKind::kHeldGone;
  impl_->held = internal::Carve(impl_->held, {at, len, k});
  Status s = reg.CommitLocked(*impl_, impl_->spans);
  reg.PublishLocked();
  return s;
}

Status MappedRegion::Untrap(uint64_t at, uint64_t len) {
  DG_RETURN_IF_ERROR(CheckPlacement(*impl_, at, len));
  Registry& reg = Registry::Get();
  std::lock_guard<std::mutex> g(reg.mu);
  impl_->held = internal::Carve(impl_->held, {at, len, SpanKind::kNone});
  Status s = reg.CommitLocked(*impl_, impl_->spans);
  reg.PublishLocked();
  return s;
}

void MappedRegion::OnPoison(std::function<void(uint64_t at, uint64_t len)> cb) {
  std::lock_guard<std::recursive_mutex> g(impl_->on_poison->mu);
  impl_->on_poison->fn = std::move(cb);
}

void MappedRegion::AwaitRepairs() {
  Registry& reg = Registry::Get();
  std::lock_guard<std::mutex> g(reg.mu);
  if (impl_->awaits_repair) return;  // each placement asks again
  impl_->awaits_repair = true;
  reg.PublishLocked();
}

}  // namespace daxguard::dax
