// CleanPath: Device::ReadClean / WriteClean as a fast path calls them on
// every access. Over a device whose whole range is one run of directly
// copyable memory (a device file, or a stack that flattens to one run of
// one; Device::DirectLayoutOf) two things make them cheaper. The memory's
// own inline test and copy run with no call through the operations table
// (Linux's INDIRECT_CALL_1 spares hot paths an indirect call to the likely
// target the same way). And a range the caller had vouched for skips the
// test while the memory's clean epoch holds: a pair of words read instead
// of two filters, a quarter of what a filesystem adds at 4 KiB. Any other
// device takes the table every time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dax/direct_memory.h"

namespace daxguard::dax {

class CleanPath {
 public:
  static constexpr uint64_t kNoEpoch = DirectMemory::kNoEpoch;

  explicit CleanPath(Device& dev);

  // The memory's clean epoch if [off, off+len) holds no poison and no
  // known error now, else kNoEpoch (always, without direct memory).
  uint64_t Vouch(uint64_t off, uint64_t len) const;
  // ReadClean / WriteClean; `vouched`: what Vouch said of a range holding
  // [off, off+len), or kNoEpoch.
  bool Read(uint64_t off, void* dst, size_t len, uint64_t vouched) const {
    if (!mem_) return dev_.ReadClean(off, dst, len);
    if (!StillClean(vouched)) return InDevice(off, len) && mem_->ReadClean(base_ + off, dst, len);
    std::memcpy(dst, data_ + off, len);
    return true;
  }
  bool Write(uint64_t off, const void* src, size_t len, uint64_t vouched) const {
    if (!mem_) return dev_.WriteClean(off, src, len);
    if (!StillClean(vouched)) return InDevice(off, len) && mem_->WriteClean(base_ + off, src, len);
    mem_->Store(data_ + off, src, len);
    return true;
  }

 private:
  bool InDevice(uint64_t off, uint64_t len) const { return off <= size_ && len <= size_ - off && dev_.alive(); }
  // The words a vouched copy reads: the epoch, and whether the device (and
  // the file under it, for a stack) is still there.
  bool StillClean(uint64_t vouched) const {
    return vouched == media::PmemDevice::CleanEpoch(*live_) && dev_.alive() && (!below_ || below_->alive());
  }

  Device& dev_;
  const DirectMemory* mem_ = nullptr;  // null unless the device is one run of direct memory; then:
  uint64_t base_ = 0;                  // where the device starts in it
  uint8_t* data_ = nullptr;            // the device's first byte
  uint64_t size_ = 0;                  // the device's
  const media::LiveState* live_ = nullptr;  // the memory's clean epoch
  const Device* below_ = nullptr;           // the memory's device, if not dev_
};

}  // namespace daxguard::dax
