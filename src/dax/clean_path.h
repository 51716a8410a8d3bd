// CleanPath: Device::ReadClean / WriteClean as a fast path calls them on
// every access. On a device file two things make them cheaper. The driver's
// own inline test and copy run with no call through the operations table
// (Linux's INDIRECT_CALL_1 spares hot paths an indirect call to the likely
// target the same way). And a range the caller had vouched for skips the
// test while the device's clean epoch holds: a pair of words read instead
// of two filters, a quarter of what a filesystem adds at 4 KiB. Any other
// device (a stack) takes the table every time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dax/pmem_dax.h"

namespace daxguard::dax {

class CleanPath {
 public:
  static constexpr uint64_t kNoEpoch = media::PmemDevice::kNoEpoch;

  explicit CleanPath(Device& dev);

  // The device's clean epoch if [off, off+len) holds no poison and no
  // known error now, else kNoEpoch (always, on devices other than files).
  uint64_t Vouch(uint64_t off, uint64_t len) const;
  // ReadClean / WriteClean; `vouched`: what Vouch said of a range holding
  // [off, off+len), or kNoEpoch.
  bool Read(uint64_t off, void* dst, size_t len, uint64_t vouched) const {
    if (!file_) return dev_.ReadClean(off, dst, len);
    if (!StillClean(vouched)) return file_->PmemDax::ReadClean(off, dst, len);
    std::memcpy(dst, data_ + off, len);
    return true;
  }
  bool Write(uint64_t off, const void* src, size_t len, uint64_t vouched) const {
    if (!file_) return dev_.WriteClean(off, src, len);
    if (!StillClean(vouched)) return file_->PmemDax::WriteClean(off, src, len);
    file_->media().StoreFlushed(data_ + off, src, len);
    return true;
  }

 private:
  bool StillClean(uint64_t vouched) const {
    return vouched == media::PmemDevice::CleanEpoch(*live_) && file_->alive();
  }

  Device& dev_;
  PmemDax* file_;  // null unless the device is a device file; then:
  uint8_t* data_ = nullptr;
  const media::LiveState* live_ = nullptr;
};

}  // namespace daxguard::dax
