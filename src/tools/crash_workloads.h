// The operations crashcheck's workloads are made of: each runs on the
// filesystem and, when it succeeds, changes the model the same way (a
// failed operation changes neither).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fs/filesystem.h"
#include "tools/crash_model.h"

namespace daxguard::tools {

// `returned` is called after each filesystem call of a step that makes
// several: the tree as the model has it then is one the image may show.
using Returned = std::function<void()>;
struct CrashStep {
  std::string name;
  std::function<Status(fs::Filesystem&, ModelTree&, const Returned&)> run;
};

// A workload: after the base tree, `prepare` (untracked); then, tracked,
// mkfs over it if `mkfs`, a mount, the steps, and the unmount.
struct CrashWorkload {
  std::string name;
  std::function<Status(fs::Filesystem&, ModelTree&)> prepare;
  bool mkfs = false;
  std::vector<CrashStep> steps;
};

// The tree every workload starts from, made (and synced) before tracking.
Status MakeCrashBaseTree(fs::Filesystem& fs, ModelTree* model);
// Every operation the workloads combine.
const std::vector<CrashStep>& CrashSteps();
// Workloads of their own: mkfs over a filesystem, a log compaction, and
// poison (file data lost and then rewritten, zeroed, punched or cut off; a
// free block quarantined; a log block rebuilt from its other copy).
std::vector<CrashWorkload> SpecialCrashWorkloads();

}  // namespace daxguard::tools
