#include "fs/protected_device.h"

#include <isa-l/raid.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "dax/dax_io.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kStrips = kBlockSize / kStripBytes;

// The XOR of `n` strips into `out` (isa-l's RAID-5 parity).
void XorStrips(const uint8_t* const* strips, size_t n, uint8_t* out) {
  void* v[kStrips + 2];
  for (size_t i = 0; i < n; ++i) v[i] = const_cast<uint8_t*>(strips[i]);
  v[n] = out;
  xor_gen(static_cast<int>(n + 1), kStripBytes, v);
}

void BlockParity(const uint8_t* data, uint8_t* parity) {
  const uint8_t* s[kStrips];
  for (uint64_t i = 0; i < kStrips; ++i) s[i] = data + i * kStripBytes;
  XorStrips(s, kStrips, parity);
}

// Strip `i` of `page` from the others and the parity.
void RebuildStrip(uint8_t* page, uint64_t i, const uint8_t* parity) {
  const uint8_t* s[kStrips];
  size_t n = 0;
  for (uint64_t j = 0; j < kStrips; ++j)
    if (j != i) s[n++] = page + j * kStripBytes;
  s[n++] = parity;
  alignas(64) uint8_t out[kStripBytes];
  XorStrips(s, n, out);
  std::memcpy(page + i * kStripBytes, out, kStripBytes);
}

}  // namespace

class ProtectedDevice::Link final : public dax::Holder {
 public:
  explicit Link(ProtectedDevice* d) : d_(d) {}
  void NotifyFailure(uint64_t offset, uint64_t len, int flags) override {
    if (flags == dax::kFailurePreRemove) going_.store(true);
    d_->OnBaseFailure(offset, len, flags);
  }
  // A base going away lets its holder go itself (Device::Kill).
  bool going() const { return going_.load(); }

 private:
  ProtectedDevice* d_;
  std::atomic<bool> going_{false};
};

ProtectedDevice::ProtectedDevice(dax::Device& base, const Geometry& g, uint32_t tag)
    : base_(base),
      geo_(g),
      layout_(LayoutOf(g)),
      tag_(tag),
      link_(std::make_unique<Link>(this)),
      intent_(DivRoundUp(DivRoundUp(layout_.covered, kIntentChunkBlocks), 64)) {}

ProtectedDevice::~ProtectedDevice() {
  OnHolderReleasing();
  StopDelivering();
}

Status ProtectedDevice::Format(dax::Device& base, const Geometry& g) {
  if (g.protection == DataProtection::kNone) return Status::Ok();
  ProtectionLayout l = LayoutOf(g);
  DG_RETURN_IF_ERROR(base.ZeroPageRange(l.bitmap, l.bitmap_blocks));
  base.Fence();
  return Status::Ok();
}

Result<std::unique_ptr<ProtectedDevice>> ProtectedDevice::Open(dax::Device& base, const Geometry& g, uint32_t tag) {
  std::unique_ptr<ProtectedDevice> d(new ProtectedDevice(base, g, tag));
  const ProtectionLayout& l = d->layout_;
  std::vector<uint64_t> words(d->intent_.size());
  // Unreadable, any chunk may have been changing.
  if (base.KnownUnreadable(l.bitmap * kBlockSize, words.size() * sizeof(uint64_t)) ||
      !base.ReadAll(l.bitmap * kBlockSize, words.data(), words.size() * sizeof(uint64_t)))
    words.assign(words.size(), ~0ull);
  uint64_t chunks = DivRoundUp(l.covered, kIntentChunkBlocks);
  bool marked = false, resynced = true;
  for (uint64_t c = 0; c < chunks; ++c) {
    if (!(words[c / 64] >> (c % 64) & 1)) continue;
    marked = true;
    if (d->Resync(c).ok()) continue;
    // A device that takes no writes: the chunk stays unchecked.
    resynced = false;
    d->unsealed_.emplace(d.get(), ByteRange{c * kIntentChunkBlocks, kIntentChunkBlocks});
    d->any_unsealed_ = true;
  }
  if (marked && resynced) {
    base.Fence();
    DG_RETURN_IF_ERROR(Format(base, g));
  }
  return d;
}

Status ProtectedDevice::Resync(uint64_t chunk) {
  uint64_t end = std::min(layout_.covered, (chunk + 1) * kIntentChunkBlocks);
  for (uint64_t b = chunk * kIntentChunkBlocks; b < end; ++b) {
    if (!Covered(b)) continue;
    alignas(64) Block page;
    if (ReadGood(b * kBlockSize, page.data(), kBlockSize)) {
      Record r{Crc32c(page.data(), kBlockSize), tag_};
      DG_RETURN_IF_ERROR(StoreRecord(b, r));
      if (parity()) {
        alignas(64) uint8_t par[kStripBytes];
        BlockParity(page.data(), par);
        auto w = dax::WriteAt(base_, ParityOff(b), par, kStripBytes);
        if (!w.ok()) return w.status();
      }
    } else if (!ResyncPoisoned(b, page.data())) {
      DG_RETURN_IF_ERROR(StoreRecord(b, Record{}));  // unchecked: the holder hears of the poison
    }
  }
  return Status::Ok();
}

