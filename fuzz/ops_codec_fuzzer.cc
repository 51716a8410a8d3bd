// The metadata record codec (fs/ops.*) and what a record's operations do
// to the in-memory state. Whatever decodes must encode to bytes that decode
// and encode to the same bytes; the operations are then applied to an empty
// State (a 16 MiB filesystem's), which must survive every query mount and
// fsck make of it, and give back its own snapshot when the snapshot is
// replayed.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fs/ops.h"
#include "fs/state.h"
#include "fuzz/fuzz_util.h"

using namespace daxguard;
using namespace daxguard::fs;

namespace {

std::string Encoded(const std::vector<Op>& ops) {
  std::string out;
  EncodeOps(ops, &out);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<Op> ops;
  if (!DecodeOps(std::string_view(reinterpret_cast<const char*>(data), size), &ops).ok()) return 0;
  std::string once = Encoded(ops);
  std::vector<Op> again;
  DG_FUZZ_CHECK(DecodeOps(once, &again).ok(), "re-encoded operations do not decode");
  DG_FUZZ_CHECK(Encoded(again) == once, "re-encoded operations do not round-trip");

  const Geometry g = GeometryFor(16ull << 20);
  State state(g);
  (void)state.ApplyAll(ops);
  for (const State::BadExtent& b : state.bad_extents()) (void)state.Describe(b);
  for (const auto& [ino, in] : state.inodes()) (void)state.PathOf(ino);
  (void)state.ReverseMapSuspect();
  (void)state.CheckReverseMap();
  (void)state.SpaceFromExtents();
  std::vector<Op> snapshot = state.Snapshot();
  State replayed(g);
  (void)replayed.ApplyAll(snapshot);
  DG_FUZZ_CHECK(Encoded(replayed.Snapshot()) == Encoded(snapshot), "a replayed snapshot differs from the state it was taken of");
  state.RebuildReverseMap();
  state.AcceptLosses({});
  DG_FUZZ_CHECK(state.CheckReverseMap().empty(), "a rebuilt reverse map disagrees with the extents");
  return 0;
}
