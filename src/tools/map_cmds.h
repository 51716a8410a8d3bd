// xfs_io's mapping commands — mmap, mread, mwrite, msync, munmap — shared by
// `io` on a device and on a daxfs file. Loads and stores go straight to the
// mapped device memory; an access that poison (or a truncate) has taken
// away raises SIGBUS, which is caught and reported as the failed command.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "common/status.h"

namespace daxguard::tools {

struct MapCommand {
  enum class Op { kMmap, kMread, kMwrite, kMsync, kMunmap } op{};
  std::string name;
  bool writable = true;     // mmap -r alone: read-only
  bool verbose = false;     // mread -v: hex dump
  uint8_t pattern = 'X';    // mwrite -S (xfs_io's default byte)
  bool whole = true;        // no OFFSET LENGTH: the whole mapping
  uint64_t offset = 0, length = 0;
};

bool IsMapCommand(const std::string& text);
Result<MapCommand> ParseMapCommand(const std::string& text);

// Follows the mappings a list of commands makes, so that every access can be
// checked against the mapping before it before any command runs. The target
// checks each mmap's own range first (it knows its alignment and size).
class MapPlan {
 public:
  Status Check(const MapCommand& c);

 private:
  bool mapped_ = false;
  uint64_t offset_ = 0, length_ = 0;
};

// A mapping made by the target: `addr` shows [offset, offset+length) of the
// device or file; `owner` keeps it alive.
struct MapView {
  uint8_t* addr = nullptr;
  uint64_t offset = 0, length = 0;
  std::shared_ptr<void> owner;
  // msync's persistence: the mapped stores of [off, +len) written back and
  // fenced, as a persist call does on real pmem.
  std::function<Status(uint64_t off, uint64_t len)> persist;
};
using Mapper = std::function<Result<MapView>(uint64_t off, uint64_t len, bool writable)>;

// The current mapping of one `io` run, as xfs_io keeps one.
class MapSession {
 public:
  explicit MapSession(Mapper mapper) : mapper_(std::move(mapper)) {}
  Status Run(const MapCommand& c, std::ostream& out);

 private:
  Status Access(const MapCommand& c, std::ostream& out);
  Mapper mapper_;
  MapView view_;
};

}  // namespace daxguard::tools
