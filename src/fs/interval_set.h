// A set of disjoint [start, start+len) intervals over uint64, merged on
// insert. Free space, quarantine and per-file damage are all such sets.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace daxguard::fs {

class IntervalSet {
 public:
  using Interval = std::pair<uint64_t, uint64_t>;  // start, len

  void Add(uint64_t start, uint64_t len) {
    if (len == 0) return;
    uint64_t end = start + len;
    auto it = map_.upper_bound(start);
    if (it != map_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second >= start) {
        start = prev->first;
        end = std::max(end, prev->first + prev->second);
        it = map_.erase(prev);
      }
    }
    while (it != map_.end() && it->first <= end) {
      end = std::max(end, it->first + it->second);
      it = map_.erase(it);
    }
    map_[start] = end - start;
  }

  void Remove(uint64_t start, uint64_t len) {
    if (len == 0) return;
    uint64_t end = start + len;
    auto it = map_.upper_bound(start);
    if (it != map_.begin()) --it;
    while (it != map_.end() && it->first < end) {
      uint64_t s = it->first, e = s + it->second;
      if (e <= start) {
        ++it;
        continue;
      }
      it = map_.erase(it);
      if (s < start) map_[s] = start - s;
      if (e > end) it = map_.emplace(end, e - end).first;
    }
  }

  // The first interval meeting [start, start+len), clipped to it.
  std::optional<Interval> FirstOverlap(uint64_t start, uint64_t len) const {
    uint64_t end = start + len;
    auto it = map_.upper_bound(start);
    if (it != map_.begin() && std::prev(it)->first + std::prev(it)->second > start) --it;
    if (it == map_.end() || it->first >= end) return std::nullopt;
    uint64_t s = std::max(it->first, start), e = std::min(it->first + it->second, end);
    return Interval{s, e - s};
  }
  bool Overlaps(uint64_t start, uint64_t len) const { return FirstOverlap(start, len).has_value(); }
  bool Contains(uint64_t start, uint64_t len) const {
    auto f = FirstOverlap(start, len);
    return f && f->first == start && f->second == len;
  }
  std::vector<Interval> Overlapping(uint64_t start, uint64_t len) const {
    std::vector<Interval> out;
    uint64_t end = start + len;
    auto it = map_.upper_bound(start);
    if (it != map_.begin()) --it;
    for (; it != map_.end() && it->first < end; ++it) {
      uint64_t s = std::max(it->first, start), e = std::min(it->first + it->second, end);
      if (s < e) out.push_back({s, e - s});
    }
    return out;
  }

  uint64_t Total() const {
    uint64_t t = 0;
    for (const auto& [s, l] : map_) t += l;
    return t;
  }
  bool empty() const { return map_.empty(); }
  const std::map<uint64_t, uint64_t>& intervals() const { return map_; }
  bool operator==(const IntervalSet&) const = default;

 private:
  std::map<uint64_t, uint64_t> map_;
};

}  // namespace daxguard::fs
