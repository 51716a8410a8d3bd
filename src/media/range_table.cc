#include "media/range_table.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>

namespace daxguard::media {
namespace {

// Every word a reader may look at concurrently is accessed atomically, so the
// table is race-free for ThreadSanitizer and across processes alike.
inline uint64_t LoadWord(const uint64_t* p) {
  return std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(p)).load(std::memory_order_relaxed);
}
inline void StoreWord(uint64_t* p, uint64_t v) {
  std::atomic_ref<uint64_t>(*p).store(v, std::memory_order_relaxed);
}

// Pairs with RangeTable::LoadFilterWord (see there).
inline void StoreFilterWord(uint64_t* p, uint64_t v) {
  std::atomic_ref<uint64_t>(*p).store(v, std::memory_order_release);
}

// Merges neighbours that touch and carry the same flags.
void Normalize(std::vector<Range>* v) {
  std::vector<Range> out;
  for (const Range& r : *v) {
    if (r.len == 0) continue;
    if (!out.empty() && out.back().end() == r.start && out.back().flags == r.flags)
      out.back().len += r.len;
    else
      out.push_back(r);
  }
  v->swap(out);
}

uint64_t SatEnd(uint64_t start, uint64_t len) {
  return len > UINT64_MAX - start ? UINT64_MAX : start + len;
}

}  // namespace

// A writer's edit takes microseconds; one open for long may be a dead
// writer's, which only the stuck-writer hook can close.
template <typename F>
auto RangeTable::SeqRead(F read) const {
  std::atomic_ref<uint64_t> seq(hdr_->seq);
  std::chrono::steady_clock::time_point odd_since{};
  for (unsigned spins = 0;; ++spins) {
    uint64_t before = seq.load(std::memory_order_acquire);
    if (before & 1) {
      if (spins <= 64) continue;
      sched_yield();
      auto now = std::chrono::steady_clock::now();
      if (odd_since == std::chrono::steady_clock::time_point{}) odd_since = now;
      if (stuck_writer_ && now - odd_since > std::chrono::milliseconds(kStuckWriterMs)) {
        stuck_writer_();
        odd_since = {};
      }
      continue;
    }
    odd_since = {};
    auto result = read();
    std::atomic_thread_fence(std::memory_order_acquire);
    if (seq.load(std::memory_order_relaxed) == before) return result;
  }
}

RangeTable::RangeTable(void* header, uint64_t* filter, uint64_t filter_bits,
                       uint64_t units_per_bit)
    : hdr_(static_cast<RangeTableHeader*>(header)),
      entries_(reinterpret_cast<uint64_t*>(hdr_ + 1)),
      filter_(filter),
      filter_bits_(filter_bits),
      units_per_bit_(units_per_bit),
      unit_shift_(static_cast<unsigned>(__builtin_ctzll(units_per_bit))) {}

void RangeTable::Format(void* header, uint64_t capacity) {
  auto* h = static_cast<RangeTableHeader*>(header);
  *h = RangeTableHeader{};
  h->capacity = capacity;
}

Range RangeTable::Load(uint64_t i) const {
  uint64_t lf = LoadWord(&entries_[2 * i + 1]);
  return Range{LoadWord(&entries_[2 * i]), lf & kMaxLen, static_cast<uint8_t>(lf >> 56)};
}

void RangeTable::Store(uint64_t i, const Range& r) {
  StoreWord(&entries_[2 * i], r.start);
  StoreWord(&entries_[2 * i + 1], (uint64_t{r.flags} << 56) | r.len);
}

uint64_t RangeTable::Count() const {
  return std::min(LoadWord(&hdr_->count), hdr_->capacity);
}

