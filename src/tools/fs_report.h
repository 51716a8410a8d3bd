// What `who` and `health` print, built once for both ways of answering:
// from a filesystem this process mounts, or from a running FUSE mount of
// the device, asked through an attribute of its root.
#pragma once

#include <string>
#include <vector>

#include "fs/filesystem.h"
#include "tools/cli_util.h"

namespace daxguard::tools {

Json WhoJson(const std::vector<fs::OwnerInfo>& owners);
// Without "dev": the caller names the device as the user did.
Json HealthJson(const fs::HealthReport& h);

// The attribute of a daxfs FUSE mount's root that answers `question`
// ("health", or "who:OFFSET:LENGTH"): user.daxguard.<question>.
std::string QuestionAttr(const std::string& question);

// Asks the FUSE mount of `dev` (found in /proc/self/mountinfo by its
// source, the device's absolute path) `question`; its JSON answer.
Result<Json> AskMount(const std::string& dev, const std::string& question);

}  // namespace daxguard::tools
