#include "dm/target.h"

#include "common/units.h"

namespace daxguard::dm {

bool IsKnownTarget(const std::string& name) { return name == "linear" || name == "striped" || name == "error"; }

Result<std::unique_ptr<Target>> MakeTarget(const TableLine& line, const BaseResolver& resolve) {
  if (line.target == "linear") return MakeLinearTarget(line, resolve);
  if (line.target == "striped") return MakeStripedTarget(line, resolve);
  if (line.target == "error") return MakeErrorTarget(line);
  return SegmentError(line, "unknown target '" + line.target + "'");
}

Status SegmentError(const TableLine& line, const std::string& why) {
  return Status::Invalid("segment '" + FormatTableLine(line) + "': " + why);
}

Result<uint64_t> ParseOffsetArg(const TableLine& line, const std::string& what, const std::string& text) {
  auto v = ParseSectors(text);
  if (!v || *v > UINT64_MAX / kSectorSize) return SegmentError(line, what + " '" + text + "' is not a sector count");
  if (*v % kSectorsPerPage) return SegmentError(line, what + " " + text + " is not a multiple of 8 sectors (4 KiB)");
  return *v * kSectorSize;
}

}  // namespace daxguard::dm
