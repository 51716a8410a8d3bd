// fsck for daxfs: checks both superblocks and both log copies against each
// other, replays the log (naming records lost in both copies), and checks
// the rebuilt state: every inode reachable, link counts, extents inside the
// device and off metadata, and the stored reverse map against the extents,
// reference counts and free space, naming every disagreement.
#pragma once

#include <string>
#include <vector>

#include "dax/dax_device.h"

namespace daxguard::fs {

struct FsckReport {
  uint64_t inodes = 0, extents = 0, records = 0;
  std::vector<std::string> problems;
  std::vector<std::string> fixed;
  std::vector<std::string> notes;  // accepted losses: no longer problems, never forgotten
  // What --repair left (the filesystem is then marked read-only until a
  // repair succeeds): problems found again afterwards, or why it failed.
  std::vector<std::string> unrepaired;
};

// Without `repair` nothing is written to the device.
Result<FsckReport> Fsck(dax::Device& dev, bool repair);

}  // namespace daxguard::fs
