// Byte-granular reads and writes over any dax::Device, the way fs/dax.c
// drives dax_operations: direct access page runs, machine-check-safe copies
// from (and flushing copies to) the device that direct access says the run
// lives on, and the recovery path when a write lands on known poison. A
// range the device vouches clean (ReadClean / WriteClean) is copied in that
// one call first; only a range with poison in or near it takes the page
// walk. The tool's raw device I/O and the filesystem (per extent) use it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "dax/dax_device.h"

namespace daxguard::dax {

// Returns the bytes read. Stops before known or consumed poison: a short
// count if some bytes came first, else EIO.
Result<size_t> ReadAt(Device& dev, uint64_t off, void* dst, size_t len);

// Returns the bytes written. A page with known poison is repaired by a
// recovery write when the write covers it whole; otherwise the write stops
// there: a short count if some bytes went first, else EIO. What it wrote
// is written back: durable at the next Fence.
Result<size_t> WriteAt(Device& dev, uint64_t off, const void* src, size_t len);

// Zeroes [off, off+len), which must be whole pages, clearing any poison.
Status ZeroAt(Device& dev, uint64_t off, uint64_t len);

}  // namespace daxguard::dax
