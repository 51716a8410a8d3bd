#include "tools/fuse_fs.h"

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "tools/fs_report.h"

namespace daxguard::tools {
namespace {

using fs::FileStat;
using fs::PathRef;

// Drops the kernel's cached pages of ranges poison took, on a thread of its
// own: a request handler must not do it, since the kernel may hold the very
// page locked while it waits for that handler's reply.
class Invalidator {
 public:
  void Start(fuse_session* se) {
    se_ = se;
    thread_ = std::thread([this] { Run(); });
    pthread_setname_np(thread_.native_handle(), "fuse-inval");
  }
  void Stop() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  // After Stop, a late notice (a callback queued before the filesystem let
  // go of it) is dropped: the session is gone.
  void Queue(uint64_t ino, uint64_t off, uint64_t len) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (stop_) return;
      todo_.push_back({ino, off, len});
    }
    cv_.notify_one();
  }

 private:
  struct Range {
    uint64_t ino, off, len;
  };
  void Run() {
    std::unique_lock<std::mutex> g(mu_);
    for (;;) {
      cv_.wait(g, [this] { return stop_ || !todo_.empty(); });
      if (todo_.empty()) return;
      Range r = todo_.front();
      todo_.pop_front();
      g.unlock();
      // Whole pages: the kernel caches pages, and a partly poisoned one is bad.
      uint64_t off = r.off / 4096 * 4096, len = (r.off + r.len + 4095) / 4096 * 4096 - off;
      fuse_lowlevel_notify_inval_inode(se_, r.ino, static_cast<off_t>(off), static_cast<off_t>(len));
      g.lock();
    }
  }
  fuse_session* se_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Range> todo_;
  bool stop_ = false;
  std::thread thread_;
};

// An opened directory: its entries as they were at opendir (or at a
// rewind), so that readdir's offsets stay stable while it changes.
struct DirHandle {
  std::vector<fs::DirEntry> entries;
};

class FuseFs {
 public:
  FuseFs(fs::Filesystem& fs, const FuseOptions& o) : fs_(fs), opt_(o) {}
  static const fuse_lowlevel_ops& Ops();
  Invalidator& invalidator() { return *inval_; }
  std::shared_ptr<Invalidator> shared_invalidator() { return inval_; }

 private:
  static FuseFs& Of(fuse_req_t req) { return *static_cast<FuseFs*>(fuse_req_userdata(req)); }
  static fs::File& FileOf(fuse_file_info* fi) { return *reinterpret_cast<fs::File*>(fi->fh); }
  static fs::Caller CallerOf(fuse_req_t req) {
    const fuse_ctx* c = fuse_req_ctx(req);
    return {c->uid, c->gid};
  }
  static void ReplyErr(fuse_req_t req, const Status& s) { fuse_reply_err(req, s.err() ? s.err() : EIO); }
  // Success or the error: a failure never reads as success.
  static void ReplyStatus(fuse_req_t req, const Status& s) { s.ok() ? (void)fuse_reply_err(req, 0) : ReplyErr(req, s); }

  struct stat ToStat(const FileStat& f) const;
  // What lookup, create and readdirplus tell the kernel of an inode.
  fuse_entry_param EntryOf(const FileStat& f) const;
  void ReplyEntry(fuse_req_t req, const Result<FileStat>& st, bool negative_ok);
  void ReplyAttr(fuse_req_t req, const Result<FileStat>& st);
  // After mkdir, mknod, symlink: the error, or the new entry `at`.
  void ReplyMade(fuse_req_t req, const Status& s, const PathRef& at);
  // An inode's attributes, through its handle when there is one: an open
  // file may have lost its last name.
  Result<FileStat> StatOf(fuse_ino_t ino, fuse_file_info* fi);
  static void Init(void* userdata, fuse_conn_info* conn);

  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  static void Getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
  static void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
  static void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
  static void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
  static void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name);
  static void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
                     unsigned int flags);
  static void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname);
  static void Symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name);
  static void Readlink(fuse_req_t req, fuse_ino_t ino);
  static void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi);
  static void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  static void Opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  static void Readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void ListDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus);
  static void Releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  static void Statfs(fuse_req_t req, fuse_ino_t ino);
  static void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info* fi);
  static void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi);
  static void Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags);
  static void Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  static void Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
  static void Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name);
  // getxattr/listxattr's answer: the size alone when asked for 0 bytes.
  static void ReplyXattr(fuse_req_t req, const std::string& bytes, size_t size);
  Result<std::string> Answer(const std::string& name);
  static void CopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in,
                            fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len, int flags);

  fs::Filesystem& fs_;
  FuseOptions opt_;
  std::shared_ptr<Invalidator> inval_ = std::make_shared<Invalidator>();
};

