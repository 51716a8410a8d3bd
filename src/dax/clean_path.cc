#include "dax/clean_path.h"

namespace daxguard::dax {

CleanPath::CleanPath(Device& dev) : dev_(dev), file_(dynamic_cast<PmemDax*>(&dev)) {
  if (!file_) return;
  data_ = file_->data();
  live_ = &file_->media().live();
}

uint64_t CleanPath::Vouch(uint64_t off, uint64_t len) const {
  if (!file_) return kNoEpoch;
  // The epoch first: a change that lands after it moves it.
  uint64_t epoch = media::PmemDevice::CleanEpoch(*live_);
  return file_->Clean(off, len, true) ? epoch : kNoEpoch;
}

}  // namespace daxguard::dax
