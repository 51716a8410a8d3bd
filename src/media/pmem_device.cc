#include "media/pmem_device.h"

#include <fcntl.h>
#include <libpmem.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/units.h"
#include "media/shrink_guard.h"

namespace daxguard::media {
namespace {

constexpr uint8_t kUnacked = 0;
constexpr uint8_t kAcked = 1;
constexpr uint64_t kLinesPerSector = kSectorSize / kLineSize;

template <typename T>
std::atomic_ref<T> Live(T& field) {
  return std::atomic_ref<T>(field);
}

void FutexWake(uint32_t* word) {
  syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

void FutexWait(uint32_t* word, uint32_t expected, int timeout_ms) {
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout_ms < 0 ? nullptr : &ts, nullptr, 0);
}

bool ProcessAlive(uint32_t pid) { return pid && (kill(pid, 0) == 0 || errno == EPERM); }

std::vector<Range> SectorsToRanges(const std::vector<BadBlock>& runs) {
  std::vector<Range> out;
  for (const BadBlock& b : runs) out.push_back({b.sector, b.count, kUnacked});
  return out;
}

BadBlock ToBadBlock(const Range& r) { return {r.start, r.len, r.flags == kAcked}; }

}  // namespace

const char* SourceName(Source s) {
  switch (s) {
    case Source::kInjected: return "Injected";
    case Source::kExternal: return "External";
    case Source::kInternal: return "Internal";
  }
  return "Unknown";
}

// Writers exclude each other across threads (mutex) and processes (flock,
// which the kernel drops if a writer dies). Holding both, an edit still
// open on a table was left by a writer that died: it is repaired first, so
// no writer edits a torn table and readers stop waiting for it.
class PmemDevice::WriteLock {
 public:
  explicit WriteLock(PmemDevice* d, bool heal = true) : d_(d), guard_(d->mu_) {
    flock(d_->fd_, LOCK_EX);
    if (heal) d_->RepairTornTables();
  }
  // Every change to the error tables is made under this lock: a tracked
  // device reports the state it leaves (the trace drops repeats).
  ~WriteLock() {
    if (d_->trace_) [[unlikely]] d_->trace_->Errors(d_->ErrorState());
    flock(d_->fd_, LOCK_UN);
  }

 private:
  PmemDevice* d_;
  std::lock_guard<std::mutex> guard_;
};

PmemDevice::PmemDevice(std::string path, int fd, uint8_t* base, const Geometry& geo)
    : path_(std::move(path)),
      fd_(fd),
      base_(base),
      data_(base + geo.data_off),
      geo_(geo),
      poison_(base + geo.poison_off, reinterpret_cast<uint64_t*>(base + geo.poison_filter_off),
              geo.poison_filter_bytes * 8, kPageSize / kLineSize),
      // One bit per sector makes the known-error bitmap exact: the data path
      // answers "is it bad, and where first" without searching the table.
      bb_(base + geo.badblocks_off, reinterpret_cast<uint64_t*>(base + geo.badblocks_filter_off),
          geo.badblocks_filter_bytes * 8, 1),
      untold_(base + kUntoldOff, reinterpret_cast<uint64_t*>(base + kUntoldFilterOff), kUntoldFilterBytes * 8,
              UntoldSectorsPerBit(geo.size)) {
  // The write lock repairs whatever a dead writer left open.
  for (RangeTable* t : {&poison_, &bb_, &untold_}) t->SetStuckWriterHook([this] { WriteLock lock(this); });
  GuardMapping(base_, geo_.file_size, fd_, &shrunk_);
}

PmemDevice::~PmemDevice() {
  UnguardMapping(base_);
  munmap(base_, geo_.file_size);
  close(fd_);
}

Result<std::unique_ptr<PmemDevice>> PmemDevice::Create(const std::string& path,
                                                       const CreateOptions& opt) {
  uint32_t unit = opt.kind == Kind::kCxl ? kLineSize : opt.clear_unit;
  if (opt.size < kMinDeviceSize || !IsAligned(opt.size, kPageSize))
    return Status::Invalid("device size must be at least 1 MiB and a multiple of 4 KiB");
  if (!IsPowerOfTwo(unit) || unit < kLineSize || unit > kPageSize)
    return Status::Invalid("clear unit must be a power of two from 64 to 4096 bytes");
  if (opt.mode == Mode::kDevdax &&
      (!IsPowerOfTwo(opt.align) || opt.align < kPageSize || !IsAligned(opt.size, opt.align)))
    return Status::Invalid("device-dax size must be a multiple of its alignment, a power of two of at least 4 KiB");
  if (opt.mode == Mode::kFsdax && opt.align != 0) return Status::Invalid("fsdax devices have no alignment");
  Geometry geo = ComputeGeometry(opt.size, unit, opt.kind, opt.mode, opt.align);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, path);
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kVersion;
  h.geo = geo;
  bool ok = ftruncate(fd, static_cast<off_t>(geo.file_size)) == 0;
  int err = errno;
  // The header goes in last so a half-made file is never taken for a device.
  void* base = ok ? mmap(nullptr, geo.file_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0)
                  : MAP_FAILED;
  if (base == MAP_FAILED) {
    if (ok) err = errno;
    close(fd);
    unlink(path.c_str());
    return Status::FromErrno(err, "cannot create " + path);
  }
  auto* b = static_cast<uint8_t*>(base);
  RangeTable::Format(b + geo.poison_off, geo.poison_capacity);
  RangeTable::Format(b + geo.badblocks_off, geo.badblocks_capacity);
  RangeTable::Format(b + kUntoldOff, kUntoldCapacity);
  std::memcpy(b, &h, sizeof h);
  return std::unique_ptr<PmemDevice>(new PmemDevice(path, fd, b, geo));
}

