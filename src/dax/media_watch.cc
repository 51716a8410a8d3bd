#include "dax/media_watch.h"

#include <pthread.h>

#include <utility>
#include <vector>

namespace daxguard::dax {
namespace {
// A safety net only: every change wakes the thread through the futex.
constexpr int kWatchTimeoutMs = 100;
}  // namespace

std::shared_ptr<MediaWatch> MediaWatch::Create(std::shared_ptr<media::PmemDevice> media) {
  return std::shared_ptr<MediaWatch>(new MediaWatch(std::move(media)));
}

MediaWatch::~MediaWatch() {
  // The thread holds a reference while it runs, so it has ended or is
  // ending; it may be this very thread, dropping the last reference.
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id())
    thread_.detach();
  else
    thread_.join();
}

uint64_t MediaWatch::Listen(std::function<void()> fn) {
  std::lock_guard<std::mutex> g(mu_);
  uint64_t id = next_id_++;
  listeners_.emplace(id, std::move(fn));
  if (running_) return id;
  // A thread that decided to end touches nothing of ours after that.
  if (thread_.joinable()) thread_.join();
  running_ = true;
  // Read before the listener looks at the media, so no change goes unseen.
  uint32_t seen = media_->ChangeEvents();
  thread_ = std::thread([self = shared_from_this(), seen] { self->Run(seen); });
  return id;
}

void MediaWatch::Unlisten(uint64_t id) {
  std::lock_guard<std::recursive_mutex> calls(calls_mu_);  // waits out a running call
  bool last;
  {
    std::lock_guard<std::mutex> g(mu_);
    listeners_.erase(id);
    last = listeners_.empty();
  }
  if (last) media_->SignalChange();  // so the thread sees it now, not at its timeout
}

void MediaWatch::Run(uint32_t seen) {
  pthread_setname_np(pthread_self(), "dax-watch");
  for (;;) {
    media_->WaitForChange(seen, kWatchTimeoutMs);
    uint32_t now = media_->ChangeEvents();
    if (now == seen) {
      std::lock_guard<std::mutex> g(mu_);
      if (!listeners_.empty()) continue;
      running_ = false;
      return;
    }
    seen = now;
    if (!CallListeners()) return;
  }
}

bool MediaWatch::CallListeners() {
  std::lock_guard<std::recursive_mutex> calls(calls_mu_);
  std::vector<uint64_t> ids;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (listeners_.empty()) {
      running_ = false;
      return false;
    }
    for (const auto& [id, fn] : listeners_) ids.push_back(id);
  }
  for (uint64_t id : ids) {
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = listeners_.find(id);
      if (it == listeners_.end()) continue;  // let go by an earlier listener
      fn = it->second;
    }
    fn();
  }
  return true;
}

}  // namespace daxguard::dax
