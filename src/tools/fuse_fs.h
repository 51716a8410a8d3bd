// daxfs as a FUSE filesystem: the low-level libfuse3 operations, each
// turned into one daxfs call on the inode the kernel names (FUSE node ids
// are daxfs inode numbers; the root is 1 in both).
//
// Poison reaches programs as it would on a Linux DAX filesystem: a read
// stops before damaged bytes and the next one gets EIO; and when an error
// becomes known under an open file, the kernel's cached pages of the range
// are dropped (and unmapped) so nobody reads good-looking stale data.
#pragma once

#include <string>

#include "fs/filesystem.h"

namespace daxguard::tools {

struct FuseOptions {
  bool read_only = false;
  bool debug = false;         // libfuse's request trace on stderr (foreground)
  double attr_timeout = 1.0;  // seconds the kernel may cache attributes and names
  std::string source;         // what mount(8) and df show as the source: the device
};

// Serves `fs` at `mountpoint` until it is unmounted (or SIGINT/SIGTERM).
// `ready` is called once the mount is in place, before requests are served
// (a daemon tells its parent then). Returns 0, or an error if the mount failed.
Status ServeFuse(fs::Filesystem& fs, const std::string& mountpoint, const FuseOptions& o,
                 const std::function<void()>& ready);

}  // namespace daxguard::tools
