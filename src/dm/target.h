// A target maps one segment of a stack onto its base devices, both ways:
// down (a segment range to the base range holding its first contiguous
// part) for the data path, and up (a base range to every segment range it
// backs) for poison notifications. Offsets here are bytes relative to the
// segment's start; the stack adds the segment's place, and nothing else
// translates offsets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/units.h"
#include "dm/table.h"

namespace daxguard::dm {

// `len` contiguous bytes at `offset` of base `base`; kNoBase is the error
// target, which has no base and fails every access.
struct Extent {
  static constexpr size_t kNoBase = SIZE_MAX;
  size_t base = kNoBase;
  uint64_t offset = 0;
  uint64_t len = 0;
};

// Sorts `v` and joins ranges that overlap or touch.
std::vector<ByteRange> MergeRanges(std::vector<ByteRange> v);

// A segment dealt out in `chunk`-byte chunks to its legs in turn, each
// leg's chunks contiguous on its base from its offset; linear is one leg
// with the whole segment as its chunk.
struct Layout {
  struct Leg {
    size_t base;
    uint64_t offset;  // bytes into the base
  };
  uint64_t chunk = 0;
  std::vector<Leg> legs;
};

class Target {
 public:
  virtual ~Target() = default;
  // The first contiguous part of [off, off+len) of the segment; len > 0 and
  // the range lies within the segment.
  virtual Extent Map(uint64_t off, uint64_t len) const = 0;
  // Appends the segment ranges that [off, off+len) of base `base` backs.
  virtual void Unmap(size_t base, uint64_t off, uint64_t len, std::vector<ByteRange>* out) const = 0;
  // The bases it uses, in table order (repeats kept).
  virtual std::vector<size_t> Bases() const = 0;
  // The mapping as a Layout, when it is one (not for the error target).
  virtual std::optional<Layout> Striping() const { return std::nullopt; }
  // A mirror's legs, each holding the whole segment (Map answers with the
  // first); empty for every other target.
  virtual std::vector<Layout::Leg> MirrorLegs() const { return {}; }
};

// What a target needs to know of a base device the table names.
struct BaseRef {
  size_t index = 0;
  uint64_t size = 0;  // bytes
};
using BaseResolver = std::function<Result<BaseRef>(const std::string& dev)>;

bool IsKnownTarget(const std::string& name);
// Checks the line's arguments and builds its target; `resolve` turns DEV
// arguments into bases. Errors name the segment.
Result<std::unique_ptr<Target>> MakeTarget(const TableLine& line, const BaseResolver& resolve);

// One per target file.
Result<std::unique_ptr<Target>> MakeLinearTarget(const TableLine& line, const BaseResolver& resolve);
Result<std::unique_ptr<Target>> MakeStripedTarget(const TableLine& line, const BaseResolver& resolve);
Result<std::unique_ptr<Target>> MakeErrorTarget(const TableLine& line);
Result<std::unique_ptr<Target>> MakeRaid1Target(const TableLine& line, const BaseResolver& resolve);

// Shared by the target files: "segment 'LINE': WHY", keeping the errno of
// a failure below (a missing device stays ENOENT).
Status SegmentError(const TableLine& line, const std::string& why);
Status SegmentError(const TableLine& line, const Status& why);
// Parses `n` pairs of DEV OFFSET from args[first] on, each leg taking
// `leg_len` bytes of its device from OFFSET; `what` names a leg in errors
// ("stripe", "leg"). With `missing`, a DEV of kMissingLeg is a leg without
// a device (raid1, degraded): its offset is checked, and it is left out.
inline constexpr char kMissingLeg[] = "-";
Result<std::vector<Layout::Leg>> ParseLegs(const TableLine& line, size_t first, uint64_t n, uint64_t leg_len,
                                           const std::string& what, const BaseResolver& resolve,
                                           bool missing = false);
// Parses a page-aligned sector offset argument into bytes.
Result<uint64_t> ParseOffsetArg(const TableLine& line, const std::string& what, const std::string& text);

}  // namespace daxguard::dm
