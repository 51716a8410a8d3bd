// dm tables as `dm create --table` takes them, one segment a line: each
// line that parses must print (FormatTableLine) to a line that parses to
// the same segment, and the layout check takes whatever parsed.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "dm/table.h"
#include "fuzz/fuzz_util.h"

using namespace daxguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream lines(std::string(reinterpret_cast<const char*>(data), size));
  std::vector<dm::TableLine> table;
  for (std::string text; std::getline(lines, text);) {
    auto l = dm::ParseTableLine(text);
    if (!l.ok()) continue;
    std::string printed = dm::FormatTableLine(*l);
    auto again = dm::ParseTableLine(printed);
    DG_FUZZ_CHECK(again.ok() && *again == *l, "'%s' prints as '%s', which does not parse back", text.c_str(),
                  printed.c_str());
    table.push_back(*l);
  }
  (void)dm::CheckLayout(table);
  return 0;
}
