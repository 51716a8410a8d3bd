#include "dax/dax_device.h"

#include <unistd.h>

#include <string>

namespace daxguard::dax {

static uint64_t TokenOf(const Holder* h) { return reinterpret_cast<uintptr_t>(h); }

Status Device::RegisterHolder(Holder* holder) {
  {
    std::lock_guard<std::recursive_mutex> g(holder_mu_);
    if (!alive_) return Status::Error(ENXIO, "device has been removed");
    if (holder_) return Status::Busy("device already has a holder");
    DG_RETURN_IF_ERROR(ClaimForHolder(TokenOf(holder)));
    holder_ = holder;
  }
  OnHolderRegistered();
  return Status::Ok();
}

void Device::ReleaseHolder(Holder* holder) {
  // One release at a time: a second caller (say Kill racing an unmount)
  // waits, then finds the holder gone and returns.
  std::lock_guard<std::mutex> release(release_mu_);
  {
    std::lock_guard<std::recursive_mutex> g(holder_mu_);
    if (holder_ != holder) return;
  }
  OnHolderReleasing();
  std::lock_guard<std::recursive_mutex> g(holder_mu_);
  holder_ = nullptr;
  UnclaimForHolder(TokenOf(holder));
}

bool Device::HasHolder() const {
  std::lock_guard<std::recursive_mutex> g(holder_mu_);
  return holder_ != nullptr;
}

uint32_t Device::HolderPid() const { return HasHolder() ? static_cast<uint32_t>(getpid()) : 0; }

Status Device::CheckNotHeld() const {
  uint32_t pid = HolderPid();
  if (pid == 0) return Status::Ok();
  return Status::Busy("device is held by pid " + std::to_string(pid) + " (a mounted filesystem?)");
}

Result<std::vector<MediaRun>> Device::MapToMedia(uint64_t off, uint64_t len) {
  if (off > size() || len > size() - off)
    return Status::Range("range " + std::to_string(off) + "+" + std::to_string(len) + " is beyond the end (" +
                         std::to_string(size()) + " bytes)");
  return MediaRunsOf(off, len);
}

Result<std::vector<MediaRun>> Device::MediaRunsOf(uint64_t, uint64_t) {
  return Status::Invalid("no emulated media below this device");
}

bool Device::KnownUnreadable(uint64_t off, uint64_t len) const {
  if (!BytesOk(off, len)) return true;
  for (const media::BadBlock& b : BadBlocks())
    if (b.sector * kSectorSize < off + len && off < (b.sector + b.count) * kSectorSize) return true;
  return false;
}

// As in Linux's kill_dax: the holder hears PRE_REMOVE, then is let go.
void Device::Kill() {
  if (!alive_.exchange(false)) return;
  NotifyHolder(0, size(), kFailurePreRemove);
  Holder* h;
  {
    std::lock_guard<std::recursive_mutex> g(holder_mu_);
    h = holder_;
  }
  if (h) ReleaseHolder(h);
}

Status Device::MapInto(MappedRegion&, uint64_t, uint64_t, uint64_t, uint64_t) {
  return Status::Error(ENOTSUP, "this device cannot be mapped");
}

bool Device::NotifyHolder(uint64_t offset, uint64_t len, int flags) {
  // Held across the call so a holder is never called after ReleaseHolder.
  std::lock_guard<std::recursive_mutex> g(holder_mu_);
  if (!holder_) return false;
  holder_->NotifyFailure(offset, len, flags);
  return true;
}

Status Device::PagesError(uint64_t pgoff, uint64_t nr_pages) const {
  if (pgoff > pages() || nr_pages > pages() - pgoff)
    return Status::Range("pages " + std::to_string(pgoff) + "+" + std::to_string(nr_pages) +
                         " are beyond the device end (" + std::to_string(pages()) + " pages)");
  if (!alive()) return Status::Error(ENXIO, "device has been removed");
  return Status::Ok();
}

Status Device::BytesError(uint64_t off, uint64_t len) const {
  if (off > size() || len > size() - off)
    return Status::Range("range " + std::to_string(off) + "+" + std::to_string(len) +
                         " is beyond the device end (" + std::to_string(size()) + " bytes)");
  if (!alive()) return Status::Error(ENXIO, "device has been removed");
  return Status::Ok();
}

}  // namespace daxguard::dax