timespec Ts(int64_t ns) { return {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)}; }

struct stat FuseFs::ToStat(const FileStat& f) const {
  struct stat st {};
  st.st_ino = f.ino;
  st.st_mode = f.attr.mode;
  st.st_nlink = f.attr.nlink;
  st.st_uid = f.attr.uid;
  st.st_gid = f.attr.gid;
  st.st_size = static_cast<off_t>(f.attr.size);
  st.st_blksize = 4096;
  st.st_blocks = static_cast<blkcnt_t>(f.blocks * 8);  // 512-byte units
  st.st_atim = Ts(f.attr.atime_ns);
  st.st_mtim = Ts(f.attr.mtime_ns);
  st.st_ctim = Ts(f.attr.ctime_ns);
  return st;
}

fuse_entry_param FuseFs::EntryOf(const FileStat& f) const {
  fuse_entry_param e{};
  e.ino = f.ino;
  e.generation = 1;
  e.attr = ToStat(f);
  e.attr_timeout = e.entry_timeout = opt_.attr_timeout;
  return e;
}

void FuseFs::ReplyEntry(fuse_req_t req, const Result<FileStat>& st, bool negative_ok) {
  if (!st.ok()) {
    fuse_entry_param e{};
    e.attr_timeout = e.entry_timeout = opt_.attr_timeout;
    // A name that is not there may be cached as such (ino 0) like any other.
    if (negative_ok && st.status().err() == ENOENT) {
      fuse_reply_entry(req, &e);
      return;
    }
    ReplyErr(req, st.status());
    return;
  }
  fuse_entry_param e = EntryOf(st.value());
  fuse_reply_entry(req, &e);
}

void FuseFs::ReplyAttr(fuse_req_t req, const Result<FileStat>& st) {
  if (!st.ok()) return ReplyErr(req, st.status());
  struct stat s = ToStat(st.value());
  fuse_reply_attr(req, &s, opt_.attr_timeout);
}

void FuseFs::ReplyMade(fuse_req_t req, const Status& s, const PathRef& at) {
  if (!s.ok()) return ReplyErr(req, s);
  ReplyEntry(req, fs_.Stat(at), false);
}

Result<FileStat> FuseFs::StatOf(fuse_ino_t ino, fuse_file_info* fi) {
  return fi ? FileOf(fi).Stat() : fs_.Stat(PathRef(ino, ""));
}

// Requests up to 1 MiB each way: a large read or write costs one round trip.
void FuseFs::Init(void*, fuse_conn_info* conn) {
  conn->max_write = 1 << 20;
  // Every change goes through this mount: the kernel need not drop its
  // cache when it sees a new mtime (poison drops the pages it takes).
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  conn->max_readahead = std::min<unsigned>(conn->max_readahead, 1 << 20);
}

void FuseFs::Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  FuseFs& self = Of(req);
  self.ReplyEntry(req, self.fs_.Stat(PathRef(parent, name)), true);
}

void FuseFs::Getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  FuseFs& self = Of(req);
  self.ReplyAttr(req, self.StatOf(ino, fi));
}

void FuseFs::Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  FuseFs& self = Of(req);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    std::unique_ptr<fs::File> own;
    if (!fi) {
      auto f = self.fs_.Open(PathRef(ino, ""));
      if (!f.ok()) return ReplyErr(req, f.status());
      own = std::move(f).value();
    }
    Status s = (fi ? FileOf(fi) : *own).Truncate(static_cast<uint64_t>(attr->st_size));
    if (!s.ok()) return ReplyErr(req, s);
  }
  fs::Attr a;
  int mask = 0;
  int64_t now = fs::NowNs();
  auto ns = [](const timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; };
  if (to_set & FUSE_SET_ATTR_MODE) mask |= fs::kAttrMode, a.mode = attr->st_mode;
  if (to_set & FUSE_SET_ATTR_UID) mask |= fs::kAttrUid, a.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) mask |= fs::kAttrGid, a.gid = attr->st_gid;
  if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
    mask |= fs::kAttrAtime, a.atime_ns = to_set & FUSE_SET_ATTR_ATIME_NOW ? now : ns(attr->st_atim);
  if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
    mask |= fs::kAttrMtime, a.mtime_ns = to_set & FUSE_SET_ATTR_MTIME_NOW ? now : ns(attr->st_mtim);
  if (mask) return self.ReplyAttr(req, self.fs_.SetAttr(ino, a, mask));
  self.ReplyAttr(req, self.StatOf(ino, fi));
}

