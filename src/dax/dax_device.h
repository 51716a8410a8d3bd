// dax::Device: the only interface the layers above use to reach persistent
// memory, in the spirit of Linux's dax_operations + dax_holder_operations.
//
// A driver (a device file, a remapping device) implements the virtual
// operations. The base class owns the holder rules and the one way failures
// reach a holder: exactly one holder per device, told of every error that
// becomes known (NotifyFailure with offsets in this device's bytes) and of
// removal (kFailurePreRemove), from the device's delivery thread, in order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/units.h"
#include "dax/mapping.h"
#include "media/pmem_device.h"

namespace daxguard::dax {

enum class AccessMode {
  kAccess,         // fails with EHWPOISON if the range starts on known poison
  kRecoveryWrite,  // maps anyway, so a recovery write can repair it
};

class Device;

// What direct access hands out: the address of the first page and how many
// pages from it may be used in the requested mode; and the device whose
// memory it is (a remapping device hands out its base's) with the page's
// offset there. Copies of the mapped bytes go straight to that device, as
// Linux copies from the address dax_direct_access returned without passing
// through device-mapper again.
struct Mapping {
  uint8_t* addr = nullptr;  // null for a mirror's pages: no one memory holds them
  uint64_t pages = 0;
  Device* source = nullptr;
  uint64_t source_off = 0;  // bytes, of addr on `source`
};

struct Capabilities {
  bool recovery = false;     // can clear poison (recovery write, zeroing)
  bool synchronous = false;  // stores are durable without fsync (MAP_SYNC-capable)
  // Device-dax: used whole, by mapping only, and every mapping starts and
  // ends on the fault unit (a page otherwise).
  bool devdax = false;
  uint64_t fault_unit = kPageSize;
};

class DirectMemory;  // dax/direct_memory.h

// How [start, start+len) of a device lies in memory a fast path may copy
// with itself: dealt out in `chunk`-byte chunks to its legs in turn, each
// leg's chunks contiguous in one device file's memory from its offset. One
// leg: the range is one run of one file's memory (chunk = len).
struct DirectLayout {
  struct Leg {
    const DirectMemory* mem;
    uint64_t offset;  // bytes into that memory
  };
  uint64_t start = 0;
  uint64_t len = 0;
  uint64_t chunk = 0;
  std::vector<Leg> legs;
};

// `len` bytes at `offset` of an emulated media device.
struct MediaRun {
  media::PmemDevice* media = nullptr;
  uint64_t offset = 0;
  uint64_t len = 0;
};

inline constexpr int kFailureMedia = 0;
inline constexpr int kFailurePreRemove = 1;

// What a holder is told: [offset, offset+len) failed, or (kFailurePreRemove)
// the device is going away.
struct Failure {
  uint64_t offset = 0;
  uint64_t len = 0;
  int flags = kFailureMedia;
};

class Holder {
 public:
  virtual ~Holder() = default;
  // [offset, offset+len) of the device has failed, or with kFailurePreRemove
  // the device is going away (offset 0, len = the whole device). Called on
  // the device's delivery thread (removal: on the thread that kills it), one
  // at a time per device; it must not wait for the holder's own operations,
  // since one of them may be waiting for this very call (a device call
  // returns only once the error it made known has been told).
  virtual void NotifyFailure(uint64_t offset, uint64_t len, int flags) = 0;
};

class Device {
 public:
  virtual ~Device();

  virtual uint64_t size() const = 0;
  uint64_t pages() const { return size() / kPageSize; }
  virtual Capabilities caps() const = 0;

