// Internal to dax/mapping.cc: a mapped region described as a sorted
// partition of its bytes into spans, each saying what lies there (media,
// zero pages, a trap) and where it came from, so that labels ("offset N of
// the device") and fault units can be computed for any address in it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/units.h"

namespace daxguard::dax::internal {

struct MediaFile;  // dax/mapping.cc: one media file this process maps

enum class SpanKind : uint8_t {
  kNone,        // held-trap lists only: no trap here
  kMedia,       // media pages, accessible
  kZero,        // read-only zero pages
  kGone,        // nothing placed yet
  kPoison,      // media pages holding poison (known or latent)
  kHeldPoison,  // trapped by the owner (Trap kPoison)
  kHeldGone,    // trapped by the owner (Trap kGone)
};

inline bool IsTrap(SpanKind k) { return k >= SpanKind::kGone; }
inline bool IsGone(SpanKind k) { return k == SpanKind::kGone || k == SpanKind::kHeldGone; }

struct Span {
  uint64_t at = 0;  // region offset
  uint64_t len = 0;
  SpanKind kind = SpanKind::kGone;
  uint64_t unit = kPageSize;  // what one fault takes out
  // The placement this span is part of: it started at region offset
  // `base_at`, which showed label `label_base` and media offset
  // `media_base`. Units and labels count from there.
  uint64_t base_at = 0;
  uint64_t label_base = 0;
  uint64_t media_base = 0;
  MediaFile* file = nullptr;

  uint64_t end() const { return at + len; }
  uint64_t Label(uint64_t x) const { return label_base + (x - base_at); }
  uint64_t Media(uint64_t x) const { return media_base + (x - base_at); }
  uint64_t UnitStart(uint64_t x) const { return base_at + AlignDown(x - base_at, unit); }
  bool SameSource(const Span& o) const {
    return kind == o.kind && unit == o.unit && base_at == o.base_at && label_base == o.label_base &&
           media_base == o.media_base && file == o.file;
  }
};
using Spans = std::vector<Span>;

// `fill` replaces whatever covered [fill.at, fill.end()).
Spans Carve(const Spans& in, const Span& fill);
// The parts of [at, at+len) become `kind`; `unit` replaces theirs unless 0.
Spans Mark(const Spans& in, uint64_t at, uint64_t len, SpanKind kind, uint64_t unit);
// The page protection a span of `kind` gets.
int Protection(SpanKind kind, bool writable);
// Calls fn(lo, hi, a, b) for each run where both partitions are constant.
void ForEachPair(const Spans& a, const Spans& b,
                 const std::function<void(uint64_t, uint64_t, const Span&, const Span&)>& fn);

}  // namespace daxguard::dax::internal
