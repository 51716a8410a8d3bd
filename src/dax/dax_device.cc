#include "dax/dax_device.h"

#include <pthread.h>
#include <unistd.h>

#include <string>
#include <utility>

namespace daxguard::dax {

static uint64_t TokenOf(const Holder* h) { return reinterpret_cast<uintptr_t>(h); }

Device::~Device() {
  StopDelivering();
  // Destroyed from inside its own delivery: that thread ends as it returns.
  if (deliverer_.joinable()) deliverer_.detach();
}

Status Device::RegisterHolder(Holder* holder) {
  {
    std::lock_guard<std::recursive_mutex> g(holder_mu_);
    if (!alive_) return Status::Error(ENXIO, "device has been removed");
    if (holder_) return Status::Busy("device already has a holder");
    DG_RETURN_IF_ERROR(ClaimForHolder(TokenOf(holder)));
    holder_ = holder;
  }
  StartDelivering();
  OnHolderRegistered();
  DeliverFailures(true);  // what became known before the holder came
  return Status::Ok();
}

void Device::ReleaseHolder(Holder* holder) {
  // One release at a time: a second caller (say an unmount racing another)
  // waits, then finds the holder gone and returns.
  std::lock_guard<std::mutex> release(release_mu_);
  ReleaseLocked(holder);
}

void Device::ReleaseLocked(Holder* holder) {
  {
    std::lock_guard<std::recursive_mutex> g(holder_mu_);
    if (holder_ != holder) return;
  }
  OnHolderReleasing();
  StopDelivering();  // after what was reported until now has been told
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

Status Device::Retell(uint64_t off, uint64_t len) {
  auto runs = MapToMedia(off, len);
  if (!runs.ok()) return runs.status();
  for (const MediaRun& r : *runs) {
    uint64_t first = r.offset / kSectorSize, end = (r.offset + r.len + kSectorSize - 1) / kSectorSize;
    DG_RETURN_IF_ERROR(r.media->Unacknowledge(first, end - first));
  }
  return Status::Ok();
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
  // Someone letting the holder go already (perhaps waiting for this very
  // delivery thread) finishes the job.
  std::unique_lock<std::mutex> release(release_mu_, std::try_to_lock);
  if (h && release.owns_lock()) ReleaseLocked(h);
}

Status Device::MapInto(MappedRegion&, uint64_t, uint64_t, uint64_t, uint64_t) {
  return Status::Error(ENOTSUP, "this device cannot be mapped");
}

bool Device::NotifyHolder(uint64_t offset, uint64_t len, int flags) {
  // Held across the call so a holder is never called after ReleaseHolder.
  std::lock_guard<std::recursive_mutex> g(holder_mu_);
  if (!holder_) return false;
  std::thread::id outer = telling_.exchange(std::this_thread::get_id());
  holder_->NotifyFailure(offset, len, flags);
  telling_.store(outer);
  return true;
}

// --- delivery

void Device::ReportFailure(const Failure& f) {
  std::lock_guard<std::mutex> g(queue_mu_);
  queue_.push_back(f);
  ++asked_;
  queue_cv_.notify_all();
}

bool Device::InDelivery() const {
  std::thread::id me = std::this_thread::get_id();
  return telling_.load() == me || deliverer_.get_id() == me;
}

void Device::DeliverFailures(bool wait) {
  std::unique_lock<std::mutex> g(queue_mu_);
  uint64_t mine = ++asked_;
  queue_cv_.notify_all();
  if (!wait || InDelivery()) return;
  // However long it takes: the thread never waits for this caller, even one
  // inside a holder's operation (holders do not wait in NotifyFailure).
  queue_cv_.wait(g, [&] { return done_ >= mine || !delivering_; });
}

void Device::StartDelivering() {
  std::thread old;
  {
    std::lock_guard<std::mutex> g(queue_mu_);
    old = std::move(deliverer_);
  }
  if (old.joinable()) old.join();  // one that ended itself (StopDelivering)
  std::lock_guard<std::mutex> g(queue_mu_);
  stop_ = false;
  delivering_ = true;
  deliverer_ = std::thread([this] { DeliverLoop(); });
  pthread_setname_np(deliverer_.native_handle(), "dax-deliver");
}

void Device::StopDelivering() {
  std::thread t;
  {
    std::lock_guard<std::mutex> g(queue_mu_);
    stop_ = true;
    // The holder may let go (or Kill run) on the delivery thread itself:
    // that thread ends once the call returns, and is joined later.
    if (deliverer_.joinable() && deliverer_.get_id() != std::this_thread::get_id()) t = std::move(deliverer_);
  }
  queue_cv_.notify_all();
  if (t.joinable()) t.join();
}

void Device::DeliverLoop() {
  std::unique_lock<std::mutex> g(queue_mu_);
  for (;;) {
    queue_cv_.wait(g, [this] { return stop_ || asked_ > done_; });
    if (asked_ == done_) break;  // stopping, and nothing is waiting
    uint64_t pass = asked_;
    std::vector<Failure> batch = std::exchange(queue_, {});
    g.unlock();
    std::vector<Failure> untold = TellAll(std::move(batch));
    g.lock();
    queue_.insert(queue_.begin(), untold.begin(), untold.end());
    done_ = pass;
    queue_cv_.notify_all();
  }
  delivering_ = false;
  queue_cv_.notify_all();
}

std::vector<Failure> Device::TellAll(std::vector<Failure> queued) {
  for (size_t i = 0; i < queued.size(); ++i) {
    // A device below going away takes this one with it.
    if (queued[i].flags & kFailurePreRemove) {
      Kill();
      continue;
    }
    if (!NotifyHolder(queued[i].offset, queued[i].len, queued[i].flags))
      return {queued.begin() + static_cast<ptrdiff_t>(i), queued.end()};
  }
  if (!HasHolder()) return {};
  for (const Failure& f : CollectFailures()) {
    if (!NotifyHolder(f.offset, f.len, f.flags)) break;
    FailureTold(f);
  }
  return {};
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
