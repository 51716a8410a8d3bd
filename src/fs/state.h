// State: everything daxfs knows, in memory, built by applying operations
// (from the log at mount, or from a live change just committed). Applying
// is the only way the state changes, so what is on the device and what is
// in memory cannot drift apart.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fs/format.h"
#include "fs/interval_set.h"
#include "fs/ops.h"
#include "fs/space_map.h"

namespace daxguard::fs {

struct Extent {
  uint64_t pblk = 0;
  uint64_t len = 0;  // blocks
  bool unwritten = false;
};

// File blocks [fblk, +len) as one extent maps them (`extent`, clipped to
// them) or, without one, a hole.
struct FileRun {
  uint64_t len = 0;
  std::optional<Extent> extent;
};

struct Inode {
  uint64_t ino = 0;
  Attr attr;
  std::map<uint64_t, Extent> extents;           // by first file block
  IntervalSet damage;                           // file bytes that read as EIO
  std::map<std::string, uint64_t> entries;      // directories: name -> ino
  std::map<std::string, std::string> xattrs;    // extended attributes: name -> value
  bool is_dir() const;
  // The extent holding file block `fblk`, clipped to start there.
  std::optional<Extent> ExtentAt(uint64_t fblk) const;
  // The run starting at file block `fblk`: the extent there, or the hole up
  // to the next one; it stops at `end` (> fblk).
  FileRun RunAt(uint64_t fblk, uint64_t end) const;
};

// A run of device blocks one file maps at one place, as the extents and as
// the reverse map both tell it: (ino, fblk) -> [pblk, +len).
struct Mapping {
  uint64_t ino = 0, fblk = 0, pblk = 0, len = 0;
  bool operator==(const Mapping&) const = default;
};

// Where the stored reverse map and the extents disagree.
struct ReverseMapDiff {
  std::vector<Mapping> only_in_extents;
  std::vector<Mapping> only_in_reverse_map;
  bool metadata_differs = false;  // the metadata owners are not the geometry's
  std::vector<std::string> bad_records;  // reverse-map, quarantine and inode records not applied
  bool empty() const {
    return only_in_extents.empty() && only_in_reverse_map.empty() && !metadata_differs && bad_records.empty();
  }
};

class State {
 public:
  explicit State(const Geometry& g) : geo_(g), space_(g) {}

  Status Apply(const Op& op);
  // Replay, past log records lost in both copies: what the last of them
  // changed (`s`, as the record after it tells) becomes damage, reading as
  // EIO until rewritten; the sizes it set are set again, and inodes it made
  // that are missing stand in (linked nowhere: fsck --repair reconnects
  // them). Until EndReplay, a later record mapping or unmapping those bytes
  // gives them definite contents again, and takes that damage back.
  void ApplyLoss(const Summary& s);
  void EndReplay() { lost_ranges_.clear(); }
  // Applies every operation; returns the first failure.
  Status ApplyAll(const std::vector<Op>& ops);
  // The whole state as operations: replayed into an empty State it gives
  // this one back. Used as the head of a fresh log slot.
  std::vector<Op> Snapshot() const;

  Inode* Find(uint64_t ino);
  const Inode* Find(uint64_t ino) const;
  const std::map<uint64_t, std::unique_ptr<Inode>>& inodes() const { return inodes_; }
  const SpaceMap& space() const { return space_; }
  const Geometry& geometry() const { return geo_; }
  uint64_t NextIno() const { return next_ino_; }
  // Losses fsck --repair accepted without knowing what they changed
  // (kMetaLost): carried in every snapshot, so health and fsck keep naming them.
  const std::vector<std::string>& lost() const { return lost_; }
  // What the last fsck --repair could not repair (kUnrepaired): the
  // filesystem mounts read-only until a repair succeeds.
  const std::vector<std::string>& unrepaired() const { return unrepaired_; }
  // Extents of the log that pointed beyond the device or over metadata:
  // never applied. `why` says which.
  struct BadExtent {
    Mapping at;
    std::string why;
  };
  const std::vector<BadExtent>& bad_extents() const { return bad_extents_; }
  // "inode 12 (/a): extent at file block 0 -> device blocks 9000..9003 lies beyond the device"
  std::string Describe(const BadExtent& b) const;
  const std::vector<MetaRun>& meta_owners() const { return meta_owners_; }

