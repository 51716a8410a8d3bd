// mount and umount: daxfs through FUSE, in the foreground (-f) or as a
// daemon whose pid file says where it is. The daemon is the device's
// holder for as long as it runs, like any daxfs mount.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "dm/open.h"
#include "fs/filesystem.h"
#include "tools/cli_util.h"
#include "tools/fuse_fs.h"

namespace daxguard::tools {
namespace {

struct MountArgs {
  std::string dev, mountpoint, options, pid_file;
  bool foreground = false;
};

// Where a mount's pid file goes unless the user names one: one per mount
// point, under /run/daxguard (root) or the user's runtime directory.
std::string DefaultPidFile(const std::string& mountpoint) {
  std::string dir = getuid() == 0 ? "/run/daxguard" : "";
  if (dir.empty()) {
    const char* xdg = getenv("XDG_RUNTIME_DIR");
    dir = std::string(xdg && *xdg ? xdg : "/tmp") + "/daxguard";
  }
  std::string name = mountpoint;
  for (char& c : name)
    if (c == '/') c = '_';
  return dir + "/mount" + name + ".pid";
}

Result<FuseOptions> ParseOptions(const std::string& text) {
  FuseOptions o;
  std::stringstream in(text);
  for (std::string opt; std::getline(in, opt, ',');) {
    if (opt.empty() || opt == "rw") continue;
    if (opt == "ro") {
      o.read_only = true;
    } else if (opt == "debug") {
      o.debug = true;
    } else {
      return Status::Invalid("unknown mount option '" + opt + "' (ro, rw, debug)");
    }
  }
  return o;
}

// Everything that can be checked before the daemon starts, so that a
// mistake is reported by the command the user ran.
Status CheckMountPoint(const std::string& mountpoint) {
  struct stat st;
  if (stat(mountpoint.c_str(), &st) != 0) return Status::FromErrno(errno, mountpoint);
  if (!S_ISDIR(st.st_mode)) return Status::Error(ENOTDIR, mountpoint + ": mount point is not a directory");
  return Status::Ok();
}

// Mounts and serves until unmounted; `ready` is told once the mount is in
// place (or an error, if it never will be).
Status MountAndServe(const MountArgs& a, const FuseOptions& o, const std::function<void(const Status&)>& ready) {
  auto d = dm::OpenDaxDevice(a.dev, o.read_only ? kReadOnly : kReadWrite);
  if (!d.ok()) return d.status();
  DG_RETURN_IF_ERROR(CheckNotDevdax(**d, a.dev, "it holds no filesystem"));
  auto f = fs::Filesystem::Mount(**d);
  if (!f.ok()) return Named(a.dev, f.status());
  bool told = false;
  Status s = ServeFuse(**f, a.mountpoint, o, [&] {
    if (!a.pid_file.empty()) {
      std::filesystem::create_directories(std::filesystem::path(a.pid_file).parent_path());
      std::ofstream(a.pid_file) << getpid() << "\n";
    }
    told = true;
    ready(Status::Ok());
  });
  f->reset();  // the device is let go before the pid file goes
  if (!a.pid_file.empty()) unlink(a.pid_file.c_str());
  if (!told) ready(s);
  return s;
}

// The daemon: a child reports through a pipe whether the mount is in place
// (a one-line error otherwise), and the parent exits with that. The fork
// comes first, while this process has one thread.
int Daemonize(const MountArgs& a, const FuseOptions& o) {
  int fds[2];
  if (pipe(fds) != 0) return Fail("mount", Status::FromErrno(errno, "pipe"));
  pid_t pid = fork();
  if (pid < 0) return Fail("mount", Status::FromErrno(errno, "fork"));
  if (pid > 0) {
    close(fds[1]);
    std::string msg;
    char buf[512];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<size_t>(n));
    close(fds[0]);
    if (msg == "ok") return 0;
    if (msg.empty()) msg = "the mount daemon died before it was ready";
    waitpid(pid, nullptr, WNOHANG);
    return Fail("mount", msg);
  }
  close(fds[0]);
  setsid();
  Status s = MountAndServe(a, o, [&](const Status& st) {
    std::string msg = st.ok() ? "ok" : st.message();
    (void)!write(fds[1], msg.data(), msg.size());
    close(fds[1]);
    if (!st.ok()) return;
    // Detached: no terminal, no hold on the caller's directory.
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3 && null >= 0; ++fd) dup2(null, fd);
    if (null > 2) close(null);
    (void)!chdir("/");
  });
  _exit(s.ok() ? 0 : 1);
}

