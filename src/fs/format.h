// The on-device format of daxfs, the DAX filesystem.
//
// Metadata is a log of checksummed transaction records, replayed into memory
// at mount (as NOVA does), kept in two copies far apart on the device: copy A
// right after the superblock at block 0, copy B after a second superblock in
// the middle. Each copy has two slots; the active slot starts with a
// snapshot of the whole state and goes on with the records since. When it
// fills, a fresh snapshot goes into the other slot and the superblocks
// switch to it. Data blocks are everything else, addressed directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/units.h"

namespace daxguard::fs {

inline constexpr uint64_t kBlockSize = kPageSize;
inline constexpr uint64_t kMinBlocks = 4096;  // 16 MiB
inline constexpr char kSuperMagic[8] = {'D', 'A', 'X', 'G', 'F', 'S', '0', '1'};
inline constexpr uint32_t kRecordMagic = 0x52474c44;  // "DLGR"
// 1: the reverse map was rebuilt from the extents at every mount.
// 2: snapshots store the reverse map (kOwners, kMetaOwner) apart from the
//    extents (kExtent).
// 3: every log record carries the summary of the record before it, and
//    every snapshot begins with a copy of the superblock that points at it
//    (kSuper), so the superblocks can be rebuilt from either log copy.
// 4: the superblock says how file data is protected (DataProtection) and
//    the protection area is reserved at the device's end.
// Older filesystems are upgraded at their first writable mount.
inline constexpr uint32_t kFormatVersion = 4;
inline constexpr uint32_t kOldestFormatVersion = 1;
inline constexpr uint32_t kReverseMapVersion = 2;  // the first to store the reverse map
inline constexpr uint64_t kRootIno = 1;
inline constexpr size_t kMaxNameLen = 255;

// How file data is protected (mkfs --data-protection): none; a CRC32C per
// 4 KiB block, checked on reads; or that and a parity strip per block
// (fs/protected_device.h).
enum class DataProtection : uint32_t { kNone = 0, kChecksum = 1, kParity = 2 };
const char* ProtectionName(DataProtection p);
std::optional<DataProtection> ParseProtection(std::string_view name);

// Where everything is, derived from the block count and the protection.
struct Geometry {
  uint64_t blocks = 0;       // device size in blocks
  uint64_t meta_blocks = 0;  // per copy: two slots
  DataProtection protection = DataProtection::kNone;
  uint64_t protect_blocks = 0;  // the protection area, at the device's end
  uint64_t ProtectStart() const { return blocks - protect_blocks; }
  uint64_t SuperBlock(int copy) const { return copy == 0 ? 0 : blocks / 2; }
  uint64_t AreaStart(int copy) const { return SuperBlock(copy) + 1; }
  uint64_t SlotBlocks() const { return meta_blocks / 2; }
  uint64_t SlotStart(int copy, int slot) const { return AreaStart(copy) + slot * SlotBlocks(); }
  // Whether block b belongs to metadata (superblocks or log areas).
  bool IsMeta(uint64_t b) const {
    if (b >= ProtectStart()) return true;
    for (int c = 0; c < 2; ++c)
      if (b >= SuperBlock(c) && b < AreaStart(c) + meta_blocks) return true;
    return false;
  }
  // Whether any block of [b, b+len) belongs to metadata.
  bool OverlapsMeta(uint64_t b, uint64_t len) const {
    if (b + len > ProtectStart()) return true;
    for (int c = 0; c < 2; ++c)
      if (b < AreaStart(c) + meta_blocks && b + len > SuperBlock(c)) return true;
    return false;
  }
};

// A metadata structure's blocks, as the reverse map names them.
struct MetaRun {
  uint64_t pblk = 0, len = 0;
  std::string what;
  bool operator==(const MetaRun&) const = default;
};
// Every metadata structure of `g`: both superblocks and both log copies.
std::vector<MetaRun> MetadataRuns(const Geometry& g);
Geometry GeometryFor(uint64_t device_bytes, DataProtection p = DataProtection::kNone);

// The protection area, in blocks from its start: the write-intent bitmap
// (a bit per kIntentChunkBlocks data blocks: set and durable before any of
// them changes, so a crash leaves their records to be recomputed from the
// data at mount), then a record per block below the area, then (parity) a
// parity strip per block.
inline constexpr uint64_t kIntentChunkBlocks = 512;  // 2 MiB
inline constexpr uint64_t kStripBytes = 512;         // parity: 8 strips per block, one parity strip
struct ProtectionLayout {
  uint64_t covered = 0;  // blocks [0, covered) have records
  uint64_t bitmap = 0, records = 0, parity = 0;  // first block of each
  uint64_t bitmap_blocks = 0, record_blocks = 0, parity_blocks = 0;
};
ProtectionLayout LayoutOf(const Geometry& g);
// How the reverse map names the area ("data parity area").
std::string ProtectionAreaName(const Geometry& g);
// Blocks the area needs to protect `covered` blocks.
uint64_t ProtectionBlocks(uint64_t covered, DataProtection p);

// One copy of the superblock, at the start of its block.
struct SuperBlock {
  char magic[8];
  uint32_t version;
  uint32_t crc;  // CRC32C of this struct with crc = 0
  uint64_t blocks;
  uint64_t meta_blocks;
  uint64_t generation;  // the higher valid copy wins
  uint64_t active_slot;
  uint64_t log_start_seq;  // seq of the first record in the active slot
  uint8_t uuid[16];
  // Format 4 on; zero before.
  uint32_t protection;      // DataProtection
  uint32_t protection_tag;  // random per mkfs: records an earlier filesystem left never pass for ours
  uint64_t protect_blocks;  // as GeometryFor derives it, checked
};
// The bytes of a superblock before format 4, which its checksum covers.
inline constexpr size_t kLegacySuperBytes = 72;
size_t SuperBytes(uint32_t version);

// Written into each superblock's block, after the superblock, at a clean
// unmount: where the log ended. A mount whose replay stops right there
// need not look further for records after a hole; it is cleared before the
// next append, and a new superblock (compaction) overwrites it.
struct CleanEnd {
  uint32_t magic;
  uint32_t crc;  // CRC32C of this struct with crc = 0
  uint64_t generation;  // of the superblock it goes with
  uint64_t tail;        // bytes used in the active slot
  uint64_t next_seq;
};
inline constexpr uint32_t kCleanEndMagic = 0x444e4543;  // "CEND"
inline constexpr uint64_t kCleanEndOffset = 2048;       // in the superblock's block

uint32_t Crc32c(const void* data, size_t len, uint32_t seed = 0);
void SealSuperBlock(SuperBlock* sb);
// EPROTONOSUPPORT for a format version this daxguard does not read.
Status CheckSuperBlock(const SuperBlock& sb, uint64_t device_bytes);

// Every log record starts with this header, 8-byte aligned; the payload
// (a transaction: a list of operations) follows, then the summary of the
// record before it (see Summary in ops.h; none before format 3).
struct RecordHeader {
  uint32_t magic;
  uint32_t len;  // payload bytes
  uint64_t seq;
  uint32_t crc;  // CRC32C of header (crc = 0), payload and summary
  uint32_t summary_len;
};
static_assert(sizeof(RecordHeader) == 24);

inline uint64_t RecordSpan(uint64_t payload) { return AlignUp(sizeof(RecordHeader) + payload, 8); }

}  // namespace daxguard::fs
