// `daxguard io DEV -c CMD ...`: xfs_io's command language on a dax device.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "dax/dax_device.h"
#include "tools/map_cmds.h"

namespace daxguard::tools {

struct IoCommand {
  enum class Op { kPread, kPwrite, kZero, kMap } op;
  bool verbose = false;    // pread -v: hex dump
  uint8_t pattern = 0xcd;  // pwrite -S
  uint64_t offset = 0;
  uint64_t length = 0;
  MapCommand map;          // kMap: mmap, mread, mwrite, msync, munmap
};

// Parses one -c argument, e.g. "pwrite -S 0xab 0 64k".
Result<IoCommand> ParseIoCommand(const std::string& text);

// Whether `c` can run on `dev` (named `name`) after the commands before it,
// whose mappings `plan` follows: within the device, zero in whole pages,
// mappings in whole fault units, accesses within the mapping. Every command
// is checked before any runs.
Status CheckIoCommand(dax::Device& dev, const std::string& name, const IoCommand& c, MapPlan* plan);

// Runs the commands on `dev` (named `name` in fault reports) in order,
// printing as xfs_io does; a failed command prints "NAME: reason" on `err`
// and the run goes on. Returns how many failed.
int RunIoCommands(dax::Device& dev, const std::string& name, const std::vector<IoCommand>& cmds,
                  std::ostream& out, std::ostream& err);

}  // namespace daxguard::tools
