// PersistTracker: a dax::Device over another that follows the persistence
// contract as daxfs uses it. Every store makes its bytes dirty; a write-back
// (or RecoveryWrite, ZeroPageRange) makes them pending; a fence makes the
// pending ones durable. Its clean path writes back as it stores, as the
// media's does; every store daxfs makes but a mapping's reaches it. It checks the ordering rule a crash needs: when a store lands
// in the metadata area, nothing in the data area is dirty or pending (so a
// log record never persists before the data it points to).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/forwarding_device.h"
#include "fs/interval_set.h"

namespace daxguard::fs {

class PersistTracker final : public testing::ForwardingDevice {
 public:
  PersistTracker(dax::Device& base, std::function<bool(uint64_t)> is_meta)
      : ForwardingDevice(base), is_meta_(std::move(is_meta)) {}

  const IntervalSet& dirty() const { return dirty_; }
  const IntervalSet& pending() const { return pending_; }
  const std::vector<std::string>& violations() const { return violations_; }
  uint64_t fences() const { return fences_; }
  uint64_t write_backs() const { return write_backs_; }

  Result<size_t> RecoveryWrite(uint64_t off, const void* src, size_t len) override {
    Store(off, len);
    auto w = base_.RecoveryWrite(off, src, len);
    if (w.ok()) Back(off, len);
    return w;
  }
  Status ZeroPageRange(uint64_t pgoff, uint64_t nr_pages) override {
    Store(pgoff * kPageSize, nr_pages * kPageSize);
    Status s = base_.ZeroPageRange(pgoff, nr_pages);
    if (s.ok()) Back(pgoff * kPageSize, nr_pages * kPageSize);
    return s;
  }
  Status Write(uint64_t off, const void* src, size_t len) override {
    Store(off, len);
    return base_.Write(off, src, len);
  }
  Status WriteBack(uint64_t off, uint64_t len) override {
    ++write_backs_;
    Back(off, len);
    return base_.WriteBack(off, len);
  }
  void Fence() override {
    ++fences_;
    pending_ = IntervalSet();
    base_.Fence();
  }
  Status WritePersist(uint64_t off, const void* src, size_t len) override {
    Store(off, len);
    Status s = base_.WritePersist(off, src, len);
    Back(off, len);
    Fence();
    return s;
  }
  bool WriteClean(uint64_t off, const void* src, size_t len) override {  // written back as it stores
    if (!base_.WriteClean(off, src, len)) return false;
    Store(off, len);
    Back(off, len);
    return true;
  }

 private:
  static uint64_t LineDown(uint64_t x) { return x / 64 * 64; }
  static uint64_t LineUp(uint64_t x) { return (x + 63) / 64 * 64; }
  void Store(uint64_t off, uint64_t len) {
    if (len == 0) return;
    if (is_meta_(off)) {
      for (const IntervalSet* s : {&dirty_, &pending_})
        for (const auto& [start, n] : s->intervals())
          if (!is_meta_(start))
            violations_.push_back("metadata store at " + std::to_string(off) + " while data at " +
                                  std::to_string(start) + "+" + std::to_string(n) +
                                  (s == &dirty_ ? " is not written back" : " is not fenced"));
    }
    dirty_.Add(LineDown(off), LineUp(off + len) - LineDown(off));
  }
  void Back(uint64_t off, uint64_t len) {
    if (len == 0) return;
    uint64_t lo = LineDown(off), hi = LineUp(off + len);
    for (const auto& [start, n] : dirty_.Overlapping(lo, hi - lo)) pending_.Add(start, n);
    dirty_.Remove(lo, hi - lo);
  }

  std::function<bool(uint64_t)> is_meta_;
  IntervalSet dirty_, pending_;
  std::vector<std::string> violations_;
  uint64_t fences_ = 0, write_backs_ = 0;
};

}  // namespace daxguard::fs
