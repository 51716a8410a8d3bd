// What fsck --repair computes from a filesystem's state, as the operations
// that put it right: plain functions of State, no device and no log, so
// each is tested on a state built by hand (tests/fs/repair_ops_test.cc).
// Filesystem::RepairForFsck applies them in memory and writes the result
// out as one snapshot.
#pragma once

#include <cstdint>
#include <vector>

#include "fs/ops.h"
#include "fs/state.h"

namespace daxguard::fs {

// Entries below `top` that name no inode, or a directory named before
// (breadth first: a directory keeps its shallowest name), are dropped.
std::vector<Op> DropBadEntriesBelow(const State& s, uint64_t top);

// DropBadEntriesBelow the root, and every inode that lost its entry (or
// whose directory is gone) linked into /lost+found as "#<ino>" with its
// data and subtree, as e2fsck does. /lost+found is made if missing, or
// /lost+found.N when that name is taken by something that is not a
// directory. Inodes with no link and no entries are left alone: they were
// unlinked while open.
std::vector<Op> ReconnectOps(const State& s);

// Link counts as the directory tree gives them.
std::vector<Op> LinkCountOps(const State& s);

}  // namespace daxguard::fs
