// A remapping table in dmsetup's syntax: one segment per line,
// "START LEN TARGET ARGS...", in 512-byte sectors. This header only reads
// and writes the text and checks what needs no base device; the targets
// check their own arguments against the devices they name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace daxguard::dm {

// Segments are whole 4 KiB pages, so that a page never straddles two
// targets and direct access can always hand out whole pages.
inline constexpr uint64_t kSectorsPerPage = 8;

struct TableLine {
  uint64_t start = 0;  // sectors
  uint64_t len = 0;    // sectors
  std::string target;
  std::vector<std::string> args;
  bool operator==(const TableLine&) const = default;
};

// Parses "0 2048 linear pmem0 0": numbers, alignment and a known target.
Result<TableLine> ParseTableLine(std::string_view text);
// The line as dmsetup prints it.
std::string FormatTableLine(const TableLine& line);

// The segments must start at sector 0 and follow one another without gaps
// or overlaps, in order (as the kernel requires).
Status CheckLayout(const std::vector<TableLine>& table);

// A decimal sector count, as dmsetup takes them (no suffixes).
std::optional<uint64_t> ParseSectors(std::string_view text);

}  // namespace daxguard::dm