Result<std::unique_ptr<PmemDevice>> PmemDevice::Open(const std::string& path, OpenMode mode) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  int sharing = MAP_SHARED;
  if (fd < 0 && mode == OpenMode::kReadOnlyFallback && (errno == EACCES || errno == EPERM || errno == EROFS)) {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    sharing = MAP_PRIVATE;  // stores stay in this process
  }
  if (fd < 0) return Status::FromErrno(errno, path);
  struct stat st {};
  Header h{};
  Status s;
  if (fstat(fd, &st) != 0)
    s = Status::FromErrno(errno, path);
  else if (!S_ISREG(st.st_mode))
    s = Status::Invalid(path + ": not a daxguard device (not a regular file)");
  else if (pread(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h))
    s = Status::Corrupt(path + ": not a daxguard device (too short)");
  else if (Status v = ValidateHeader(h, static_cast<uint64_t>(st.st_size)); !v.ok())
    s = Status::Corrupt(path + ": " + v.message());
  void* base = MAP_FAILED;
  if (s.ok()) {
    base = mmap(nullptr, h.geo.file_size, PROT_READ | PROT_WRITE, sharing | MAP_NORESERVE, fd, 0);
    if (base == MAP_FAILED) s = Status::FromErrno(errno, "cannot map " + path);
  }
  if (!s.ok()) {
    close(fd);
    return s;
  }
  std::unique_ptr<PmemDevice> dev(new PmemDevice(path, fd, static_cast<uint8_t*>(base), h.geo));
  // Checked before anything is written, with no writer running.
  {
    WriteLock lock(dev.get(), /*heal=*/false);
    s = dev->ValidateTables();
  }
  if (!s.ok()) return Status::Corrupt(path + ": device file damaged: " + s.message());
  {
    WriteLock lock(dev.get());  // repairs what a writer that died mid-edit left
    auto* ut = reinterpret_cast<RangeTableHeader*>(dev->base_ + kUntoldOff);
    if (Live(ut->capacity).load() == 0) RangeTable::Format(ut, kUntoldCapacity);  // made before it existed
  }
  return dev;
}

Status PmemDevice::ValidateTables() const {
  const uint64_t sectors = geo_.size / kSectorSize;
  if (Status s = poison_.Validate(geo_.poison_capacity, geo_.size / kLineSize, uint8_t(Source::kInternal),
                                  poison_.EditOpen());
      !s.ok())
    return Status::Corrupt("media poison table: " + s.message());
  if (Status s = bb_.Validate(geo_.badblocks_capacity, sectors, kAcked, bb_.EditOpen()); !s.ok())
    return Status::Corrupt("badblocks table: " + s.message());
  // A file made before the untold table existed holds zeroes there.
  const auto* ut = reinterpret_cast<const RangeTableHeader*>(base_ + kUntoldOff);
  bool unformatted = ut->seq == 0 && ut->count == 0 && ut->capacity == 0;
  if (Status s = untold_.Validate(kUntoldCapacity, sectors, 0, untold_.EditOpen()); !unformatted && !s.ok())
    return Status::Corrupt("table of untold cleared errors: " + s.message());
  if (uint32_t scrub = Live(header()->live.scrub_active).load(); scrub > 1)
    return Status::Corrupt("scrub state " + std::to_string(scrub));
  return Status::Ok();
}