// Poison in a block of a marked chunk: its record and parity may be older
// than its bytes, but a block they rebuild to match its checksum is what the
// record was made of, a state the block held.
bool ProtectedDevice::ResyncPoisoned(uint64_t b, uint8_t* page) {
  std::optional<Record> r = LoadRecord(b);
  if (!r || r->tag != tag_ || !parity() || !Rebuild(b, page, *r)) return false;
  auto w = base_.RecoveryWrite(b * kBlockSize, page, kBlockSize);
  if (!w.ok() || *w != kBlockSize) return false;
  std::lock_guard<std::mutex> g(state_mu_);
  NoteRepair(b, true);
  return true;
}

void ProtectedDevice::NoteRepair(uint64_t b, bool poison) {
  counts_.repaired++;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  RepairEvent e{static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec), b, poison};
  if (on_repair_) unpublished_.push_back(e);
  if (repairs_.size() < kRepairLog) {
    repairs_.push_back(e);
    return;
  }
  repairs_[repairs_next_] = e;
  repairs_next_ = (repairs_next_ + 1) % kRepairLog;
}

void ProtectedDevice::OnRepair(RepairListener fn) {
  std::lock_guard<std::mutex> g(state_mu_);
  if (std::vector<RepairEvent> before = RepairsLocked(); !before.empty()) fn(before);
  on_repair_ = std::move(fn);
}

void ProtectedDevice::PublishRepairs() {
  std::vector<RepairEvent> batch;
  RepairListener fn;
  {
    std::lock_guard<std::mutex> g(state_mu_);
    if (unpublished_.empty()) return;
    batch.swap(unpublished_);
    fn = on_repair_;
  }
  fn(batch);
}

std::vector<ProtectedDevice::RepairEvent> ProtectedDevice::RepairsLocked() const {
  std::vector<RepairEvent> out(repairs_.begin() + static_cast<ptrdiff_t>(repairs_next_), repairs_.end());
  out.insert(out.end(), repairs_.begin(), repairs_.begin() + static_cast<ptrdiff_t>(repairs_next_));
  return out;
}

std::vector<ProtectedDevice::RepairEvent> ProtectedDevice::repairs() const {
  std::lock_guard<std::mutex> g(state_mu_);
  return RepairsLocked();
}

Status ProtectedDevice::MarkClean() {
  std::lock_guard<std::mutex> g(intent_mu_);
  if (!any_intent_.load()) return Status::Ok();
  {
    std::lock_guard<std::mutex> s(state_mu_);
    // Records that could not be stored, or blocks still mapped: the next
    // mount recomputes them.
    if (!stale_.empty() || !unsealed_.empty()) return Status::Ok();
  }
  // The records and parity of every marked chunk written back, then fenced
  // before the marks go.
  uint64_t chunks = DivRoundUp(layout_.covered, kIntentChunkBlocks);
  for (uint64_t c = 0; c < chunks; ++c) {
    if (!(intent_[c / 64].load() >> (c % 64) & 1)) continue;
    uint64_t b = c * kIntentChunkBlocks, n = std::min(kIntentChunkBlocks, layout_.covered - b);
    DG_RETURN_IF_ERROR(base_.WriteBack(RecordOff(b), n * sizeof(Record)));
    if (parity()) DG_RETURN_IF_ERROR(base_.WriteBack(ParityOff(b), n * kStripBytes));
  }
  base_.Fence();
  DG_RETURN_IF_ERROR(Format(base_, geo_));
  for (auto& w : intent_) w.store(0);
  any_intent_ = false;
  return Status::Ok();
}

Status ProtectedDevice::MarkIntent(uint64_t b) {
  uint64_t c = b / kIntentChunkBlocks, bit = 1ull << (c % 64);
  std::atomic<uint64_t>& word = intent_[c / 64];
  if (word.load(std::memory_order_acquire) & bit) [[likely]] return Status::Ok();
  std::lock_guard<std::mutex> g(intent_mu_);
  uint64_t v = word.load() | bit;
  if (v == word.load()) return Status::Ok();
  auto w = dax::WriteAt(base_, layout_.bitmap * kBlockSize + c / 64 * sizeof v, &v, sizeof v);
  if (!w.ok() || *w != sizeof v) return Status::Io("cannot mark the data protection's write-intent bitmap");
  base_.Fence();
  word.store(v, std::memory_order_release);
  any_intent_ = true;
  return Status::Ok();
}

Status ProtectedDevice::StoreRecord(uint64_t b, const Record& r) {
  if (base_.WriteClean(RecordOff(b), &r, sizeof r)) return Status::Ok();
  auto w = dax::WriteAt(base_, RecordOff(b), &r, sizeof r);
  if (!w.ok()) return w.status();
  return *w == sizeof r ? Status::Ok() : Status::Io("short record write");
}

