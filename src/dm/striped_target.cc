// striped N CHUNK DEV OFF ...: the segment is dealt out in CHUNK-sector
// chunks to N stripes in turn; stripe i takes chunks i, i+N, i+2N, ... and
// keeps them contiguous on its device from OFF.
#include <algorithm>

#include "common/units.h"
#include "dm/target.h"

namespace daxguard::dm {
namespace {

struct Stripe {
  size_t base;
  uint64_t offset;  // bytes into the base
};

class StripedTarget final : public Target {
 public:
  StripedTarget(std::vector<Stripe> stripes, uint64_t chunk, uint64_t len)
      : stripes_(std::move(stripes)), chunk_(chunk), per_chunk_(chunk), per_stripe_(stripes_.size()),
        stripe_len_(len / stripes_.size()) {}

  Extent Map(uint64_t off, uint64_t len) const override {
    uint64_t chunk_no = per_chunk_.Div(off), within = per_chunk_.Mod(off);
    const Stripe& s = stripes_[per_stripe_.Mod(chunk_no)];
    return {s.base, s.offset + per_stripe_.Div(chunk_no) * chunk_ + within, std::min(len, chunk_ - within)};
  }

  void Unmap(size_t base, uint64_t off, uint64_t len, std::vector<ByteRange>* out) const override {
    uint64_t n = stripes_.size();
    for (uint64_t i = 0; i < n; ++i) {
      const Stripe& s = stripes_[i];
      if (s.base != base) continue;
      uint64_t lo = std::max(off, s.offset), hi = std::min(off + len, s.offset + stripe_len_);
      // Walk the stripe's chunks that [lo, hi) touches; each is one run of the segment.
      for (uint64_t pos = lo; pos < hi;) {
        uint64_t rel = pos - s.offset;
        uint64_t run = std::min(hi - pos, chunk_ - rel % chunk_);
        out->push_back({(rel / chunk_ * n + i) * chunk_ + rel % chunk_, run});
        pos += run;
      }
    }
  }

  std::vector<size_t> Bases() const override {
    std::vector<size_t> v;
    for (const Stripe& s : stripes_) v.push_back(s.base);
    return v;
  }
  std::optional<Layout> Striping() const override {
    Layout l{chunk_, {}};
    for (const Stripe& s : stripes_) l.legs.push_back({s.base, s.offset});
    return l;
  }

 private:
  std::vector<Stripe> stripes_;
  uint64_t chunk_;       // bytes
  Divisor per_chunk_;    // by chunk_
  Divisor per_stripe_;   // by the number of stripes
  uint64_t stripe_len_;  // bytes each stripe takes from its device
};

}  // namespace

Result<std::unique_ptr<Target>> MakeStripedTarget(const TableLine& line, const BaseResolver& resolve) {
  const auto& a = line.args;
  auto n = a.empty() ? std::nullopt : ParseSectors(a[0]);
  if (!n || *n == 0 || *n > a.size()) return SegmentError(line, "striped takes N CHUNK followed by N pairs of DEV OFFSET");
  if (a.size() != 2 + 2 * *n) return SegmentError(line, "striped " + a[0] + " needs " + a[0] + " pairs of DEV OFFSET");
  auto chunk = ParseSectors(a[1]);
  if (!chunk || *chunk == 0 || *chunk % kSectorsPerPage || *chunk > UINT64_MAX / kSectorSize)
    return SegmentError(line, "chunk size '" + a[1] + "' must be a positive multiple of 8 sectors (4 KiB)");
  if (*chunk > line.len / *n || line.len % (*n * *chunk))
    return SegmentError(line, "LEN must be a multiple of N * CHUNK (" + a[0] + " * " + a[1] + " sectors)");
  uint64_t stripe_len = line.len / *n * kSectorSize;
  auto legs = ParseLegs(line, 2, *n, stripe_len, "stripe", resolve);
  if (!legs.ok()) return legs.status();
  std::vector<Stripe> stripes;
  for (const Layout::Leg& leg : *legs) stripes.push_back({leg.base, leg.offset});
  return std::unique_ptr<Target>(new StripedTarget(std::move(stripes), *chunk * kSectorSize, line.len * kSectorSize));
}

}  // namespace daxguard::dm