// Caller holds the write lock: an edit open now was left by a dead writer.
void PmemDevice::RepairTornTables() {
  bool repaired = false;
  for (RangeTable* t : {&poison_, &bb_, &untold_}) {
    if (!t->EditOpen()) continue;
    t->Repair();
    repaired = true;
  }
  if (!repaired) return;
  // What the dead writer added was never announced: whoever vouched for
  // a range at the current CleanEpoch must look again.
  Live(header()->live.error_events).fetch_add(1);
  SignalChange();
}

Status PmemDevice::RangeError(uint64_t off, uint64_t len) const {
  if (off > geo_.size || len > geo_.size - off)
    return Status::Range("range " + std::to_string(off) + "+" + std::to_string(len) +
                         " is beyond the device end (" + std::to_string(geo_.size) + " bytes)");
  return Status::Ok();
}

size_t PmemDevice::ReadAroundPoison(uint64_t off, void* dst, size_t len) {
  if (!CheckRange(off, len).ok()) return 0;
  std::optional<Range> bad = poison_.FirstOverlap(off / kLineSize, LineSpan(off, len));
  if (!bad) {
    std::memcpy(dst, data_ + off, len);
    return shrunk() ? 0 : len;
  }
  uint64_t bad_off = std::max(bad->start * kLineSize, off);
  size_t good = bad_off - off;
  std::memcpy(dst, data_ + off, good);
  if (shrunk()) return 0;  // the poison seen may be the zeroes of a lost table
  bool any_new = false;
  {
    WriteLock lock(this);
    (void)MarkKnownLocked({{bad_off / kSectorSize, 1, kUnacked}}, &any_new);
  }
  if (any_new) AnnounceErrors();
  return good;
}

void PmemDevice::Consume(uint64_t off, uint64_t len) {
  if (!CheckRange(off, len).ok() || len == 0) return;
  std::vector<Range> sectors;  // sorted and merged, as the table wants them
  for (const Range& r : poison_.Overlapping(off / kLineSize, LineSpan(off, len))) {
    uint64_t lo = std::max(r.start * kLineSize, off), hi = std::min(r.end() * kLineSize, off + len);
    uint64_t s0 = lo / kSectorSize, s1 = (hi - 1) / kSectorSize + 1;
    if (!sectors.empty() && s0 <= sectors.back().end())
      sectors.back().len = std::max(sectors.back().end(), s1) - sectors.back().start;
    else
      sectors.push_back({s0, s1 - s0, kUnacked});
  }
  if (sectors.empty()) return;
  bool any_new = false;
  {
    WriteLock lock(this);
    (void)MarkKnownLocked(sectors, &any_new);
  }
  if (any_new) AnnounceErrors();
}

bool PmemDevice::HasPoison(uint64_t off, uint64_t len) const {
  return len && poison_.FirstOverlap(off / kLineSize, LineSpan(off, len)).has_value();
}

Status PmemDevice::CheckClear(uint64_t off, uint64_t len) const {
  DG_RETURN_IF_ERROR(CheckRange(off, len));
  if (!IsAligned(off, geo_.clear_unit) || !IsAligned(len, geo_.clear_unit))
    return Status::Error(ENXIO, "misaligned clear: offset and length must be multiples of the " +
                                    std::to_string(geo_.clear_unit) + "-byte clear unit");
  return Status::Ok();
}

Status PmemDevice::WriteBack(uint64_t off, uint64_t len) {
  DG_RETURN_IF_ERROR(CheckRange(off, len));
  if (len) pmem_flush(data_ + off, len);
  if (trace_) trace_->WriteBack(off, len, data_);
  return shrunk() ? ShrankError() : Status::Ok();
}

void PmemDevice::StoreFlushed(uint8_t* dst, const void* src, size_t len) {
  pmem_memcpy_nodrain(dst, src, len);
  if (trace_) {
    trace_->Store(dst - data_, src, len);
    trace_->WriteBack(dst - data_, len, data_);
  }
}

