// daxfs: a DAX filesystem mounted straight on a dax::Device.
//
// Files are extents of device blocks read and written in place through the
// dax layer; metadata is the mirrored MetaLog replayed into State at mount.
// The filesystem is the device's holder: every error that becomes known is
// turned, through the reverse map, into its owners — damaged file ranges
// (recorded on the device, reported after remount, told to open handles),
// metadata blocks (rebuilt from their other copy), or free blocks
// (quarantined until cleared).
//
// Every operation holds the filesystem's lock (OpGuard) except the fast
// path of File::Read/Write: bytes of a handle's fast map (fast_map.h), read
// or written in place inside a light section (common/light_section.h).
// Whatever could change what a fast map says first calls Quiesce. Handles
// reach the filesystem only through the DataPath seam (data_path.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dax/dax_device.h"
#include "fs/data_path.h"
#include "fs/event_journal.h"
#include "fs/file_map.h"
#include "fs/fast_map.h"
#include "fs/meta_log.h"
#include "fs/namespace.h"
#include "fs/protected_device.h"
#include "fs/state.h"

namespace daxguard::fs {

class File;

struct FileStat {
  uint64_t ino = 0;
  Attr attr;
  uint64_t blocks = 0;  // allocated 4 KiB blocks
};

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  uint32_t mode = 0;
  bool damaged = false;  // names no inode, or the root: fsck --repair removes it
};

// One extent as FIEMAP reports it, in bytes.
struct FiemapExtent {
  uint64_t logical = 0, physical = 0, length = 0;
  bool unwritten = false, shared = false, damaged = false, last = false;
};

// Who owns a range of the device.
struct OwnerInfo {
  enum class Kind { kFile, kMetadata, kFree, kQuarantined } kind{};
  uint64_t offset = 0, length = 0;  // device bytes
  uint64_t ino = 0;
  std::string path;                 // files: one path to the inode ("" if unlinked)
  uint64_t file_offset = 0;
  std::string what;                 // metadata: which structure
};

struct DamagedFile {
  uint64_t ino = 0;
  std::string path;
  std::vector<IntervalSet::Interval> ranges;  // file bytes
};

struct HealthReport {
  std::vector<DamagedFile> files;
  std::vector<IntervalSet::Interval> quarantined;  // device bytes
  std::vector<std::string> lost_metadata;
  std::vector<std::string> damaged_entries;  // "/d/x: names missing inode 7"
  bool read_only = false;
  uint64_t metadata_repairs = 0;
  // File data protection (mkfs --data-protection), this mount's counts:
  // blocks rebuilt from parity; blocks reported as damage (parity could not
  // rebuild them, or they had no record: free space never written); and
  // reads that found a block not matching its checksum (stray stores).
  DataProtection protection = DataProtection::kNone;
  uint64_t repaired_blocks = 0, unrepaired_blocks = 0, checksum_mismatches = 0;
  // The blocks this mount rebuilt (the last 1,000), with their owners then.
  struct Repaired {
    uint64_t when_ns = 0;               // CLOCK_REALTIME
    uint64_t offset = 0, length = 0;    // device bytes
    std::string cause;                  // "poison" or "checksum mismatch"
    std::vector<OwnerInfo> owners;
  };
  std::vector<Repaired> repaired;
};

enum OpenFlags : int { kCreate = 1, kExclusive = 2, kTruncate = 4 };
enum FallocMode : int { kFallocKeepSize = 1, kFallocPunchHole = 2, kFallocZeroRange = 4 };
// rename(2)'s RENAME_NOREPLACE and RENAME_EXCHANGE.
enum RenameFlags : int { kRenameNoReplace = 1, kRenameExchange = 2 };
// Which attributes SetAttr changes (the size changes through File::Truncate).
enum AttrMask : int { kAttrMode = 1, kAttrUid = 2, kAttrGid = 4, kAttrAtime = 8, kAttrMtime = 16 };

// Who creates an inode: it is theirs (a FUSE request's caller; by default
// this process).
struct Caller {
  uint32_t uid = 0, gid = 0;
  static Caller Self();
};

// statfs(2)'s counts, in 4 KiB blocks.
struct FsStats {
  uint64_t blocks = 0;  // for data: the device less the metadata areas
  uint64_t free_blocks = 0;
  uint64_t files = 0;
};