// Records are plain stores, written back only at a clean unmount
// (MarkClean): until then the chunk's intent bit stands for them. Parity
// strips, whole lines, go non-temporal (a plain store would first read
// eight lines the cache rarely holds).
void ProtectedDevice::Seal(uint64_t b, const uint8_t* data) {
  Record r{Crc32c(data, kBlockSize), tag_};
  Status s = base_.Write(RecordOff(b), &r, sizeof r);
  if (s.ok() && parity()) {
    alignas(64) uint8_t par[kStripBytes];
    BlockParity(data, par);
    if (!base_.WriteClean(ParityOff(b), par, kStripBytes)) s = base_.Write(ParityOff(b), par, kStripBytes);
  }
  if (s.ok() && !any_lost_.load(std::memory_order_relaxed)) return;
  {
    std::lock_guard<std::mutex> g(state_mu_);
    lost_.erase(b);
    if (s.ok()) return;
    // Poison in the area: the block goes unchecked until its page is rebuilt.
    stale_.insert(b);
    any_stale_ = true;
    to_repair_.push_back({RecordOff(b), sizeof(Record)});
    if (parity()) to_repair_.push_back({ParityOff(b), kStripBytes});
  }
  DeliverFailures(false);
}

std::optional<ProtectedDevice::Record> ProtectedDevice::LoadRecord(uint64_t b) {
  Record r;
  if (base_.ReadClean(RecordOff(b), &r, sizeof r) || ReadGood(RecordOff(b), &r, sizeof r)) return r;
  return std::nullopt;  // the base reports the poison, and the page is rebuilt
}

