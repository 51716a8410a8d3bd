#include "tools/fs_copy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace daxguard::tools {
namespace {

constexpr size_t kChunk = 1 << 20;

const char* NotRegular(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory, not a regular file";
  if (S_ISLNK(mode)) return "is a symbolic link, not a regular file";
  if (S_ISFIFO(mode)) return "is a FIFO, not a regular file";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "is a device node, not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  return "is not a regular file";
}

// Reads up to `len` bytes; 0 at end of file.
Result<size_t> ReadSome(int fd, char* buf, size_t len) {
  for (;;) {
    ssize_t n = read(fd, buf, len);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return Status::FromErrno(errno, "read");
  }
}

Status WriteAll(int fd, const char* buf, size_t len) {
  while (len) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::FromErrno(n < 0 ? errno : ENOSPC, "write");
    buf += n;
    len -= n;
  }
  return Status::Ok();
}

// The mode for a copy to `host`: that of the regular file it replaces, else
// the source's minus the umask. Anything else there is refused.
Result<mode_t> DestinationMode(const std::string& host, uint32_t source_mode) {
  struct stat st;
  if (lstat(host.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) return Status::Invalid(host + " " + NotRegular(st.st_mode));
    return st.st_mode & 07777;
  }
  if (errno != ENOENT) return Status::FromErrno(errno, host);
  mode_t mask = umask(0);
  umask(mask);
  return source_mode & 0777 & ~mask;
}

// A new file beside `host`, removed unless it becomes `host`.
class TempFile {
 public:
  explicit TempFile(const std::string& host) : host_(host) {
    size_t slash = host.rfind('/');
    path_ = (slash == std::string::npos ? "" : host.substr(0, slash + 1)) + ".daxguard-get.XXXXXX";
    fd_ = mkstemp(path_.data());
    created_ = fd_ >= 0;
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) close(fd_);
    if (created_) unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  // Its data on the disk, closed, and renamed to `host`.
  Status Keep() {
    if (fsync(fd_) != 0) return Status::FromErrno(errno, host_);
    int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0) return Status::FromErrno(errno, host_);
    if (rename(path_.c_str(), host_.c_str()) != 0) return Status::FromErrno(errno, host_);
    created_ = false;
    return Status::Ok();
  }

 private:
  std::string host_, path_;
  int fd_;
  bool created_;
};

}  // namespace

Result<HostSource> HostSource::Open(const std::string& path) {
  // O_NONBLOCK: a FIFO is refused below instead of waiting for a writer.
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, path);
  HostSource src(path, fd);
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno(errno, path);
  if (!S_ISREG(st.st_mode)) return Status::Invalid(path + " " + NotRegular(st.st_mode));
  return src;
}

HostSource::~HostSource() {
  if (fd_ >= 0) close(fd_);
}

Status Put(HostSource& src, fs::Filesystem& f, const std::string& path) {
  auto file = f.CreateUnnamed(path);
  if (!file.ok()) return file.status();
  std::vector<char> buf(kChunk);
  for (uint64_t off = 0;;) {
    auto n = ReadSome(src.fd_, buf.data(), buf.size());
    if (!n.ok()) return Status::Error(n.status().err(), src.path_ + ": " + n.status().message());
    if (*n == 0) break;
    auto w = (*file)->Write(off, buf.data(), *n);
    if (!w.ok()) return w.status();
    if (*w != *n) return Status::Io(path + ": short write");
    off += *w;
  }
  DG_RETURN_IF_ERROR((*file)->Fsync());
  return f.Publish(**file, path);
}

Status CheckGetDestination(const std::string& host) { return DestinationMode(host, 0).status(); }

Status Get(fs::Filesystem& f, const std::string& path, const std::string& host) {
  auto file = f.Open(path);
  if (!file.ok()) return file.status();
  auto st = (*file)->Stat();
  if (!st.ok()) return st.status();
  auto mode = DestinationMode(host, st->attr.mode);
  if (!mode.ok()) return mode.status();
  TempFile tmp(host);
  if (tmp.fd() < 0) return Status::FromErrno(errno, host);
  std::vector<char> buf(kChunk);
  for (uint64_t off = 0; off < st->attr.size;) {
    auto r = (*file)->Read(off, buf.data(), buf.size());
    if (!r.ok() || *r == 0)
      return Status::Io(path + ": media error at offset " + std::to_string(off) + "; nothing written");
    if (Status w = WriteAll(tmp.fd(), buf.data(), *r); !w.ok())
      return Status::Error(w.err(), host + ": " + w.message() + "; nothing written");
    off += *r;
  }
  if (fchmod(tmp.fd(), *mode) != 0) return Status::FromErrno(errno, host);
  return tmp.Keep();
}

}  // namespace daxguard::tools
