// fs::ProtectedDevice: daxfs's data protection (mkfs --data-protection), a
// dax::Device over the device the filesystem is made on, at the same offsets.
//
// Each block below the protection area has a record: the CRC32C of its
// 4 KiB and the filesystem's tag (a record without it protects nothing:
// records an earlier filesystem left never pass for ours), and with parity
// a 512-byte strip, the XOR of the block's eight strips (NOVA-Fortis's
// strip parity: one bad strip per block is rebuilt, a whole page lost is
// not). Every store through this device brings the records of the blocks it
// touches up to date, under the block's lock; every read checks the blocks
// it returns. A block that fails (poison, or bytes that no longer match
// their checksum) is rebuilt from parity: the read returns the rebuilt
// bytes, and the block is written back with a recovery write on this
// device's delivery thread. The filesystem, this device's holder, hears
// only of what parity could not rebuild: poison reported up, or a block
// whose bytes no longer match (reported whole), never wrong bytes.
//
// Crash consistency as md's write-intent bitmap: a bit per 2 MiB chunk is
// set and durable before any block of the chunk changes, and cleared at a
// clean unmount; opening recomputes the records of every chunk still
// marked from its data.
//
// Stores through a writable mapping bypass this device: blocks placed in
// one are neither checked nor rebuilt until the mapping goes (Reseal), when
// their records are recomputed from what they hold.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "dax/dax_device.h"
#include "fs/format.h"