void PmemDevice::Fence() {
  pmem_drain();
  if (trace_) trace_->Fence(data_);
}

Status PmemDevice::WritePersist(uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(CheckRange(off, len));
  pmem_memcpy(data_ + off, src, len, PMEM_F_MEM_NONTEMPORAL);
  if (trace_) {
    trace_->Store(off, src, len);
    trace_->WriteBack(off, len, data_);
  }
  Fence();
  return shrunk() ? ShrankError() : Status::Ok();
}

Status PmemDevice::ClearPoison(uint64_t off, uint64_t len) {
  DG_RETURN_IF_ERROR(CheckClear(off, len));
  {
    WriteLock lock(this);
    // Zero first, then drop the poison: a reader racing us fails rather than
    // seeing the old bytes as good.
    ZeroData(off, len);
    poison_.Remove(off / kLineSize, len / kLineSize, std::nullopt, nullptr);
  }
  SignalChange();
  return Status::Ok();
}

Status PmemDevice::ClearPoisonUnder(uint64_t off, uint64_t len) {
  DG_RETURN_IF_ERROR(CheckClear(off, len));
  {
    WriteLock lock(this);
    poison_.Remove(off / kLineSize, len / kLineSize, std::nullopt, nullptr);
  }
  SignalChange();
  return Status::Ok();
}

// Large ranges are punched out of the file so zeroing keeps it sparse.
// The firmware's zeroes are durable when the clear returns.
void PmemDevice::ZeroData(uint64_t off, uint64_t len) {
  uint64_t lo = AlignUp(off, kAreaAlign), hi = AlignDown(off + len, kAreaAlign);
  if (hi <= lo || fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            static_cast<off_t>(geo_.data_off + lo), static_cast<off_t>(hi - lo)) != 0) {
    std::memset(data_ + off, 0, len);
  } else {
    std::memset(data_ + off, 0, lo - off);
    std::memset(data_ + hi, 0, off + len - hi);
  }
  if (trace_) {
    trace_->Store(off, std::vector<uint8_t>(len).data(), len);
    trace_->WriteBack(off, len, data_);
  }
  Fence();
}

Status PmemDevice::ForgetKnown(uint64_t off, uint64_t len) {
  DG_RETURN_IF_ERROR(CheckRange(off, len));
  std::vector<Range> dropped;
  {
    WriteLock lock(this);
    ForgetKnownLocked(off, len, &dropped);
  }
  if (!dropped.empty()) SignalChange();  // mappings trap known errors: their pages come back
  return Status::Ok();
}

void PmemDevice::ForgetKnownLocked(uint64_t off, uint64_t len, std::vector<Range>* dropped) {
  if (len == 0) return;
  uint64_t s0 = off / kSectorSize, s1 = (off + len + kSectorSize - 1) / kSectorSize;
  std::vector<Range> removed;
  auto forget = [&](uint64_t from, uint64_t to) {
    bb_.Remove(from, to - from, std::nullopt, dropped ? &removed : nullptr);
    if (dropped) dropped->insert(dropped->end(), removed.begin(), removed.end());
  };
  // Sectors that still hold poison keep their records.
  uint64_t pos = s0;
  for (const Range& p : poison_.Overlapping(s0 * kLinesPerSector, (s1 - s0) * kLinesPerSector)) {
    uint64_t bad_lo = p.start / kLinesPerSector;
    uint64_t bad_hi = (p.end() + kLinesPerSector - 1) / kLinesPerSector;
    if (bad_lo > pos) forget(pos, bad_lo);
    pos = std::max(pos, bad_hi);
  }
  if (pos < s1) forget(pos, s1);
}

