#include "dm/flat_map.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace daxguard::dm {

FlatMap::FlatMap(std::vector<dax::DirectLayout> segments) {
  for (dax::DirectLayout& s : segments) {
    Divisor per_chunk(s.chunk), per_leg(s.legs.size());
    std::vector<uint8_t*> mem;
    for (const dax::DirectLayout::Leg& leg : s.legs) mem.push_back(leg.mem->data() + leg.offset);
    segs_.push_back({std::move(s), per_chunk, per_leg, std::move(mem)});
  }
}

size_t FlatMap::SegmentAt(uint64_t off) const {
  if (segs_.size() == 1) return 0;
  auto it = std::upper_bound(segs_.begin(), segs_.end(), off, [](uint64_t o, const Seg& s) { return o < s.s.start; });
  return static_cast<size_t>(it - segs_.begin()) - 1;
}

std::optional<dax::DirectLayout> FlatMap::Window(uint64_t off, uint64_t len) const {
  const dax::DirectLayout& f = segs_[SegmentAt(off)].s;
  uint64_t rel = off - f.start, n = f.legs.size();
  if (len > f.len - rel) return std::nullopt;
  if (n == 1) return dax::DirectLayout{0, len, len, {{f.legs[0].mem, f.legs[0].offset + rel}}};
  // Starting on a row, chunk i of the window is chunk i of the segment
  // shifted by whole rows: the same leg, further on by rel / n.
  if (rel % (n * f.chunk)) return std::nullopt;
  dax::DirectLayout w{0, len, f.chunk, f.legs};
  for (dax::DirectLayout::Leg& leg : w.legs) leg.offset += rel / n;
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

// Each leg's share of the range is contiguous on its device: one clean
// test per leg, all before anything is copied (so a refused write changes
// nothing, as with the walk), then the chunks in order.
template <typename Byte>
bool FlatMap::CopySegment(const Seg& seg, uint64_t in, Byte* mem, uint64_t len) {
  constexpr bool kReading = !std::is_const_v<Byte>;
  const uint64_t n = seg.s.legs.size(), chunk = seg.s.chunk, end = in + len;
  const uint64_t first = seg.per_chunk.Div(in), last = seg.per_chunk.Div(end - 1);  // chunks touched
  if (first == last) return CopyRun(Leg(seg, first), DeviceAt(seg, in), mem, len);  // the usual small access
  for (uint64_t c = first; c <= last && c < first + n; ++c) {
    uint64_t final_c = c + (last - c) / n * n;  // this leg's last chunk in range
    uint64_t lo = DeviceAt(seg, std::max(in, c * chunk));
    uint64_t hi = DeviceAt(seg, std::min(end, final_c * chunk + chunk) - 1) + 1;
    if (!Leg(seg, c).mem->Clean(lo, hi - lo, kReading)) return false;
  }
  // Chunk by chunk from where each leg starts, leg and row stepping along
  // instead of translating every chunk again.
  uint8_t* const* legs = seg.mem.data();
  for (uint64_t c = first, leg = seg.per_leg.Mod(first), row = seg.per_leg.Div(first); c <= last; ++c) {
    uint64_t from = std::max(in, c * chunk), to = std::min(end, c * chunk + chunk);
    Move(seg.s.legs[leg].mem, legs[leg] + row * chunk + (from - c * chunk), mem + (from - in), to - from);
    if (++leg == n) leg = 0, ++row;
  }
  // A device file that shrank under the copy gave zero pages: the slow path says why.
  for (uint64_t c = first; c <= last && c < first + n; ++c)
    if (Leg(seg, c).mem->shrunk()) return false;
  return true;
}

template <typename Byte>
bool FlatMap::CopyRun(const dax::DirectLayout::Leg& leg, uint64_t at, Byte* mem, uint64_t len) {
  if (!leg.mem->Clean(at, len, !std::is_const_v<Byte>)) return false;
  Move(leg.mem, leg.mem->data() + at, mem, len);
  return !leg.mem->shrunk();
}

template bool FlatMap::Copy(uint64_t, uint8_t*, uint64_t) const;
template bool FlatMap::Copy(uint64_t, const uint8_t*, uint64_t) const;

}  // namespace daxguard::dm
