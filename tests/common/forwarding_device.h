// ForwardingDevice: a dax::Device over another that passes every call down
// unchanged and the base's failure reports up, offsets unchanged. Test
// devices that watch or change a few calls (FaultyDevice, PersistTracker)
// override just those.
#pragma once

#include <cstdint>
#include <vector>

#include "dax/dax_device.h"

namespace daxguard::testing {

class ForwardingDevice : public dax::Device {
 public:
  explicit ForwardingDevice(dax::Device& base) : base_(base), link_(this) {}
  ~ForwardingDevice() override { base_.ReleaseHolder(&link_); }

  uint64_t size() const override { return base_.size(); }
  dax::Capabilities caps() const override { return base_.caps(); }
  Result<dax::Mapping> DirectAccess(uint64_t pgoff, uint64_t nr_pages, dax::AccessMode mode) override {
    auto m = base_.DirectAccess(pgoff, nr_pages, mode);
    if (!m.ok()) return m;
    m->source = this;  // copies through the mapping come back here
    m->source_off = pgoff * kPageSize;
    return m;
  }
  Result<size_t> RecoveryWrite(uint64_t off, const void* src, size_t len) override {
    return base_.RecoveryWrite(off, src, len);
  }
  Status ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) override { return base_.ZeroPageRange(pgoff, nr_pages); }
  Result<size_t> ReadMcSafe(uint64_t off, void* dst, size_t len) override { return base_.ReadMcSafe(off, dst, len); }
  Status Write(uint64_t off, const void* src, size_t len) override { return base_.Write(off, src, len); }
  Status WriteBack(uint64_t off, uint64_t len) override { return base_.WriteBack(off, len); }
  void Fence() override { base_.Fence(); }
  Status WritePersist(uint64_t off, const void* src, size_t len) override { return base_.WritePersist(off, src, len); }
  bool ReadClean(uint64_t off, void* dst, size_t len) override { return base_.ReadClean(off, dst, len); }
  bool WriteClean(uint64_t off, const void* src, size_t len) override { return base_.WriteClean(off, src, len); }
  std::vector<media::BadBlock> BadBlocks() const override { return base_.BadBlocks(); }
  bool CanRecover(uint64_t off, uint64_t len) const override { return base_.CanRecover(off, len); }
  bool KnownUnreadable(uint64_t off, uint64_t len) const override { return base_.KnownUnreadable(off, len); }

 protected:
  Status ClaimForHolder(uint64_t) override { return base_.RegisterHolder(&link_); }
  void UnclaimForHolder(uint64_t) override {}
  void OnHolderReleasing() override { base_.ReleaseHolder(&link_); }

  dax::Device& base_;

 private:
  class Link final : public dax::Holder {
   public:
    explicit Link(ForwardingDevice* dev) : dev_(dev) {}
    void NotifyFailure(uint64_t offset, uint64_t len, int flags) override { dev_->NotifyHolder(offset, len, flags); }

   private:
    ForwardingDevice* dev_;
  };
  Link link_;
};

}  // namespace daxguard::testing
