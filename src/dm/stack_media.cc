// The media below a stack, for commands that act on it beneath the dax
// contract (inject-error, clear-errors, scrub): each base answers for
// itself, and the stack translates one level each way.
#include <algorithm>

#include "common/units.h"
#include "dm/stack.h"

namespace daxguard::dm {

std::vector<media::PmemDevice*> Stack::Media() {
  std::vector<media::PmemDevice*> out;
  for (Base& b : bases_)
    for (media::PmemDevice* m : b.dev->Media())
      if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  return out;
}

Result<std::vector<dax::MediaRun>> Stack::MediaRunsOf(uint64_t off, uint64_t len) {
  std::vector<dax::MediaRun> out;
  uint64_t pos = off;
  for (const Extent& e : MapDown(off, len)) {
    if (e.base == Extent::kNoBase) return ErrorTargetError(pos);
    auto below = bases_[e.base].dev->MapToMedia(e.offset, e.len);
    if (!below.ok()) return below.status();
    out.insert(out.end(), below->begin(), below->end());
    pos += e.len;
  }
  return out;
}

std::vector<ByteRange> Stack::MapFromMedia(const media::PmemDevice& m, uint64_t off, uint64_t len) {
  std::vector<ByteRange> out;
  for (size_t i = 0; i < bases_.size(); ++i)
    for (const ByteRange& r : bases_[i].dev->MapFromMedia(m, off, len)) {
      std::vector<ByteRange> up = MapUp(i, r.off, r.len);
      out.insert(out.end(), up.begin(), up.end());
    }
  return MergeRanges(std::move(out));
}

}  // namespace daxguard::dm
