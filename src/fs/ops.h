// The operations a metadata transaction is made of. The same operations
// describe a snapshot (the whole state) and every change after it, so
// mount, replay and snapshot share one code path: State::Apply.
#pragma once

#include <time.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace daxguard::fs {

enum class OpType : uint8_t {
  kSetInode = 1,   // create or update an inode's attributes
  kFreeInode,      // the inode is gone (its blocks were unmapped first)
  kLink,           // parent/name -> ino
  kUnlink,         // remove parent/name
  kMap,            // file blocks [fblk, +len) -> device blocks [pblk, +len)
  kUnmap,          // file blocks [fblk, +len) become a hole
  kDamage,         // file bytes [off, +len) read as EIO (64-byte units)
  kUndamage,       // file bytes [off, +len) are whole again
  kQuarantine,     // free device blocks [pblk, +len) hold poison: never allocate
  kUnquarantine,   // cleared: they may be allocated again
  kMetaLost,       // metadata was lost in both copies: `name` says what
  // Snapshot only (format 2): the extents and the reverse map are stored
  // apart, so each can be checked against the other at mount.
  kExtent,         // like kMap, without touching the reverse map
  kOwners,         // reverse map: device blocks [pblk, +len) -> `owners`
  kMetaOwner,      // reverse map: device blocks [pblk, +len) hold metadata `name`
  // Snapshot only (format 3), its first operation: `name` holds the bytes of
  // the superblock that points at the snapshot, `len` how many records the
  // snapshot spans. The log's, not the state's: State ignores it.
  kSuper,
  kUnrepaired,     // fsck --repair could not repair `name`: read-only until a repair succeeds
  kSetXattr,       // the inode's extended attribute `name` holds `value`
  kRemoveXattr,    // the inode has no extended attribute `name`
};

// One owner of a run of device blocks: a file and the file block of the
// run's first device block.
struct Owner {
  uint64_t ino = 0;
  uint64_t fblk = 0;
  bool operator==(const Owner&) const = default;
  auto operator<=>(const Owner&) const = default;
};

struct Attr {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const Attr&) const = default;
};

// Now, for timestamps: coarse, as Linux's inode timestamps are
// (current_time()), a few ns instead of ~30 on every write.
inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct Op {
  OpType type{};
  uint64_t ino = 0;
  Attr attr;              // kSetInode
  uint64_t parent = 0;    // kLink, kUnlink
  std::string name;       // kLink, kUnlink, kMetaLost, kMetaOwner, kSuper, kUnrepaired
  uint64_t fblk = 0;      // kMap, kUnmap, kExtent
  uint64_t pblk = 0;      // kMap, kExtent, kQuarantine, kUnquarantine, kOwners, kMetaOwner
  uint64_t len = 0;       // blocks, or bytes for kDamage/kUndamage, or records for kSuper
  std::vector<Owner> owners;  // kOwners, sorted
  uint64_t off = 0;       // kDamage, kUndamage (bytes)
  std::string value;      // kSetXattr
  bool unwritten = false; // kMap: allocated, reads as zeroes

  static Op Of(OpType t) {
    Op o;
    o.type = t;
    return o;
  }
  static Op SetInode(uint64_t ino, const Attr& a) { Op o = Of(OpType::kSetInode); o.ino = ino; o.attr = a; return o; }
  static Op FreeInode(uint64_t ino) { Op o = Of(OpType::kFreeInode); o.ino = ino; return o; }
  static Op Link(uint64_t parent, std::string name, uint64_t ino) {
    Op o = Of(OpType::kLink); o.parent = parent; o.name = std::move(name); o.ino = ino; return o;
  }
  static Op Unlink(uint64_t parent, std::string name) {
    Op o = Of(OpType::kUnlink); o.parent = parent; o.name = std::move(name); return o;
  }
  static Op Map(uint64_t ino, uint64_t fblk, uint64_t pblk, uint64_t len, bool unwritten) {
    Op o = Of(OpType::kMap); o.ino = ino; o.fblk = fblk; o.pblk = pblk; o.len = len; o.unwritten = unwritten; return o;
  }
  static Op Unmap(uint64_t ino, uint64_t fblk, uint64_t len) {
    Op o = Of(OpType::kUnmap); o.ino = ino; o.fblk = fblk; o.len = len; return o;
  }
  static Op Damage(uint64_t ino, uint64_t off, uint64_t len, bool on) {
    Op o = Of(on ? OpType::kDamage : OpType::kUndamage); o.ino = ino; o.off = off; o.len = len; return o;
  }
  static Op Quarantine(uint64_t pblk, uint64_t len, bool on) {
    Op o = Of(on ? OpType::kQuarantine : OpType::kUnquarantine); o.pblk = pblk; o.len = len; return o;
  }
  static Op MetaLost(std::string what) { Op o = Of(OpType::kMetaLost); o.name = std::move(what); return o; }
  static Op Unrepaired(std::string what) { Op o = Of(OpType::kUnrepaired); o.name = std::move(what); return o; }
  static Op Extent(uint64_t ino, uint64_t fblk, uint64_t pblk, uint64_t len, bool unwritten) {
    Op o = Map(ino, fblk, pblk, len, unwritten); o.type = OpType::kExtent; return o;
  }
  static Op Owners(uint64_t pblk, uint64_t len, std::vector<Owner> owners) {
    Op o = Of(OpType::kOwners); o.pblk = pblk; o.len = len; o.owners = std::move(owners); return o;
  }
  static Op Super(std::string superblock, uint64_t records) {
    Op o = Of(OpType::kSuper); o.name = std::move(superblock); o.len = records; return o;
  }
  static Op SetXattr(uint64_t ino, std::string name, std::string value) {
    Op o = Of(OpType::kSetXattr); o.ino = ino; o.name = std::move(name); o.value = std::move(value); return o;
  }
  static Op RemoveXattr(uint64_t ino, std::string name) {
    Op o = Of(OpType::kRemoveXattr); o.ino = ino; o.name = std::move(name); return o;
  }
  static Op MetaOwner(uint64_t pblk, uint64_t len, std::string what) {
    Op o = Of(OpType::kMetaOwner); o.pblk = pblk; o.len = len; o.name = std::move(what); return o;
  }
};

void EncodeOps(const std::vector<Op>& ops, std::string* out);
Status DecodeOps(std::string_view in, std::vector<Op>* ops);

// What one log record changed, in brief. Each record carries the summary of
// the record before it (format 3), so that when a record is lost in both
// copies, replay still knows what it changed: the file bytes become damage
// (EIO until rewritten) instead of silently reading older bytes or zeroes.
struct Touch {
  enum class Kind : uint8_t {
    kData = 1,  // what file bytes [off, +len) read changed (mapped, unmapped, damage)
    kAttr,      // the inode was set to `size` and `mode` (created, if it was new)
    kEntries,   // the directory's entries changed
  };
  static constexpr uint64_t kToEnd = UINT64_MAX;  // kData len: to the end of the file
  Kind kind{};
  uint64_t ino = 0;
  uint64_t off = 0, len = 0;  // kData
  uint64_t size = 0;          // kAttr
  uint32_t mode = 0;          // kAttr
  bool operator==(const Touch&) const = default;
};

struct Summary {
  std::vector<Touch> touches;  // by inode; per inode its attributes first
  bool complete = true;        // false: too much changed to list it all
  bool operator==(const Summary&) const = default;
};

// One kData touch per inode, spanning everything the record changed in it.
Summary Summarize(std::span<const Op> ops);
void EncodeSummary(const Summary& s, std::string* out);
Status DecodeSummary(std::string_view in, Summary* s);

}  // namespace daxguard::fs
