// PmemDevice: one emulated persistent-memory device (region + namespace) in
// one sparse file. It plays the hardware and firmware: it holds the bytes,
// the media poison (64-byte lines), injects and clears errors in clear units,
// runs address-range scrubs, and keeps the badblocks list of known errors.
//
// The layer above (dax) sees it only through this header. Errors that become
// known are recorded as unacknowledged badblocks; whoever holds the device
// is told through an in-process listener and, across processes, through a
// futex word in the file that moves with every change of the poison or the
// known errors (WaitForChange).
#pragma once

#include <atomic>
#include <cstring>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/units.h"
#include "media/layout.h"
#include "media/persist_trace.h"
#include "media/range_table.h"

namespace daxguard::media {

enum class Source : uint8_t { kInjected = 0, kExternal = 1, kInternal = 2 };
const char* SourceName(Source s);

struct CreateOptions {
  uint64_t size = 0;
  uint32_t clear_unit = 256;  // cxl devices always use 64
  Kind kind = Kind::kPmem;
  Mode mode = Mode::kFsdax;
  uint64_t align = 0;  // device-dax fault size
};

struct InjectOptions {
  bool notify = true;     // false: the error stays latent until scrub or consumption
  bool saturate = false;  // poison the whole sector, not only its first clear unit
  Source source = Source::kInjected;
};

// A run of known-bad 512-byte sectors.
struct BadBlock {
  uint64_t sector = 0;
  uint64_t count = 0;
  bool acknowledged = false;  // a holder has been told
  bool operator==(const BadBlock&) const = default;
};

// A run of poisoned bytes on the media (64-byte lines).
struct MediaError {
  uint64_t offset = 0;
  uint64_t length = 0;
  Source source = Source::kInjected;
};

struct ScrubStatus {
  bool active = false;
  uint64_t count = 0;     // completed scrubs
  uint64_t progress = 0;  // bytes scanned by the running scrub
};

// How Open treats a device file this process may not write.
enum class OpenMode {
  kReadWrite,  // refused (EACCES, EROFS) as open(2) refuses it
  // For commands that write nothing: such a file is opened for reading.
  // What the process would still record (a consumed error, a holder claim,
  // what a mount writes) stays in its private copy of the pages touched;
  // the file never changes.
  kReadOnlyFallback,
};

class PmemDevice {
 public:
  static Result<std::unique_ptr<PmemDevice>> Create(const std::string& path, const CreateOptions& opt);
  static Result<std::unique_ptr<PmemDevice>> Open(const std::string& path, OpenMode mode = OpenMode::kReadWrite);
  ~PmemDevice();
  PmemDevice(const PmemDevice&) = delete;
  PmemDevice& operator=(const PmemDevice&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }  // the device file, to map its data area
  const Geometry& geometry() const { return geo_; }
  uint64_t size() const { return geo_.size; }
  uint32_t clear_unit() const { return geo_.clear_unit; }
  uint8_t* data() const { return data_; }

