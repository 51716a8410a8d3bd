// FaultyDevice: a dax::Device over another that counts every step that can
// change the device (writes, zeroing, recovery writes, direct access) and
// can stop an operation at any of them: fail that step with EIO, or call a
// hook first (which may kill the process, leaving a crash image). The
// all-or-nothing tests drive every mutating operation through it, once per
// step.
#pragma once

#include <cerrno>
#include <cstdint>
#include <functional>

#include "common/forwarding_device.h"

namespace daxguard::testing {

class FaultyDevice final : public ForwardingDevice {
 public:
  explicit FaultyDevice(dax::Device& base) : ForwardingDevice(base) {}

  // Step `n` (counting from 0) fails with EIO; -1: none.
  void FailAt(int64_t n) { fail_at_ = n; }
  // Called with each step's number before the step runs.
  void BeforeStep(std::function<void(uint64_t)> hook) { before_step_ = std::move(hook); }
  uint64_t steps() const { return steps_; }

  Result<dax::Mapping> DirectAccess(uint64_t pgoff, uint64_t nr_pages, dax::AccessMode mode) override {
    DG_RETURN_IF_ERROR(Step());
    return ForwardingDevice::DirectAccess(pgoff, nr_pages, mode);
  }
  Result<size_t> RecoveryWrite(uint64_t off, const void* src, size_t len) override {
    DG_RETURN_IF_ERROR(Step());
    return base_.RecoveryWrite(off, src, len);
  }
  Status ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) override {
    DG_RETURN_IF_ERROR(Step());
    return base_.ZeroPageRange(pgoff, nr_pages);
  }
  Status Write(uint64_t off, const void* src, size_t len) override {
    DG_RETURN_IF_ERROR(Step());
    return base_.Write(off, src, len);
  }
  // Write-backs and fences change no bytes: not steps.
  Status WritePersist(uint64_t off, const void* src, size_t len) override {
    DG_RETURN_IF_ERROR(Step());
    return base_.WritePersist(off, src, len);
  }
  // No clean path: every write takes DirectAccess + Write, both counted.
  bool WriteClean(uint64_t, const void*, size_t) override { return false; }

 private:
  Status Step() {
    uint64_t n = steps_++;
    if (before_step_) before_step_(n);
    if (static_cast<int64_t>(n) == fail_at_) return Status::Error(EIO, "injected failure at step " + std::to_string(n));
    return Status::Ok();
  }

  int64_t fail_at_ = -1;
  std::function<void(uint64_t)> before_step_;
  uint64_t steps_ = 0;
};

}  // namespace daxguard::testing
