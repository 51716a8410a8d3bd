// MetaLog: the metadata log, kept in two copies (A and B) far apart on the
// device, each record checksummed. Appends go to A, then B. Replay reads A
// and falls back to B record by record; a block bad in one copy is rebuilt
// from the other, line by line, so one copy's poison never loses anything.
// Every write is written back and fenced before the next record, and a
// record is durable when its append returns (see WriteRecords).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dax/dax_device.h"
#include "fs/format.h"
#include "fs/ops.h"

namespace daxguard::fs {

struct ReplayReport {
  uint64_t records = 0;
  uint64_t repaired_blocks = 0;          // rebuilt from the other copy
  // The last record was in copy A only: a crash between the copies' writes,
  // not damage. Replay copies it to B.
  bool last_record_resynced = false;
  std::vector<std::string> lost;         // metadata unreadable in both copies
  std::vector<std::string> unknown;      // of those, records whose changes nobody can tell
  std::vector<std::string> repaired;     // what mount found wrong and put right
};

inline constexpr uint64_t kEndOfLogZeroes = 1 << 20;

// What of a daxfs `dev` holds, in words ("superblock copy A", "a record
// of metadata log copy B slot 0"), or "" if nothing at all. A region that
// cannot be read counts, since it may hold one: mkfs refuses both without
// -f, and mount names them rather than advise mkfs.
std::string FindDaxfs(dax::Device& dev, const Geometry& g);

class MetaLog {
 public:
  MetaLog(dax::Device& dev, const Geometry& g) : dev_(dev), geo_(g) {}

  // mkfs: the snapshot goes into a slot of both copies, then the
  // superblocks. Over a daxfs it is the slot the old one does not use, and
  // the old one's slot is cleared after the switch.
  Status Format(const std::vector<Op>& snapshot);
  // mount: choose the newest valid superblock and replay its slot. Past
  // records lost in both copies, `lost` (if set) is given what the last of
  // them changed, as the record after it tells, before that record is applied.
  Status Replay(const std::function<Status(const std::vector<Op>&)>& apply, ReplayReport* report,
                const std::function<void(const Summary&)>& lost = nullptr);
  // Commits one transaction: on return it is in both copies.
  Status Append(const std::vector<Op>& ops);
  bool WantsCompaction() const { return tail_ > CompactsAt(); }
  // Past this many bytes of the active slot, the next commit compacts.
  uint64_t CompactsAt() const { return SlotBytes() / 2; }
  // Whether `ops` make a record small enough to commit as one (a quarter of
  // a slot at most, so it fits after any compaction that leaves room).
  bool FitsOneRecord(const std::vector<Op>& ops) const;
  // Writes `snapshot` into the other slot and switches the superblocks to it.
  Status Compact(const std::vector<Op>& snapshot);
  // Clean unmount: records where the log ends (see CleanEnd).
  Status MarkCleanEnd();

  // What metadata device block `blk` holds, in words.
  std::string Describe(uint64_t blk) const;
  // Makes block `blk` whole again from the other copy (or clears it if it
  // holds nothing live). *lost says whether live bytes were bad in both.
  Status Repair(uint64_t blk, bool* lost);
  // Compares both copies of every live block; rebuilds what differs.
  Status Scrub(ReplayReport* report);

  // Dry run (fsck without --repair): nothing is written; what would have
  // been repaired is still counted.
  void set_dry_run(bool on) { dry_run_ = on; }

  uint64_t tail() const { return tail_; }
  const SuperBlock& super() const { return sb_; }
  // The superblock a mount would choose (from either copy, or rebuilt from
  // a log copy), read without writing anything: what a mount asks first, to
  // learn the geometry (the data protection) it mounts with.
  static std::optional<SuperBlock> FindSuper(dax::Device& dev);
  // The geometry of the filesystem on `dev` (its data protection from
  // FindSuper; none if there is no superblock).
  static Geometry GeometryOf(dax::Device& dev);