class Filesystem : public dax::Holder, private DataPath {
 public:
  static Status Mkfs(dax::Device& dev, DataProtection protection = DataProtection::kNone);
  static Result<std::unique_ptr<Filesystem>> Mount(dax::Device& dev);
  ~Filesystem() override;

  // Paths are absolute, or relative to an inode (PathRef): FUSE names
  // inodes, the command line paths.
  Result<std::unique_ptr<File>> Open(const PathRef& path, int flags = 0, uint32_t mode = 0644,
                                     Caller who = Caller::Self());
  // Replacing a file all or nothing: CreateUnnamed makes a regular file with
  // no name, Publish names it `path` in one log transaction. Until then
  // `path` is untouched; an unnamed file is freed when its last handle
  // closes, or by the next mount after a crash. path's parent must be a
  // directory and path, if it exists, a regular file, whose mode the new
  // file takes (else `mode`).
  Result<std::unique_ptr<File>> CreateUnnamed(const std::string& path, uint32_t mode = 0644);
  // Names `f` (from CreateUnnamed) `path`: readers see the file that was
  // there or `f`, never a mix. The file it replaces loses this name.
  Status Publish(File& f, const std::string& path);
  Status Mkdir(const PathRef& path, uint32_t mode = 0755, Caller who = Caller::Self());
  // mknod(2): a regular file, FIFO or socket (type and permissions in
  // `mode`); device nodes are refused (EPERM).
  Status Mknod(const PathRef& path, uint32_t mode, Caller who = Caller::Self());
  Status Unlink(const PathRef& path);
  Status Rmdir(const PathRef& path);
  // flags: RenameFlags.
  Status Rename(const PathRef& from, const PathRef& to, int flags = 0);
  // rm -r: `path` and everything under it. The whole tree is checked first
  // (the root, '.' or '..' at the end, a damaged entry, a directory named
  // twice refuse it), so a refusal removes nothing; then it leaves the
  // namespace in one commit, so a failure or crash after that is finished
  // by the next mount.
  Status RemoveTree(const std::string& path);
  Status Link(const PathRef& existing, const PathRef& path);
  // A symbolic link at `path` to `target` (1 to 4095 bytes), kept as the
  // link's data in one block (as ext2's slow symlinks): written unnamed,
  // then named in one commit, so a crash leaves the link whole or absent.
  Status Symlink(const std::string& target, const PathRef& path, Caller who = Caller::Self());
  Result<std::string> ReadLink(const PathRef& path);
  Result<std::vector<DirEntry>> ReadDir(const PathRef& path);
  Result<FileStat> Stat(const PathRef& path);
  // chmod, chown, utimens on inode `ino`: what `mask` (AttrMask) names
  // takes a's value (the mode's permission bits only); ctime becomes now.
  Result<FileStat> SetAttr(uint64_t ino, const Attr& a, int mask);
  FsStats StatFs();
  // Extended attributes of inode `ino` (names with their namespace:
  // "user.x"). Set: flags as setxattr(2)'s XATTR_CREATE and XATTR_REPLACE;
  // a name of 1 to 255 bytes, at most 64 KiB of names and values per inode
  // (E2BIG, ENOSPC). A missing name: ENODATA. Each change is one commit.
  Status SetXattr(uint64_t ino, const std::string& name, const std::string& value, int flags);
  Result<std::string> GetXattr(uint64_t ino, const std::string& name);
  Result<std::vector<std::string>> ListXattr(uint64_t ino);
  Status RemoveXattr(uint64_t ino, const std::string& name);
  // The file bytes of inode `ino` that read as EIO.
  Result<std::vector<IntervalSet::Interval>> DamageOf(uint64_t ino);

