#include "dm/target.h"

#include <algorithm>

#include "common/units.h"

namespace daxguard::dm {

bool IsKnownTarget(const std::string& name) {
  return name == "linear" || name == "striped" || name == "error" || name == "raid1";
}

Result<std::unique_ptr<Target>> MakeTarget(const TableLine& line, const BaseResolver& resolve) {
  if (line.target == "linear") return MakeLinearTarget(line, resolve);
  if (line.target == "striped") return MakeStripedTarget(line, resolve);
  if (line.target == "error") return MakeErrorTarget(line);
  if (line.target == "raid1") return MakeRaid1Target(line, resolve);
  return SegmentError(line, "unknown target '" + line.target + "'");
}

std::vector<ByteRange> MergeRanges(std::vector<ByteRange> v) {
  std::sort(v.begin(), v.end(), [](const ByteRange& a, const ByteRange& b) { return a.off < b.off; });
  std::vector<ByteRange> out;
  for (const ByteRange& r : v) {
    if (!out.empty() && r.off <= out.back().off + out.back().len)
      out.back().len = std::max(out.back().off + out.back().len, r.off + r.len) - out.back().off;
    else
      out.push_back(r);
  }
  return out;
}

Status SegmentError(const TableLine& line, const std::string& why) {
  return SegmentError(line, Status::Invalid(why));
}

Status SegmentError(const TableLine& line, const Status& why) {
  return Status::Error(why.err(), "segment '" + FormatTableLine(line) + "': " + why.message());
}

Result<uint64_t> ParseOffsetArg(const TableLine& line, const std::string& what, const std::string& text) {
  auto v = ParseSectors(text);
  if (!v || *v > UINT64_MAX / kSectorSize) return SegmentError(line, what + " '" + text + "' is not a sector count");
  if (*v % kSectorsPerPage) return SegmentError(line, what + " " + text + " is not a multiple of 8 sectors (4 KiB)");
  return *v * kSectorSize;
}

Result<std::vector<Layout::Leg>> ParseLegs(const TableLine& line, size_t first, uint64_t n, uint64_t leg_len,
                                           const std::string& what, const BaseResolver& resolve, bool missing) {
  std::vector<Layout::Leg> legs;
  for (uint64_t i = 0; i < n; ++i) {
    const std::string& dev = line.args[first + 2 * i];
    auto offset = ParseOffsetArg(line, "offset", line.args[first + 2 * i + 1]);
    if (!offset.ok()) return offset.status();
    if (missing && dev == kMissingLeg) continue;
    auto base = resolve(dev);
    if (!base.ok()) return SegmentError(line, base.status());
    if (*offset > base->size || leg_len > base->size - *offset)
      return SegmentError(line, what + " " + std::to_string(i) + " reaches beyond the end of " + dev + " (" +
                                    std::to_string(base->size / kSectorSize) + " sectors)");
    legs.push_back({base->index, *offset});
  }
  return legs;
}

}  // namespace daxguard::dm
