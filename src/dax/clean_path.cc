#include "dax/clean_path.h"

namespace daxguard::dax {

CleanPath::CleanPath(Device& dev) : dev_(dev) {
  std::optional<DirectLayout> layout = dev.DirectLayoutOf(0, dev.size());
  if (!layout || layout->legs.size() != 1) return;
  mem_ = layout->legs[0].mem;
  base_ = layout->legs[0].offset;
  data_ = mem_->data() + base_;
  size_ = dev.size();
  live_ = &mem_->live();
  if (&mem_->owner() != &dev) below_ = &mem_->owner();
}

uint64_t CleanPath::Vouch(uint64_t off, uint64_t len) const {
  if (!mem_) return kNoEpoch;
  // The epoch first: a change that lands after it moves it.
  uint64_t epoch = mem_->CleanEpoch();
  return InDevice(off, len) && mem_->Clean(base_ + off, len, true) ? epoch : kNoEpoch;
}

}  // namespace daxguard::dax
