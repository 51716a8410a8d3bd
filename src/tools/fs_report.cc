#include "tools/fs_report.h"

#include <sys/xattr.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace daxguard::tools {
namespace {

const char* KindText(fs::OwnerInfo::Kind k) {
  switch (k) {
    case fs::OwnerInfo::Kind::kFile: return "file";
    case fs::OwnerInfo::Kind::kMetadata: return "metadata";
    case fs::OwnerInfo::Kind::kFree: return "free";
    case fs::OwnerInfo::Kind::kQuarantined: return "quarantined";
  }
  return "?";
}

// mountinfo writes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Where `source` is mounted as daxfs through FUSE, or "".
std::string MountPointOf(const std::string& source) {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::vector<std::string> w;
    for (std::string x; f >> x;) w.push_back(x);
    auto dash = std::find(w.begin(), w.end(), "-");
    if (w.size() < 5 || dash == w.end() || w.end() - dash < 3) continue;
    if (dash[1] == "fuse.daxfs" && Unescape(dash[2]) == source) return Unescape(w[4]);
  }
  return "";
}

}  // namespace

Json WhoJson(const std::vector<fs::OwnerInfo>& owners) {
  Json list = Json::array();
  for (const fs::OwnerInfo& o : owners) {
    Json j{{"offset", o.offset}, {"length", o.length}, {"owner", KindText(o.kind)}};
    if (o.kind == fs::OwnerInfo::Kind::kFile) {
      j["path"] = o.path;
      j["inode"] = o.ino;
      j["file_offset"] = o.file_offset;
    }
    if (o.kind == fs::OwnerInfo::Kind::kMetadata) j["structure"] = o.what;
    list.push_back(j);
  }
  return list;
}

Json HealthJson(const fs::HealthReport& h) {
  Json files = Json::array(), quarantine = Json::array();
  for (const fs::DamagedFile& d : h.files) {
    Json ranges = Json::array();
    for (auto [o, l] : d.ranges) ranges.push_back({{"offset", o}, {"length", l}});
    files.push_back({{"path", d.path}, {"inode", d.ino}, {"damaged", ranges}});
  }
  for (auto [o, l] : h.quarantined) quarantine.push_back({{"offset", o}, {"length", l}});
  Json repaired = Json::array();
  for (const fs::HealthReport::Repaired& r : h.repaired)
    repaired.push_back({{"when_ns", r.when_ns},
                        {"offset", r.offset},
                        {"length", r.length},
                        {"cause", r.cause},
                        {"source", "parity"},
                        {"owners", WhoJson(r.owners)}});
  return Json{{"read_only", h.read_only},
              {"damaged_files", files},
              {"quarantined", quarantine},
              {"lost_metadata", h.lost_metadata},
              {"damaged_entries", h.damaged_entries},
              {"metadata_repairs", h.metadata_repairs},
              {"data_protection", fs::ProtectionName(h.protection)},
              {"repaired_blocks", h.repaired_blocks},
              {"unrepaired_blocks", h.unrepaired_blocks},
              {"checksum_mismatches", h.checksum_mismatches},
              {"repaired", repaired}};
}

std::string QuestionAttr(const std::string& question) { return "user.daxguard." + question; }

Result<Json> AskMount(const std::string& dev, const std::string& question) {
  std::error_code ec;
  std::string source = std::filesystem::absolute(dev, ec).string();
  std::string mnt = ec ? "" : MountPointOf(source);
  if (mnt.empty()) return Status::Error(ENOENT, dev + ": held, and not by a daxguard mount this process can see");
  std::string attr = QuestionAttr(question);
  std::string buf(1 << 16, '\0');
  ssize_t n = getxattr(mnt.c_str(), attr.c_str(), buf.data(), buf.size());
  if (n < 0 && (errno == ERANGE || errno == E2BIG)) return Status::Error(E2BIG, dev + ": the answer is over 64 KiB; ask about less");
  if (n < 0) return Status::FromErrno(errno, dev + ": asking its mount at " + mnt);
  buf.resize(static_cast<size_t>(n));
  Json j = Json::parse(buf, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Io(dev + ": its mount at " + mnt + " gave no JSON");
  return j;
}

}  // namespace daxguard::tools
