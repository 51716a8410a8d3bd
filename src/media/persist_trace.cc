#include "media/persist_trace.h"

#include <algorithm>
#include <cstring>

namespace daxguard::media {
namespace {

constexpr uint64_t kWord = 8;
constexpr uint64_t kChunk = 4096;
// Differing words closer than this are one store (a line's worth).
constexpr uint64_t kJoin = 64;

}  // namespace

PersistTrace::PersistTrace(std::span<const uint8_t> image, MediaErrorState errors)
    : initial_(image.begin(), image.end()), shadow_(initial_), errors_{std::move(errors)} {}

void PersistTrace::Store(uint64_t off, const void* src, uint64_t len) {
  std::lock_guard lock(mu_);
  StoreLocked(off, static_cast<const uint8_t*>(src), len);
}

void PersistTrace::StoreLocked(uint64_t off, const uint8_t* src, uint64_t len) {
  if (len == 0 || off >= shadow_.size()) return;
  len = std::min(len, shadow_.size() - off);
  events_.push_back({TraceEvent::Kind::kStore, off, len, pool_.size()});
  pool_.insert(pool_.end(), src, src + len);
  std::memcpy(shadow_.data() + off, src, len);
}

void PersistTrace::WriteBack(uint64_t off, uint64_t len, const uint8_t* view) {
  std::lock_guard lock(mu_);
  if (len == 0 || off >= shadow_.size()) return;
  len = std::min(len, shadow_.size() - off);
  DiscoverLocked(off, len, view);
  events_.push_back({TraceEvent::Kind::kWriteBack, off, len, 0});
}

void PersistTrace::Fence(const uint8_t* view) {
  std::lock_guard lock(mu_);
  DiscoverLocked(0, shadow_.size(), view);
  events_.push_back({TraceEvent::Kind::kFence, 0, 0, 0});
}

void PersistTrace::Errors(MediaErrorState state) {
  std::lock_guard lock(mu_);
  if (state == errors_.back()) return;
  events_.push_back({TraceEvent::Kind::kErrors, errors_.size(), 0, 0});
  errors_.push_back(std::move(state));
}

void PersistTrace::Mark(uint64_t value) {
  std::lock_guard lock(mu_);
  events_.push_back({TraceEvent::Kind::kMarker, value, 0, 0});
}

// Chunks compare with memcmp (the common case: equal); inside a differing
// chunk, runs of differing words become stores.
void PersistTrace::DiscoverLocked(uint64_t off, uint64_t len, const uint8_t* view) {
  uint64_t lo = off / kWord * kWord, hi = std::min<uint64_t>((off + len + kWord - 1) / kWord * kWord, shadow_.size());
  uint64_t run_start = 0, run_end = 0;
  bool in_run = false;
  auto flush = [&] {
    if (in_run) StoreLocked(run_start, view + run_start, run_end - run_start);
    in_run = false;
  };
  for (uint64_t c = lo; c < hi; c = std::min(hi, (c / kChunk + 1) * kChunk)) {
    uint64_t c_end = std::min(hi, (c / kChunk + 1) * kChunk);
    if (std::memcmp(view + c, shadow_.data() + c, c_end - c) == 0) continue;
    for (uint64_t w = c; w < c_end; w += kWord) {
      uint64_t n = std::min(kWord, c_end - w);
      if (std::memcmp(view + w, shadow_.data() + w, n) == 0) continue;
      if (in_run && w - run_end >= kJoin) flush();
      if (!in_run) run_start = w, in_run = true;
      run_end = w + n;
    }
  }
  flush();
}

}  // namespace daxguard::media