bool ProtectedDevice::Unsealed(uint64_t b) const {
  if (!any_unsealed_.load(std::memory_order_relaxed) && !any_stale_.load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> g(state_mu_);
  if (stale_.count(b)) return true;
  for (const auto& [key, r] : unsealed_)
    if (b >= r.off && b < r.off + r.len) return true;
  return false;
}

bool ProtectedDevice::ReadGood(uint64_t off, void* dst, size_t len) const {
  return !base_.KnownUnreadable(off, len) && base_.ReadAll(off, dst, len);
}

bool ProtectedDevice::ReadBlock(uint64_t b, uint8_t* out, uint64_t* good) {
  Result<size_t> n = base_.ReadMcSafe(b * kBlockSize, out, kBlockSize);
  *good = n.ok() ? *n : 0;
  if (!n.ok()) return false;
  // A known error whose poison a recovery write cleared before the power
  // failed holds its zeroes, not the data: as poison.
  if (*n == kBlockSize && base_.KnownUnreadable(b * kBlockSize, kBlockSize)) {
    n = size_t{0};
    *good = 0;
  }
  std::optional<Record> r = LoadRecord(b);
  if (!r || r->tag != tag_) return *n == kBlockSize;  // unprotected: as read
  if (*n == kBlockSize && Crc32c(out, kBlockSize) == r->crc) return true;
  bool mismatch = *n == kBlockSize;
  if (mismatch) {
    std::lock_guard<std::mutex> g(state_mu_);
    counts_.mismatches++;
  }
  if (parity() && Rebuild(b, out, *r)) {
    QueueRepair(b * kBlockSize, kBlockSize);  // written back on the delivery thread
    return true;
  }
  *good = mismatch ? 0 : *n;
  if (!mismatch) return false;  // poison: the base reported it; the repair tells what parity cannot rebuild
  // Bytes that no longer match their checksum: the block is lost whole.
  std::lock_guard<std::mutex> g(state_mu_);
  if (lost_.insert(b).second) {
    any_lost_ = true;
    counts_.unrepaired++;
    ReportFailure({b * kBlockSize, kBlockSize, dax::kFailureMedia});
  }
  return false;
}

bool ProtectedDevice::Rebuild(uint64_t b, uint8_t* page, const Record& r) {
  alignas(64) uint8_t par[kStripBytes];
  if (!ReadGood(ParityOff(b), par, kStripBytes)) return false;
  std::vector<uint64_t> bad;
  for (uint64_t i = 0; i < kStrips; ++i)
    if (!ReadGood(b * kBlockSize + i * kStripBytes, page + i * kStripBytes, kStripBytes)) bad.push_back(i);
  if (bad.size() > 1) return false;
  if (bad.size() == 1) {
    RebuildStrip(page, bad[0], par);
    return Crc32c(page, kBlockSize) == r.crc;
  }
  // Nothing refused, yet the checksum differs: a stray store. The strip
  // whose rebuild matches the checksum is the one it hit.
  alignas(64) uint8_t saved[kStripBytes];
  for (uint64_t i = 0; i < kStrips; ++i) {
    std::memcpy(saved, page + i * kStripBytes, kStripBytes);
    RebuildStrip(page, i, par);
    if (Crc32c(page, kBlockSize) == r.crc) return true;
    std::memcpy(page + i * kStripBytes, saved, kStripBytes);
  }
  // The data agrees with its parity: the record is what the store hit.
  alignas(64) uint8_t now[kStripBytes];
  BlockParity(page, now);
  return std::memcmp(now, par, kStripBytes) == 0;
}

bool ProtectedDevice::Repair(uint64_t b) {
  if (Unsealed(b)) return false;
  alignas(64) Block page;
  bool readable = ReadGood(b * kBlockSize, page.data(), kBlockSize);
  std::optional<Record> r = LoadRecord(b);
  if (!r || r->tag != tag_) return false;
  if (readable && Crc32c(page.data(), kBlockSize) == r->crc) return true;
  if (!parity() || !Rebuild(b, page.data(), *r)) return false;
  if (!MarkIntent(b).ok()) return false;
  auto w = base_.RecoveryWrite(b * kBlockSize, page.data(), kBlockSize);
  if (!w.ok() || *w != kBlockSize) return false;
  Seal(b, page.data());
  base_.Fence();
  std::lock_guard<std::mutex> g(state_mu_);
  NoteRepair(b, !readable);
  return true;
}

void ProtectedDevice::QueueRepair(uint64_t off, uint64_t len) {
  {
    std::lock_guard<std::mutex> g(state_mu_);
    to_repair_.push_back({off, len});
  }
  DeliverFailures(false);
}

void ProtectedDevice::OnBaseFailure(uint64_t off, uint64_t len, int flags) {
  if (flags == dax::kFailurePreRemove) {
    ReportFailure({0, size(), dax::kFailurePreRemove});
    return;
  }
  bool queued = false;
  for (uint64_t pos = off; pos < off + len;) {
    uint64_t b = pos / kBlockSize, n = std::min(off + len, (b + 1) * kBlockSize) - pos;
    if (Covered(b) || b >= layout_.covered) {
      std::lock_guard<std::mutex> g(state_mu_);
      to_repair_.push_back({pos, n});
      queued = true;
    } else {
      ReportFailure({pos, n, dax::kFailureMedia});  // metadata: the filesystem keeps two copies
    }
    pos += n;
  }
  if (queued) DeliverFailures(false);
}

std::vector<dax::Failure> ProtectedDevice::CollectFailures() {
  std::vector<ByteRange> todo;
  {
    std::lock_guard<std::mutex> g(state_mu_);
    todo.swap(to_repair_);
  }
  std::vector<dax::Failure> up;
  std::set<uint64_t> area_pages;
  for (const ByteRange& r : todo) {
    for (uint64_t pos = r.off; pos < r.off + r.len;) {
      uint64_t b = pos / kBlockSize, n = std::min(r.off + r.len, (b + 1) * kBlockSize) - pos;
      pos += n;
      if (b >= layout_.covered) {
        area_pages.insert(b);
        continue;
      }
      bool ok;
      {
        std::unique_lock<StripeLock> l(LockOf(b));
        ok = Repair(b);
      }
      std::lock_guard<std::mutex> g(state_mu_);
      if (ok) {
        lost_.erase(b);
        continue;
      }
      if (lost_.insert(b).second) counts_.unrepaired++;
      any_lost_ = true;
      if (!up.empty() && up.back().offset + up.back().len == pos - n)
        up.back().len += n;
      else
        up.push_back({pos - n, n, dax::kFailureMedia});
    }
  }
  for (uint64_t page : area_pages) RepairAreaPage(page);
  PublishRepairs();
  return up;
}

void ProtectedDevice::RepairAreaPage(uint64_t page) {
  // Every block lock: no store changes a record of the page meanwhile.
  std::vector<std::unique_lock<StripeLock>> all;
  for (auto& m : locks_) all.emplace_back(m);
  alignas(64) Block out{};
  uint64_t first = 0, count = 0, unit = 0;
  if (page < layout_.records) {  // the bitmap, from memory
    for (uint64_t i = 0; i < kBlockSize / sizeof(uint64_t); ++i) {
      uint64_t w = (page - layout_.bitmap) * (kBlockSize / sizeof(uint64_t)) + i;
      uint64_t v = w < intent_.size() ? intent_[w].load() : 0;
      std::memcpy(out.data() + i * sizeof v, &v, sizeof v);
    }
  } else {
    bool records = page < layout_.parity;
    unit = records ? sizeof(Record) : kStripBytes;
    count = kBlockSize / unit;
    first = (page - (records ? layout_.records : layout_.parity)) * count;
    for (uint64_t i = 0; i < count && first + i < layout_.covered; ++i) {
      uint64_t b = first + i;
      uint8_t* slot = out.data() + i * unit;
      alignas(64) Block data;
      bool fresh = Covered(b) && !Unsealed(b) && ReadGood(b * kBlockSize, data.data(), kBlockSize);
      if (!fresh) {  // what the page still holds of it, else nothing
        if (!ReadGood(page * kBlockSize + i * unit, slot, unit)) std::memset(slot, 0, unit);
        continue;
      }
      if (records) {
        Record r{Crc32c(data.data(), kBlockSize), tag_};
        std::memcpy(slot, &r, sizeof r);
      } else {
        BlockParity(data.data(), slot);
      }
    }
  }
  auto w = base_.RecoveryWrite(page * kBlockSize, out.data(), kBlockSize);
  if (!w.ok() || *w != kBlockSize) return;  // stays as it is: the blocks stay unchecked
  base_.Fence();
  std::lock_guard<std::mutex> g(state_mu_);
  for (uint64_t i = 0; i < count; ++i) stale_.erase(first + i);
  any_stale_ = !stale_.empty();
}

template <typename Fn>
bool ProtectedDevice::EachBlock(uint64_t off, uint64_t len, Fn&& fn) {
  while (len > 0) {
    uint64_t b = off / kBlockSize, in = off % kBlockSize, n = std::min(len, kBlockSize - in);
    if (!fn(b, in, n)) return false;
    off += n;
    len -= n;
  }
  return true;
}

Result<size_t> ProtectedDevice::ReadMcSafe(uint64_t off, void* dst, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  auto* out = static_cast<uint8_t*>(dst);
  size_t done = 0;
  Status failed;
  EachBlock(off, len, [&](uint64_t b, uint64_t in, uint64_t n) {
    if (!Covered(b) || Unsealed(b)) {
      Result<size_t> got = base_.ReadMcSafe(b * kBlockSize + in, out + done, n);
      if (!got.ok()) failed = got.status();
      done += got.value_or(0);
      return got.ok() && *got == n;
    }
    std::unique_lock<StripeLock> l(LockOf(b));
    alignas(64) Block page;
    uint8_t* to = n == kBlockSize ? out + done : page.data();
    uint64_t good = 0;
    bool whole = ReadBlock(b, to, &good);
    uint64_t usable = whole ? n : std::min(n, good > in ? good - in : 0);
    if (to != out + done) std::memcpy(out + done, to + in, usable);
    done += usable;
    return whole;
  });
  if (done == 0 && !failed.ok()) return failed;
  return done;
}

bool ProtectedDevice::ReadCleanEach(uint64_t off, uint8_t* out, uint64_t len) {
  return EachBlock(off, len, [&](uint64_t b, uint64_t in, uint64_t n) {
    uint8_t* to = out + (b * kBlockSize + in - off);
    if (!Covered(b) || Unsealed(b)) return base_.ReadClean(b * kBlockSize + in, to, n);
    Record r;  // unlocked, as ReadCleanRun
    if (!base_.ReadClean(RecordOff(b), &r, sizeof r)) return false;
    if (r.tag != tag_) return base_.ReadClean(b * kBlockSize + in, to, n);
    if (n == kBlockSize) return base_.ReadClean(b * kBlockSize, to, n) && Crc32c(to, kBlockSize) == r.crc;
    alignas(64) Block page;
    if (!base_.ReadClean(b * kBlockSize, page.data(), kBlockSize) || Crc32c(page.data(), kBlockSize) != r.crc)
      return false;
    std::memcpy(to, page.data() + in, n);
    return true;
  });
}

Status ProtectedDevice::WriteBlockPart(uint64_t b, uint64_t in, const uint8_t* src, uint64_t n, bool clean_only,
                                       bool* done) {
  *done = true;
  uint64_t off = b * kBlockSize + in;
  DG_RETURN_IF_ERROR(MarkIntent(b));
  std::unique_lock<StripeLock> l(LockOf(b));
  auto store = [&](uint64_t at, const uint8_t* p, uint64_t len) -> Status {
    if (clean_only) {
      *done = base_.WriteClean(at, p, len);
      return Status::Ok();
    }
    return base_.Write(at, p, len);
  };
  if (Unsealed(b)) return store(off, src, n);
  if (n == kBlockSize) {
    DG_RETURN_IF_ERROR(store(off, src, n));
    if (*done) Seal(b, src);
    return Status::Ok();
  }
  // Part of a block: the rest, checked (or rebuilt), seals it whole.
  alignas(64) Block page;
  if (clean_only) {
    Record r;
    if (!base_.ReadClean(RecordOff(b), &r, sizeof r) || !base_.ReadClean(b * kBlockSize, page.data(), kBlockSize) ||
        (r.tag == tag_ && Crc32c(page.data(), kBlockSize) != r.crc)) {
      *done = false;
      return Status::Ok();
    }
    std::memcpy(page.data() + in, src, n);
    DG_RETURN_IF_ERROR(store(off, src, n));
    if (*done) Seal(b, page.data());
    return Status::Ok();
  }
  uint64_t good = 0;
  if (!ReadBlock(b, page.data(), &good)) {
    // The rest is lost: written as the base writes, and no longer checked.
    DG_RETURN_IF_ERROR(base_.Write(off, src, n));
    return StoreRecord(b, Record{});
  }
  std::memcpy(page.data() + in, src, n);
  if (base_.KnownUnreadable(b * kBlockSize, kBlockSize)) {  // rebuilt over poison: a recovery write clears it
    auto w = base_.RecoveryWrite(b * kBlockSize, page.data(), kBlockSize);
    if (!w.ok()) return w.status();
  } else {
    DG_RETURN_IF_ERROR(base_.Write(off, src, n));
  }
  Seal(b, page.data());
  return Status::Ok();
}

Status ProtectedDevice::Write(uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  const auto* in = static_cast<const uint8_t*>(src);
  Status s;
  EachBlock(off, len, [&](uint64_t b, uint64_t at, uint64_t n) {
    const uint8_t* from = in + (b * kBlockSize + at - off);
    bool done;
    s = Covered(b) ? WriteBlockPart(b, at, from, n, false, &done) : base_.Write(b * kBlockSize + at, from, n);
    return s.ok();
  });
  return s;
}

bool ProtectedDevice::WriteCleanEach(uint64_t off, const uint8_t* in, uint64_t len) {
  return EachBlock(off, len, [&](uint64_t b, uint64_t at, uint64_t n) {
    const uint8_t* from = in + (b * kBlockSize + at - off);
    if (!Covered(b)) return base_.WriteClean(b * kBlockSize + at, from, n);
    bool done = false;
    return WriteBlockPart(b, at, from, n, true, &done).ok() && done;
  });
}

// The fast paths: the whole blocks of a range as one copy, their records
// (and parity) as one run each; the blocks cut at either end one by one.
bool ProtectedDevice::Plain(uint64_t b0, uint64_t b1) const {
  return b1 <= layout_.covered && !geo_.OverlapsMeta(b0, b1 - b0) &&
         !any_unsealed_.load(std::memory_order_relaxed) && !any_stale_.load(std::memory_order_relaxed);
}

bool ProtectedDevice::ReadClean(uint64_t off, void* dst, size_t len) {
  auto* out = static_cast<uint8_t*>(dst);
  uint64_t b0 = DivRoundUp(off, kBlockSize), b1 = (off + len) / kBlockSize;
  if (b1 <= b0 || !Plain(b0, b1)) return ReadCleanEach(off, out, len);
  uint64_t head = b0 * kBlockSize - off, tail = off + len - b1 * kBlockSize;
  return (head == 0 || ReadCleanEach(off, out, head)) && ReadCleanRun(b0, b1, out + head) &&
         (tail == 0 || ReadCleanEach(b1 * kBlockSize, out + len - tail, tail));
}

// Without the block locks: a store racing the copy leaves bytes and record
// that disagree, and the careful way (which locks) reads again.
bool ProtectedDevice::ReadCleanRun(uint64_t b0, uint64_t b1, uint8_t* out) {
  if (!base_.ReadClean(b0 * kBlockSize, out, (b1 - b0) * kBlockSize)) return false;
  Record recs[kRunBlocks];
  for (uint64_t b = b0; b < b1; b += kRunBlocks) {
    uint64_t m = std::min(kRunBlocks, b1 - b);
    if (!base_.ReadClean(RecordOff(b), recs, m * sizeof(Record))) return false;
    for (uint64_t i = 0; i < m; ++i)
      if (recs[i].tag == tag_ && Crc32c(out + (b - b0 + i) * kBlockSize, kBlockSize) != recs[i].crc) return false;
  }
  return true;
}

bool ProtectedDevice::WriteClean(uint64_t off, const void* src, size_t len) {
  const auto* in = static_cast<const uint8_t*>(src);
  uint64_t b0 = DivRoundUp(off, kBlockSize), b1 = (off + len) / kBlockSize;
  if (b1 <= b0 || !Plain(b0, b1)) return WriteCleanEach(off, in, len);
  uint64_t head = b0 * kBlockSize - off, tail = off + len - b1 * kBlockSize;
  return (head == 0 || WriteCleanEach(off, in, head)) && WriteCleanRun(b0, b1, in + head) &&
         (tail == 0 || WriteCleanEach(b1 * kBlockSize, in + len - tail, tail));
}

bool ProtectedDevice::WriteCleanRun(uint64_t b0, uint64_t b1, const uint8_t* src) {
  for (uint64_t b = b0; b < b1; b = AlignDown(b, kIntentChunkBlocks) + kIntentChunkBlocks)
    if (!MarkIntent(b).ok()) return false;
  for (uint64_t b = b0; b < b1; b += kRunBlocks) {
    uint64_t m = std::min(kRunBlocks, b1 - b);
    const uint8_t* data = src + (b - b0) * kBlockSize;
    StripeLocks locks(*this, b, m);
    if (!WriteAndSealRun(b, m, data)) return false;
  }
  return true;
}

// Block by block, so that a block's checksum and parity are computed while
// its stores drain; the records then go as one run, the parity strips a
// group at a time. What the base refuses goes block by block (Seal).
bool ProtectedDevice::WriteAndSealRun(uint64_t b, uint64_t m, const uint8_t* data) {
  constexpr uint64_t kGroup = 32;  // parity strips per store
  Record recs[kRunBlocks];
  alignas(64) uint8_t par[kGroup * kStripBytes];
  bool stored = true;
  for (uint64_t i = 0; i < m; ++i) {
    const uint8_t* block = data + i * kBlockSize;
    if (!base_.WriteClean((b + i) * kBlockSize, block, kBlockSize)) {
      for (uint64_t j = 0; j < i; ++j) Seal(b + j, data + j * kBlockSize);
      return false;
    }
    recs[i] = {Crc32c(block, kBlockSize), tag_};
    if (!parity()) continue;
    BlockParity(block, par + i % kGroup * kStripBytes);
    if ((i + 1) % kGroup == 0 || i + 1 == m) {
      uint64_t g = i - i % kGroup, k = i % kGroup + 1;
      stored = stored && (base_.WriteClean(ParityOff(b + g), par, k * kStripBytes) ||
                          base_.Write(ParityOff(b + g), par, k * kStripBytes).ok());
    }
  }
  stored = stored && base_.Write(RecordOff(b), recs, m * sizeof(Record)).ok();
  if (!stored) {
    for (uint64_t i = 0; i < m; ++i) Seal(b + i, data + i * kBlockSize);
    return true;
  }
  if (!any_lost_.load(std::memory_order_relaxed)) return true;
  std::lock_guard<std::mutex> g(state_mu_);
  for (uint64_t i = 0; i < m; ++i) lost_.erase(b + i);
  return true;
}

ProtectedDevice::StripeLocks::StripeLocks(const ProtectedDevice& d, uint64_t b, uint64_t m) : d_(d) {
  n_ = static_cast<size_t>(std::min<uint64_t>(m, d.locks_.size()));
  for (size_t i = 0; i < n_; ++i) idx_[i] = static_cast<uint16_t>((b + i) % d.locks_.size());
  std::sort(idx_.begin(), idx_.begin() + n_);  // one order for all: no cycle
  for (size_t i = 0; i < n_; ++i) d_.locks_[idx_[i]].lock();
}

ProtectedDevice::StripeLocks::~StripeLocks() {
  for (size_t i = 0; i < n_; ++i) d_.locks_[idx_[i]].unlock();
}

Result<size_t> ProtectedDevice::RecoveryWrite(uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(CheckBytes(off, len));
  const auto* in = static_cast<const uint8_t*>(src);
  size_t done = 0;
  Status s;
  EachBlock(off, len, [&](uint64_t b, uint64_t at, uint64_t n) {
    const uint8_t* from = in + done;
    if (!Covered(b) || n != kBlockSize) {  // a part of a page over poison the base refuses
      Result<size_t> w = base_.RecoveryWrite(b * kBlockSize + at, from, n);
      if (w.ok() && Covered(b) && *w == n) {
        std::unique_lock<StripeLock> l(LockOf(b));
        alignas(64) Block page;
        if (!Unsealed(b) && ReadGood(b * kBlockSize, page.data(), kBlockSize)) Seal(b, page.data());
      }
      if (!w.ok()) s = w.status();
      done += w.value_or(0);
      return w.ok() && *w == n;
    }
    s = MarkIntent(b);
    if (!s.ok()) return false;
    std::unique_lock<StripeLock> l(LockOf(b));
    Result<size_t> w = base_.RecoveryWrite(b * kBlockSize, from, kBlockSize);
    if (!w.ok()) s = w.status();
    if (!w.ok() || *w != kBlockSize) return false;
    if (!Unsealed(b)) Seal(b, from);
    done += kBlockSize;
    return true;
  });
  if (done == 0 && !s.ok()) return s;
  return done;
}

Status ProtectedDevice::ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) {
  DG_RETURN_IF_ERROR(CheckPages(pgoff, nr_pages));
  static const Block kZeroes{};
  for (uint64_t b = pgoff; b < pgoff + nr_pages;) {
    if (!Covered(b)) {  // the run up to the next covered block, as one
      uint64_t e = b;
      while (e < pgoff + nr_pages && !Covered(e)) ++e;
      DG_RETURN_IF_ERROR(base_.ZeroPageRange(b, e - b));
      b = e;
      continue;
    }
    DG_RETURN_IF_ERROR(MarkIntent(b));
    std::unique_lock<StripeLock> l(LockOf(b));
    DG_RETURN_IF_ERROR(base_.ZeroPageRange(b, 1));
    if (!Unsealed(b)) Seal(b, kZeroes.data());
    ++b;
  }
  return Status::Ok();
}