Status PmemDevice::ClearErrors(uint64_t off, uint64_t len, uint64_t* untold) {
  *untold = 0;
  DG_RETURN_IF_ERROR(CheckClear(off, len));
  {
    WriteLock lock(this);
    // Each unacknowledged record gives at most one untold run: the sectors
    // forgotten are one run (only the two end sectors can keep poison).
    uint64_t unacked = 0;
    for (const Range& r : bb_.Overlapping(off / kSectorSize, SectorSpan(off, len))) unacked += r.flags == kUnacked;
    if (untold_.Count() + unacked > kUntoldCapacity)
      return Status::Error(ENOSPC, std::to_string(untold_.Count()) +
                                       " cleared errors already wait for a holder to hear of them; nothing cleared "
                                       "(mount the filesystem first)");
    ZeroData(off, len);
    poison_.Remove(off / kLineSize, len / kLineSize, std::nullopt, nullptr);
    std::vector<Range> dropped, lost;
    ForgetKnownLocked(off, len, &dropped);
    for (const Range& r : dropped) {
      if (r.flags != kUnacked) continue;
      lost.push_back({r.start, r.len, 0});
      *untold += r.len;
    }
    if (!lost.empty()) {
      DG_RETURN_IF_ERROR(untold_.Add(lost, 0, nullptr));
      Live(header()->live.error_events).fetch_add(1);  // what a holder keeps must be looked at again
    }
  }
  if (*untold)
    AnnounceErrors();  // a holder of this process hears at once
  else
    SignalChange();
  return Status::Ok();
}

MediaErrorState PmemDevice::ErrorState() const {
  auto runs = [](const RangeTable& t) {
    std::vector<ByteRange> out;
    for (const Range& r : t.All()) out.push_back({r.start, r.len});
    return out;
  };
  return {runs(poison_), runs(bb_), runs(untold_)};
}

Status PmemDevice::SetErrorState(const MediaErrorState& state) {
  auto ranges = [](const std::vector<ByteRange>& runs, uint8_t flags) {
    std::vector<Range> out;
    for (const ByteRange& r : runs) out.push_back({r.off, r.len, flags});
    return out;
  };
  {
    WriteLock lock(this);
    for (RangeTable* t : {&poison_, &bb_, &untold_}) t->Remove(0, UINT64_MAX, std::nullopt, nullptr);
    DG_RETURN_IF_ERROR(poison_.Add(ranges(state.poison_lines, 0), 0, nullptr));
    DG_RETURN_IF_ERROR(bb_.Add(ranges(state.known_sectors, kUnacked), kUnacked, nullptr));
    DG_RETURN_IF_ERROR(untold_.Add(ranges(state.untold_sectors, 0), 0, nullptr));
    Live(header()->live.error_events).fetch_add(1);
  }
  SignalChange();
  return Status::Ok();
}

std::vector<BadBlock> PmemDevice::Untold() const {
  std::vector<BadBlock> out;
  for (const Range& r : untold_.All()) out.push_back({r.start, r.len, false});
  return out;
}

void PmemDevice::RestoreUntold() {
  if (untold_.Count() == 0) return;  // the usual case, without the lock
  WriteLock lock(this);
  std::vector<Range> runs = untold_.All();
  bool any_new = false;
  if (runs.empty() || !MarkKnownLocked(runs, &any_new).ok()) return;
  untold_.Remove(0, UINT64_MAX, std::nullopt, nullptr);
}

Status PmemDevice::Inject(uint64_t sector, uint64_t count, const InjectOptions& opt) {
  if (count == 0) return Status::Invalid("count must be at least 1");
  if (sector > geo_.size / kSectorSize || count > geo_.size / kSectorSize - sector)
    return Status::Range("blocks " + std::to_string(sector) + "+" + std::to_string(count) +
                         " are beyond the device end (" + std::to_string(geo_.size / kSectorSize) +
                         " blocks)");
  uint64_t lines = opt.saturate ? kLinesPerSector
                                : std::min<uint64_t>(geo_.clear_unit, kSectorSize) / kLineSize;
  std::vector<Range> ranges;
  if (lines == kLinesPerSector) {
    ranges.push_back({sector * kLinesPerSector, count * kLinesPerSector, 0});
  } else {
    for (uint64_t s = sector; s < sector + count; ++s) ranges.push_back({s * kLinesPerSector, lines, 0});
  }
  bool any_new = false;
  {
    WriteLock lock(this);
    DG_RETURN_IF_ERROR(poison_.Add(ranges, static_cast<uint8_t>(opt.source), nullptr));
    if (opt.notify) DG_RETURN_IF_ERROR(MarkKnownLocked({{sector, count, kUnacked}}, &any_new));
  }
  if (any_new)
    AnnounceErrors();  // the holder hears at once, on this thread
  else
    SignalChange();
  return Status::Ok();
}

Status PmemDevice::Uninject(uint64_t sector, uint64_t count) {
  if (sector > geo_.size / kSectorSize || count > geo_.size / kSectorSize - sector)
    return Status::Range("blocks are beyond the device end");
  {
    WriteLock lock(this);
    poison_.Remove(sector * kLinesPerSector, count * kLinesPerSector,
                   static_cast<uint8_t>(Source::kInjected), nullptr);
  }
  SignalChange();
  return Status::Ok();
}

