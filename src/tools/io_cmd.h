// `daxguard io DEV -c CMD ...`: xfs_io's command language on a dax device.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "dax/dax_device.h"

namespace daxguard::tools {

struct IoCommand {
  enum class Op { kPread, kPwrite, kZero } op;
  bool verbose = false;    // pread -v: hex dump
  uint8_t pattern = 0xcd;  // pwrite -S
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Parses one -c argument, e.g. "pwrite -S 0xab 0 64k".
Result<IoCommand> ParseIoCommand(const std::string& text);

// Runs the commands in order, printing as xfs_io does; a failed command
// prints "NAME: reason" on `err` and the run goes on. Returns how many failed.
int RunIoCommands(dax::Device& dev, const std::vector<IoCommand>& cmds, std::ostream& out,
                  std::ostream& err);

}  // namespace daxguard::tools