void FuseFs::Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  FuseFs& self = Of(req);
  self.ReplyMade(req, self.fs_.Mkdir(PathRef(parent, name), mode, CallerOf(req)), PathRef(parent, name));
}

void FuseFs::Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  FuseFs& self = Of(req);
  self.ReplyMade(req, self.fs_.Mknod(PathRef(parent, name), mode, CallerOf(req)), PathRef(parent, name));
}

void FuseFs::Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyStatus(req, Of(req).fs_.Unlink(PathRef(parent, name)));
}

void FuseFs::Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyStatus(req, Of(req).fs_.Rmdir(PathRef(parent, name)));
}

void FuseFs::Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
                    unsigned int flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return (void)fuse_reply_err(req, EINVAL);  // RENAME_WHITEOUT
  int f = (flags & RENAME_NOREPLACE ? fs::kRenameNoReplace : 0) | (flags & RENAME_EXCHANGE ? fs::kRenameExchange : 0);
  ReplyStatus(req, Of(req).fs_.Rename(PathRef(parent, name), PathRef(newparent, newname), f));
}

void FuseFs::Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  FuseFs& self = Of(req);
  self.ReplyMade(req, self.fs_.Link(PathRef(ino, ""), PathRef(newparent, newname)), PathRef(ino, ""));
}

void FuseFs::Symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  FuseFs& self = Of(req);
  self.ReplyMade(req, self.fs_.Symlink(target, PathRef(parent, name), CallerOf(req)), PathRef(parent, name));
}

void FuseFs::Readlink(fuse_req_t req, fuse_ino_t ino) {
  auto t = Of(req).fs_.ReadLink(PathRef(ino, ""));
  if (!t.ok()) return ReplyErr(req, t.status());
  fuse_reply_readlink(req, t.value().c_str());
}

void FuseFs::Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  FuseFs& self = Of(req);
  if (self.opt_.read_only && (fi->flags & O_ACCMODE) != O_RDONLY) return (void)fuse_reply_err(req, EROFS);
  auto f = self.fs_.Open(PathRef(ino, ""), fi->flags & O_TRUNC ? fs::kTruncate : 0);
  if (!f.ok()) return ReplyErr(req, f.status());
  fi->fh = reinterpret_cast<uint64_t>(f->release());
  fi->keep_cache = 1;  // every change goes through this mount, and poison drops its pages
  if (fuse_reply_open(req, fi) != 0) delete &FileOf(fi);  // the open was interrupted
}

void FuseFs::Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  FuseFs& self = Of(req);
  int flags = fs::kCreate | (fi->flags & O_EXCL ? fs::kExclusive : 0) | (fi->flags & O_TRUNC ? fs::kTruncate : 0);
  auto f = self.fs_.Open(PathRef(parent, name), flags, mode, CallerOf(req));
  if (!f.ok()) return ReplyErr(req, f.status());
  auto st = (*f)->Stat();
  if (!st.ok()) return ReplyErr(req, st.status());
  fuse_entry_param e = self.EntryOf(st.value());
  fi->fh = reinterpret_cast<uint64_t>(f->release());
  fi->keep_cache = 1;
  if (fuse_reply_create(req, &e, fi) != 0) delete &FileOf(fi);
}

void FuseFs::Read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  thread_local std::vector<char> buf;
  if (buf.size() < size) buf.resize(size);
  fs::File& f = FileOf(fi);
  auto r = f.Read(static_cast<uint64_t>(off), buf.data(), size);
  if (!r.ok()) return ReplyErr(req, r.status());
  // The kernel takes a short read for the end of the file (and shrinks its
  // idea of the size): one that stopped at damage fails whole instead, and
  // the kernel's page-by-page retry then stops at the damaged page.
  if (*r < size) {
    auto st = f.Stat();
    if (!st.ok() || static_cast<uint64_t>(off) + *r < st.value().attr.size) return (void)fuse_reply_err(req, EIO);
  }
  fuse_reply_buf(req, buf.data(), *r);
}

void FuseFs::Write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  auto w = FileOf(fi).Write(static_cast<uint64_t>(off), buf, size);
  if (!w.ok()) return ReplyErr(req, w.status());
  fuse_reply_write(req, *w);
}

