// A holder that stands in for the data's owner while a tool holds a device
// (dm replace's resync, the scrub patrol): holding it makes a mirror rebuild
// what it finds, and what it is told (data no copy holds) is marked for the
// next holder to hear again, since it, not the tool, must know.
#pragma once

#include <mutex>
#include <vector>

#include "dax/dax_device.h"

namespace daxguard::dax {

class StandInHolder final : public Holder {
 public:
  void NotifyFailure(uint64_t offset, uint64_t len, int flags) override {
    std::lock_guard<std::mutex> g(mu_);
    if (flags == kFailureMedia) told_.push_back({offset, len});
  }
  // After the holder is released from `dev`: what it was told, retold.
  Status RetellTo(Device& dev) {
    std::lock_guard<std::mutex> g(mu_);
    for (const ByteRange& r : told_) DG_RETURN_IF_ERROR(dev.Retell(r.off, r.len));
    return Status::Ok();
  }

 private:
  std::mutex mu_;
  std::vector<ByteRange> told_;
};

}  // namespace daxguard::dax