  Result<std::vector<OwnerInfo>> Who(uint64_t offset, uint64_t length);
  HealthReport Health();
  // The device it is mounted on, for tools that act below the filesystem
  // (crashcheck's poison workloads inject errors through it).
  dax::Device& mounted_device() { return dev_; }
  // How full the metadata log's active slot is: past compacts_at bytes,
  // the next commit writes a fresh snapshot into the other slot.
  struct LogUsage {
    uint64_t used = 0, compacts_at = 0;
  };
  LogUsage log_usage();
  bool read_only();
  // fsck --repair: accepts the losses fsck named (lost log records,
  // extents outside the device or over metadata), rebuilds the reverse map
  // and free space from the extents, rebuilds log blocks that differ
  // between the copies, drops dangling entries, links inodes that lost
  // their entry into /lost+found, sets link counts to what the directory
  // tree says, and writes it all as one fresh snapshot.
  Status RepairForFsck();
  const ReplayReport& mount_report() const { return mount_report_; }
  DataProtection protection() const { return geo_.protection; }
  // The patrol (scrub DEV:fs): every protected block read and checked,
  // what fails rebuilt from parity or reported. Null without protection.
  ProtectedDevice* protected_device() { return protect_.get(); }

  // Called (inode, file offset, length) when part of any file is damaged,
  // open or not, as File::OnDamage is (same thread rules; a notice queued
  // before a change of listener may still reach the old one).
  void OnAnyDamage(DamageFn cb);

  // dax::Holder
  void NotifyFailure(uint64_t offset, uint64_t len, int flags) override;

 private:
  struct Failure {
    uint64_t offset, len;
    int flags;
  };
  // Held by every operation; failures reported meanwhile (even by this
  // thread, from inside a device call) are handled before it is let go.
  class OpGuard {
   public:
    explicit OpGuard(Filesystem* fs);
    OpGuard(Filesystem* fs, std::adopt_lock_t);  // after fs->TryLock()
    ~OpGuard();

   private:
    Filesystem* fs_;
  };

  // On `base`, or on `protect` over it (the data protection's device).
  Filesystem(dax::Device& base, const Geometry& g, std::unique_ptr<ProtectedDevice> protect);
  static thread_local Filesystem* in_op_;  // the filesystem this thread is operating on
  // Takes mu_ unless an operation holds it (false: that operation handles
  // the failures reported so far before it lets go); never waits for one.
  bool TryLock();
  void Lock();
  void Unlock();

  // DataPath: what file handles get of the core.
  dax::Device& device() override { return dev_; }
  State& state() override { return state_; }
  Status Writable() const override;
  bool gone() const override { return removed_; }
  Status Commit(std::vector<Op> ops) override;
  std::vector<Op> FreeBlocksOps(Inode* in, uint64_t fblk, uint64_t len) override;
  void OpenInode(uint64_t ino) override { open_inodes_.insert(ino); }
  // Frees the file if that was the last reference and it has no links.
  void CloseInode(uint64_t ino) override;
  void BeginOp() override { Lock(); }
  void MappingGone(const dax::MappedRegion& region) override {
    if (protect_) protect_->Reseal(&region);
  }
  // Handles the failures reported during the operation, unlocks, then
  // sends the damage notices they raised.
  void EndOp() override;

  // Mount, after replay: the stored reverse map against the extents.
  Status CheckAtMount();
  Status UnlinkEntry(Inode* parent, const std::string& name, Inode* in);
  // A new inode of `mode` named by the free entry `at`, in one commit.
  Result<uint64_t> CreateNode(const Located& at, uint32_t mode, Caller who);
  // RENAME_EXCHANGE: the two entries swap what they name.
  Status Exchange(const Located& a, const Located& b, const std::string& to);
  Status RmdirEntry(Inode* parent, const std::string& name, Inode* in);
  // Where `path` may be published: a regular file or nothing, and not the root.
  Result<Located> ReplaceableEntry(const std::string& path);
  // The operations removing `tree` (each directory before what it holds).
  std::vector<Op> RemoveTreeOps(const std::vector<TreeEntry>& tree);
  // Where a change goes: committed (mount, rm -r) or, for fsck --repair,
  // applied in memory and written out as one snapshot at the end.
  using Sink = std::function<Status(std::vector<Op>)>;
  // Empties a directory rm -r detached (State::IsDetached), deepest entries
  // first, at most kRemoveBatch entries per batch.
  Status EmptyDetached(Inode* top, const Sink& sink);
  static constexpr size_t kRemoveBatch = 64;
  // What the system stopped in the middle of: an rm -r goes on, and files
  // unlinked while open are freed, as is each emptied directory.
  Status FinishUnlinked(const Sink& sink);
  void DropIfUnused(Inode* in, std::vector<Op>* ops);
  std::string PathOf(uint64_t ino);
  // Who, under the lock.
  Result<std::vector<OwnerInfo>> WhoLocked(uint64_t offset, uint64_t length);
  void ProcessFailures();
  void HandleFailure(const Failure& f);
  void DamageFileRange(uint64_t ino, uint64_t off, uint64_t len, std::vector<Op>* ops);
  // Tells monitors (EventJournal) what handling a failure did.
  void PublishHandled(const std::vector<Op>& ops);
  void GoReadOnly(const std::string& why);

