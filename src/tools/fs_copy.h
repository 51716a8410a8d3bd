// fs put and fs get: copies between host files and daxfs, all or nothing in
// both directions. The host side is checked before the filesystem is
// mounted, so a refused copy touches nothing.
#pragma once

#include <string>

#include "common/status.h"
#include "fs/filesystem.h"

namespace daxguard::tools {

// A host file open for reading: only a regular file is accepted.
class HostSource {
 public:
  static Result<HostSource> Open(const std::string& path);
  HostSource(HostSource&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_) { o.fd_ = -1; }
  HostSource& operator=(HostSource&&) = delete;
  ~HostSource();

 private:
  friend Status Put(HostSource& src, fs::Filesystem& f, const std::string& path);
  HostSource(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

// Copies `src` into a new unnamed file and only then names it `path`: a
// failure leaves the file that was there, or none.
Status Put(HostSource& src, fs::Filesystem& f, const std::string& path);

// Refuses a host destination that exists and is not a regular file.
Status CheckGetDestination(const std::string& host);

// Copies `path` to a temporary file beside `host`, every write checked, and
// renames it into place: a failure leaves `host` as it was. The copy keeps
// the mode of the file it replaces; a new one gets the source's mode minus
// the umask.
Status Get(fs::Filesystem& f, const std::string& path, const std::string& host);

}  // namespace daxguard::tools
