// The stack file: a magic and version line, then the table, one segment a
// line in dmsetup's syntax. Blank lines and lines starting with '#' are
// skipped. DEV paths that are relative are relative to the file's directory,
// so a directory of devices and stacks can move as a whole.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "dm/table.h"

namespace daxguard::dm {

inline constexpr std::string_view kStackMagic = "daxguard-stack 1";

// Whether `path` starts like a stack file (it may still be malformed).
bool LooksLikeStackFile(const std::string& path);
// Reads and checks the table (syntax and layout; not the devices).
Result<std::vector<TableLine>> ReadStackFile(const std::string& path);
// Writes a new stack file, all or nothing: the text goes to a temporary
// file beside `path`, is synced, and only then takes the name. Fails if
// `path` exists (or appears meanwhile), leaving it as it was; a failure
// leaves nothing, a crash at most a hidden ".NAME.tmp-PID-N" beside it,
// which the next write of `path` removes once PID is gone.
Status WriteStackFile(const std::string& path, const std::vector<TableLine>& table);
// Gives the stack file `from` the name `to` in one step (rename(2), the
// directory synced): `to`, if it exists, is replaced whole or not at all.
Status RenameStackFile(const std::string& from, const std::string& to);

}  // namespace daxguard::dm
