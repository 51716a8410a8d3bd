// dm::FlatMap: a stack's translation composed once, when the stack is
// built, down to the memory of the device files beneath every level (each
// base's Device::DirectLayoutOf), for the clean data path (ReadClean /
// WriteClean). A striped-over-linear stack then reads as a
// striped device whose legs are the device files themselves: no call per
// level, and a stripe's chunks, contiguous on its file, are checked in one
// test before anything is copied. Stacks that do not reduce (an error
// segment, stripes over stripes) have none and walk their levels.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "common/units.h"
#include "dax/direct_memory.h"

namespace daxguard::dm {

class FlatMap {
 public:
  // Segments in order, covering the stack.
  explicit FlatMap(std::vector<dax::DirectLayout> segments);

  // As Device::ReadClean / WriteClean, for a range within the stack.
  bool Read(uint64_t off, void* dst, uint64_t len) const { return Copy(off, static_cast<uint8_t*>(dst), len); }
  bool Write(uint64_t off, const void* src, uint64_t len) const {
    return Copy(off, static_cast<const uint8_t*>(src), len);
  }
  // [off, off+len) as a segment of its own (start 0), if one segment holds
  // it and it starts on a row of that segment's chunks: what a stack above,
  // whose table names this range, composes with.
  std::optional<dax::DirectLayout> Window(uint64_t off, uint64_t len) const;

 private:
  struct Seg {
    dax::DirectLayout s;
    Divisor per_chunk;
    Divisor per_leg;
    std::vector<uint8_t*> mem;  // where each leg starts in memory
  };
  template <typename Byte>
  bool Copy(uint64_t off, Byte* mem, uint64_t len) const;
  template <typename Byte>
  static bool CopySegment(const Seg& seg, uint64_t in, Byte* mem, uint64_t len);
  // [at, at+len) of the leg's device, if clean.
  template <typename Byte>
  static bool CopyRun(const dax::DirectLayout::Leg& leg, uint64_t at, Byte* mem, uint64_t len);
  // Device memory to memory (reading), or back (writing: the device
  // memory's own store, written back as it stores).
  static void Move(const dax::DirectMemory*, uint8_t* at, uint8_t* mem, uint64_t len) { std::memcpy(mem, at, len); }
  static void Move(const dax::DirectMemory* d, uint8_t* at, const uint8_t* mem, uint64_t len) {
    d->Store(at, mem, len);
  }
  // The leg chunk c of a segment lies on, and where byte `in` of the
  // segment lies on that leg's device.
  static const dax::DirectLayout::Leg& Leg(const Seg& seg, uint64_t c) { return seg.s.legs[seg.per_leg.Mod(c)]; }
  static uint64_t DeviceAt(const Seg& seg, uint64_t in) {
    uint64_t c = seg.per_chunk.Div(in);
    return Leg(seg, c).offset + seg.per_leg.Div(c) * seg.s.chunk + seg.per_chunk.Mod(in);
  }
  size_t SegmentAt(uint64_t off) const;

  std::vector<Seg> segs_;
};

}  // namespace daxguard::dm
