#include "media/crash_states.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <random>
#include <unordered_set>
#include <vector>

namespace daxguard::media {
namespace {

constexpr uint64_t kLine = 64;
constexpr uint64_t kWord = 8;
constexpr uint64_t kCoalesce = 4096;  // stores this large or larger persist in runs

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t LineHash(uint64_t line, const uint8_t* p) {
  uint64_t h = Mix(line);
  for (uint64_t i = 0; i < kLine; i += kWord) {
    uint64_t w;
    std::memcpy(&w, p + i, kWord);
    h = Mix(h ^ w);
  }
  return h;
}

// Which stores of the point's units an image takes: whole units, part of
// one unit's lines, the first words of one store.
struct Selection {
  explicit Selection(size_t n, bool all) : units(n, all) {}
  std::vector<bool> units;
  int partial_unit = -1;
  uint64_t partial_lo = 0, partial_hi = 0;  // device lines of partial_unit taken
  int64_t torn_store = -1;                  // event index
  std::vector<bool> torn_words;             // words of torn_store taken
};

class Enumerator {
 public:
  Enumerator(const PersistTrace& t, const CrashStateOptions& opt, const CrashVisitor& visit)
      : t_(t), opt_(opt), visit_(visit), image_(t.initial()), rng_(opt.seed) {}

  CrashStats Run() {
    const auto& ev = t_.events();
    for (uint64_t i = 0; i < ev.size() && !stop_; ++i) {
      switch (ev[i].kind) {
        case TraceEvent::Kind::kStore: AddStore(i); break;
        case TraceEvent::Kind::kWriteBack: MarkWrittenBack(ev[i]); break;
        case TraceEvent::Kind::kFence:
          EmitPoint(i);
          ApplyFence();
          break;
        case TraceEvent::Kind::kMarker: ++markers_; break;
        case TraceEvent::Kind::kErrors:
          EmitPoint(i);
          errors_ = ev[i].off;
          break;
      }
    }
    if (!stop_) EmitPoint(ev.size());
    return stats_;
  }

 private:
  struct LineState {
    std::vector<uint64_t> versions;  // stores to this line, oldest first
    uint64_t written_back = 0;       // stores up to this one (1 + event index) are durable at the fence
  };

  void AddStore(uint64_t i) {
    const TraceEvent& e = t_.events()[i];
    for (uint64_t l = e.off / kLine; l <= (e.off + e.len - 1) / kLine; ++l) lines_[l].versions.push_back(i);
    ++in_flight_[i];
  }

  void MarkWrittenBack(const TraceEvent& e) {
    auto it = lines_.lower_bound(e.off / kLine);
    for (; it != lines_.end() && it->first <= (e.off + e.len - 1) / kLine; ++it)
      it->second.written_back = it->second.versions.back() + 1;
  }

  // The line's bytes after its stores up to `upto` (an event index), over durable.
  void Cumulative(uint64_t line, const LineState& ls, uint64_t upto, uint8_t* out) const {
    std::memcpy(out, image_.data() + line * kLine, kLine);  // durable: Emit changes it only after
    for (uint64_t s : ls.versions) {
      if (s > upto) break;
      const TraceEvent& e = t_.events()[s];
      uint64_t lo = std::max(e.off, line * kLine), hi = std::min(e.off + e.len, (line + 1) * kLine);
      std::memcpy(out + (lo - line * kLine), t_.bytes(e) + (lo - e.off), hi - lo);
    }
  }

  void ApplyFence() {
    for (auto it = lines_.begin(); it != lines_.end();) {
      LineState& ls = it->second;
      if (ls.written_back) {
        uint64_t upto = ls.written_back - 1;
        uint8_t buf[kLine];
        Cumulative(it->first, ls, upto, buf);
        SetDurable(it->first, buf);
        auto keep = std::upper_bound(ls.versions.begin(), ls.versions.end(), upto);
        for (auto v = ls.versions.begin(); v != keep; ++v)
          if (--in_flight_[*v] == 0) in_flight_.erase(*v);
        ls.versions.erase(ls.versions.begin(), keep);
        ls.written_back = 0;
      }
      it = ls.versions.empty() ? lines_.erase(it) : std::next(it);
    }
  }

