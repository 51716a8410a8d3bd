// error: no device behind it; every access fails with EIO, and nothing
// there can be recovered. The stack checks for it before touching a base.
#include "dm/target.h"

namespace daxguard::dm {
namespace {

class ErrorTarget final : public Target {
 public:
  Extent Map(uint64_t, uint64_t len) const override { return {Extent::kNoBase, 0, len}; }
  void Unmap(size_t, uint64_t, uint64_t, std::vector<ByteRange>*) const override {}
  std::vector<size_t> Bases() const override { return {}; }
};

}  // namespace

Result<std::unique_ptr<Target>> MakeErrorTarget(const TableLine& line) {
  if (!line.args.empty()) return SegmentError(line, "error takes no arguments");
  return std::unique_ptr<Target>(new ErrorTarget());
}

}  // namespace daxguard::dm
