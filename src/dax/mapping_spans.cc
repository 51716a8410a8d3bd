#include "dax/mapping_spans.h"

#include <sys/mman.h>

#include <algorithm>

namespace daxguard::dax::internal {
namespace {

// Joins neighbours of one source, so arrays stay as short as the map is simple.
Spans Merge(Spans in) {
  Spans out;
  out.reserve(in.size());
  for (const Span& s : in) {
    if (!out.empty() && out.back().end() == s.at && out.back().SameSource(s))
      out.back().len += s.len;
    else
      out.push_back(s);
  }
  return out;
}

// Copies `in`, handing each part inside [at, at+len) to `inner` instead.
template <typename Fn>
Spans Rewrite(const Spans& in, uint64_t at, uint64_t len, Fn&& inner) {
  Spans out;
  out.reserve(in.size() + 2);
  uint64_t end = at + len;
  for (const Span& s : in) {
    if (s.end() <= at || s.at >= end) {
      out.push_back(s);
      continue;
    }
    if (s.at < at) {
      out.push_back(s);
      out.back().len = at - s.at;
    }
    Span mid = s;
    mid.at = std::max(s.at, at);
    mid.len = std::min(s.end(), end) - mid.at;
    inner(mid, out);
    if (s.end() > end) {
      out.push_back(s);
      out.back().at = end;
      out.back().len = s.end() - end;
    }
  }
  return Merge(std::move(out));
}

}  // namespace

Spans Carve(const Spans& in, const Span& fill) {
  return Rewrite(in, fill.at, fill.len, [&](const Span& mid, Spans& out) {
    if (mid.at == fill.at) out.push_back(fill);
  });
}

Spans Mark(const Spans& in, uint64_t at, uint64_t len, SpanKind kind, uint64_t unit) {
  return Rewrite(in, at, len, [&](Span mid, Spans& out) {
    mid.kind = kind;
    if (unit) mid.unit = unit;
    out.push_back(mid);
  });
}

int Protection(SpanKind kind, bool writable) {
  if (kind == SpanKind::kMedia) return writable ? PROT_READ | PROT_WRITE : PROT_READ;
  if (kind == SpanKind::kZero) return PROT_READ;
  return PROT_NONE;
}

void ForEachPair(const Spans& a, const Spans& b,
                 const std::function<void(uint64_t, uint64_t, const Span&, const Span&)>& fn) {
  size_t i = 0, j = 0;
  uint64_t pos = 0;
  while (i < a.size() && j < b.size()) {
    uint64_t end = std::min(a[i].end(), b[j].end());
    if (end > pos) fn(pos, end, a[i], b[j]);
    pos = end;
    if (a[i].end() == end) ++i;
    if (j < b.size() && b[j].end() == end) ++j;
  }
}

}  // namespace daxguard::dax::internal