Result<dax::Mapping> ProtectedDevice::DirectAccess(uint64_t pgoff, uint64_t nr_pages, dax::AccessMode mode) {
  DG_RETURN_IF_ERROR(CheckPages(pgoff, nr_pages));
  uint64_t end = pgoff + nr_pages, p = pgoff;
  if (!Covered(pgoff)) {  // metadata: its own memory, up to the next covered page
    while (p < end && !Covered(p)) ++p;
    return base_.DirectAccess(pgoff, p - pgoff, mode);
  }
  // Copies come through this device, which checks and seals them.
  while (p < end && Covered(p) && (mode == dax::AccessMode::kRecoveryWrite || !KnownUnreadable(p * kBlockSize, kBlockSize)))
    ++p;
  if (p == pgoff)
    return Status::Poison("page " + std::to_string(pgoff) + " holds poison its parity cannot rebuild");
  return dax::Mapping{nullptr, p - pgoff, this, pgoff * kBlockSize};
}

bool ProtectedDevice::KnownUnreadable(uint64_t off, uint64_t len) const {
  if (!BytesOk(off, len)) return true;
  for (uint64_t b = off / kBlockSize; b * kBlockSize < off + len; ++b) {
    uint64_t lo = std::max(off, b * kBlockSize), hi = std::min(off + len, (b + 1) * kBlockSize);
    if (!base_.KnownUnreadable(lo, hi - lo)) {
      if (!any_lost_.load(std::memory_order_relaxed)) continue;
      std::lock_guard<std::mutex> g(state_mu_);
      if (lost_.count(b)) return true;
      continue;
    }
    // Poison there: parity rebuilds a checked block, until a repair says it cannot.
    if (!Covered(b) || !parity() || Unsealed(b)) return true;
    std::lock_guard<std::mutex> g(state_mu_);
    if (lost_.count(b)) return true;
  }
  return false;
}

