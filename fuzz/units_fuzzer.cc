// Sizes and sector counts as users type them: ParseSize ("4k", "0x1000"),
// the CLI's ParseSizeArg, dm's ParseSectors, and HumanBytes on what they
// give. Whatever parses must print back to the same value.
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "common/units.h"
#include "dm/table.h"
#include "fuzz/fuzz_util.h"
#include "tools/cli_util.h"

using namespace daxguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::optional<uint64_t> v = ParseSize(text);
  auto arg = tools::ParseSizeArg("size", text);
  DG_FUZZ_CHECK(arg.ok() == v.has_value() && (!v || *arg == *v), "ParseSizeArg and ParseSize disagree on '%s'",
                text.c_str());
  if (v) {
    DG_FUZZ_CHECK(ParseSize(std::to_string(*v)) == v, "'%s' -> %" PRIu64 " does not parse back", text.c_str(), *v);
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%" PRIx64, *v);
    DG_FUZZ_CHECK(ParseSize(hex) == v, "'%s' -> %" PRIu64 " does not parse back from %s", text.c_str(), *v, hex);
    DG_FUZZ_CHECK(!HumanBytes(static_cast<double>(*v)).empty(), "HumanBytes(%" PRIu64 ") is empty", *v);
  }
  std::optional<uint64_t> sectors = dm::ParseSectors(text);
  if (sectors) DG_FUZZ_CHECK(dm::ParseSectors(std::to_string(*sectors)) == sectors, "sectors '%s'", text.c_str());
  return 0;
}
