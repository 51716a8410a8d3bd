#include "fs/format.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace daxguard::fs {

const char* ProtectionName(DataProtection p) {
  switch (p) {
    case DataProtection::kChecksum: return "checksum";
    case DataProtection::kParity: return "parity";
    default: return "none";
  }
}

std::optional<DataProtection> ParseProtection(std::string_view name) {
  for (auto p : {DataProtection::kNone, DataProtection::kChecksum, DataProtection::kParity})
    if (name == ProtectionName(p)) return p;
  return std::nullopt;
}

std::string ProtectionAreaName(const Geometry& g) {
  return std::string("data ") + ProtectionName(g.protection) + " area";
}

uint64_t ProtectionBlocks(uint64_t covered, DataProtection p) {
  if (p == DataProtection::kNone) return 0;
  uint64_t chunks = DivRoundUp(covered, kIntentChunkBlocks);
  uint64_t n = DivRoundUp(chunks, 8 * kBlockSize) + DivRoundUp(covered * 8, kBlockSize);
  if (p == DataProtection::kParity) n += DivRoundUp(covered * kStripBytes, kBlockSize);
  return n;
}

Geometry GeometryFor(uint64_t device_bytes, DataProtection p) {
  Geometry g;
  g.blocks = device_bytes / kBlockSize;
  // 1/32 of the device per copy, between 1 MiB and 1 GiB, in whole pairs.
  g.meta_blocks = std::clamp<uint64_t>(g.blocks / 32, 256, 262144) & ~1ull;
  g.protection = p;
  // The most blocks the rest of the device can protect.
  uint64_t covered = g.blocks;
  while (covered > 0 && covered + ProtectionBlocks(covered, p) > g.blocks)
    covered = g.blocks - std::min(g.blocks, ProtectionBlocks(covered, p));
  g.protect_blocks = g.blocks - covered;
  return g;
}

ProtectionLayout LayoutOf(const Geometry& g) {
  ProtectionLayout l;
  l.covered = g.ProtectStart();
  l.bitmap_blocks = DivRoundUp(DivRoundUp(l.covered, kIntentChunkBlocks), 8 * kBlockSize);
  l.record_blocks = DivRoundUp(l.covered * 8, kBlockSize);
  l.parity_blocks = g.protection == DataProtection::kParity ? DivRoundUp(l.covered * kStripBytes, kBlockSize) : 0;
  l.bitmap = l.covered;
  l.records = l.bitmap + l.bitmap_blocks;
  l.parity = l.records + l.record_blocks;
  return l;
}

std::vector<MetaRun> MetadataRuns(const Geometry& g) {
  std::vector<MetaRun> out;
  for (int c = 0; c < 2; ++c) {
    std::string copy = c ? "B" : "A";
    out.push_back({g.SuperBlock(c), 1, "superblock copy " + copy});
    out.push_back({g.AreaStart(c), g.meta_blocks, "metadata log copy " + copy});
  }
  if (g.protect_blocks)
    out.push_back({g.ProtectStart(), g.protect_blocks, ProtectionAreaName(g)});
  return out;
}

uint32_t Crc32c(const void* data, size_t len, uint32_t seed) {
  return crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<int>(len), seed);
}

size_t SuperBytes(uint32_t version) { return version >= 4 ? sizeof(SuperBlock) : kLegacySuperBytes; }

void SealSuperBlock(SuperBlock* sb) {
  sb->crc = 0;
  sb->crc = Crc32c(sb, SuperBytes(sb->version));
}

Status CheckSuperBlock(const SuperBlock& sb, uint64_t device_bytes) {
  if (std::memcmp(sb.magic, kSuperMagic, sizeof kSuperMagic) != 0)
    return Status::Corrupt("no daxfs superblock (bad magic)");
  SuperBlock copy = sb;
  copy.crc = 0;
  // The version is checked once the checksum vouches for it; a version
  // out of range sums as much as the field reaches.
  if (Crc32c(&copy, SuperBytes(sb.version)) != sb.crc) return Status::Corrupt("superblock checksum mismatch");
  if (sb.version < kOldestFormatVersion || sb.version > kFormatVersion)
    return Status::Error(EPROTONOSUPPORT, "daxfs format version " + std::to_string(sb.version) + " is not supported (this daxguard reads " +
                           std::to_string(kOldestFormatVersion) + " to " + std::to_string(kFormatVersion) + ")");
  auto p = static_cast<DataProtection>(sb.version >= 4 ? sb.protection : 0);
  if (p > DataProtection::kParity) return Status::Corrupt("superblock names an unknown data protection");
  Geometry g = GeometryFor(device_bytes, p);
  if (sb.blocks != g.blocks || sb.meta_blocks != g.meta_blocks || sb.active_slot > 1 ||
      (sb.version >= 4 && sb.protect_blocks != g.protect_blocks))
    return Status::Corrupt("superblock geometry does not match the device");
  return Status::Ok();
}

}  // namespace daxguard::fs
