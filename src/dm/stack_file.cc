#include "dm/stack_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <fstream>

namespace daxguard::dm {
namespace {

constexpr std::string_view kMagicWord = "daxguard-stack ";

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// Temporary files for `path` are named ".BASE.tmp-PID-N" beside it.
std::string TempPrefix(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return "." + base + ".tmp-";
}

// Removes the temporary files that writers of `path` which have since died
// (killed mid-write) left behind; a live writer's stay.
void RemoveDeadWritersTemps(const std::string& path) {
  std::string dir = DirOf(path), prefix = TempPrefix(path);
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (const dirent* e = readdir(d)) {
    std::string_view name(e->d_name);
    if (!name.starts_with(prefix)) continue;
    unsigned long pid = std::strtoul(name.substr(prefix.size()).data(), nullptr, 10);
    if (pid == 0 || pid > INT32_MAX || kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

// A new, empty file beside `path` (same directory, so it can take that
// name), named uniquely after it; returns its fd and name, or -1 and errno.
int CreateTemp(const std::string& path, std::string* tmp) {
  static std::atomic<unsigned> counter{0};
  size_t slash = path.rfind('/');
  std::string prefix = path.substr(0, slash + 1) + TempPrefix(path) + std::to_string(getpid()) + "-";
  for (;;) {
    *tmp = prefix + std::to_string(counter.fetch_add(1));
    int fd = open(tmp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EEXIST) return fd;  // EEXIST: left by a killed writer of our pid
  }
}

// Whether all of `data` was written; if not, errno says why.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Makes the new name in `path`'s directory durable.
Status SyncDir(const std::string& path) {
  std::string dir = DirOf(path);
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, dir);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  return rc == 0 ? Status::Ok() : Status::FromErrno(err, "syncing " + dir);
}

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
  RemoveDeadWritersTemps(path);
  std::string tmp;
  int fd = CreateTemp(path, &tmp);
  if (fd < 0) return Status::FromErrno(errno, path);
  Status s;
  if (!WriteAll(fd, text) || fsync(fd) != 0) s = Status::FromErrno(errno, "writing " + path);
  if (close(fd) != 0 && s.ok()) s = Status::FromErrno(errno, "writing " + path);
  // link(2), unlike rename(2), never replaces a file that appeared meanwhile.
  if (s.ok() && link(tmp.c_str(), path.c_str()) != 0)
    s = errno == EEXIST ? Status::Error(EEXIST, path + " already exists") : Status::FromErrno(errno, path);
  unlink(tmp.c_str());
  if (!s.ok()) return s;
  s = SyncDir(path);
  if (!s.ok()) unlink(path.c_str());  // the name might not last: none is better than one that vanishes later
  return s;
}

Status RenameStackFile(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) != 0) return Status::FromErrno(errno, "renaming " + from + " to " + to);
  return SyncDir(to);
}

}  // namespace daxguard::dm