std::vector<MediaError> PmemDevice::MediaErrors() const {
  std::vector<MediaError> out;
  for (const Range& r : poison_.All())
    out.push_back({r.start * kLineSize, r.len * kLineSize, static_cast<Source>(r.flags)});
  return out;
}

std::vector<MediaError> PmemDevice::MediaErrorsIn(uint64_t off, uint64_t len) const {
  std::vector<MediaError> out;
  if (len == 0) return out;
  for (const Range& r : poison_.Overlapping(off / kLineSize, LineSpan(off, len))) {
    uint64_t lo = std::max(r.start * kLineSize, off), hi = std::min(r.end() * kLineSize, off + len);
    out.push_back({lo, hi - lo, static_cast<Source>(r.flags)});
  }
  return out;
}

std::optional<BadBlock> PmemDevice::FirstKnownError(uint64_t off, uint64_t len) const {
  if (len == 0) return std::nullopt;
  if (auto r = bb_.FirstOverlap(off / kSectorSize, SectorSpan(off, len))) return ToBadBlock(*r);
  return std::nullopt;
}

std::vector<BadBlock> PmemDevice::BadBlocks() const {
  std::vector<BadBlock> out;
  for (const Range& r : bb_.All()) out.push_back(ToBadBlock(r));
  return out;
}

std::vector<BadBlock> PmemDevice::Unacknowledged() const {
  std::vector<BadBlock> out;
  for (const Range& r : bb_.All())
    if (r.flags == kUnacked) out.push_back(ToBadBlock(r));
  return out;
}

Status PmemDevice::Acknowledge(const BadBlock& b) {
  WriteLock lock(this);
  bb_.SetFlags(b.sector, b.count, kAcked);
  return Status::Ok();
}

Status PmemDevice::Unacknowledge(uint64_t sector, uint64_t count) {
  {
    WriteLock lock(this);
    bb_.SetFlags(sector, count, kUnacked);
  }
  AnnounceErrors();
  return Status::Ok();
}

Status PmemDevice::AddKnown(const std::vector<BadBlock>& runs) {
  for (const BadBlock& b : runs)
    if (b.count == 0 || b.sector >= geo_.size / kSectorSize ||
        b.count > geo_.size / kSectorSize - b.sector)
      return Status::Range("bad block run beyond the device end");
  bool any_new = false;
  {
    WriteLock lock(this);
    DG_RETURN_IF_ERROR(MarkKnownLocked(SectorsToRanges(runs), &any_new));
  }
  if (any_new) AnnounceErrors();
  return Status::Ok();
}

Status PmemDevice::MarkKnownLocked(const std::vector<Range>& sectors, bool* any_new, uint64_t* count) {
  std::vector<Range> added;
  DG_RETURN_IF_ERROR(bb_.Add(sectors, kUnacked, &added));
  if (count)
    for (const Range& r : added) *count += r.len;
  if (!added.empty()) {
    Live(header()->live.error_events).fetch_add(1);
    *any_new = true;
  }
  return Status::Ok();
}

// The listener in this process first, so that its holder hears on this
// thread; then the watchers (of other processes too).
void PmemDevice::AnnounceErrors() {
  std::function<void()> listener;
  {
    std::lock_guard<std::mutex> g(listener_mu_);
    listener = listener_;
  }
  if (listener) listener();
  SignalChange();
}

void PmemDevice::SetErrorListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> g(listener_mu_);
  listener_ = std::move(listener);
}

uint32_t PmemDevice::ErrorEvents() const { return Live(header()->live.error_events).load(); }

uint32_t PmemDevice::ChangeEvents() const { return Live(header()->live.poison_events).load(); }

void PmemDevice::WaitForChange(uint32_t seen, int timeout_ms) const {
  if (ChangeEvents() == seen) FutexWait(&header()->live.poison_events, seen, timeout_ms);
}

void PmemDevice::SignalChange() const {
  Live(header()->live.poison_events).fetch_add(1);
  FutexWake(&header()->live.poison_events);
}

