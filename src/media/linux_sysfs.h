// What Linux says in sysfs about a real persistent-memory device: the
// facts a backend needs to use a device-dax node (its size, its fault unit,
// where its bytes sit in the region) and its known errors in device
// offsets. The kernel keeps a device-dax node's errors per region
// (regionN/badblocks, in 512-byte sectors from the region's start); they
// are clipped to the node's physical range and shifted by its start, as
// libpmem2 does. Every path is taken under `root` (normally "/sys"), so
// tests run on fake trees. The layout (Linux 6.1, seen in ../shared/oracle):
//   bus/dax/devices/dax0.0 -> devices/.../ndbus0/region0/dax0.0/dax0.0
//     size 1040187392, align 2097152, resource 0x101000000
//   devices/.../ndbus0/region0: resource 0x100000000, badblocks
//   dev/char/252:0 -> the same dax0.0 directory
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "media/pmem_device.h"

namespace daxguard::media::sysfs {

struct DevDaxInfo {
  std::string name;          // "dax0.0"
  uint64_t size = 0;         // bytes
  uint64_t align = 0;        // the fault unit: what a mapping's faults take at once
  uint64_t phys = 0;         // physical address of byte 0
  std::string region_dir;    // the region's sysfs directory
  uint64_t region_phys = 0;  // physical address of the region's byte 0
};

// What kind of real persistent memory a path names, by the file itself.
enum class RealKind {
  kNotReal,    // a regular file without DAX: an emulated device or stack file, or nothing yet
  kDevDax,     // a device-dax character device
  kFsDaxFile,  // a regular file on a filesystem mounted with DAX (STATX_ATTR_DAX)
};
struct PathKind {
  RealKind kind = RealKind::kNotReal;
  std::string devdax;  // kDevDax: the node's name ("dax0.0")
};
// A path that can never be a device (a block device: no DAX through it; a
// character device that is not device-dax; a directory) is refused with
// one line saying what daxguard needs. A missing path is kNotReal.
Result<PathKind> Classify(const std::string& path, const std::string& root = "/sys");

// The node called `name` ("dax0.0").
Result<DevDaxInfo> DescribeDevDax(const std::string& root, const std::string& name);
// The name of the device-dax node with this character device number.
Result<std::string> DevDaxNameOf(const std::string& root, dev_t rdev);

// A badblocks attribute: "SECTOR COUNT" per line. `what` names it in errors.
Result<std::vector<BadBlock>> ParseBadBlocks(std::string_view text, const std::string& what);
// Of `region_bad` (sectors from region_phys), those within [phys, +size),
// in sectors from phys, sorted; a run crossing either end is cut there.
std::vector<BadBlock> ClipToDevice(const std::vector<BadBlock>& region_bad, uint64_t region_phys, uint64_t phys,
                                   uint64_t size);
// The node's known errors, in sectors of the node (reading the region's
// list may need root).
Result<std::vector<BadBlock>> DevDaxBadBlocks(const DevDaxInfo& d);

}  // namespace daxguard::media::sysfs