  void SetDurable(uint64_t line, const uint8_t* bytes) {
    uint8_t* d = image_.data() + line * kLine;
    durable_hash_ ^= LineHash(line, d) ^ LineHash(line, bytes);
    std::memcpy(d, bytes, kLine);
  }

  // --- the images at one point
  void EmitPoint(uint64_t event) {
    ++stats_.points;
    point_ = {event, markers_, static_cast<uint32_t>(in_flight_.size()), errors_};
    BuildUnits();
    size_t n = units_.size();
    auto all = [n](bool v) { return Selection(n, v); };
    if (n <= opt_.all_subsets) {
      for (uint64_t mask = 0; mask < (1ull << n) && !stop_; ++mask) {
        Selection s = all(false);
        for (size_t u = 0; u < n; ++u) s.units[u] = mask >> u & 1;
        Emit(s);
      }
    } else {
      for (size_t u = 0; u <= n && !stop_; ++u) {  // in order up to u, u alone, all but u
        Selection prefix = all(false), alone = all(false), but = all(true);
        for (size_t v = 0; v < u; ++v) prefix.units[v] = true;
        Emit(prefix);
        if (u == n) break;
        alone.units[u] = true;
        but.units[u] = false;
        Emit(alone);
        Emit(but);
      }
      for (uint32_t r = 0; r < opt_.random_subsets && !stop_; ++r) {
        Selection s = all(false);
        for (size_t u = 0; u < n; ++u) s.units[u] = rng_() & 1;
        Emit(s);
      }
    }
    EmitSplits();
    EmitTorn();
  }

  // In-flight stores in trace order, adjacent page-sized ones joined.
  void BuildUnits() {
    units_.clear();
    unit_of_.clear();
    const auto& ev = t_.events();
    for (const auto& [s, count] : in_flight_) {
      const TraceEvent& e = ev[s];
      if (!units_.empty()) {
        const TraceEvent& p = ev[units_.back().back()];
        if (e.len >= kCoalesce && p.len >= kCoalesce && p.off + p.len == e.off) {
          units_.back().push_back(s);
          unit_of_[s] = units_.size() - 1;
          continue;
        }
      }
      units_.push_back({s});
      unit_of_[s] = units_.size() - 1;
    }
  }

  // The last multi-line units, each with only part of its lines.
  void EmitSplits() {
    uint32_t done = 0;
    for (size_t u = units_.size(); u-- > 0 && done < opt_.split_stores && !stop_;) {
      const auto& ev = t_.events();
      uint64_t lo = ev[units_[u].front()].off / kLine, hi = lo;
      for (uint64_t s : units_[u]) hi = std::max(hi, (ev[s].off + ev[s].len - 1) / kLine + 1);
      if (hi - lo < 2) continue;
      ++done;
      for (auto [a, b] : {std::pair{lo, lo + (hi - lo) / 2}, {lo, hi - 1}, {hi - 1, hi}, {lo + 1, hi}}) {
        Selection s(units_.size(), true);
        s.units[u] = false;
        s.partial_unit = static_cast<int>(u);
        s.partial_lo = a, s.partial_hi = b;
        Emit(s);
      }
    }
  }

  // The last store torn: its first words, its last word, random words.
  void EmitTorn() {
    if (in_flight_.empty() || stop_) return;
    uint64_t last = in_flight_.rbegin()->first;
    const TraceEvent& e = t_.events()[last];
    uint64_t words = (e.off + e.len - 1) / kWord - e.off / kWord + 1;
    if (words < 2) return;
    Selection base(units_.size(), true);
    base.units[unit_of_[last]] = false;
    base.torn_store = static_cast<int64_t>(last);
    auto emit = [&](auto take) {
      Selection s = base;
      s.torn_words.resize(words);
      for (uint64_t w = 0; w < words; ++w) s.torn_words[w] = take(w);
      Emit(s);
    };
    for (uint64_t k = 1; k < words && k <= opt_.torn_words && !stop_; ++k) emit([k](uint64_t w) { return w < k; });
    emit([words](uint64_t w) { return w == words - 1; });
    for (int r = 0; r < 2; ++r) emit([this](uint64_t) { return rng_() & 1; });
  }

