#include "common/units.h"

#include <charconv>
#include <cstdio>

namespace daxguard {

std::optional<uint64_t> ParseSize(std::string_view text) {
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  std::string_view suffix(end, text.data() + text.size() - end);
  unsigned shift = 0;
  if (suffix.size() == 1 && base == 10) {
    switch (suffix[0] | 0x20) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      default: return std::nullopt;
    }
  } else if (!suffix.empty()) {
    return std::nullopt;
  }
  if (shift && value > (UINT64_MAX >> shift)) return std::nullopt;
  return value << shift;
}

std::string HumanBytes(double bytes) {
  static const char* kUnits[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[64];
  if (bytes < 0x1p63 && bytes == static_cast<double>(static_cast<uint64_t>(bytes)))
    std::snprintf(buf, sizeof buf, "%llu %s", static_cast<unsigned long long>(bytes), kUnits[u]);
  else
    std::snprintf(buf, sizeof buf, "%.3f %s", bytes, kUnits[u]);
  return buf;
}

}  // namespace daxguard