  // --- dax operations
  virtual Result<Mapping> DirectAccess(uint64_t pgoff, uint64_t nr_pages, AccessMode mode) = 0;
  // A copy when [off, off+len) is clean. Over poison the range must be
  // whole pages: the poisoned clear units are cleared, the data written,
  // and only then the known-error records dropped. Otherwise nothing is written (EIO). What
  // it stores is written back: durable at the next Fence; over poison,
  // durable before the records go, so a power failure never leaves a page
  // that reads as good holding neither the old data nor the new.
  virtual Result<size_t> RecoveryWrite(uint64_t off, const void* src, size_t len) = 0;
  // Writes zeroes over whole pages and clears their poison (zeroinit); the
  // zeroes are written back, durable at the next Fence (where poison was
  // cleared, before its records go, as for RecoveryWrite).
  virtual Status ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) = 0;
  // Machine-check-safe copy: the bytes copied before the first poisoned
  // line (consuming it makes the error known): fewer than `len` means poison
  // there. Out of range, or a device gone, is an error, not a short copy.
  virtual Result<size_t> ReadMcSafe(uint64_t off, void* dst, size_t len) = 0;
  // Whether all of [off, off+len) was copied, for callers that treat poison
  // and every other failure alike (a metadata copy: then the other is read).
  bool ReadAll(uint64_t off, void* dst, size_t len) { return ReadMcSafe(off, dst, len).value_or(0) == len; }
  // A store: it reaches the CPU's cache, and is durable only once its
  // lines are written back and a fence has ordered that. Never clears poison.
  virtual Status Write(uint64_t off, const void* src, size_t len) = 0;
  // --- persistence, as on real persistent memory: what a power failure
  // keeps is what was written back (clwb) before a fence (sfence).
  // Write-back of the lines spanning [off, off+len): durable at the next Fence.
  virtual Status WriteBack(uint64_t off, uint64_t len) = 0;
  // Orders every write-back and non-temporal store before it: once it
  // returns, they are durable.
  virtual void Fence() = 0;
  // A persisting copy for large writes (non-temporal stores, then a
  // fence): durable when it returns. Never clears poison.
  virtual Status WritePersist(uint64_t off, const void* src, size_t len) {
    DG_RETURN_IF_ERROR(Write(off, src, len));
    DG_RETURN_IF_ERROR(WriteBack(off, len));
    Fence();
    return Status::Ok();
  }
  // Known errors in this device's 512-byte sectors.
  virtual std::vector<media::BadBlock> BadBlocks() const = 0;
  // Whether a read of [off, off+len) is known to fail: a known error there,
  // or (a stack) a part no device backs. Consumes and reports nothing; what
  // a filesystem asks before it frees a block or trusts a metadata copy.
  // The base answers from BadBlocks(); drivers answer faster.
  virtual bool KnownUnreadable(uint64_t off, uint64_t len) const;
  // Whether poison in [off, off+len) can be cleared (recovery write,
  // zeroing). A remapping device answers per range, from what lies below.
  virtual bool CanRecover(uint64_t /*off*/, uint64_t /*len*/) const { return caps().recovery; }
  // Places [off, off+len) of this device at offset `at` of `region` (see
  // dax/mapping.h), faults there reporting `label_off` onward. A remapping
  // device translates and passes each run down; the media places its pages.
  virtual Status MapInto(MappedRegion& region, uint64_t at, uint64_t off, uint64_t len, uint64_t label_off);
  // The data path's clean case in one call, for callers that keep their own
  // fast path (a filesystem's). Copies only when the pages spanning [off,
  // off+len) hold no known poison and, for a read, the range holds no
  // latent poison either; never reports an error. False: the caller takes
  // the careful way (dax_io.h) for the whole range, part of which may have
  // been copied already. Drivers without such a path always say false.
  // WriteClean's stores are written back as they are made (non-temporal
  // stores, as Linux's memcpy_flushcache): durable at the next Fence.
  virtual bool ReadClean(uint64_t /*off*/, void* /*dst*/, size_t /*len*/) { return false; }
  virtual bool WriteClean(uint64_t /*off*/, const void* /*src*/, size_t /*len*/) { return false; }
  // Where [off, off+len) lies in memory a fast path may copy with itself
  // (dax/direct_memory.h), start 0: a run of a device file's memory, or a
  // stack's translation flattened onto its files'. Nullopt when it does not
  // reduce to that (an error segment, stripes over stripes, a device that
  // must see every store): the caller uses ReadClean / WriteClean.
  virtual std::optional<DirectLayout> DirectLayoutOf(uint64_t /*off*/, uint64_t /*len*/) const { return std::nullopt; }

  // --- the media below, for commands that act on it beneath this contract
  // (inject-error, clear-errors, scrub). A device file is its own media; a
  // remapping device answers through its bases.
  // Each emulated media device below, once.
  virtual std::vector<media::PmemDevice*> Media() { return {}; }
  // Where [off, off+len) lies on them, in order. Fails if the range is out
  // of bounds or part of it has no media (a stack's error target).
  Result<std::vector<MediaRun>> MapToMedia(uint64_t off, uint64_t len);
  // The ranges of this device that [off, off+len) of `media` backs, sorted
  // and merged.
  virtual std::vector<ByteRange> MapFromMedia(const media::PmemDevice& /*media*/, uint64_t /*off*/,
                                              uint64_t /*len*/) {
    return {};
  }
  // The known errors below [off, off+len) become unacknowledged again, so
  // the next holder hears of them: what a stand-in holder (dm replace's, a
  // patrol's) was told is for the owner of the data to hear. A mirror
  // retells on every leg.
  virtual Status Retell(uint64_t off, uint64_t len);

