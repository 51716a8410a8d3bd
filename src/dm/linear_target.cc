// linear DEV OFFSET: the segment is one contiguous range of DEV.
#include <algorithm>

#include "common/units.h"
#include "dm/target.h"

namespace daxguard::dm {
namespace {

class LinearTarget final : public Target {
 public:
  LinearTarget(size_t base, uint64_t offset, uint64_t len) : base_(base), offset_(offset), len_(len) {}

  Extent Map(uint64_t off, uint64_t len) const override { return {base_, offset_ + off, len}; }

  void Unmap(size_t base, uint64_t off, uint64_t len, std::vector<ByteRange>* out) const override {
    if (base != base_) return;
    uint64_t lo = std::max(off, offset_), hi = std::min(off + len, offset_ + len_);
    if (lo < hi) out->push_back({lo - offset_, hi - lo});
  }

  std::vector<size_t> Bases() const override { return {base_}; }
  std::optional<Layout> Striping() const override { return Layout{len_, {{base_, offset_}}}; }

 private:
  size_t base_;
  uint64_t offset_;  // bytes into the base
  uint64_t len_;     // bytes
};

}  // namespace

Result<std::unique_ptr<Target>> MakeLinearTarget(const TableLine& line, const BaseResolver& resolve) {
  if (line.args.size() != 2) return SegmentError(line, "linear takes DEV OFFSET");
  auto offset = ParseOffsetArg(line, "offset", line.args[1]);
  if (!offset.ok()) return offset.status();
  auto base = resolve(line.args[0]);
  if (!base.ok()) return SegmentError(line, base.status());
  uint64_t len = line.len * kSectorSize;
  if (*offset > base->size || len > base->size - *offset)
    return SegmentError(line, "reaches beyond the end of " + line.args[0] + " (" +
                                  std::to_string(base->size / kSectorSize) + " sectors)");
  return std::unique_ptr<Target>(new LinearTarget(base->index, *offset, len));
}

}  // namespace daxguard::dm
