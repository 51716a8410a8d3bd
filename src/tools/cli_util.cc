#include "tools/cli_util.h"

#include <cstdio>
#include <iostream>

#include "common/units.h"

namespace daxguard::tools {

int Fail(const std::string& cmd, const Status& s) { return Fail(cmd, s.message()); }

int Fail(const std::string& cmd, const std::string& message) {
  std::fprintf(stderr, "daxguard %s: %s\n", cmd.c_str(), message.c_str());
  return 1;
}

Result<uint64_t> ParseSizeArg(const std::string& what, const std::string& text) {
  if (auto v = ParseSize(text)) return *v;
  return Status::Invalid("invalid " + what + " '" + text + "'");
}

void PrintJson(const Json& j) { std::cout << j.dump(2) << std::endl; }

const char* KindName(media::Kind k) { return k == media::Kind::kCxl ? "cxl" : "pmem"; }
const char* ModeName(media::Mode m) { return m == media::Mode::kDevdax ? "devdax" : "fsdax"; }

}  // namespace daxguard::tools