  // Before protect_: its repairs are published until it is gone.
  std::unique_ptr<EventJournal> journal_;
  std::unique_ptr<ProtectedDevice> protect_;  // null without data protection
  dax::Device& dev_;                          // protect_, or the device mounted
  Geometry geo_;
  MetaLog log_;
  State state_;
  Namespace ns_{state_};
  ReplayReport mount_report_;
  std::mutex mu_;
  // mu_ is held: a failure reported by another thread meanwhile is left to
  // the holder, which looks at failures_pending_ after clearing this.
  std::atomic<bool> locked_{false};
  std::mutex failures_mu_;
  std::vector<Failure> failures_;
  // Whether failures_ may be non-empty: lets every operation's guard skip
  // failures_mu_ when nothing was reported (the usual case).
  std::atomic<bool> failures_pending_{false};
  std::multiset<uint64_t> open_inodes_;
  std::vector<std::function<void()>> callbacks_;  // damage notices, run after unlocking
  std::vector<std::string> read_only_why_;
  uint64_t metadata_repairs_ = 0;
  bool removed_ = false;
  bool mounted_ = false;  // the device's holder: only then may unmount mark the log's end
};

class File {
 public:
  ~File();
  uint64_t ino() const { return ino_; }
  Result<size_t> Read(uint64_t off, void* dst, size_t len);
  Result<size_t> Write(uint64_t off, const void* src, size_t len);
  // An untorn write (Linux's RWF_ATOMIC): [off, off+len) lies within one
  // 4 KiB page, and after a power failure the file holds all of it or none
  // of it; durable when it returns. The page is written whole on a fresh
  // block and switched in by one log commit, with the size if it grows.
  // Plain writes go in place and a power failure may tear them (as on
  // ext4 and XFS with DAX).
  Status WriteAtomic(uint64_t off, const void* src, size_t len);
  Status Truncate(uint64_t size);
  Status Fallocate(int mode, uint64_t off, uint64_t len);
  // Shares src's blocks for [soff, soff+len) at doff (reflink). len 0: to
  // src's end. Offsets are whole blocks; len may end at src's end.
  Status CloneFrom(File& src, uint64_t soff, uint64_t doff, uint64_t len);
  Status Fsync();
  Result<FileStat> Stat();
  Result<std::vector<FiemapExtent>> Fiemap();
  // Maps [off, off+len) of the file into the process (see fs/file_map.h).
  // off is a multiple of 4096; pages past the end of the file trap.
  Result<std::unique_ptr<FileMapping>> Map(uint64_t off, uint64_t len, bool writable);
  // Called (with file offset and length) when part of this file is damaged,
  // on whichever thread handled the failure, with no filesystem lock held.
  // That may be the device's delivering thread, which another operation can
  // be waiting for (a device call returns once its error is told): the
  // callback must record or signal, not call into this filesystem.
  void OnDamage(std::function<void(uint64_t, uint64_t)> cb) { on_damage_ = std::move(cb); }