  // --- the data path
  // Machine-check-safe copy: stops at the first poisoned line. Returns the
  // bytes copied; if short, the poison there was consumed and is now known.
  // The clean case, a bounds check and one filter word, is inline.
  // Nothing is read from a device whose file shrank (shrunk()).
  size_t ReadMcSafe(uint64_t off, void* dst, size_t len) {
    if (CheckRange(off, len).ok() && !poison_.MayOverlap(off / kLineSize, LineSpan(off, len))) [[likely]] {
      std::memcpy(dst, data_ + off, len);
      return shrunk() ? 0 : len;
    }
    return ReadAroundPoison(off, dst, len);
  }
  // What loads of every line of [off, off+len) do to its poison, without
  // moving data (a mapped load that trapped): each poisoned line's sector
  // becomes a known error, announced as consumption is.
  void Consume(uint64_t off, uint64_t len);
  // The data path's clean test, a word of each filter: true when the pages
  // spanning [off, off+len) hold no known error and, with `latent`, no
  // poison at all (conservative: a page with poison outside the range
  // fails too). Consumes and reports nothing.
  bool PagesClean(uint64_t off, uint64_t len, bool latent) const {
    if (len == 0) return true;
    constexpr uint64_t kSectorsPerPage = kPageSize / kSectorSize;
    uint64_t first = off / kPageSize, last = (off + len - 1) / kPageSize;
    // The badblocks filter has a bit per sector, the poison filter one per page.
    return !bb_.MayOverlapBits(first * kSectorsPerPage, last * kSectorsPerPage + kSectorsPerPage - 1) &&
           !(latent && poison_.MayOverlapBits(first, last));
  }
  // Moves whenever poison or a known error may have been added anywhere on
  // the device, by any process (each such change sets its filter bits
  // first, then moves it): a range PagesClean found clean after reading one
  // value is still clean while the value holds. Never kNoEpoch.
  static constexpr uint64_t kNoEpoch = UINT64_MAX;
  const LiveState& live() const { return header()->live; }
  static uint64_t CleanEpoch(const LiveState& live) {
    auto load = [](const uint32_t& w) -> uint64_t {
      return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(w)).load(std::memory_order_acquire);
    };
    uint64_t poison = load(live.poison_events), errors = load(live.error_events);
    return (poison & 0x7fffffff) << 32 | errors;
  }
  uint64_t CleanEpoch() const { return CleanEpoch(live()); }
  // Stores reach the media; poison stays poisoned (only Clear resets it).
  Status Write(uint64_t off, const void* src, size_t len) {
    DG_RETURN_IF_ERROR(CheckRange(off, len));
    std::memcpy(data_ + off, src, len);
    if (trace_) [[unlikely]] trace_->Store(off, src, len);
    return shrunk() ? ShrankError() : Status::Ok();
  }
  // Persistence, with the CPU's own instructions (libpmem picks clwb,
  // clflushopt or clflush, and the non-temporal copy, from cpuid): the
  // write-back of the lines spanning [off, off+len), the fence that makes
  // written-back lines durable, and a non-temporal copy plus fence.
  Status WriteBack(uint64_t off, uint64_t len);
  void Fence();
  // A store written back as it is made (libpmem's pmem_memcpy_nodrain:
  // non-temporal stores for all but small copies, as Linux's
  // memcpy_flushcache is for pmem): durable at the next Fence. For clean
  // paths, which checked the range: `dst` lies in data().
  void StoreFlushed(uint8_t* dst, const void* src, size_t len);
  Status WritePersist(uint64_t off, const void* src, size_t len);
  // Tracked mode: from now on every store, write-back and fence is also
  // reported to `trace` (media/persist_trace.h), which starts from the
  // device's bytes as they are; null goes back to untracked (the default,
  // at no cost). The trace must outlive the tracking.
  void Track(PersistTrace* trace) { trace_ = trace; }
  // The error state as a power failure would keep it (all of it lives in
  // the device file), and putting one back: what a crash image is checked
  // under. Records come back unacknowledged, so the next holder hears of
  // them all, as after a reboot.
  MediaErrorState ErrorState() const;
  Status SetErrorState(const MediaErrorState& state);
  // Whether the device file was cut shorter than this process maps it: its
  // lost part reads as zeroes and takes no stores (media/shrink_guard.h),
  // so every read and write of the device fails from then on.
  bool shrunk() const { return shrunk_.load(std::memory_order_acquire); }
  Status ShrankError() const { return Status::Io(path_ + ": device file shrank under us"); }
  // Firmware clear: [off, off+len) must be whole clear units. The lines are
  // reset to zeroes, durable when it returns (the firmware's write), and
  // their poison removed. Known-error records stay until
  // ForgetKnown, so readers keep failing until new data is in place.
  Status ClearPoison(uint64_t off, uint64_t len);
  // The clear of a recovery write whose new data is already durable under
  // the poison: the poison of those whole clear units goes, the data stays.
  // The clear's zeroes never show (a mapping could read them as data before
  // the new data lands); the end state is a clear then the write.
  Status ClearPoisonUnder(uint64_t off, uint64_t len);
  // Drops badblocks records of sectors in [off, off+len) whose media is clean.
  Status ForgetKnown(uint64_t off, uint64_t len);
  // What clear-errors does: ClearPoison, then ForgetKnown. An error no
  // holder has been told of yet is not forgotten with it: it moves to the
  // untold list, so the next holder still hears that the data there is
  // lost (RestoreUntold). *untold: the sectors moved there. ENOSPC, with
  // nothing cleared, if the list has no room for them.
  Status ClearErrors(uint64_t off, uint64_t len, uint64_t* untold);
  // Errors cleared before any holder was told of them, in sector runs.
  std::vector<BadBlock> Untold() const;
  // For a holder, before it is told of the unacknowledged errors: the
  // untold ones become known, unacknowledged errors again.
  void RestoreUntold();
  // Whether [off, off+len) holds poison on the media (known or latent).
  bool HasPoison(uint64_t off, uint64_t len) const;

  // --- error injection (what ndctl inject-error drives)
  Status Inject(uint64_t sector, uint64_t count, const InjectOptions& opt);
  Status Uninject(uint64_t sector, uint64_t count);
  std::vector<MediaError> MediaErrors() const;
  // The poisoned byte runs that meet [off, off+len), clipped to it.
  std::vector<MediaError> MediaErrorsIn(uint64_t off, uint64_t len) const;