uint64_t RangeTable::LowerBound(uint64_t n, uint64_t unit) const {
  uint64_t lo = 0, hi = n;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (Load(mid).end() > unit)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

bool RangeTable::MayOverlapSlow(uint64_t start, uint64_t len) const {
  return FirstMarked(start, len).has_value();
}

Status RangeTable::Validate(uint64_t capacity, uint64_t limit, uint8_t max_flags, bool torn) const {
  auto entry = [](uint64_t i, const Range& r) {
    return "entry " + std::to_string(i) + " (start " + std::to_string(r.start) + ", length " +
           std::to_string(r.len) + ")";
  };
  if (hdr_->capacity != capacity)
    return Status::Corrupt("capacity " + std::to_string(hdr_->capacity) + ", not " + std::to_string(capacity));
  uint64_t n = hdr_->count;
  if (n > capacity)
    return Status::Corrupt("entry count " + std::to_string(n) + " exceeds capacity " + std::to_string(capacity));
  uint64_t prev_end = 0;
  for (uint64_t i = 0; i < n; ++i) {
    Range r = Load(i);
    if (torn && r == Range{}) continue;  // a slot a growing edit listed before filling
    if (r.len == 0) return Status::Corrupt(entry(i, r) + " is empty");
    if (r.start >= limit || r.len > limit - r.start)
      return Status::Corrupt(entry(i, r) + " is beyond the device end (" + std::to_string(limit) + ")");
    if (r.flags > max_flags) return Status::Corrupt(entry(i, r) + " has unknown flags " + std::to_string(r.flags));
    if (torn) continue;
    if (i > 0 && r.start < prev_end) return Status::Corrupt(entry(i, r) + " is out of order or overlaps the one before");
    if (!FilterCovers(r.start, r.end())) return Status::Corrupt(entry(i, r) + " is not marked in the filter");
    prev_end = r.end();
  }
  return Status::Ok();
}

// Whether every filter bit over units [start, end) is set.
bool RangeTable::FilterCovers(uint64_t start, uint64_t end) const {
  uint64_t first = start >> unit_shift_, last = (end - 1) >> unit_shift_;
  if (last >= filter_bits_) return false;
  for (uint64_t bit = first; bit <= last;) {
    uint64_t span = std::min<uint64_t>(64 - bit % 64, last - bit + 1);
    uint64_t mask = (span == 64 ? ~0ull : ((1ull << span) - 1)) << (bit % 64);
    if ((LoadWord(&filter_[bit / 64]) & mask) != mask) return false;
    bit += span;
  }
  return true;
}

std::optional<uint64_t> RangeTable::FirstMarked(uint64_t start, uint64_t len) const {
  if (len == 0 || (start >> unit_shift_) >= filter_bits_) return std::nullopt;
  uint64_t first = start >> unit_shift_;
  uint64_t last = std::min((SatEnd(start, len) - 1) >> unit_shift_, filter_bits_ - 1);
  for (uint64_t bit = first; bit <= last;) {
    uint64_t word = LoadFilterWord(bit / 64) >> (bit % 64);
    uint64_t span = std::min<uint64_t>(64 - bit % 64, last - bit + 1);
    if (span < 64) word &= (1ull << span) - 1;
    if (word) return std::max(start, (bit + __builtin_ctzll(word)) << unit_shift_);
    bit += span;
  }
  return std::nullopt;
}

std::optional<Range> RangeTable::FirstOverlap(uint64_t start, uint64_t len) const {
  if (!MayOverlap(start, len)) return std::nullopt;
  uint64_t end = SatEnd(start, len);
  return SeqRead([&]() -> std::optional<Range> {
    uint64_t n = Count();
    uint64_t i = LowerBound(n, start);
    if (i < n) {
      Range r = Load(i);
      if (r.start < end) return r;
    }
    return std::nullopt;
  });
}

std::vector<Range> RangeTable::Overlapping(uint64_t start, uint64_t len) const {
  uint64_t end = SatEnd(start, len);
  return SeqRead([&] {
    std::vector<Range> out;
    uint64_t n = Count();
    for (uint64_t i = LowerBound(n, start); i < n; ++i) {
      Range r = Load(i);
      if (r.start >= end) break;
      out.push_back(r);
    }
    return out;
  });
}

RangeTable::Window RangeTable::Touching(uint64_t start, uint64_t end) const {
  uint64_t n = Count();
  Window w{LowerBound(n, start ? start - 1 : 0), 0};
  w.hi = w.lo;
  while (w.hi < n && Load(w.hi).start <= end) ++w.hi;
  return w;
}

void RangeTable::BeginWrite() {
  std::atomic_ref<uint64_t>(hdr_->seq).fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

void RangeTable::EndWrite() {
  std::atomic_ref<uint64_t>(hdr_->seq).fetch_add(1, std::memory_order_release);
}

// Stores are ordered for Repair (which keeps the union of the listed
// entries) in case the writer dies mid-edit: a shift copies each entry before
// its slot is reused, a growing table lists its new (blanked) slots before
// shifting and a shrinking one unlists them only after, and new entries go
// first into slots whose old contents are already copied or replaced. So an
// interrupted shift, the long part of an edit, loses nothing; only the few
// stores of the new entries themselves can briefly misstate a range.
Status RangeTable::Replace(Window w, const std::vector<Range>& with) {
  uint64_t n = Count();
  uint64_t new_n = n - (w.hi - w.lo) + with.size();
  if (new_n > hdr_->capacity)
    return Status::Error(ENOSPC, "range table full (" + std::to_string(hdr_->capacity) +
                                     " entries); nothing recorded");
  BeginWrite();
  uint64_t dst = w.lo + with.size();
  if (dst > w.hi) {
    for (uint64_t i = n; i < new_n; ++i) Store(i, Range{});
    StoreWord(&hdr_->count, new_n);
    for (uint64_t i = n; i-- > w.hi;) Store(i - w.hi + dst, Load(i));
    for (uint64_t i = with.size(); i-- > 0;) Store(w.lo + i, with[i]);
  } else {
    for (uint64_t i = 0; i < with.size(); ++i) Store(w.lo + i, with[i]);
    for (uint64_t i = w.hi; i < n; ++i) Store(i - w.hi + dst, Load(i));
    StoreWord(&hdr_->count, new_n);
  }
  EndWrite();
  return Status::Ok();
}

Status RangeTable::Add(const std::vector<Range>& ranges, uint8_t flags, std::vector<Range>* added) {
  if (ranges.empty()) return Status::Ok();
  Window w = Touching(ranges.front().start, ranges.back().end());
  std::vector<Range> old;
  for (uint64_t i = w.lo; i < w.hi; ++i) old.push_back(Load(i));
  // Gaps: the parts of `ranges` no old entry covers.
  std::vector<Range> gaps;
  size_t j = 0;
  for (Range r : ranges) {
    uint64_t pos = r.start;
    while (j < old.size() && old[j].end() <= pos) ++j;
    for (size_t k = j; k < old.size() && old[k].start < r.end(); ++k) {
      if (old[k].start > pos) gaps.push_back({pos, old[k].start - pos, flags});
      pos = std::max(pos, old[k].end());
    }
    if (pos < r.end()) gaps.push_back({pos, r.end() - pos, flags});
  }
  std::vector<Range> merged;
  std::merge(old.begin(), old.end(), gaps.begin(), gaps.end(), std::back_inserter(merged),
             [](const Range& a, const Range& b) { return a.start < b.start; });
  Normalize(&merged);
  // Mark the filter before the entries are listed: a reader that trusts a
  // clear bit must never find it clear over a listed range.
  for (const Range& g : gaps) FillFilter(g.start, g.end());
  if (Status s = Replace(w, merged); !s.ok()) {
    for (const Range& g : gaps) RefreshFilter(g.start, g.end());
    return s;
  }
  if (added) {
    Normalize(&gaps);
    *added = std::move(gaps);
  }
  return Status::Ok();
}

void RangeTable::Remove(uint64_t start, uint64_t len, std::optional<uint8_t> only_flags,
                        std::vector<Range>* removed) {
  if (removed) removed->clear();
  uint64_t end = SatEnd(start, len);
  if (len == 0) return;
  Window w = Touching(start, end);
  std::vector<Range> kept;
  bool changed = false;
  for (uint64_t i = w.lo; i < w.hi; ++i) {
    Range r = Load(i);
    if (r.end() <= start || r.start >= end || (only_flags && r.flags != *only_flags)) {
      kept.push_back(r);
      continue;
    }
    changed = true;
    if (r.start < start) kept.push_back({r.start, start - r.start, r.flags});
    uint64_t cut_lo = std::max(r.start, start), cut_hi = std::min(r.end(), end);
    if (removed) removed->push_back({cut_lo, cut_hi - cut_lo, r.flags});
    if (r.end() > end) kept.push_back({end, r.end() - end, r.flags});
  }
  if (!changed) return;
  Normalize(&kept);
  // A split needs one more entry; a table too full for it stays as it was,
  // and says it removed nothing.
  if (!Replace(w, kept).ok()) {
    if (removed) removed->clear();
    return;
  }
  RefreshFilter(start, end);
}

void RangeTable::SetFlags(uint64_t start, uint64_t len, uint8_t flags) {
  uint64_t end = SatEnd(start, len);
  Window w = Touching(start, end);
  std::vector<Range> out;
  bool changed = false;
  for (uint64_t i = w.lo; i < w.hi; ++i) {
    Range r = Load(i);
    uint64_t lo = std::max(r.start, start), hi = std::min(r.end(), end);
    if (lo >= hi || r.flags == flags) {
      out.push_back(r);
      continue;
    }
    changed = true;
    if (r.start < lo) out.push_back({r.start, lo - r.start, r.flags});
    out.push_back({lo, hi - lo, flags});
    if (r.end() > hi) out.push_back({hi, r.end() - hi, r.flags});
  }
  if (!changed) return;
  Normalize(&out);
  (void)Replace(w, out);
}

void RangeTable::FillFilter(uint64_t start, uint64_t end) {
  if (start >= end) return;
  uint64_t first = start / units_per_bit_;
  uint64_t last = std::min((end - 1) / units_per_bit_, filter_bits_ - 1);
  for (uint64_t bit = first; bit <= last;) {
    uint64_t span = std::min<uint64_t>(64 - bit % 64, last - bit + 1);
    uint64_t mask = (span == 64 ? ~0ull : ((1ull << span) - 1)) << (bit % 64);
    std::atomic_ref<uint64_t>(filter_[bit / 64]).fetch_or(mask, std::memory_order_relaxed);
    bit += span;
  }
}

// Recomputes the filter words over [start, end) from the table, one word
// store each, so a reader never sees a bit off while its range is listed.
void RangeTable::RefreshFilter(uint64_t start, uint64_t end) {
  if (start >= end) return;
  const uint64_t upw = 64 * units_per_bit_;  // units per filter word
  uint64_t w_first = start / upw;
  uint64_t w_last = std::min((end - 1) / upw, (filter_bits_ - 1) / 64);
  for (uint64_t w = w_first; w <= w_last; ++w) {
    // Removal only clears bits: a clear word stays clear and an unchanged
    // one is not rewritten, so removing across a huge, mostly empty device
    // does not fill in its sparse file.
    uint64_t old = LoadWord(&filter_[w]);
    if (old == 0) continue;
    uint64_t word = 0;
    for (const Range& r : Overlapping(w * upw, upw)) {
      uint64_t lo = std::max(r.start, w * upw) - w * upw;
      uint64_t hi = std::min(r.end(), (w + 1) * upw) - w * upw;
      for (uint64_t b = lo / units_per_bit_; b <= (hi - 1) / units_per_bit_; ++b) word |= 1ull << b;
    }
    if (word != old) StoreFilterWord(&filter_[w], word);
  }
}

void RangeTable::Repair() {
  uint64_t seq = LoadWord(&hdr_->seq);
  uint64_t n = Count();
  std::vector<Range> v;
  for (uint64_t i = 0; i < n; ++i) v.push_back(Load(i));
  std::sort(v.begin(), v.end(), [](const Range& a, const Range& b) { return a.start < b.start; });
  // A torn edit can list an entry twice or leave entries overlapping: keep
  // their union rather than drop one, so no listed unit is lost.
  std::vector<Range> ok;
  for (const Range& r : v) {
    if (r.len == 0) continue;
    if (!ok.empty() && r.start < ok.back().end())
      ok.back().len = std::max(ok.back().end(), r.end()) - ok.back().start;
    else
      ok.push_back(r);
  }
  Normalize(&ok);
  if (seq & 1) StoreWord(&hdr_->seq, seq + 1);
  // Set the bits of every kept range first, then clear the stale ones word by
  // word, so no listed range is ever unmarked.
  for (const Range& r : ok) FillFilter(r.start, r.end());
  (void)Replace(Window{0, n}, ok);
  RefreshFilter(0, filter_bits_ * units_per_bit_);
}

}  // namespace daxguard::media
