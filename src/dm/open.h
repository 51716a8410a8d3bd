// The one way every command opens what the user names: a device file or a
// stack file, and everything a stack stands on (stacks of stacks, up to
// kMaxStackDepth levels). A stack that reaches the same bytes of a device
// file twice (aliasing), or that includes itself, is refused. Relative DEV
// paths in a stack file are taken from its directory.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "dax/dax_device.h"
#include "dm/stack.h"
#include "dm/table.h"

namespace daxguard::dm {

// Stacks may stand on stacks this many levels deep (the stack named is the
// first level); a deeper chain is refused before it is read.
inline constexpr int kMaxStackDepth = 16;

// kReadOnlyFallback: for commands that write nothing, device files this
// process may not write are read (media::OpenMode), at any depth.
Result<std::unique_ptr<dax::Device>> OpenDaxDevice(const std::string& path,
                                                   media::OpenMode mode = media::OpenMode::kReadWrite);

// As OpenDaxDevice, for commands about stacks only: a device file is refused.
Result<std::unique_ptr<Stack>> OpenStack(const std::string& path, media::OpenMode mode = media::OpenMode::kReadWrite);

// Checks `table` as the table of a new stack file at `path`, opening every
// device it names, and only then writes the file. Refuses an existing path.
Status CreateStackFile(const std::string& path, const std::vector<TableLine>& table);

}  // namespace daxguard::dm
