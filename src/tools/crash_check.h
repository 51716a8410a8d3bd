// crashcheck: daxfs against every power failure a workload could meet.
//
// Each workload (one, two or three filesystem operations over a small
// tree, ACE-style) runs on an emulated device in tracked mode, from its
// mount to its unmount; media/crash_states.h turns the trace into crash
// images; each image must pass fsck with no problems, mount writable, and
// hold a tree the workload's model allows (tools/crash_model.h). A sample of
// them is crashed again while its mount recovers it, and those images must
// pass the same checks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "fs/format.h"

namespace daxguard::tools {

struct CrashCheckOptions {
  uint64_t states = 10000;  // distinct crash states to check (stops there)
  uint64_t seed = 1;
  std::string dir;          // where the two device files go
  // mkfs --data-protection: each image's mount must also find every
  // block's checksum true to its data (resynced where a crash left them).
  fs::DataProtection protection = fs::DataProtection::kNone;
  // Called after each workload, with what the report holds so far.
  std::function<void(const struct CrashCheckReport&)> progress;
};

struct CrashCheckReport {
  uint64_t workloads = 0;
  uint64_t fences = 0;     // crash points: each fence, and each workload's end
  uint64_t generated = 0;  // images built
  uint64_t checked = 0;    // distinct images checked
  uint64_t recovery_checked = 0;  // images of a crash during the mount-time recovery of one
  uint64_t failed = 0;
  std::vector<std::string> failures;  // the first few, each "workload @ point: what"
  double seconds = 0;
};

Result<CrashCheckReport> RunCrashCheck(const CrashCheckOptions& opt);

}  // namespace daxguard::tools
