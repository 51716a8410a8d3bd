// Reaching the emulated media under whatever a command opened, a device
// file or a stack: inject-error, clear-errors and scrub act on the media
// itself, below dax::Device, so they need to know which device files a
// range lives on and how those devices' offsets read in the stack's terms.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "dax/dax_device.h"
#include "dax/pmem_dax.h"
#include "dm/target.h"

namespace daxguard::dm {

struct MediaExtent {
  dax::PmemDax* dev = nullptr;
  uint64_t offset = 0;  // bytes on that device
  uint64_t len = 0;
};

// The device files at the bottom of `dev` (itself, for a device file), each once.
std::vector<dax::PmemDax*> BottomDevices(dax::Device& dev);
// Where [off, off+len) of `dev` lives, in order. Fails, naming the first
// such sector, if part of it is mapped to the error target.
Result<std::vector<MediaExtent>> MapToMedia(dax::Device& dev, uint64_t off, uint64_t len);
// The ranges of `dev` that [off, off+len) of `bottom` backs, sorted and merged.
std::vector<ByteRange> MapFromMedia(dax::Device& dev, const dax::PmemDax& bottom, uint64_t off, uint64_t len);

}  // namespace daxguard::dm