 private:
  friend class DataPath;
  enum class Access { kLook, kChange };
  using Guard = std::optional<DataPath::Scope>;
  File(DataPath* dp, uint64_t ino) : dp_(dp), ino_(ino) {}
  // How every operation but the fast path starts: the filesystem mounted
  // (then its guard is taken into *g), the device there, the file too, and
  // for a change the filesystem writable and the fast path quiesced.
  Result<Inode*> Begin(Guard* g, Access a);
  Result<Inode*> Me();
  // Reads into `mem` (void), or writes from it (const void), [off,
  // off+len) through the fast map without the filesystem's lock when it
  // lies in one clean run; false: not done.
  template <typename Mem>
  bool FastIo(uint64_t off, size_t len, Mem* mem);
  // After a miss, under the guard: whether the fast map could serve
  // [off, off+len) once refilled, and the refill (done after the operation).
  bool FastEligible(const Inode& in, uint64_t off, uint64_t len) const;
  void RefillFastMap(const Inode& in, uint64_t off);
  // The careful way, under the guard; then the refill if it may help.
  [[gnu::noinline]] Result<size_t> ReadSlow(uint64_t off, void* dst, size_t len);
  [[gnu::noinline]] Result<size_t> WriteSlow(uint64_t off, const void* src, size_t len);
  Result<size_t> ReadLocked(Inode* in, uint64_t off, uint8_t* out, size_t len);
  Result<size_t> WriteLocked(Inode* in, uint64_t off, const uint8_t* src, size_t len);
  // Bytes written into a damaged line covered only in part would read back
  // EIO: writes, punches and zeroing refuse such a line (EIO) within the
  // file; truncation keeps it damaged (its bytes past the end go unread).
  enum class PartLine { kRefuse, kKeepDamaged };
  // EIO if [off, off+len) covers only part of a damaged or poisoned line
  // within the file: checked before anything is written, so nothing is.
  Status CheckPartLines(const Inode& in, uint64_t off, uint64_t len) const;
  Status WriteRun(Inode* in, uint64_t pos, const uint8_t* src, uint64_t n, uint64_t* wrote, Transaction* tx);
  // Where StageBlock puts a block's new content: over the file's own
  // written block when it has one (else a fresh block), or always on a
  // fresh block, so that the old content stays until the change commits.
  enum class Place { kOwnInPlace, kFresh };
  // Writes one block's new content (the old lines, bad ones zeroed and kept
  // damaged, with [in_blk, +n) from src laid over) and appends the
  // operations that make it the file's; commits nothing.
  Status StageBlock(Inode* in, uint64_t fblk, uint64_t in_blk, const uint8_t* src, uint64_t n, PartLine part,
                    Place place, Transaction* tx);
  // StageBlock in place, then commits *ops.
  Status WriteBlock(Inode* in, uint64_t fblk, uint64_t in_blk, const uint8_t* src, uint64_t n, PartLine part,
                    Transaction* tx);
  // A free run of up to `want` blocks at or after `goal` (wrapping) that no
  // Map staged in `staged` targets: those blocks stay free until the commit.
  std::optional<IntervalSet::Interval> FreeRun(uint64_t want, uint64_t goal, const std::vector<Op>& staged) const;
  Status FillHole(Inode* in, uint64_t fblk, uint64_t nblk, uint64_t pos, const uint8_t* src, uint64_t n,
                  Transaction* tx, bool unwritten);
  // Stages zeroes over [off, +len) where the file has written or damaged bytes.
  Status ZeroBytes(Inode* in, uint64_t off, uint64_t len, PartLine part, Place place, Transaction* tx);
  // Truncation to `size` inside a block: the rest of that block is zeroed
  // on a fresh block (in place only when there is none), so a truncation
  // stopped before its commit leaves the file's bytes as they were.
  Status ZeroTail(Inode* in, uint64_t size, Transaction* tx);
  Status ZeroWholeBlocks(Inode* in, uint64_t b0, uint64_t b1, Transaction* tx,
                         std::vector<IntervalSet::Interval>* zero_after);
  // Growing the file to `size` brings its bytes from the old end on into
  // it, and they must read as zeroes. They do (truncation zeroes the rest
  // of the last block, new blocks come zeroed) except where poison found
  // past the end left damage: those lines are zeroed and the damage dropped.
  Status GrowOver(Inode* in, uint64_t size);
  void TouchAttr(Inode* in, uint64_t new_size, Transaction* tx);
  // Gives file blocks [b0, b1) written blocks of this file's own (damaged
  // ones excepted: they trap until repaired), so that stores through a
  // mapping reach this file alone.
  Status Unshare(Inode* in, uint64_t b0, uint64_t b1);
  Status UnshareBlock(Inode* in, uint64_t fblk, Transaction* tx);
  // Unshares what writable mappings of this file cover in [b0, b1).
  Status UnshareMapped(Inode* in, uint64_t b0, uint64_t b1);

  DataPath* dp_;  // null once the filesystem is unmounted
  uint64_t ino_;
  std::function<void(uint64_t, uint64_t)> on_damage_;
  FastMap fast_;
  std::atomic<bool> times_marked_{false};  // a fast write left mtime/ctime to update
};

}  // namespace daxguard::fs