  bool Taken(uint64_t store, uint64_t line, const Selection& s) const {
    size_t u = unit_of_.at(store);
    if (s.units[u]) return true;
    return static_cast<int>(u) == s.partial_unit && line >= s.partial_lo && line < s.partial_hi;
  }

  void Emit(const Selection& s) {
    if (stop_) return;
    ++stats_.generated;
    // The image is the durable one outside of Emit: only changed lines are
    // written, their durable bytes kept to be put back.
    // The same bytes may be judged differently later, or read differently under other errors.
    uint64_t hash = durable_hash_ ^ Mix(markers_) ^ Mix(~errors_);
    changed_.clear();
    uint8_t buf[kLine];
    for (const auto& entry : lines_) {
      const uint64_t line = entry.first;  // not a structured binding: the lambda takes it
      const LineState& ls = entry.second;
      auto taken = std::find_if(ls.versions.rbegin(), ls.versions.rend(),
                                [&](uint64_t v) { return Taken(v, line, s); });
      bool torn_here = s.torn_store >= 0 && std::count(ls.versions.begin(), ls.versions.end(), s.torn_store);
      if (taken == ls.versions.rend() && !torn_here) continue;
      if (taken != ls.versions.rend())
        Cumulative(line, ls, *taken, buf);
      else
        std::memcpy(buf, image_.data() + line * kLine, kLine);
      if (torn_here) Tear(line, s, buf);
      uint8_t* at = image_.data() + line * kLine;
      hash ^= LineHash(line, at) ^ LineHash(line, buf);
      changed_.push_back({line, {}});
      std::memcpy(changed_.back().second.data(), at, kLine);
      std::memcpy(at, buf, kLine);
    }
    if (seen_.insert(hash).second) {
      ++stats_.distinct;
      if (!visit_(point_, image_) || stats_.distinct >= opt_.max_states) stop_ = true;
    }
    for (const auto& [line, durable] : changed_) std::memcpy(image_.data() + line * kLine, durable.data(), kLine);
  }

  // The torn store's chosen words of this line, over what the line holds.
  void Tear(uint64_t line, const Selection& s, uint8_t* buf) const {
    const TraceEvent& e = t_.events()[s.torn_store];
    uint64_t first_word = e.off / kWord;
    for (uint64_t b = std::max(e.off, line * kLine); b < std::min(e.off + e.len, (line + 1) * kLine); ++b)
      if (s.torn_words[b / kWord - first_word]) buf[b - line * kLine] = t_.bytes(e)[b - e.off];
  }

  const PersistTrace& t_;
  const CrashStateOptions& opt_;
  const CrashVisitor& visit_;
  std::vector<uint8_t> image_;  // the durable image, but during Emit
  std::vector<std::pair<uint64_t, std::array<uint8_t, kLine>>> changed_;  // lines Emit changed: durable bytes
  uint64_t durable_hash_ = 0;  // XOR of changed lines: equal images, equal hashes
  std::map<uint64_t, LineState> lines_;       // lines with stores in flight
  std::map<uint64_t, uint64_t> in_flight_;    // store (event index) -> its lines in flight
  std::vector<std::vector<uint64_t>> units_;  // stores, in order
  std::map<uint64_t, size_t> unit_of_;
  std::unordered_set<uint64_t> seen_;
  std::mt19937_64 rng_;
  CrashPoint point_;
  CrashStats stats_;
  uint64_t markers_ = 0;
  uint64_t errors_ = 0;  // the error state in effect
  bool stop_ = false;
};

}  // namespace

CrashStats ForEachCrashState(const PersistTrace& trace, const CrashStateOptions& opt, const CrashVisitor& visit) {
  return Enumerator(trace, opt, visit).Run();
}

}  // namespace daxguard::media
