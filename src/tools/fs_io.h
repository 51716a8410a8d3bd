// xfs_io's file commands on a daxfs file: `daxguard io [-f] DEV:/path -c ...`.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "fs/filesystem.h"
#include "tools/map_cmds.h"

namespace daxguard::tools {

struct FileCommand {
  std::string name;                // pwrite, pread, fzero, fpunch, falloc, fiemap, reflink, truncate, fsync, stat
  bool verbose = false;            // pread -v, fiemap -v
  bool keep_size = false;          // falloc -k, fzero -k
  uint8_t pattern = 0xcd;          // pwrite -S
  bool atomic = false;             // pwrite -A: untorn (RWF_ATOMIC), within one page
  uint64_t offset = 0, length = 0;
  std::string source;              // reflink: the source file's path
  uint64_t dest = 0;               // reflink: destination offset
  bool is_map = false;             // mmap, mread, mwrite, msync, munmap
  MapCommand map;
};

Result<FileCommand> ParseFileCommand(const std::string& text);

// Whether `c` can run on a file of the filesystem on a `dev_size`-byte
// device (the most a file can hold) after the commands before it, whose
// mappings `plan` follows. Every command is checked before any runs.
Status CheckFileCommand(const FileCommand& c, uint64_t dev_size, MapPlan* plan);

// The mapping commands' session on `file` (mmap maps it with File::Map).
MapSession FileMapSession(fs::File& file);

// Runs the commands on `file` (named `path` in messages); returns how many failed.
int RunFileCommands(fs::Filesystem& fs, fs::File& file, const std::string& path,
                    const std::vector<FileCommand>& cmds, std::ostream& out, std::ostream& err);

}  // namespace daxguard::tools
