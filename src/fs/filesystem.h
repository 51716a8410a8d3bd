// daxfs: a DAX filesystem mounted straight on a dax::Device.
//
// Files are extents of device blocks read and written in place through the
// dax layer; metadata is the mirrored MetaLog replayed into State at mount.
// The filesystem is the device's holder: every error that becomes known is
// turned, through the reverse map, into its owners — damaged file ranges
// (recorded on the device, reported after remount, told to open handles),
// metadata blocks (rebuilt from their other copy), or free blocks
// (quarantined until cleared).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "dax/dax_device.h"
#include "fs/meta_log.h"
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
  bool read_only = false;
  uint64_t metadata_repairs = 0;
};

enum OpenFlags : int { kCreate = 1, kExclusive = 2, kTruncate = 4 };
enum FallocMode : int { kFallocKeepSize = 1, kFallocPunchHole = 2, kFallocZeroRange = 4 };

class Filesystem : public dax::Holder {
 public:
  static Status Mkfs(dax::Device& dev);
  static Result<std::unique_ptr<Filesystem>> Mount(dax::Device& dev);
  ~Filesystem() override;

  Result<std::unique_ptr<File>> Open(const std::string& path, int flags = 0, uint32_t mode = 0644);
  Status Mkdir(const std::string& path, uint32_t mode = 0755);
  Status Unlink(const std::string& path);
  Status Rmdir(const std::string& path);
  Status Rename(const std::string& from, const std::string& to);
  Status Link(const std::string& existing, const std::string& path);
  Result<std::vector<DirEntry>> ReadDir(const std::string& path);
  Result<FileStat> Stat(const std::string& path);

  Result<std::vector<OwnerInfo>> Who(uint64_t offset, uint64_t length);
  HealthReport Health();
  bool read_only();
  // fsck --repair: accepts the losses fsck named (lost log records,
  // extents outside the device or over metadata), rebuilds the reverse map
  // and free space from the extents, rebuilds log blocks that differ
  // between the copies, sets link counts to what the directory tree says,
  // drops dangling entries, and writes a fresh snapshot.
  Status RepairForFsck();
  const ReplayReport& mount_report() const { return mount_report_; }

  // dax::Holder
  void NotifyFailure(uint64_t offset, uint64_t len, int flags) override;

 private:
  friend class File;
  struct Failure {
    uint64_t offset, len;
    int flags;
  };
  // Held by every operation; failures reported meanwhile (even by this
  // thread, from inside a device call) are handled before it is let go.
  class OpGuard {
   public:
    explicit OpGuard(Filesystem* fs);
    ~OpGuard();

   private:
    Filesystem* fs_;
  };

  explicit Filesystem(dax::Device& dev);
  static thread_local Filesystem* in_op_;  // the filesystem this thread is operating on
  Status Commit(std::vector<Op> ops);
  // Mount, after replay: the stored reverse map against the extents.
  Status CheckAtMount();
  Status Writable() const;
  Result<Inode*> Resolve(const std::string& path);
  Status ResolveParent(const std::string& path, Inode** parent, std::string* name);
  // The entry `path` names: its parent directory, its name, and its inode.
  Result<Inode*> ResolveEntry(const std::string& path, Inode** parent, std::string* name);
  std::vector<Op> FreeBlocksOps(Inode* in, uint64_t fblk, uint64_t len);
  void DropIfUnused(Inode* in, std::vector<Op>* ops);
  std::string PathOf(uint64_t ino);
  void ProcessFailures();
  void HandleFailure(const Failure& f);
  void DamageFileRange(uint64_t ino, uint64_t off, uint64_t len, std::vector<Op>* ops);
  void GoReadOnly(const std::string& why);

  dax::Device& dev_;
  Geometry geo_;
  MetaLog log_;
  State state_;
  ReplayReport mount_report_;
  std::mutex mu_;
  std::mutex failures_mu_;
  std::vector<Failure> failures_;
  // Whether failures_ may be non-empty: lets every operation's guard skip
  // failures_mu_ when nothing was reported (the usual case).
  std::atomic<bool> failures_pending_{false};
  std::multiset<uint64_t> open_inodes_;
  std::set<File*> open_files_;
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
  Status Truncate(uint64_t size);
  Status Fallocate(int mode, uint64_t off, uint64_t len);
  // Shares src's blocks for [soff, soff+len) at doff (reflink). len 0: to
  // src's end. Offsets are whole blocks; len may end at src's end.
  Status CloneFrom(File& src, uint64_t soff, uint64_t doff, uint64_t len);
  Status Fsync();
  Result<FileStat> Stat();
  Result<std::vector<FiemapExtent>> Fiemap();
  // Called (with file offset and length) when part of this file is damaged.
  void OnDamage(std::function<void(uint64_t, uint64_t)> cb) { on_damage_ = std::move(cb); }

 private:
  friend class Filesystem;
  File(Filesystem* fs, uint64_t ino) : fs_(fs), ino_(ino) {}
  Result<Inode*> Me();
  Status WriteRun(Inode* in, uint64_t pos, const uint8_t* src, uint64_t n, std::vector<Op>* ops);
  Status WriteBlock(Inode* in, uint64_t fblk, uint64_t in_blk, const uint8_t* src, uint64_t n, std::vector<Op>* ops);
  Status FillHole(Inode* in, uint64_t fblk, uint64_t nblk, uint64_t pos, const uint8_t* src, uint64_t n,
                  std::vector<Op>* ops, bool unwritten);
  Status ZeroBytes(Inode* in, uint64_t off, uint64_t len, std::vector<Op>* ops);
  void TouchAttr(Inode* in, uint64_t new_size, std::vector<Op>* ops);

  Filesystem* fs_;
  uint64_t ino_;
  std::function<void(uint64_t, uint64_t)> on_damage_;
};

}  // namespace daxguard::fs
