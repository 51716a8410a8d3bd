#include "dax/dax_io.h"

#include <algorithm>

namespace daxguard::dax {
namespace {

Status RangeError(const Device& dev, uint64_t off, uint64_t len) {
  if (off > dev.size() || len > dev.size() - off)
    return Status::Range("offset " + std::to_string(off) + " length " + std::to_string(len) +
                         " is beyond the device end (" + std::to_string(dev.size()) + " bytes)");
  return Status::Ok();
}

// Inline so the passing case costs two compares, not a Status built out of line.
inline Status CheckRange(const Device& dev, uint64_t off, uint64_t len) {
  uint64_t n = dev.size();
  if (off <= n && len <= n - off) [[likely]] return Status::Ok();
  return RangeError(dev, off, len);
}

// The pages spanning [off, off+len).
uint64_t PagesSpanning(uint64_t off, uint64_t len) {
  return (off + len + kPageSize - 1) / kPageSize - off / kPageSize;
}

Result<size_t> ShortOr(size_t done, Status why) {
  if (done > 0) return done;
  return Status::Io(why.message());
}

}  // namespace

Result<size_t> ReadAt(Device& dev, uint64_t off, void* dst, size_t len) {
  DG_RETURN_IF_ERROR(CheckRange(dev, off, len));
  if (dev.ReadClean(off, dst, len)) [[likely]] return len;
  auto* out = static_cast<uint8_t*>(dst);
  size_t done = 0;
  while (done < len) {
    uint64_t pos = off + done;
    auto map = dev.DirectAccess(pos / kPageSize, PagesSpanning(pos, len - done), AccessMode::kAccess);
    if (!map.ok()) return ShortOr(done, map.status());
    size_t chunk = std::min<uint64_t>(len - done, map->pages * kPageSize - pos % kPageSize);
    auto read = map->source->ReadMcSafe(map->source_off + pos % kPageSize, out + done, chunk);
    if (!read.ok()) return ShortOr(done, read.status());
    size_t copied = *read;
    done += copied;
    if (copied < chunk) return ShortOr(done, Status::Io("media error at offset " + std::to_string(pos + copied)));
  }
  return done;
}

Result<size_t> WriteAt(Device& dev, uint64_t off, const void* src, size_t len) {
  DG_RETURN_IF_ERROR(CheckRange(dev, off, len));
  if (dev.WriteClean(off, src, len)) [[likely]] return len;
  auto* in = static_cast<const uint8_t*>(src);
  size_t done = 0;
  while (done < len) {
    uint64_t pos = off + done;
    auto map = dev.DirectAccess(pos / kPageSize, PagesSpanning(pos, len - done), AccessMode::kAccess);
    if (map.ok()) {
      size_t chunk = std::min<uint64_t>(len - done, map->pages * kPageSize - pos % kPageSize);
      DG_RETURN_IF_ERROR(map->source->Write(map->source_off + pos % kPageSize, in + done, chunk));
      DG_RETURN_IF_ERROR(map->source->WriteBack(map->source_off + pos % kPageSize, chunk));
      done += chunk;
      continue;
    }
    if (map.status().err() != EHWPOISON) return ShortOr(done, map.status());
    // Known poison in this page: only a whole-page recovery write repairs it.
    uint64_t page = AlignDown(pos, kPageSize);
    if (!dev.CanRecover(page, kPageSize))
      return ShortOr(done, Status::Io("page at offset " + std::to_string(page) +
                                      " holds known poison and its device cannot clear poison"));
    if (pos % kPageSize || len - done < kPageSize)
      return ShortOr(done, Status::Io("partial-page write over poison at offset " + std::to_string(pos)));
    auto wrote = dev.RecoveryWrite(pos, in + done, kPageSize);
    if (!wrote.ok()) return ShortOr(done, wrote.status());
    done += *wrote;
  }
  return done;
}

Status ZeroAt(Device& dev, uint64_t off, uint64_t len) {
  DG_RETURN_IF_ERROR(CheckRange(dev, off, len));
  if (!IsAligned(off, kPageSize) || !IsAligned(len, kPageSize))
    return Status::Invalid("offset and length must be multiples of 4096 bytes");
  return dev.ZeroPageRange(off / kPageSize, len / kPageSize);
}

}  // namespace daxguard::dax