// daxfs's writes are in place on the device: nothing is buffered to flush.
void FuseFs::Flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void FuseFs::Release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete &FileOf(fi);
  fuse_reply_err(req, 0);
}

void FuseFs::Fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  ReplyStatus(req, FileOf(fi).Fsync());
}

void FuseFs::Opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto ls = Of(req).fs_.ReadDir(PathRef(ino, ""));
  if (!ls.ok()) return ReplyErr(req, ls.status());
  auto* d = new DirHandle{std::move(ls).value()};
  fi->fh = reinterpret_cast<uint64_t>(d);
  if (fuse_reply_open(req, fi) != 0) delete d;
}

void FuseFs::Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Of(req).ListDir(req, ino, size, off, fi, false);
}

// ls -l and find get each entry's attributes with the listing: no lookup each.
void FuseFs::Readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Of(req).ListDir(req, ino, size, off, fi, true);
}

void FuseFs::ListDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  auto* d = reinterpret_cast<DirHandle*>(fi->fh);
  if (off == 0) {  // opendir's list, or rewinddir: read afresh
    auto ls = fs_.ReadDir(PathRef(ino, ""));
    if (!ls.ok()) return ReplyErr(req, ls.status());
    d->entries = std::move(ls).value();
  }
  // Offsets: 1 and 2 are "." and "..", 3 on the entries; each names the next.
  std::vector<char> buf(size);
  size_t used = 0;
  for (uint64_t i = static_cast<uint64_t>(off);; ++i) {
    fuse_entry_param e{};  // ino 0: "." and "..", which the kernel looks up itself
    std::string name;
    if (i == 0 || i == 1) {
      name = i == 0 ? "." : "..";
      e.attr.st_mode = S_IFDIR;
      e.attr.st_ino = ino;  // a zero would hide the entry from readdir(3)
      if (i == 1) e.attr.st_ino = fs_.Stat(PathRef(ino, "..")).value_or(FileStat{ino, {}, 0}).ino;
    } else if (i - 2 < d->entries.size()) {
      const fs::DirEntry& de = d->entries[i - 2];
      if (de.damaged) continue;  // fsck --repair removes it; listing it would name nothing
      name = de.name;
      e.attr.st_ino = de.ino;
      e.attr.st_mode = de.mode;
      if (plus) {
        auto st = fs_.Stat(PathRef(de.ino, ""));
        if (!st.ok()) continue;  // gone since the listing was taken
        e = EntryOf(st.value());
      }
    } else {
      break;
    }
    off_t next = static_cast<off_t>(i + 1);
    size_t n = plus ? fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e, next)
                    : fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &e.attr, next);
    if (n > size - used) break;
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void FuseFs::Releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

// Every namespace change is durable when it returns (one log commit).
void FuseFs::Fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

void FuseFs::Statfs(fuse_req_t req, fuse_ino_t) {
  fs::FsStats s = Of(req).fs_.StatFs();
  struct statvfs v {};
  v.f_bsize = v.f_frsize = 4096;
  v.f_blocks = s.blocks;
  v.f_bfree = v.f_bavail = s.free_blocks;
  v.f_files = s.files + s.free_blocks;  // an inode costs no block until it holds data
  v.f_ffree = v.f_favail = s.free_blocks;
  v.f_namemax = 255;
  fuse_reply_statfs(req, &v);
}

void FuseFs::Fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len, fuse_file_info* fi) {
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
    return (void)fuse_reply_err(req, EOPNOTSUPP);
  int m = (mode & FALLOC_FL_KEEP_SIZE ? fs::kFallocKeepSize : 0) |
          (mode & FALLOC_FL_PUNCH_HOLE ? fs::kFallocPunchHole : 0) |
          (mode & FALLOC_FL_ZERO_RANGE ? fs::kFallocZeroRange : 0);
  ReplyStatus(req, FileOf(fi).Fallocate(m, static_cast<uint64_t>(off), static_cast<uint64_t>(len)));
}

