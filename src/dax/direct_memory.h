// dax::DirectMemory: a device file's memory as a fast path may copy with it
// itself, and the duties that come with such a copy. Linux hands a
// filesystem the address dax_direct_access returned and expects it to use
// memcpy_flushcache; here the address comes with the clean test a copy must
// pass first, the clean epoch that lets a caller skip that test for a range
// it vouched for, and the flushing store its writes must use (written back
// as they are made, durable at the next Fence). Callers reach it only
// through Device::DirectLayoutOf, so every fast path, a stack's flattened
// one included, gets its memory and its persistence duties from the contract.
#pragma once

#include <cstdint>
#include <cstring>

#include "dax/dax_device.h"
#include "media/pmem_device.h"

namespace daxguard::dax {

class DirectMemory {
 public:
  static constexpr uint64_t kNoEpoch = media::PmemDevice::kNoEpoch;

  DirectMemory(const Device& owner, media::PmemDevice& media) : owner_(owner), media_(media), live_(&media.live()) {}

  uint8_t* data() const { return media_.data(); }
  // In range, the owner alive, and the pages spanning [off, off+len) free of
  // known errors (and, for a read, of latent poison): a copy may go ahead.
  bool Clean(uint64_t off, uint64_t len, bool reading) const {
    uint64_t n = media_.size();
    return off <= n && len <= n - off && owner_.alive() && media_.PagesClean(off, len, reading);
  }
  // The device file shrank under this process: every copy since is void.
  bool shrunk() const { return media_.shrunk(); }
  const Device& owner() const { return owner_; }
  const media::LiveState& live() const { return *live_; }
  // Moves with each change that could make a clean range unclean; a range
  // found Clean after reading the epoch stays clean while it holds.
  uint64_t CleanEpoch() const { return media::PmemDevice::CleanEpoch(*live_); }
  // The store a fast path writes with: written back as it stores.
  void Store(uint8_t* at, const void* src, size_t len) const { media_.StoreFlushed(at, src, len); }
  // The clean test, then the copy: Device::ReadClean / WriteClean over
  // this memory. A file that shrank under the copy fails it.
  bool ReadClean(uint64_t off, void* dst, size_t len) const {
    if (!Clean(off, len, true)) return false;
    std::memcpy(dst, data() + off, len);
    return !shrunk();
  }
  bool WriteClean(uint64_t off, const void* src, size_t len) const {
    if (!Clean(off, len, false)) return false;
    Store(data() + off, src, len);
    return !shrunk();
  }

 private:
  const Device& owner_;
  media::PmemDevice& media_;
  const media::LiveState* live_;
};

}  // namespace daxguard::dax