  // --- known errors
  // The first known-bad sector in [off, off+len), from the exact sector
  // bitmap: no table search, so the data path can ask on every access.
  std::optional<uint64_t> FirstKnownSector(uint64_t off, uint64_t len) const {
    if (len == 0 || !bb_.MayOverlap(off / kSectorSize, SectorSpan(off, len))) [[likely]]
      return std::nullopt;
    return bb_.FirstMarked(off / kSectorSize, SectorSpan(off, len));
  }
  bool HasKnownErrors(uint64_t off, uint64_t len) const { return FirstKnownSector(off, len).has_value(); }
  std::optional<BadBlock> FirstKnownError(uint64_t off, uint64_t len) const;
  std::vector<BadBlock> BadBlocks() const;
  std::vector<BadBlock> Unacknowledged() const;
  Status Acknowledge(const BadBlock& b);
  // Known errors in [sector, +count) become unacknowledged again, so the
  // next holder hears of them as of new ones (dm replace: what no raid1 leg
  // held was told only to the resync's own holder).
  Status Unacknowledge(uint64_t sector, uint64_t count);
  // Records known errors directly, as firmware reporting would (benchmarks
  // use this to load large lists). Sorted, disjoint sector runs.
  Status AddKnown(const std::vector<BadBlock>& runs);

  // --- scrub (address range scrub): turns latent poison into known errors
  // Claims the device's single scrub slot for `pid`; EBUSY while one runs.
  Status BeginScrub(uint32_t pid);
  // Runs the scrub the caller began; `progress` sees bytes scanned so far.
  // It looks `chunk` bytes at a time (whole sectors), and adds to *found
  // the sectors it made known.
  Status RunScrub(const std::function<void(uint64_t, uint64_t)>& progress = {}, uint64_t chunk = 1ull << 30,
                  uint64_t* found = nullptr);
  ScrubStatus GetScrubStatus() const;
  // Waits until no scrub runs (a dead scrubber's claim is dropped).
  void WaitScrubIdle() const;

  // --- notification
  void SetErrorListener(std::function<void()> listener);
  // Moves whenever errors become known, in any process.
  uint32_t ErrorEvents() const;
  // Moves whenever the poison (known or latent: what mappings trap) or the
  // known errors change, in any process.
  uint32_t ChangeEvents() const;
  // Sleeps until ChangeEvents() != seen or timeout_ms passes.
  void WaitForChange(uint32_t seen, int timeout_ms) const;
  // Moves ChangeEvents and wakes its sleepers in every process; also a way
  // to make them look again. Async-signal-safe (an atomic add and a futex).
  void SignalChange() const;

  // --- the one holder, across all processes
  Status ClaimHolder(uint64_t token);
  void ReleaseHolder(uint64_t token);
  // The pid of the process holding the device (this one included); 0 when
  // nobody does or the holder's process has died.
  uint32_t HolderPid() const;

  // Flushes the file mapping to the backing store (host-level durability).
  Status Sync();

 private:
  PmemDevice(std::string path, int fd, uint8_t* base, const Geometry& geo);
  static uint64_t LineSpan(uint64_t off, uint64_t len) {
    return len ? (off + len + kLineSize - 1) / kLineSize - off / kLineSize : 0;
  }
  size_t ReadAroundPoison(uint64_t off, void* dst, size_t len);
  static uint64_t SectorSpan(uint64_t off, uint64_t len) {
    return len ? (off + len + kSectorSize - 1) / kSectorSize - off / kSectorSize : 0;
  }
  Header* header() const { return reinterpret_cast<Header*>(base_); }
  // Inline so the passing case on the data path is two compares.
  Status CheckRange(uint64_t off, uint64_t len) const {
    if (off <= geo_.size && len <= geo_.size - off) [[likely]] return Status::Ok();
    return RangeError(off, len);
  }
  Status RangeError(uint64_t off, uint64_t len) const;
  // Open's check of the error tables, before anything trusts or writes them.
  Status ValidateTables() const;
  void RepairTornTables();
  void ZeroData(uint64_t off, uint64_t len);
  Status CheckClear(uint64_t off, uint64_t len) const;
  // ForgetKnown under the write lock; adds the records dropped to *dropped.
  void ForgetKnownLocked(uint64_t off, uint64_t len, std::vector<Range>* dropped);
  // Records newly known sectors (adding their count to *count); the caller
  // holds the lock and tells listeners.
  Status MarkKnownLocked(const std::vector<Range>& sectors, bool* any_new, uint64_t* count = nullptr);
  void AnnounceErrors();
  Status ScrubChunk(uint64_t off, uint64_t len, uint64_t* found);

  class WriteLock;  // process mutex + flock on the device file

  std::string path_;
  int fd_;
  uint8_t* base_;
  uint8_t* data_;
  Geometry geo_;
  RangeTable poison_;  // line units
  RangeTable bb_;      // sector units
  RangeTable untold_;  // sector units: cleared before a holder heard
  PersistTrace* trace_ = nullptr;
  std::atomic<bool> shrunk_{false};  // set by the shrink guard's SIGBUS handler
  std::mutex mu_;
  std::mutex listener_mu_;
  std::function<void()> listener_;
};

}  // namespace daxguard::media