// SEEK_DATA and SEEK_HOLE from the file's extents: written extents are
// data, holes and unwritten (preallocated) extents read as zeroes and are holes.
void FuseFs::Lseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return (void)fuse_reply_err(req, EINVAL);
  fs::File& f = FileOf(fi);
  auto st = f.Stat();
  auto map = f.Fiemap();
  if (!st.ok() || !map.ok()) return ReplyErr(req, st.ok() ? map.status() : st.status());
  uint64_t size = st->attr.size, pos = static_cast<uint64_t>(off);
  if (off < 0 || pos >= size) return (void)fuse_reply_err(req, ENXIO);
  for (const fs::FiemapExtent& e : *map) {
    if (e.unwritten || e.logical + e.length <= pos) continue;
    if (whence == SEEK_DATA) return (void)fuse_reply_lseek(req, static_cast<off_t>(std::max(pos, e.logical)));
    if (e.logical > pos) break;  // pos lies in a hole
    pos = e.logical + e.length;  // extents are sorted: go on past this one
  }
  if (whence == SEEK_DATA) return (void)fuse_reply_err(req, ENXIO);
  fuse_reply_lseek(req, static_cast<off_t>(std::min(pos, size)));
}

// A block-aligned copy shares the blocks (reflink): what `cp --reflink=auto`
// reaches through FUSE. Anything else is copied.
void FuseFs::CopyFileRange(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in, fuse_ino_t,
                           off_t off_out, fuse_file_info* fi_out, size_t len, int flags) {
  if (flags) return (void)fuse_reply_err(req, EINVAL);
  fs::File &src = FileOf(fi_in), &dst = FileOf(fi_out);
  auto ss = src.Stat();
  auto ds = dst.Stat();
  if (!ss.ok() || !ds.ok()) return ReplyErr(req, ss.ok() ? ds.status() : ss.status());
  uint64_t si = static_cast<uint64_t>(off_in), di = static_cast<uint64_t>(off_out);
  if (si >= ss->attr.size) return (void)fuse_reply_write(req, 0);
  uint64_t n = std::min<uint64_t>(len, ss->attr.size - si);
  bool whole = n % 4096 == 0 || (si + n == ss->attr.size && di + n >= ds->attr.size);
  if (si % 4096 == 0 && di % 4096 == 0 && whole && (&src != &dst || si + n <= di || di + n <= si)) {
    Status s = dst.CloneFrom(src, si, di, n);
    if (s.ok()) return (void)fuse_reply_write(req, n);
  }
  std::vector<char> buf(std::min<uint64_t>(n, 1 << 20));
  uint64_t done = 0;
  while (done < n) {
    auto r = src.Read(si + done, buf.data(), std::min<uint64_t>(buf.size(), n - done));
    if (!r.ok() || *r == 0) break;
    auto w = dst.Write(di + done, buf.data(), *r);
    if (!w.ok()) return done ? (void)fuse_reply_write(req, done) : ReplyErr(req, w.status());
    done += *w;
    if (*w < *r) break;
  }
  if (done == 0 && n) return (void)fuse_reply_err(req, EIO);
  fuse_reply_write(req, done);
}

// The file's damage, as getfattr shows it: a JSON list of byte ranges.
constexpr char kDamageXattr[] = "user.daxguard.damage";

void FuseFs::ReplyXattr(fuse_req_t req, const std::string& bytes, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, bytes.size());
  if (size < bytes.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, bytes.data(), bytes.size());
}

void FuseFs::Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  if (std::string_view(name) == kDamageXattr) return (void)fuse_reply_err(req, EPERM);  // the filesystem's to say
  // No ACLs (system.posix_acl_*): stored as plain bytes they would stand in
  // for the mode bits (cp -a would set one and skip its chmod).
  if (std::string_view(name).starts_with("system.")) return (void)fuse_reply_err(req, EOPNOTSUPP);
  ReplyStatus(req, Of(req).fs_.SetXattr(ino, name, std::string(value, size), flags));
}

// The root answers `daxguard health` and `who` for a mounted device
// (tools/fs_report.h): attributes no listing shows.
Result<std::string> FuseFs::Answer(const std::string& name) {
  if (name == QuestionAttr("health")) return HealthJson(fs_.Health()).dump();
  unsigned long long off = 0, len = 0;
  char end = 0;
  if (std::sscanf(name.c_str(), (QuestionAttr("who") + ":%llu:%llu%c").c_str(), &off, &len, &end) != 2 || !len)
    return Status::Error(ENODATA, name + ": no such attribute");
  auto owners = fs_.Who(off, len);
  if (!owners.ok()) return owners.status();
  return WhoJson(owners.value()).dump();
}