  // The stored reverse map (the snapshot's, kept current by every change
  // since) against the extents: empty when they agree.
  ReverseMapDiff CheckReverseMap() const;
  // Whether CheckReverseMap could find anything: changes since a snapshot
  // move extents and reverse map in step, so they agree unless the stored
  // records did not, each checked against the extents as it was loaded
  // (every owner backed by an extent, runs disjoint, block totals equal).
  // Mount runs the full check only then: it touches every inode.
  bool ReverseMapSuspect() const;
  // The reverse map, reference counts and free space recomputed from the
  // extents (quarantine kept where no file owns the blocks).
  SpaceMap SpaceFromExtents() const;
  // Replaces the stored reverse map (and metadata owners) with the above.
  void RebuildReverseMap();
  // fsck --repair: dropped extents are accepted and forgotten, and so is
  // what an earlier repair could not repair (this one tries again); losses
  // of unknown reach (`unknown`) are accepted and kept, as lost().
  void AcceptLosses(const std::vector<std::string>& unknown);
  // One path from the root to `ino` ("/" for the root, "" if no directory
  // reachable from the root names it), found by walking up the directory
  // entries that name it: as cheap as the tree is deep. With several
  // links, the first that reaches the root in (parent, name) order.
  std::string PathOf(uint64_t ino) const;
  // The first (directory, name) naming `ino`, or null if none does.
  const std::pair<uint64_t, std::string>* FirstName(uint64_t ino) const;
  // How many directory entries name `ino`.
  size_t NameCount(uint64_t ino) const;
  // Directories cut from the tree by rm -r and not yet emptied: no name, a
  // link count of 0 (which no other change leaves a directory with).
  // Mount finishes removing them; fsck counts what they hold as reachable.
  bool IsDetached(const Inode& in) const;
  std::vector<Inode*> DetachedDirs() const;

 private:
  // Why a record's device blocks [pblk, +len) cannot be data blocks (beyond
  // the device, or metadata); nullptr when they can.
  const char* BadDeviceRun(uint64_t pblk, uint64_t len) const;
  // `own`: keep the reverse map in step (false for snapshot extents, whose
  // reverse map is stored apart).
  Status Map(Inode* in, uint64_t fblk, uint64_t pblk, uint64_t len, bool unwritten, bool own);
  void Unmap(Inode* in, uint64_t fblk, uint64_t len, bool own = true);
  Inode* StandIn(uint64_t ino, uint32_t mode);
  // A later record gave file blocks [fblk, +len) definite contents.
  void ForgetLostRange(Inode* in, uint64_t fblk, uint64_t len);
  void LoadOwners(const Op& op);
  void LoadRun(const Op& op);
  void AddParent(uint64_t child, uint64_t dir, const std::string& name);
  void RemoveParent(uint64_t child, uint64_t dir, const std::string& name);

  Geometry geo_;
  SpaceMap space_;
  std::map<uint64_t, std::unique_ptr<Inode>> inodes_;
  // Every directory entry, by the inode it names: (directory, name), sorted.
  // Kept in step with the directories' entries (only Apply changes them).
  std::unordered_map<uint64_t, std::vector<std::pair<uint64_t, std::string>>> parents_;
  uint64_t next_ino_ = kRootIno + 1;
  std::vector<std::string> lost_;  // accepted losses of unknown reach
  std::vector<std::string> unrepaired_;
  std::vector<BadExtent> bad_extents_;
  std::unordered_map<uint64_t, IntervalSet> lost_ranges_;  // replay: damage ApplyLoss added, by inode
  std::vector<MetaRun> meta_owners_;      // as stored (kMetaOwner)
  std::vector<std::string> unapplied_records_;  // damaged records not applied, named by fsck
  // Loading stored records (see ReverseMapSuspect).
  uint64_t stored_extent_blocks_ = 0;
  uint64_t stored_owner_blocks_ = 0;
  bool owner_unbacked_ = false;
};

}  // namespace daxguard::fs
