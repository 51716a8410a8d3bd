#include "media/layout.h"

#include <algorithm>
#include <cstring>

#include "common/units.h"

namespace daxguard::media {

Geometry ComputeGeometry(uint64_t size, uint32_t clear_unit, Kind kind, Mode mode, uint64_t align) {
  Geometry g{};
  g.size = size;
  g.clear_unit = clear_unit;
  g.kind = kind;
  g.mode = mode;
  g.align = align;
  // Poison is only ever made or cleared in whole clear units or sectors, and
  // records in sectors, so entry boundaries fall on those units and a table
  // never holds more entries than there are units: sized so, it never fills,
  // even when neighbours with different flags (acknowledged or new records,
  // poison of two sources) cannot merge. The file is sparse, so the
  // reservation costs only what is used.
  g.poison_capacity = size / std::min<uint64_t>(clear_unit, kSectorSize) + 64;
  g.badblocks_capacity = size / kSectorSize + 64;
  g.poison_filter_bytes = AlignUp(AlignUp(size, kPageSize) / kPageSize, 64) / 8;
  g.badblocks_filter_bytes = AlignUp(size / kSectorSize, 64) / 8;
  g.data_off = kAreaAlign;
  g.poison_off = AlignUp(g.data_off + size, kAreaAlign);
  g.poison_filter_off = AlignUp(g.poison_off + 64 + g.poison_capacity * 16, kPageSize);
  g.badblocks_off = AlignUp(g.poison_filter_off + g.poison_filter_bytes, kPageSize);
  g.badblocks_filter_off = AlignUp(g.badblocks_off + 64 + g.badblocks_capacity * 16, kPageSize);
  g.file_size = AlignUp(g.badblocks_filter_off + g.badblocks_filter_bytes, kPageSize);
  return g;
}

uint64_t UntoldSectorsPerBit(uint64_t size) {
  uint64_t per_bit = 1;
  while (size / kSectorSize > per_bit * kUntoldFilterBytes * 8) per_bit <<= 1;
  return per_bit;
}

Status ValidateHeader(const Header& h, uint64_t file_size) {
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0)
    return Status::Corrupt("not a daxguard device (bad magic)");
  if (h.version != kVersion)
    return Status::Corrupt("unsupported device version " + std::to_string(h.version));
  const Geometry& g = h.geo;
  if (g.size < kMinDeviceSize || !IsAligned(g.size, kPageSize))
    return Status::Corrupt("device file damaged: header geometry (size " + std::to_string(g.size) + ")");
  if (!IsPowerOfTwo(g.clear_unit) || g.clear_unit < kLineSize || g.clear_unit > kPageSize)
    return Status::Corrupt("device file damaged: header geometry (clear unit " + std::to_string(g.clear_unit) + ")");
  if ((g.kind != Kind::kPmem && g.kind != Kind::kCxl) || (g.mode != Mode::kFsdax && g.mode != Mode::kDevdax))
    return Status::Corrupt("device file damaged: header geometry (kind or mode)");
  // fsdax has no fault size; devdax's divides the device.
  if (g.mode == Mode::kFsdax ? g.align != 0
                             : !IsPowerOfTwo(g.align) || g.align < kPageSize || !IsAligned(g.size, g.align))
    return Status::Corrupt("device file damaged: header geometry (align " + std::to_string(g.align) + ")");
  if (!(ComputeGeometry(g.size, g.clear_unit, g.kind, g.mode, g.align) == g))
    return Status::Corrupt("device file damaged: header layout does not match its size");
  if (file_size < g.file_size)
    return Status::Corrupt("device file damaged: truncated to " + std::to_string(file_size) + " of " +
                           std::to_string(g.file_size) + " bytes");
  return Status::Ok();
}

}  // namespace daxguard::media
