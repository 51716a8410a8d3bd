// The seam between daxfs's data path and its core.
//
// The data path is what file handles do: File (file_io.cc) reads and writes
// device blocks in place, fills holes, copies shared blocks before changing
// them; FileMapping (file_map.cc) places a file's extents into a process.
// The core (Filesystem) keeps the log, the state, the namespace and the
// handling of failures. The data path asks the core for what the pure
// virtuals below name and nothing else, and keeps its own state here: the
// open handles and mappings, and the data generation and clean path the
// handles' fast maps run on.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "dax/clean_path.h"
#include "dax/dax_device.h"
#include "fs/ops.h"
#include "fs/state.h"

namespace daxguard::fs {

class File;
class FileMapping;

class DataPath {
 public:
  // One operation: the core's lock, and on leaving, the failures reported
  // meanwhile handled and the damage notices they raise sent.
  class Scope {
   public:
    explicit Scope(DataPath* dp) : dp_(dp) { dp_->BeginOp(); }
    ~Scope() { dp_->EndOp(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    DataPath* dp_;
  };

  // What the core provides (all under a Scope).
  virtual dax::Device& device() = 0;
  virtual State& state() = 0;
  // EROFS (or EIO once the device is gone) when changes are refused.
  virtual Status Writable() const = 0;
  virtual bool gone() const = 0;  // the device was removed under the filesystem
  // Appends `ops` to the log as one record and applies them.
  virtual Status Commit(std::vector<Op> ops) = 0;
  // Unmaps file blocks [fblk, +len) of `in`, quarantining the poisoned
  // blocks this frees.
  virtual std::vector<Op> FreeBlocksOps(Inode* in, uint64_t fblk, uint64_t len) = 0;
  // One open reference (a handle or a mapping) more, or one fewer: the last
  // of an unlinked file frees it.
  virtual void OpenInode(uint64_t ino) = 0;
  virtual void CloseInode(uint64_t ino) = 0;

  // What the data path keeps.
  std::unique_ptr<File> NewHandle(uint64_t ino);
  void CloseHandle(File* f);
  bool Holds(const File& f) const;
  // Starts a new data generation: every handle's fast map goes stale, and
  // the fast reads and writes under way end before this returns. Called
  // before anything they could race changes: state, data in place, or
  // whether writes are taken.
  void Quiesce();
  uint64_t data_gen(std::memory_order order) const { return data_gen_.load(order); }
  // A handle's fast map was filled (its stores are written back as they
  // are made, by the clean path).
  void NoteFastMapFilled() { fast_maps_filled_ = true; }
  // A writable mapping of `ino` was made: its stores into the file's
  // blocks are plain stores, which fsync and unmount must write back.
  void NoteWritableMapping(uint64_t ino) { mapped_for_write_.insert(ino); }
  // Writes back `in`'s blocks if a mapping may have stored in them (every
  // other store is written back as it is made). Durable at the next Fence.
  // All such files, at unmount.
  Status WriteBackMappedStores(const Inode& in);
  Status WriteBackMappedStores();
  dax::CleanPath& clean() { return clean_; }
  // Sets the timestamps that fast writes through `in`'s handles marked
  // for update (POSIX lets them wait until looked at, fsync or close).
  void FoldTimes(Inode* in);
  // Queues the OnDamage notices of `ino`'s handles, and the filesystem's
  // (OnAnyDamage), for file bytes [off, +len).
  void NoticeDamage(uint64_t ino, uint64_t off, uint64_t len, std::vector<std::function<void()>>* out);
  using DamageFn = std::function<void(uint64_t ino, uint64_t off, uint64_t len)>;
  void SetAnyDamage(DamageFn cb) { any_damage_ = std::move(cb); }
  // Mappings (file_map.cc): each is placed from the current state, and
  // kept in step with every committed op.
  void AddMapping(FileMapping* m);
  void DropMapping(FileMapping* m);
  std::vector<const FileMapping*> MappingsOf(uint64_t ino) const;
  void PlaceMapping(FileMapping* m, uint64_t b0, uint64_t b1);
  void RefreshMappings(const std::vector<Op>& ops);
  // Unmount: handles left open fail cleanly from now on, and mappings left
  // behind lose their pages (the device is no longer ours to hand out).
  void DetachAll();

 protected:
  explicit DataPath(dax::Device& dev) : clean_(dev) {}
  ~DataPath() = default;
  virtual void BeginOp() = 0;
  virtual void EndOp() = 0;
  // A mapping's region is let go (its stores are over).
  virtual void MappingGone(const dax::MappedRegion& /*region*/) {}

 private:
  // The data generation fast maps are filled from and checked against, and
  // whether any was filled since it began (else a new one is not needed).
  std::atomic<uint64_t> data_gen_{1};
  DamageFn any_damage_;
  bool fast_maps_filled_ = false;
  dax::CleanPath clean_;  // the fast path's copies
  std::set<File*> open_files_;
  std::set<uint64_t> mapped_for_write_;  // inodes a writable mapping was made of, this mount
  std::multimap<uint64_t, FileMapping*> mappings_;  // by inode
};

// The log records of one change to a file, staged while the change writes
// its blocks, then committed as one record. A change too large for one
// (a long hole filled run by run) commits in steps, each visibly so.
class Transaction {
 public:
  explicit Transaction(DataPath* dp) : dp_(dp) {}
  void Add(Op op) { ops_.push_back(std::move(op)); }
  void Add(std::vector<Op> ops) {
    for (Op& op : ops) ops_.push_back(std::move(op));
  }
  const std::vector<Op>& ops() const { return ops_; }
  // Appends what is staged as one log record and applies it; the
  // transaction is empty afterwards, whatever the outcome.
  Status Commit() { return dp_->Commit(std::exchange(ops_, {})); }

 private:
  DataPath* dp_;
  std::vector<Op> ops_;
};

}  // namespace daxguard::fs
