#include "dm/table.h"

#include <charconv>
#include <sstream>

#include "common/units.h"
#include "dm/target.h"

namespace daxguard::dm {

std::optional<uint64_t> ParseSectors(std::string_view text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

Result<TableLine> ParseTableLine(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  if (words.size() < 3) return Status::Invalid("'" + std::string(text) + "': expected START LEN TARGET [ARGS...]");
  TableLine line;
  auto start = ParseSectors(words[0]);
  auto len = ParseSectors(words[1]);
  if (!start || !len) return Status::Invalid("'" + std::string(text) + "': START and LEN must be sector counts");
  // Sectors are turned into bytes everywhere below; keep that from overflowing.
  constexpr uint64_t kMaxSectors = UINT64_MAX / kSectorSize;
  if (*len == 0 || *start > kMaxSectors || *len > kMaxSectors - *start)
    return Status::Invalid("'" + std::string(text) + "': LEN must be at least 1 and the segment must end before 2^64 bytes");
  if (*start % kSectorsPerPage || *len % kSectorsPerPage)
    return Status::Invalid("'" + std::string(text) + "': START and LEN must be multiples of 8 sectors (4 KiB pages)");
  line.start = *start;
  line.len = *len;
  line.target = words[2];
  if (!IsKnownTarget(line.target))
    return Status::Invalid("'" + std::string(text) + "': unknown target '" + line.target +
                           "' (known: linear, striped, error)");
  line.args.assign(words.begin() + 3, words.end());
  return line;
}

std::string FormatTableLine(const TableLine& line) {
  std::string s = std::to_string(line.start) + " " + std::to_string(line.len) + " " + line.target;
  for (const std::string& a : line.args) s += " " + a;
  return s;
}

Status CheckLayout(const std::vector<TableLine>& table) {
  if (table.empty()) return Status::Invalid("the table has no segments");
  uint64_t next = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    const TableLine& l = table[i];
    if (l.start != next) {
      std::string where = i == 0 ? "the table must start at sector 0"
                                 : "the previous segment ends at sector " + std::to_string(next);
      return Status::Invalid("segment '" + FormatTableLine(l) + "' leaves a " +
                             (l.start > next ? "gap" : "overlap") + ": " + where);
    }
    next = l.start + l.len;
  }
  return Status::Ok();
}

}  // namespace daxguard::dm
