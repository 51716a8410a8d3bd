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

namespace {
// Joins a thread that was told to end, unless it is this one (a listener
// letting go from its own call): that one ends as the call returns.
void Finish(std::thread t) {
  if (!t.joinable()) return;
  if (t.get_id() == std::this_thread::get_id())
    t.detach();
  else
    t.join();
}
}  // namespace

uint64_t MediaWatch::Listen(std::function<void()> fn) {
  std::thread old;
  uint64_t id;
  {
    std::lock_guard<std::mutex> g(mu_);
    id = next_id_++;
    listeners_.emplace(id, std::move(fn));
    if (running_) return id;
    old = std::move(thread_);
    running_ = true;
    uint64_t gen = ++gen_;
    // Read before the listener looks at the media, so no change goes unseen.
    uint32_t seen = media_->ChangeEvents();
    thread_ = std::thread([self = shared_from_this(), gen, seen] { self->Run(gen, seen); });
    pthread_setname_np(thread_.native_handle(), "dax-watch");  // named before Listen returns
  }
  Finish(std::move(old));
  return id;
}

void MediaWatch::Unlisten(uint64_t id) {
  std::thread t;
  {
    std::lock_guard<std::recursive_mutex> calls(calls_mu_);  // waits out a running call
    std::lock_guard<std::mutex> g(mu_);
    if (!listeners_.erase(id) || !listeners_.empty()) return;
    running_ = false;
    ++gen_;
    t = std::move(thread_);
  }
  media_->SignalChange();  // so the thread sees it now, not at its timeout
  Finish(std::move(t));
}

bool MediaWatch::Current(uint64_t gen) {
  std::lock_guard<std::mutex> g(mu_);
  return gen == gen_;
}

void MediaWatch::Run(uint64_t gen, uint32_t seen) {
  while (Current(gen)) {
    media_->WaitForChange(seen, kWatchTimeoutMs);
    uint32_t now = media_->ChangeEvents();
    if (now == seen) continue;
    seen = now;
    CallListeners(gen);
  }
}

void MediaWatch::CallListeners(uint64_t gen) {
  std::lock_guard<std::recursive_mutex> calls(calls_mu_);
  std::vector<uint64_t> ids;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (gen != gen_) return;
    for (const auto& [id, fn] : listeners_) ids.push_back(id);
  }
  for (uint64_t id : ids) {
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (gen != gen_) return;
      auto it = listeners_.find(id);
      if (it == listeners_.end()) continue;  // let go by an earlier listener
      fn = it->second;
    }
    fn();
  }
}

}  // namespace daxguard::dax
