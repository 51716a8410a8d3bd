#include "tools/cli_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "common/units.h"
#include "dax/pmem_dax.h"

namespace daxguard::tools {

int Fail(const std::string& cmd, const Status& s) { return Fail(cmd, s.message()); }

int Fail(const std::string& cmd, const std::string& message) {
  std::fprintf(stderr, "daxguard %s: %s\n", cmd.c_str(), message.c_str());
  return 1;
}

void ShowProgress(const char* what, uint64_t done, uint64_t total) {
  int pct = total ? static_cast<int>(std::min(done, total) * 100 / total) : 100;
  std::fprintf(stderr, "\r%s [%-40s] %3d%%", what, std::string(pct * 40 / 100, '#').c_str(), pct);
  if (done >= total) std::fputc('\n', stderr);
}

Status Named(const std::string& name, const Status& s) {
  if (s.message().starts_with(name + ": ")) return s;
  return Status::Error(s.err(), name + ": " + s.message());
}

Result<uint64_t> ParseSizeArg(const std::string& what, const std::string& text) {
  if (auto v = ParseSize(text)) return *v;
  return Status::Invalid("invalid " + what + " '" + text + "'");
}

std::string EscapeName(std::string_view name) {
  static constexpr std::string_view kEscaped = "\\\n\t\r\a\b\f\v", kLetter = "\\ntrabfv";
  std::string out;
  out.reserve(name.size());
  for (char ch : name) {
    auto b = static_cast<unsigned char>(ch);
    if (size_t i = kEscaped.find(ch); i != std::string_view::npos) {
      out += '\\';
      out += kLetter[i];
    } else if (b < 0x20 || b >= 0x7f) {
      out += fmt::format("\\{:03o}", b);
    } else {
      out += ch;
    }
  }
  return out;
}

// A name need not be UTF-8: a byte that is not becomes U+FFFD, not an abort.
void PrintJson(const Json& j) {
  std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << std::endl;
}

Json BadBlocksJson(const std::vector<media::BadBlock>& bbs, uint64_t shift) {
  Json list = Json::array();
  for (const media::BadBlock& b : bbs) list.push_back({{"offset", b.sector + shift}, {"length", b.count}});
  return list;
}

bool IsDevdax(dax::Device& dev) { return dev.caps().devdax; }

Status CheckNotDevdax(dax::Device& dev, const std::string& name, const std::string& instead) {
  if (!IsDevdax(dev)) return Status::Ok();
  return Status::Invalid(name + " is a devdax device (used whole, by mapping only): " + instead);
}

const char* KindName(media::Kind k) { return k == media::Kind::kCxl ? "cxl" : "pmem"; }
const char* ModeName(media::Mode m) { return m == media::Mode::kDevdax ? "devdax" : "fsdax"; }

// xfs_io's closing line: "4 KiB, 1 ops; 0.0000 sec (39.062 MiB/sec and 10000.0000 ops/sec)".
void PrintRate(std::ostream& out, uint64_t bytes, uint64_t ops, double secs) {
  double s = secs > 0 ? secs : 1e-9;
  out << fmt::format("{}, {} ops; {:.4f} sec ({}/sec and {:.4f} ops/sec)\n", HumanBytes(bytes), ops,
                     secs, HumanBytes(bytes / s), ops / s);
}

void HexDump(std::ostream& out, uint64_t offset, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    std::string hex, text;
    for (size_t j = i; j < std::min(n, i + 16); ++j) {
      hex += fmt::format("{:02x} ", p[j]);
      text += (p[j] >= 0x20 && p[j] < 0x7f) ? static_cast<char>(p[j]) : '.';
    }
    out << fmt::format("{:08x}:  {} {}\n", offset + i, hex, text);  // a short last line unpadded, as xfs_io
  }
}

}  // namespace daxguard::tools
