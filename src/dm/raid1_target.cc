// raid1 N DEV OFFSET [DEV OFFSET ...]: N >= 2 legs, each holding the whole
// segment (dm-mirror's device list, without its dirty-region log: every
// write reaches every leg before it returns). The stack writes to every leg
// and reads from the first leg that holds the bytes; a leg's poison is
// rebuilt from another (dm/stack.cc). A DEV of "-" (dm-raid's word for a
// missing device) is a failed leg: the mirror runs degraded on the others
// until `dm replace` puts a device there.
#include <algorithm>
#include <cerrno>

#include "common/units.h"
#include "dm/target.h"

namespace daxguard::dm {
namespace {

class Raid1Target final : public Target {
 public:
  Raid1Target(std::vector<Layout::Leg> legs, uint64_t len) : legs_(std::move(legs)), len_(len) {}

  Extent Map(uint64_t off, uint64_t len) const override { return {legs_[0].base, legs_[0].offset + off, len}; }

  void Unmap(size_t base, uint64_t off, uint64_t len, std::vector<ByteRange>* out) const override {
    for (const Layout::Leg& leg : legs_) {
      if (leg.base != base) continue;
      uint64_t lo = std::max(off, leg.offset), hi = std::min(off + len, leg.offset + len_);
      if (lo < hi) out->push_back({lo - leg.offset, hi - lo});
    }
  }

  std::vector<size_t> Bases() const override {
    std::vector<size_t> v;
    for (const Layout::Leg& leg : legs_) v.push_back(leg.base);
    return v;
  }
  std::vector<Layout::Leg> MirrorLegs() const override { return legs_; }

 private:
  std::vector<Layout::Leg> legs_;
  uint64_t len_;  // bytes, on each leg
};

}  // namespace

Result<std::unique_ptr<Target>> MakeRaid1Target(const TableLine& line, const BaseResolver& resolve) {
  const auto& a = line.args;
  auto n = a.empty() ? std::nullopt : ParseSectors(a[0]);
  if (!n || *n < 2 || *n > a.size()) return SegmentError(line, "raid1 takes N (2 or more) followed by N pairs of DEV OFFSET");
  if (a.size() != 1 + 2 * *n) return SegmentError(line, "raid1 " + a[0] + " needs " + a[0] + " pairs of DEV OFFSET");
  uint64_t len = line.len * kSectorSize;
  auto legs = ParseLegs(line, 1, *n, len, "leg", resolve, /*missing=*/true);
  if (!legs.ok() && legs.status().err() == ENOENT)
    return Status::Error(ENOENT, legs.status().message() + " (a raid1 leg: `daxguard dm fail STACK DEV` runs the mirror without it)");
  if (!legs.ok()) return legs.status();
  if (legs->empty()) return SegmentError(line, "raid1 needs at least one leg with a device (\"-\" is a missing leg)");
  return std::unique_ptr<Target>(new Raid1Target(std::move(legs).value(), len));
}

}  // namespace daxguard::dm
