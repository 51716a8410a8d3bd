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

#include "dax/dax_device.h"

namespace daxguard::testing {

class FaultyDevice final : public dax::Device {
 public:
  explicit FaultyDevice(dax::Device& base) : base_(base), link_(this) {}
  ~FaultyDevice() override { base_.ReleaseHolder(&link_); }

  // Step `n` (counting from 0) fails with EIO; -1: none.
  void FailAt(int64_t n) { fail_at_ = n; }
  // Called with each step's number before the step runs.
  void BeforeStep(std::function<void(uint64_t)> hook) { before_step_ = std::move(hook); }
  uint64_t steps() const { return steps_; }

  uint64_t size() const override { return base_.size(); }
  dax::Capabilities caps() const override { return base_.caps(); }
  Result<dax::Mapping> DirectAccess(uint64_t pgoff, uint64_t nr_pages, dax::AccessMode mode) override {
    DG_RETURN_IF_ERROR(Step());
    auto m = base_.DirectAccess(pgoff, nr_pages, mode);
    if (!m.ok()) return m;
    // Copies through the mapping come back here, to be counted too.
    m->source = this;
    m->source_off = pgoff * kPageSize;
    return m;
  }
  Result<size_t> RecoveryWrite(uint64_t off, const void* src, size_t len) override {
    DG_RETURN_IF_ERROR(Step());
    return base_.RecoveryWrite(off, src, len);
  }
  Status ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) override {
    DG_RETURN_IF_ERROR(Step());
    return base_.ZeroPageRange(pgoff, nr_pages);
  }
  size_t ReadMcSafe(uint64_t off, void* dst, size_t len) override { return base_.ReadMcSafe(off, dst, len); }
  Status Write(uint64_t off, const void* src, size_t len) override {
    DG_RETURN_IF_ERROR(Step());
    return base_.Write(off, src, len);
  }
  // Write-backs and fences change no bytes: not steps.
  Status WriteBack(uint64_t off, uint64_t len) override { return base_.WriteBack(off, len); }
  void Fence() override { base_.Fence(); }
  Status WritePersist(uint64_t off, const void* src, size_t len) override {
    DG_RETURN_IF_ERROR(Step());
    return base_.WritePersist(off, src, len);
  }
  bool ReadClean(uint64_t off, void* dst, size_t len) override { return base_.ReadClean(off, dst, len); }
  // No clean path: every write takes DirectAccess + Write, both counted.
  bool WriteClean(uint64_t, const void*, size_t) override { return false; }
  std::vector<media::BadBlock> BadBlocks() const override { return base_.BadBlocks(); }
  bool CanRecover(uint64_t off, uint64_t len) const override { return base_.CanRecover(off, len); }

 protected:
  Status ClaimForHolder(uint64_t) override { return base_.RegisterHolder(&link_); }
  void UnclaimForHolder(uint64_t) override {}
  void OnHolderReleasing() override { base_.ReleaseHolder(&link_); }

 private:
  // Passes the base's failure reports up, offsets unchanged.
  class Link final : public dax::Holder {
   public:
    explicit Link(FaultyDevice* dev) : dev_(dev) {}
    void NotifyFailure(uint64_t offset, uint64_t len, int flags) override { dev_->NotifyHolder(offset, len, flags); }

   private:
    FaultyDevice* dev_;
  };

  Status Step() {
    uint64_t n = steps_++;
    if (before_step_) before_step_(n);
    if (static_cast<int64_t>(n) == fail_at_) return Status::Error(EIO, "injected failure at step " + std::to_string(n));
    return Status::Ok();
  }

  dax::Device& base_;
  Link link_;
  int64_t fail_at_ = -1;
  std::function<void(uint64_t)> before_step_;
  uint64_t steps_ = 0;
};

}  // namespace daxguard::testing
