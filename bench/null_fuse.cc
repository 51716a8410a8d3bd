// The FUSE floor: a low-level FUSE filesystem that does nothing. One file,
// "/f", of SIZE bytes: reads return zeroes, writes are taken and dropped.
// mount_bench.sh runs the same fio jobs on it as on daxfs, so the cost of
// the FUSE round trip itself is measured in the same run.
// Usage: null_fuse MOUNTPOINT SIZE (foreground; fusermount3 -u ends it)
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

off_t g_size = 0;
constexpr fuse_ino_t kFile = 2;

struct stat Attr(fuse_ino_t ino) {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = ino == FUSE_ROOT_ID ? S_IFDIR | 0755 : S_IFREG | 0644;
  st.st_nlink = ino == FUSE_ROOT_ID ? 2 : 1;
  st.st_size = ino == FUSE_ROOT_ID ? 0 : g_size;
  st.st_blksize = 4096;
  return st;
}

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (parent != FUSE_ROOT_ID || std::strcmp(name, "f") != 0) return (void)fuse_reply_err(req, ENOENT);
  fuse_entry_param e{};
  e.ino = kFile;
  e.attr = Attr(kFile);
  e.attr_timeout = e.entry_timeout = 1.0;
  fuse_reply_entry(req, &e);
}

void Getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  struct stat st = Attr(ino);
  fuse_reply_attr(req, &st, 1.0);
}

void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat*, int, fuse_file_info* fi) { Getattr(req, ino, fi); }

void Open(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) { fuse_reply_open(req, fi); }

void Read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info*) {
  static const std::vector<char> zeroes(16 << 20);
  size_t n = off >= g_size ? 0 : std::min<size_t>({size, static_cast<size_t>(g_size - off), zeroes.size()});
  fuse_reply_buf(req, zeroes.data(), n);
}

void Write(fuse_req_t req, fuse_ino_t, const char*, size_t size, off_t, fuse_file_info*) {
  fuse_reply_write(req, size);
}

void Ok(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
void Fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  g_size = std::atoll(argv[2]);
  fuse_lowlevel_ops ops{};
  ops.lookup = Lookup;
  ops.getattr = Getattr;
  ops.setattr = Setattr;
  ops.open = Open;
  ops.read = Read;
  ops.write = Write;
  ops.flush = Ok;
  ops.release = Ok;
  ops.fsync = Fsync;
  std::string prog = "null_fuse";
  std::vector<char*> args = {prog.data()};
  fuse_args fa = FUSE_ARGS_INIT(1, args.data());
  fuse_session* se = fuse_session_new(&fa, &ops, sizeof ops, nullptr);
  if (!se || fuse_session_mount(se, argv[1]) != 0) return 1;
  fuse_set_signal_handlers(se);
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  fuse_remove_signal_handlers(se);
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  return rc == 0 ? 0 : 1;
}
