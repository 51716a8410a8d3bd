#include "dm/flat_map.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace daxguard::dm {

FlatMap::FlatMap(std::vector<FlatSegment> segments) {
  for (FlatSegment& s : segments) {
    Divisor per_chunk(s.chunk), per_leg(s.legs.size());
    segs_.push_back({std::move(s), per_chunk, per_leg});
  }
}

size_t FlatMap::SegmentAt(uint64_t off) const {
  if (segs_.size() == 1) return 0;
  auto it = std::upper_bound(segs_.begin(), segs_.end(), off, [](uint64_t o, const Seg& s) { return o < s.s.start; });
  return static_cast<size_t>(it - segs_.begin()) - 1;
}

std::optional<FlatSegment> FlatMap::Window(uint64_t off, uint64_t len) const {
  const FlatSegment& f = segs_[SegmentAt(off)].s;
  uint64_t rel = off - f.start, n = f.legs.size();
  if (len > f.len - rel) return std::nullopt;
  if (n == 1) return FlatSegment{0, len, len, {{f.legs[0].dev, f.legs[0].offset + rel}}};
  // Starting on a row, chunk i of the window is chunk i of the segment
  // shifted by whole rows: the same leg, further on by rel / n.
  if (rel % (n * f.chunk)) return std::nullopt;
  FlatSegment w{0, len, f.chunk, f.legs};
  for (FlatSegment::Leg& leg : w.legs) leg.offset += rel / n;
  return w;
}

template <typename Byte>
bool FlatMap::Copy(uint64_t off, Byte* mem, uint64_t len) const {
  for (size_t i = len ? SegmentAt(off) : 0; len > 0; ++i) {
    const Seg& seg = segs_[i];
    uint64_t in = off - seg.s.start, n = std::min(len, seg.s.len - in);
    if (!CopySegment(seg, in, mem, n)) return false;
    off += n;
    mem += n;
    len -= n;
  }
  return true;
}

// A partial chunk at either end goes alone; the whole chunks between go a
// leg at a time, each leg's being contiguous on its device.
template <typename Byte>
bool FlatMap::CopySegment(const Seg& seg, uint64_t in, Byte* mem, uint64_t len) {
  const auto& legs = seg.s.legs;
  uint64_t n = legs.size(), chunk = seg.s.chunk, end = in + len;
  if (n == 1) return CopyPieces(legs[0], legs[0].offset + in, mem, len, 1, len);
  uint64_t first = seg.per_chunk.Div(in + chunk - 1), last = seg.per_chunk.Div(end);  // whole chunks [first, last)
  uint64_t head_end = std::min(end, first * chunk), tail = std::max(head_end, last * chunk);
  if (in < head_end && !CopyPart(seg, in, mem, head_end - in)) return false;
  for (uint64_t c = first; c < std::min(last, first + n); ++c) {
    const FlatSegment::Leg& leg = legs[seg.per_leg.Mod(c)];
    uint64_t count = (last - c + n - 1) / n;
    if (!CopyPieces(leg, leg.offset + seg.per_leg.Div(c) * chunk, mem + (c * chunk - in), chunk, count, n * chunk))
      return false;
  }
  return tail == end || CopyPart(seg, tail, mem + (tail - in), end - tail);
}

template <typename Byte>
bool FlatMap::CopyPart(const Seg& seg, uint64_t in, Byte* mem, uint64_t len) {
  uint64_t c = seg.per_chunk.Div(in);
  const FlatSegment::Leg& leg = seg.s.legs[seg.per_leg.Mod(c)];
  return CopyPieces(leg, leg.offset + seg.per_leg.Div(c) * seg.s.chunk + seg.per_chunk.Mod(in), mem, len, 1, len);
}

template <typename Byte>
bool FlatMap::CopyPieces(const FlatSegment::Leg& leg, uint64_t at, Byte* mem, uint64_t piece, uint64_t count,
                         uint64_t stride) {
  constexpr bool kReading = !std::is_const_v<Byte>;
  if (!leg.dev->Clean(at, piece * count, kReading)) return false;
  uint8_t* dev = leg.dev->data() + at;
  for (uint64_t k = 0; k < count; ++k, dev += piece, mem += stride) {
    if constexpr (kReading) std::memcpy(mem, dev, piece);
    else std::memcpy(dev, mem, piece);
  }
  return true;
}

template bool FlatMap::Copy(uint64_t, uint8_t*, uint64_t) const;
template bool FlatMap::Copy(uint64_t, const uint8_t*, uint64_t) const;

}  // namespace daxguard::dm
