#include "dm/stack_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>

namespace daxguard::dm {
namespace {

constexpr std::string_view kMagicWord = "daxguard-stack ";

}  // namespace

bool LooksLikeStackFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(kMagicWord.size(), '\0');
  return in.read(head.data(), static_cast<std::streamsize>(head.size())) && head == kMagicWord;
}

Result<std::vector<TableLine>> ReadStackFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::FromErrno(errno, path);
  std::string line;
  if (!std::getline(in, line) || line != kStackMagic)
    return Status::Corrupt(path + ": not a stack file of this version (its first line must be '" +
                           std::string(kStackMagic) + "')");
  std::vector<TableLine> table;
  for (int n = 2; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t") == std::string::npos || line[line.find_first_not_of(" \t")] == '#') continue;
    auto l = ParseTableLine(line);
    if (!l.ok()) return Status::Corrupt(path + " line " + std::to_string(n) + ": " + l.status().message());
    table.push_back(std::move(l).value());
  }
  Status s = CheckLayout(table);
  if (!s.ok()) return Status::Corrupt(path + ": " + s.message());
  return table;
}

Status WriteStackFile(const std::string& path, const std::vector<TableLine>& table) {
  std::string text = std::string(kStackMagic) + "\n";
  for (const TableLine& l : table) text += FormatTableLine(l) + "\n";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, path);
  ssize_t n = write(fd, text.data(), text.size());
  int err = n < 0 ? errno : EIO;
  if (close(fd) != 0 || n != static_cast<ssize_t>(text.size())) {
    unlink(path.c_str());  // no half-written stack left behind
    return Status::FromErrno(err, "writing " + path);
  }
  return Status::Ok();
}

}  // namespace daxguard::dm