Status PmemDevice::BeginScrub(uint32_t pid) {
  LiveState& live = header()->live;
  WriteLock lock(this);
  if (Live(live.scrub_active).load() && ProcessAlive(Live(live.scrub_pid).load()))
    return Status::Busy("a scrub is already running (pid " +
                        std::to_string(Live(live.scrub_pid).load()) + ")");
  Live(live.scrub_pid).store(pid);
  Live(live.scrub_progress).store(0);
  Live(live.scrub_active).store(1);
  return Status::Ok();
}

Status PmemDevice::ScrubChunk(uint64_t off, uint64_t len, uint64_t* found) {
  bool any_new = false;
  {
    WriteLock lock(this);
    std::vector<Range> sectors;
    for (const Range& p : poison_.Overlapping(off / kLineSize, len / kLineSize)) {
      uint64_t lo = std::max(p.start, off / kLineSize) / kLinesPerSector;
      uint64_t hi = (std::min(p.end(), (off + len) / kLineSize) + kLinesPerSector - 1) / kLinesPerSector;
      if (!sectors.empty() && sectors.back().end() >= lo)
        sectors.back().len = std::max(sectors.back().end(), hi) - sectors.back().start;
      else
        sectors.push_back({lo, hi - lo, kUnacked});
    }
    DG_RETURN_IF_ERROR(MarkKnownLocked(sectors, &any_new, found));
  }
  if (any_new) AnnounceErrors();
  return Status::Ok();
}

Status PmemDevice::RunScrub(const std::function<void(uint64_t, uint64_t)>& progress, uint64_t chunk,
                            uint64_t* found) {
  LiveState& live = header()->live;
  chunk = std::max<uint64_t>(kSectorSize, AlignDown(chunk, kSectorSize));
  Status s;
  for (uint64_t off = 0; off < geo_.size && s.ok(); off += chunk) {
    s = ScrubChunk(off, std::min(chunk, geo_.size - off), found);
    uint64_t done = std::min(off + chunk, geo_.size);
    Live(live.scrub_progress).store(done);
    if (progress) progress(done, geo_.size);
  }
  Live(live.scrub_count).fetch_add(1);
  Live(live.scrub_pid).store(0);
  Live(live.scrub_active).store(0);
  FutexWake(&live.scrub_active);
  return s;
}

ScrubStatus PmemDevice::GetScrubStatus() const {
  LiveState& live = header()->live;
  bool active = Live(live.scrub_active).load() && ProcessAlive(Live(live.scrub_pid).load());
  return {active, Live(live.scrub_count).load(), active ? Live(live.scrub_progress).load() : 0};
}

void PmemDevice::WaitScrubIdle() const {
  LiveState& live = header()->live;
  while (Live(live.scrub_active).load()) {
    if (!ProcessAlive(Live(live.scrub_pid).load())) {
      uint32_t one = 1;  // the scrubber died: drop its claim
      Live(live.scrub_active).compare_exchange_strong(one, 0);
      return;
    }
    FutexWait(&live.scrub_active, 1, 200);
  }
}

Status PmemDevice::ClaimHolder(uint64_t token) {
  LiveState& live = header()->live;
  WriteLock lock(this);
  uint32_t pid = Live(live.holder_pid).load();
  uint32_t me = static_cast<uint32_t>(getpid());
  bool held = pid == me ? Live(live.holder_token).load() != token : ProcessAlive(pid);
  if (held) return Status::Busy(path_ + ": device already has a holder (pid " + std::to_string(pid) + ")");
  Live(live.holder_pid).store(me);
  Live(live.holder_token).store(token);
  return Status::Ok();
}

void PmemDevice::ReleaseHolder(uint64_t token) {
  LiveState& live = header()->live;
  WriteLock lock(this);
  if (Live(live.holder_pid).load() == static_cast<uint32_t>(getpid()) &&
      Live(live.holder_token).load() == token) {
    Live(live.holder_pid).store(0);
    Live(live.holder_token).store(0);
  }
}

uint32_t PmemDevice::HolderPid() const {
  LiveState& live = header()->live;
  uint32_t pid = Live(live.holder_pid).load();
  if (pid == static_cast<uint32_t>(getpid())) return Live(live.holder_token).load() ? pid : 0;
  return ProcessAlive(pid) ? pid : 0;
}

Status PmemDevice::Sync() {
  if (msync(base_, geo_.file_size, MS_SYNC) != 0) return Status::FromErrno(errno, "msync " + path_);
  return Status::Ok();
}

}  // namespace daxguard::media
