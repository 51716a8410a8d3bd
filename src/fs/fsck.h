// fsck for daxfs: checks both superblocks and both log copies against each
// other, replays the log, and checks the rebuilt state: every inode
// reachable, link counts, and the reverse map, reference counts and free
// space recomputed from the extents against the ones kept incrementally.
#pragma once

#include <string>
#include <vector>

#include "dax/dax_device.h"

namespace daxguard::fs {

struct FsckReport {
  uint64_t inodes = 0, extents = 0, records = 0;
  std::vector<std::string> problems;
  std::vector<std::string> fixed;
};

// Without `repair` nothing is written to the device.
Result<FsckReport> Fsck(dax::Device& dev, bool repair);

}  // namespace daxguard::fs
