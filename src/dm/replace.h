// dm replace: a raid1 leg moved to another device and resynced, as mdadm
// --replace does for an md member (the leg's device may be gone already,
// or the leg missing: "-"); dm fail: a leg dropped, as mdadm --fail.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "dm/stack.h"

namespace daxguard::dm {

struct ReplaceReport {
  uint64_t legs = 0;   // raid1 legs moved
  uint64_t bytes = 0;  // copied onto them
  std::vector<uint64_t> lost_sectors;  // stack sectors no remaining leg held
};

// Every raid1 leg of `stack` on `old_dev` (either spelling: as the table
// has it, relative to the stack's directory, or relative to here) moves to
// `new_dev`, at `offset` sectors or the leg's old offset. The new table is
// written beside the stack, opened and held (so nobody mounts the stack
// meanwhile: refused while anybody holds it), the legs resynced from the
// others, and only then does it take the stack's name: a failure or a
// crash before leaves the stack file as it was.
Result<ReplaceReport> ReplaceLeg(const std::string& stack, const std::string& old_dev, const std::string& new_dev,
                                 std::optional<uint64_t> offset, const Stack::Progress& progress = {});

// Every raid1 leg of `stack` on `dev` becomes a missing leg ("-"), as
// mdadm --fail: from its next open the mirror runs on the other legs, and
// `dev` is never read again (it would be stale). Refused while anybody
// holds the stack, and where a segment would be left with no leg.
Status FailLeg(const std::string& stack, const std::string& dev);

}  // namespace daxguard::dm