void FuseFs::Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  FuseFs& self = Of(req);
  if (ino == FUSE_ROOT_ID && std::string_view(name).starts_with(QuestionAttr(""))) {
    auto a = self.Answer(name);
    if (!a.ok()) return ReplyErr(req, a.status());
    return ReplyXattr(req, a.value(), size);
  }
  if (std::string_view(name) == kDamageXattr) {
    auto d = self.fs_.DamageOf(ino);
    if (!d.ok()) return ReplyErr(req, d.status());
    if (d.value().empty()) return (void)fuse_reply_err(req, ENODATA);
    std::string json = "[";
    for (const auto& [off, len] : d.value())
      json += (json.size() > 1 ? "," : "") + std::string("{\"offset\":") + std::to_string(off) +
              ",\"length\":" + std::to_string(len) + "}";
    return ReplyXattr(req, json + "]", size);
  }
  auto v = self.fs_.GetXattr(ino, name);
  if (!v.ok()) return ReplyErr(req, v.status());
  ReplyXattr(req, v.value(), size);
}

void FuseFs::Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  FuseFs& self = Of(req);
  auto names = self.fs_.ListXattr(ino);
  auto damage = self.fs_.DamageOf(ino);
  if (!names.ok() || !damage.ok()) return ReplyErr(req, names.ok() ? damage.status() : names.status());
  std::string list;
  for (const std::string& n : names.value()) list += n + '\0';
  if (!damage.value().empty()) list += std::string(kDamageXattr) + '\0';
  ReplyXattr(req, list, size);
}

void FuseFs::Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  if (std::string_view(name) == kDamageXattr) return (void)fuse_reply_err(req, EPERM);
  ReplyStatus(req, Of(req).fs_.RemoveXattr(ino, name));
}

const fuse_lowlevel_ops& FuseFs::Ops() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = Init;
    o.lookup = Lookup;
    o.getattr = Getattr;
    o.setattr = Setattr;
    o.mkdir = Mkdir;
    o.mknod = Mknod;
    o.unlink = Unlink;
    o.rmdir = Rmdir;
    o.rename = Rename;
    o.link = Link;
    o.symlink = Symlink;
    o.readlink = Readlink;
    o.open = Open;
    o.create = Create;
    o.read = Read;
    o.write = Write;
    o.flush = Flush;
    o.release = Release;
    o.fsync = Fsync;
    o.opendir = Opendir;
    o.readdir = Readdir;
    o.readdirplus = Readdirplus;
    o.releasedir = Releasedir;
    o.fsyncdir = Fsyncdir;
    o.statfs = Statfs;
    o.fallocate = Fallocate;
    o.lseek = Lseek;
    o.copy_file_range = CopyFileRange;
    o.setxattr = Setxattr;
    o.getxattr = Getxattr;
    o.listxattr = Listxattr;
    o.removexattr = Removexattr;
    return o;
  }();
  return ops;
}

}  // namespace

Status ServeFuse(fs::Filesystem& fs, const std::string& mountpoint, const FuseOptions& o,
                 const std::function<void()>& ready) {
  FuseFs server(fs, o);
  std::string source;
  for (char c : o.source.empty() ? std::string("daxfs") : o.source) {
    if (c == ',' || c == '\\') source += '\\';  // libfuse's escape inside -o
    source += c;
  }
  std::vector<std::string> argv = {"daxguard", "-o", "default_permissions,subtype=daxfs,fsname=" + source};
  if (getuid() == 0) argv.back() += ",allow_other";
  if (o.read_only) argv.back() += ",ro";
  if (o.debug) argv.push_back("-d");
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  fuse_args fa = FUSE_ARGS_INIT(static_cast<int>(args.size()), args.data());
  fuse_session* se = fuse_session_new(&fa, &FuseFs::Ops(), sizeof(fuse_lowlevel_ops), &server);
  if (!se) return Status::Invalid("FUSE would not start a session");
  if (fuse_session_mount(se, mountpoint.c_str()) != 0) {
    fuse_session_destroy(se);
    return Status::Io(mountpoint + ": FUSE mount failed (is /dev/fuse there, and the mount point a directory?)");
  }
  fuse_set_signal_handlers(se);
  server.invalidator().Start(se);
  // Any file's damage, open or not: its cached pages outlive its opens.
  fs.OnAnyDamage([inval = server.shared_invalidator()](uint64_t ino, uint64_t off, uint64_t len) {
    inval->Queue(ino, off, len);
  });
  ready();
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, 16);
  int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  fs.OnAnyDamage(nullptr);
  server.invalidator().Stop();
  fuse_remove_signal_handlers(se);
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  return rc < 0 ? Status::Error(-rc, "FUSE session ended with an error") : Status::Ok();
}

}  // namespace daxguard::tools