 private:
  enum class Read { kOk, kEnd, kPoison };
  // A record's payload, and its summary (which the next record carries).
  struct Encoded {
    std::string payload, summary;
  };
  static std::vector<Encoded> Encode(const std::vector<Op>& ops);
  static std::vector<Encoded> EncodeSnapshot(const SuperBlock& sb, const std::vector<Op>& snapshot);
  uint64_t SlotBytes() const { return geo_.SlotBlocks() * kBlockSize; }
  // The valid superblock of the highest generation, if any.
  std::optional<SuperBlock> NewestValidSuper() const;
  // Superblock copy `copy` as read (false: unreadable), its fields past
  // its format's zeroed.
  bool ReadSuperAt(int copy, SuperBlock* sb) const;
  // Zeroes `slot` in both copies (clearing poison too).
  Status ZeroSlot(int slot);
  uint64_t SlotAddr(int copy, int slot, uint64_t off) const {
    return geo_.SlotStart(copy, slot) * kBlockSize + off;
  }
  Read ReadRecord(int copy, uint64_t pos, uint64_t seq, std::string* bytes) const;
  // Bytes [off, +len) of the active slot, each 64-byte line from whichever
  // copy reads (zeroes where neither does).
  void ReadEither(uint64_t off, uint8_t* dst, size_t len) const;
  // Resync after a hole: the first valid record past `pos` with a seq
  // above `seq`. Records of an earlier use of the slot have lower seqs.
  // The search ends at kEndOfLogZeroes zero bytes in a row: a hole that
  // long (a MiB of metadata lost in both copies, then cleared) ends the log.
  bool FindNextRecord(uint64_t pos, uint64_t seq, uint64_t* next_pos, uint64_t* next_seq) const;
  // Writes and writes back `bytes`; the caller fences.
  Status WriteBytes(int copy, int slot, uint64_t off, const std::string& bytes);
  void Fence() {
    if (!dry_run_) dev_.Fence();
  }
  // Writes `recs` from `off`, each with the summary of the one before it
  // (`before`: of the record before the first).
  Status WriteRecords(int slot, uint64_t off, uint64_t seq, const std::vector<Encoded>& recs,
                      const std::string& before, uint64_t* end);
  // Records [first, next) were lost; `summary` is what record `next` says
  // the one before it changed.
  void NoteLoss(uint64_t first, uint64_t next, std::string_view summary,
                const std::function<void(const Summary&)>& lost, ReplayReport* report) const;
  Status WriteSuper();
  // Whether a clean unmount recorded the log as ending at (pos, seq).
  bool CleanEndAt(uint64_t pos, uint64_t seq) const;
  Status WriteCleanEnd(const CleanEnd& end);
  // The newest valid superblock; if neither copy is, the one rebuilt from
  // a log copy (RecoverSuper), named in report->repaired.
  Status ChooseSuper(ReplayReport* report);
  // Both superblocks lost: every snapshot begins with a copy of the
  // superblock that points at it. The newest copy whose snapshot reads
  // whole, from either log copy, becomes sb_; *from names where it was.
  bool RecoverSuper(std::string* from);
  // The superblock copy at the start of `slot` in log copy `copy`, and how
  // many records its snapshot spans, if it is one and valid.
  bool ReadSuperCopy(int copy, int slot, SuperBlock* sb, uint64_t* records) const;
  // Whether every record of the snapshot `sb` points at reads, from either copy.
  bool SnapshotWhole(const SuperBlock& sb, uint64_t records);
  // Rebuilds block `idx` of `slot` in both copies from whichever copy reads
  // each 64-byte line; returns how many lines neither copy could give.
  Result<uint64_t> RebuildBlock(int slot, uint64_t idx, int suspect = -1);

  dax::Device& dev_;
  Geometry geo_;
  SuperBlock sb_{};
  uint64_t tail_ = 0;      // bytes used in the active slot
  uint64_t next_seq_ = 0;  // seq of the next record
  std::string prev_summary_;  // of the last record: the next one carries it
  bool dry_run_ = false;
  bool clean_end_cleared_ = false;  // since this mount, before any append
  // Dry run: where copy B still lacks the last record (Scrub stops there).
  uint64_t unsynced_from_ = UINT64_MAX;
};

}  // namespace daxguard::fs
