#include "fs/format.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace daxguard::fs {

Geometry GeometryFor(uint64_t device_bytes) {
  Geometry g;
  g.blocks = device_bytes / kBlockSize;
  // 1/32 of the device per copy, between 1 MiB and 1 GiB, in whole pairs.
  g.meta_blocks = std::clamp<uint64_t>(g.blocks / 32, 256, 262144) & ~1ull;
  return g;
}

std::vector<MetaRun> MetadataRuns(const Geometry& g) {
  std::vector<MetaRun> out;
  for (int c = 0; c < 2; ++c) {
    std::string copy = c ? "B" : "A";
    out.push_back({g.SuperBlock(c), 1, "superblock copy " + copy});
    out.push_back({g.AreaStart(c), g.meta_blocks, "metadata log copy " + copy});
  }
  return out;
}

uint32_t Crc32c(const void* data, size_t len, uint32_t seed) {
  return crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<int>(len), seed);
}

void SealSuperBlock(SuperBlock* sb) {
  sb->crc = 0;
  sb->crc = Crc32c(sb, sizeof *sb);
}

Status CheckSuperBlock(const SuperBlock& sb, uint64_t device_bytes) {
  if (std::memcmp(sb.magic, kSuperMagic, sizeof kSuperMagic) != 0)
    return Status::Corrupt("no daxfs superblock (bad magic)");
  SuperBlock copy = sb;
  copy.crc = 0;
  if (Crc32c(&copy, sizeof copy) != sb.crc) return Status::Corrupt("superblock checksum mismatch");
  if (sb.version < kOldestFormatVersion || sb.version > kFormatVersion)
    return Status::Error(EPROTONOSUPPORT, "daxfs format version " + std::to_string(sb.version) + " is not supported (this daxguard reads " +
                           std::to_string(kOldestFormatVersion) + " to " + std::to_string(kFormatVersion) + ")");
  Geometry g = GeometryFor(device_bytes);
  if (sb.blocks != g.blocks || sb.meta_blocks != g.meta_blocks || sb.active_slot > 1)
    return Status::Corrupt("superblock geometry does not match the device");
  return Status::Ok();
}

}  // namespace daxguard::fs
