// A dax::Holder for tests: records every notification (from any thread),
// lets a test wait for the calls it expects, and can run a hook inside a
// notification.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <ostream>
#include <vector>

#include "common/status.h"
#include "dax/dax_device.h"

namespace daxguard::testing {

struct Call {
  uint64_t offset, len;
  int flags;
  bool operator==(const Call&) const = default;
};
inline void PrintTo(const Call& c, std::ostream* os) {
  *os << "{" << c.offset << "+" << c.len << " flags " << c.flags << "}";
}

class RecordingHolder : public dax::Holder {
 public:
  // `timeout`: how long the Wait* calls wait for what they expect.
  explicit RecordingHolder(std::chrono::milliseconds timeout = std::chrono::seconds(10)) : timeout_(timeout) {}
  ~RecordingHolder() override {
    if (device_) device_->ReleaseHolder(this);
  }
  // Registers with `d` until destroyed, so that a failed assertion cannot
  // leave a device calling a holder that is gone.
  Status RegisterWith(dax::Device& d) {
    Status s = d.RegisterHolder(this);
    if (s.ok()) device_ = &d;
    return s;
  }
  void NotifyFailure(uint64_t offset, uint64_t len, int flags) override {
    std::function<void()> hook;
    {
      std::lock_guard<std::mutex> g(mu_);
      calls_.push_back({offset, len, flags});
      hook = on_notify_;
      cv_.notify_all();
    }
    if (hook) hook();
  }
  std::vector<Call> Calls() const {
    std::lock_guard<std::mutex> g(mu_);
    return calls_;
  }
  // Waits until `pred` holds for the calls so far, or the deadline passes.
  // Polls too, since `pred` may also look at the device (acknowledgements
  // land just after a notification).
  bool WaitFor(const std::function<bool(const std::vector<Call>&)>& pred) const {
    auto deadline = std::chrono::steady_clock::now() + timeout_;
    std::unique_lock<std::mutex> g(mu_);
    while (!pred(calls_)) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      cv_.wait_for(g, std::chrono::milliseconds(5));
    }
    return true;
  }
  bool WaitForCall(const Call& c) const {
    return WaitFor([&](const std::vector<Call>& v) { return std::find(v.begin(), v.end(), c) != v.end(); });
  }
  bool WaitForCount(size_t n) const {
    return WaitFor([n](const std::vector<Call>& v) { return v.size() >= n; });
  }
  // Runs `hook` (outside the holder's lock) after each notification is recorded.
  void OnNotify(std::function<void()> hook) {
    std::lock_guard<std::mutex> g(mu_);
    on_notify_ = std::move(hook);
  }

 private:
  const std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Call> calls_;
  std::function<void()> on_notify_;
  dax::Device* device_ = nullptr;
};

}  // namespace daxguard::testing