Status ProtectedDevice::MapInto(dax::MappedRegion& region, uint64_t at, uint64_t off, uint64_t len,
                                uint64_t label_off) {
  if (region.writable()) DG_RETURN_IF_ERROR(Unseal(&region, off / kBlockSize, DivRoundUp(len, kBlockSize)));
  // A load of poison there is rebuilt (on consumption) rather than lost.
  else if (parity()) region.AwaitRepairs();
  return base_.MapInto(region, at, off, len, label_off);
}

Status ProtectedDevice::Unseal(const void* key, uint64_t pblk, uint64_t n) {
  // A crash while mapped leaves the chunks to be resynced.
  for (uint64_t b = pblk; b < pblk + n; b = AlignDown(b, kIntentChunkBlocks) + kIntentChunkBlocks)
    if (b < layout_.covered) DG_RETURN_IF_ERROR(MarkIntent(b));
  std::lock_guard<std::mutex> g(state_mu_);
  unsealed_.emplace(key, ByteRange{pblk, n});
  any_unsealed_ = true;
  return Status::Ok();
}

void ProtectedDevice::Reseal(const void* key) {
  std::vector<ByteRange> ranges;
  {
    std::lock_guard<std::mutex> g(state_mu_);
    auto [lo, hi] = unsealed_.equal_range(key);
    for (auto it = lo; it != hi; ++it) ranges.push_back(it->second);
    unsealed_.erase(lo, hi);
    any_unsealed_ = !unsealed_.empty();
  }
  for (const ByteRange& r : ranges) {
    for (uint64_t b = r.off; b < r.off + r.len; ++b) {
      if (!Covered(b)) continue;
      std::unique_lock<StripeLock> l(LockOf(b));
      if (Unsealed(b)) continue;  // another mapping still holds it
      alignas(64) Block page;
      if (ReadGood(b * kBlockSize, page.data(), kBlockSize))
        Seal(b, page.data());
      else
        (void)StoreRecord(b, Record{});
    }
  }
}

ProtectedDevice::Counts ProtectedDevice::counts() const {
  std::lock_guard<std::mutex> g(state_mu_);
  return counts_;
}

ProtectedDevice::Counts ProtectedDevice::Verify(uint64_t b0, uint64_t b1) {
  Counts before = counts();
  for (uint64_t b = b0; b < std::min(b1, layout_.covered); ++b) {
    if (!Covered(b) || Unsealed(b)) continue;
    std::unique_lock<StripeLock> l(LockOf(b));
    alignas(64) Block page;
    uint64_t good;
    (void)ReadBlock(b, page.data(), &good);
  }
  DeliverFailures(true);
  Counts after = counts();
  return {after.repaired - before.repaired, after.unrepaired - before.unrepaired,
          after.mismatches - before.mismatches};
}

Status ProtectedDevice::ClaimForHolder(uint64_t) { return base_.RegisterHolder(link_.get()); }

void ProtectedDevice::OnHolderReleasing() {
  if (!link_->going()) base_.ReleaseHolder(link_.get());
}

}  // namespace daxguard::fs