namespace daxguard::fs {

// A block stripe's lock: taken with an exchange, let go with a plain store.
// A locked instruction waits for the non-temporal stores before it to
// drain; letting go right after a block's stores must not (a mutex's
// unlock did, and cost more than the checksum).
class StripeLock {
 public:
  void lock() {
    for (int spins = 0; held_.exchange(true, std::memory_order_acquire);)
      while (held_.load(std::memory_order_relaxed))
        if (++spins > 64) std::this_thread::yield();
  }
  void unlock() { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

class ProtectedDevice final : public dax::Device {
 public:
  // Over `base` (which it holds while it has a holder itself), for a
  // filesystem of geometry `g` and the superblock's protection tag. Chunks
  // a crash left marked are resynced first; on a device that takes no
  // writes they stay unchecked instead.
  static Result<std::unique_ptr<ProtectedDevice>> Open(dax::Device& base, const Geometry& g, uint32_t tag);
  // mkfs: the write-intent bitmap cleared.
  static Status Format(dax::Device& base, const Geometry& g);
  ~ProtectedDevice() override;
  ProtectedDevice(const ProtectedDevice&) = delete;
  ProtectedDevice& operator=(const ProtectedDevice&) = delete;

  // Clean unmount, after the last store: everything fenced, then the
  // bitmap cleared.
  Status MarkClean();
  // Blocks [pblk, +n) are placed in writable mapping `key`: unchecked
  // until Reseal(key), after the mapping is gone.
  Status Unseal(const void* key, uint64_t pblk, uint64_t n);
  void Reseal(const void* key);

  struct Counts {
    uint64_t repaired = 0;    // blocks rebuilt and written back
    // Blocks reported to the holder: those parity could not rebuild, and
    // those it does not protect (never written, or unchecked) that failed.
    uint64_t unrepaired = 0;
    uint64_t mismatches = 0;  // reads that found a block not matching its checksum
  };
  Counts counts() const;
  // What this device rebuilt, the most recent kRepairLog: when (CLOCK_REALTIME
  // ns), which block, and what had damaged it.
  struct RepairEvent {
    uint64_t when_ns = 0;
    uint64_t block = 0;
    bool poison = false;  // else a stray store (bytes that no longer matched)
  };
  static constexpr size_t kRepairLog = 1000;
  std::vector<RepairEvent> repairs() const;
  // Called with the repairs of each round of failure handling as it ends
  // (on the delivery thread), and at once with those made before (at
  // open). Must not call back into this device.
  using RepairListener = std::function<void(const std::vector<RepairEvent>&)>;
  void OnRepair(RepairListener fn);
  // The patrol: every protected block of [b0, b1) read and checked, a
  // failing one rebuilt or reported as a read would.
  Counts Verify(uint64_t b0, uint64_t b1);
  const Geometry& geometry() const { return geo_; }

  uint64_t size() const override { return base_.size(); }
  dax::Capabilities caps() const override { return base_.caps(); }
  Result<dax::Mapping> DirectAccess(uint64_t pgoff, uint64_t nr_pages, dax::AccessMode mode) override;
  Result<size_t> RecoveryWrite(uint64_t off, const void* src, size_t len) override;
  Status ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) override;
  Result<size_t> ReadMcSafe(uint64_t off, void* dst, size_t len) override;
  Status Write(uint64_t off, const void* src, size_t len) override;
  Status WriteBack(uint64_t off, uint64_t len) override { return base_.WriteBack(off, len); }
  void Fence() override { base_.Fence(); }
  bool ReadClean(uint64_t off, void* dst, size_t len) override;
  bool WriteClean(uint64_t off, const void* src, size_t len) override;
  std::vector<media::BadBlock> BadBlocks() const override { return base_.BadBlocks(); }
  // A block parity can rebuild is readable.
  bool KnownUnreadable(uint64_t off, uint64_t len) const override;
  bool CanRecover(uint64_t off, uint64_t len) const override { return base_.CanRecover(off, len); }
  Status MapInto(dax::MappedRegion& region, uint64_t at, uint64_t off, uint64_t len, uint64_t label_off) override;
  std::vector<media::PmemDevice*> Media() override { return base_.Media(); }
  std::vector<ByteRange> MapFromMedia(const media::PmemDevice& m, uint64_t off, uint64_t len) override {
    return base_.MapFromMedia(m, off, len);
  }
  Status Retell(uint64_t off, uint64_t len) override { return base_.Retell(off, len); }
  uint32_t HolderPid() const override { return base_.HolderPid(); }

 protected:
  Status ClaimForHolder(uint64_t token) override;
  void UnclaimForHolder(uint64_t) override {}
  void OnHolderReleasing() override;
  // Rebuilds what the base reported; tells the holder what it could not.
  std::vector<dax::Failure> CollectFailures() override;
  Result<std::vector<dax::MediaRun>> MediaRunsOf(uint64_t off, uint64_t len) override {
    return base_.MapToMedia(off, len);
  }

 private:
  class Link;
  // No initializers: runs of them live on the stack of every fast path
  // (Record{} is the empty record).
  struct Record {
    uint32_t crc;
    uint32_t tag;
  };
  using Block = std::array<uint8_t, kBlockSize>;

  ProtectedDevice(dax::Device& base, const Geometry& g, uint32_t tag);
  // Whether block b has a record and is file data (not metadata).
  bool Covered(uint64_t b) const { return b < layout_.covered && !geo_.IsMeta(b); }
  bool Unsealed(uint64_t b) const;
  StripeLock& LockOf(uint64_t b) const { return locks_[b % locks_.size()]; }
  uint64_t RecordOff(uint64_t b) const { return layout_.records * kBlockSize + b * sizeof(Record); }
  uint64_t ParityOff(uint64_t b) const { return layout_.parity * kBlockSize + b * kStripBytes; }
  bool parity() const { return geo_.protection == DataProtection::kParity; }

  // Calls fn(block, first byte in it, bytes) for each block of [off, +len).
  template <typename Fn>
  static bool EachBlock(uint64_t off, uint64_t len, Fn&& fn);
  // Sets (durably) the intent bit of b's chunk before b changes.
  Status MarkIntent(uint64_t b);
  // The record and parity of b from its content; a failure to store them
  // leaves b unchecked until the area page is rebuilt.
  void Seal(uint64_t b, const uint8_t* data);
  Status StoreRecord(uint64_t b, const Record& r);
  // ReadAll, and no known error there: a known error's poison may be
  // cleared (zeroes) while its record stands, until the data is durable.
  bool ReadGood(uint64_t off, void* dst, size_t len) const;
  // b's record (nullopt: unreadable); the caller holds b's lock.
  std::optional<Record> LoadRecord(uint64_t b);
  // Reads b whole and checks it, under b's lock. true: `out`
  // holds b's bytes (checked, or rebuilt). false: *good is how many of
  // its first bytes can be trusted.
  bool ReadBlock(uint64_t b, uint8_t* out, uint64_t* good);
  // b's content from its strips and parity, given what a read gave.
  bool Rebuild(uint64_t b, uint8_t* page, const Record& r);
  // Under b's lock (exclusive): a checked or rebuilt b written back.
  bool Repair(uint64_t b);
  void QueueRepair(uint64_t off, uint64_t len);
  void OnBaseFailure(uint64_t off, uint64_t len, int flags);
  // An area page (a record or parity page) lost: recomputed from the data.
  void RepairAreaPage(uint64_t page);
  Status Resync(uint64_t chunk);
  bool ResyncPoisoned(uint64_t b, uint8_t* page);
  Status WriteBlockPart(uint64_t b, uint64_t in, const uint8_t* src, uint64_t n, bool clean_only, bool* done);
  // The fast paths (ReadClean, WriteClean): whole blocks [b0, b1) as runs
  // when they are all checked file data (Plain), else block by block.
  static constexpr uint64_t kRunBlocks = 256;
  bool Plain(uint64_t b0, uint64_t b1) const;
  bool ReadCleanRun(uint64_t b0, uint64_t b1, uint8_t* out);
  bool WriteCleanRun(uint64_t b0, uint64_t b1, const uint8_t* src);
  bool ReadCleanEach(uint64_t off, uint8_t* out, uint64_t len);
  bool WriteCleanEach(uint64_t off, const uint8_t* in, uint64_t len);
  // m (<= kRunBlocks) whole blocks from b stored and sealed, under their locks.
  bool WriteAndSealRun(uint64_t b, uint64_t m, const uint8_t* data);
  // The locks of up to kRunBlocks blocks from b, exclusive, taken in the
  // one order every taker of more than one follows.
  class StripeLocks {
   public:
    StripeLocks(const ProtectedDevice& d, uint64_t b, uint64_t m);
    ~StripeLocks();

   private:
    const ProtectedDevice& d_;
    std::array<uint16_t, kRunBlocks> idx_;
    size_t n_ = 0;
  };

  dax::Device& base_;
  const Geometry geo_;
  const ProtectionLayout layout_;
  const uint32_t tag_;
  std::unique_ptr<Link> link_;
  mutable std::array<StripeLock, 256> locks_;
  std::mutex intent_mu_;
  std::vector<std::atomic<uint64_t>> intent_;  // the bitmap as durable
  std::atomic<bool> any_intent_{false};
  mutable std::mutex state_mu_;                // guards what follows
  std::multimap<const void*, ByteRange> unsealed_;  // by mapping, blocks
  std::atomic<bool> any_unsealed_{false};
  std::set<uint64_t> lost_;   // blocks parity could not rebuild
  std::set<uint64_t> stale_;  // blocks whose record could not be stored
  std::atomic<bool> any_lost_{false}, any_stale_{false};
  std::vector<ByteRange> to_repair_;  // device bytes
  Counts counts_;
  std::vector<RepairEvent> repairs_;  // a ring of kRepairLog, oldest at repairs_next_ once full
  size_t repairs_next_ = 0;
  RepairListener on_repair_;
  std::vector<RepairEvent> unpublished_;  // since on_repair_ last heard
  void NoteRepair(uint64_t b, bool poison);  // with state_mu_ held
  std::vector<RepairEvent> RepairsLocked() const;  // oldest first
  void PublishRepairs();
};

}  // namespace daxguard::fs
