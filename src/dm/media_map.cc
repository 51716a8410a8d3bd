#include "dm/media_map.h"

#include <algorithm>

#include "common/units.h"
#include "dm/stack.h"

namespace daxguard::dm {

std::vector<dax::PmemDax*> BottomDevices(dax::Device& dev) {
  if (auto* p = dynamic_cast<dax::PmemDax*>(&dev)) return {p};
  std::vector<dax::PmemDax*> out;
  if (auto* s = dynamic_cast<Stack*>(&dev)) {
    for (size_t i = 0; i < s->base_count(); ++i)
      for (dax::PmemDax* p : BottomDevices(s->base(i)))
        if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

Result<std::vector<MediaExtent>> MapToMedia(dax::Device& dev, uint64_t off, uint64_t len) {
  if (off > dev.size() || len > dev.size() - off)
    return Status::Range("range " + std::to_string(off) + "+" + std::to_string(len) + " is beyond the end (" +
                         std::to_string(dev.size()) + " bytes)");
  if (auto* p = dynamic_cast<dax::PmemDax*>(&dev)) return std::vector<MediaExtent>{{p, off, len}};
  auto* s = dynamic_cast<Stack*>(&dev);
  if (!s) return Status::Invalid("not a device file or a stack");
  std::vector<MediaExtent> out;
  uint64_t pos = off;
  for (const Extent& e : s->MapDown(off, len)) {
    if (e.base == Extent::kNoBase)
      return Status::Io(s->name() + ": sector " + std::to_string(pos / kSectorSize) + " is mapped to the error target");
    auto below = MapToMedia(s->base(e.base), e.offset, e.len);
    if (!below.ok()) return below.status();
    out.insert(out.end(), below->begin(), below->end());
    pos += e.len;
  }
  return out;
}

std::vector<ByteRange> MapFromMedia(dax::Device& dev, const dax::PmemDax& bottom, uint64_t off, uint64_t len) {
  if (&dev == &bottom) return {{off, len}};
  auto* s = dynamic_cast<Stack*>(&dev);
  if (!s) return {};
  std::vector<ByteRange> out;
  for (size_t i = 0; i < s->base_count(); ++i)
    for (const ByteRange& r : MapFromMedia(s->base(i), bottom, off, len)) {
      std::vector<ByteRange> up = s->MapUp(i, r.off, r.len);
      out.insert(out.end(), up.begin(), up.end());
    }
  return MergeRanges(std::move(out));
}

}  // namespace daxguard::dm