  // --- holder
  Status RegisterHolder(Holder* holder);
  void ReleaseHolder(Holder* holder);
  bool HasHolder() const;
  // Who holds this device, or a device below it, in any process: the
  // holder's pid, 0 if nobody does. A driver whose claim lives in the
  // device file answers for other processes too.
  virtual uint32_t HolderPid() const;
  // EBUSY naming the holder's pid while anyone holds the device: what
  // formatting and raw writes check first.
  Status CheckNotHeld() const;
  // The device goes away: the holder hears PRE_REMOVE and is released;
  // later access fails with ENXIO.
  void Kill();
  bool alive() const { return alive_.load(); }

 protected:
  // --- delivery: one queue and one thread per device, running while it has
  // a holder; the only way a holder hears of failures. A driver reports
  // what it learns of (a remapping device, what its bases told it), or has
  // the thread collect what it keeps itself (a device file's unacknowledged
  // records). Failures reported with nobody to tell wait for the next holder.
  void ReportFailure(const Failure& f);
  // Has the thread collect (CollectFailures) and tell what is waiting. With
  // `wait`, returns once that is told: a device call that made an error
  // known returns only once its holder has heard. Inside a delivery (on the
  // thread telling this device's holder) it never waits: the delivery looks
  // again before it ends.
  void DeliverFailures(bool wait);
  // On the delivery thread, with a holder: failures the driver keeps
  // itself; FailureTold is called for each once its holder has heard.
  virtual std::vector<Failure> CollectFailures() { return {}; }
  virtual void FailureTold(const Failure& /*f*/) {}
  // Tells what is queued, then ends the thread (not waiting for it when
  // called on it). Drivers that collect call this first in their destructor.
  void StopDelivering();
  // Tells the holder now, on this thread: for a device that passes its
  // base's deliveries straight up (a test double).
  bool NotifyHolder(uint64_t offset, uint64_t len, int flags);
  // Inline so that the passing case, on every read and write, is a few
  // compares; the failure message is built out of line.
  Status CheckPages(uint64_t pgoff, uint64_t nr_pages) const {
    uint64_t n = pages();
    if (pgoff <= n && nr_pages <= n - pgoff && alive_.load()) [[likely]] return Status::Ok();
    return PagesError(pgoff, nr_pages);
  }
  Status CheckBytes(uint64_t off, uint64_t len) const {
    if (BytesOk(off, len)) [[likely]] return Status::Ok();
    return BytesError(off, len);
  }
  bool BytesOk(uint64_t off, uint64_t len) const {
    uint64_t n = size();
    return off <= n && len <= n - off && alive_.load();
  }
  // Hooks: claim/release the device for one holder across processes, and
  // start/stop what feeds the delivery (errors known before the holder came
  // are told before RegisterHolder returns).
  virtual Status ClaimForHolder(uint64_t token) = 0;
  virtual void UnclaimForHolder(uint64_t token) = 0;
  virtual void OnHolderRegistered() {}
  virtual void OnHolderReleasing() {}
  // MapToMedia for a range known to be in bounds.
  virtual Result<std::vector<MediaRun>> MediaRunsOf(uint64_t off, uint64_t len);

 private:
  // Recursive: a holder may touch the device (and so cause another
  // notification) from inside its NotifyFailure.
  mutable std::recursive_mutex holder_mu_;
  std::mutex release_mu_;
  Holder* holder_ = nullptr;
  Status PagesError(uint64_t pgoff, uint64_t nr_pages) const;
  Status BytesError(uint64_t off, uint64_t len) const;
  std::atomic<bool> alive_{true};
  // The thread telling the holder right now (NotifyHolder), if any.
  std::atomic<std::thread::id> telling_{};

  void ReleaseLocked(Holder* holder);  // with release_mu_ held
  void StartDelivering();
  void DeliverLoop();
  // One pass: the queued failures, then the collected ones. Returns those
  // queued that nobody could be told of.
  std::vector<Failure> TellAll(std::vector<Failure> queued);
  bool InDelivery() const;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<Failure> queue_;  // guarded by queue_mu_, as all below
  uint64_t asked_ = 0;          // passes asked for (each report or DeliverFailures)
  uint64_t done_ = 0;           // the last `asked_` a finished pass covered
  bool stop_ = false;
  bool delivering_ = false;     // the thread runs and has not yet ended
  std::thread deliverer_;
};

}  // namespace daxguard::dax