int RunMount(MountArgs a) {
  auto o = ParseOptions(a.options);
  if (!o.ok()) return Fail("mount", o.status());
  Status s = CheckMountPoint(a.mountpoint);
  if (!s.ok()) return Fail("mount", s);
  a.mountpoint = std::filesystem::canonical(a.mountpoint).string();
  if (a.pid_file.empty() && !a.foreground) a.pid_file = DefaultPidFile(a.mountpoint);
  o->source = std::filesystem::absolute(a.dev).string();
  if (!a.foreground) return Daemonize(a, *o);
  s = MountAndServe(a, *o, [](const Status&) {});
  return s.ok() ? 0 : Fail("mount", s);
}

// Whether `pid` runs (a zombie does not).
bool Running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

int RunUmount(const std::string& mountpoint_arg, const std::string& pid_file_arg) {
  std::error_code ec;
  std::string mountpoint = std::filesystem::canonical(mountpoint_arg, ec).string();
  if (ec) return Fail("umount", Status::FromErrno(ec.value(), mountpoint_arg));
  std::string pid_file = pid_file_arg.empty() ? DefaultPidFile(mountpoint) : pid_file_arg;
  pid_t pid = 0;
  std::ifstream(pid_file) >> pid;
  if (umount2(mountpoint.c_str(), 0) != 0) {
    if (errno != EPERM) return Fail("umount", Status::FromErrno(errno, mountpoint));
    std::string cmd = "fusermount3 -u '" + mountpoint + "'";
    if (system(cmd.c_str()) != 0) return Fail("umount", mountpoint + ": fusermount3 -u failed");
  }
  // Returns once the daemon has let the device go, so that the next
  // command on it finds it free.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (pid > 0 && Running(pid) && access(pid_file.c_str(), F_OK) == 0) {
    if (std::chrono::steady_clock::now() > deadline)
      return Fail("umount", mountpoint + ": unmounted, but daemon " + std::to_string(pid) + " has not exited");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

}  // namespace

void AddMountCommands(CLI::App& app, int* rc) {
  auto ma = std::make_shared<MountArgs>();
  auto* m = app.add_subcommand("mount", "mount a daxfs filesystem through FUSE: mount DEV MOUNTPOINT [-f] [-o ro]");
  m->add_option("DEV", ma->dev, "device or stack file")->required();
  m->add_option("MOUNTPOINT", ma->mountpoint, "directory to mount on")->required();
  m->add_flag("-f,--foreground", ma->foreground, "serve in the foreground (default: a daemon)");
  m->add_option("-o", ma->options, "options, comma-separated: ro, rw, debug");
  m->add_option("--pid-file", ma->pid_file, "where the daemon writes its pid (default: /run/daxguard/...)");
  m->callback([ma, rc] { *rc = RunMount(*ma); });

  auto ua = std::make_shared<std::pair<std::string, std::string>>();
  auto* u = app.add_subcommand("umount", "unmount a daxfs FUSE mount and wait for its daemon to let the device go");
  u->add_option("MOUNTPOINT", ua->first, "where it is mounted")->required();
  u->add_option("--pid-file", ua->second, "the pid file given to mount, if any");
  u->callback([ua, rc] { *rc = RunUmount(ua->first, ua->second); });
}

}  // namespace daxguard::tools
