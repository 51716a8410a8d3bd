// start-scrub and wait-scrub. As with ndctl, a scrub runs in the background
// (here: a detached process) and anyone may wait for it; the device file
// carries its state, so `list` in any process shows it. A stack is scrubbed
// by scrubbing every device below it.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "dm/open.h"
#include "tools/cli_util.h"

namespace daxguard::tools {
namespace {

struct ScrubArgs {
  std::string dev;
  bool wait = false;
};

// A stack is active while any device below it scrubs, and has been
// scrubbed as often as the least scrubbed of them.
Json ScrubJson(const std::string& path, dax::Device& d) {
  bool active = false;
  uint64_t count = UINT64_MAX;
  for (media::PmemDevice* bottom : d.Media()) {
    media::ScrubStatus s = bottom->GetScrubStatus();
    active = active || s.active;
    count = std::min(count, s.count);
  }
  uint64_t sectors = 0;
  for (const media::BadBlock& b : d.BadBlocks()) sectors += b.count;
  return Json{{"dev", path},
              {"scrub_state", active ? "active" : "idle"},
              {"scrub_count", count == UINT64_MAX ? 0 : count},
              {"badblock_count", sectors}};
}

// Waits for the running scrub, with a progress bar when stderr is a terminal.
void WaitIdle(media::PmemDevice& d) {
  bool tty = isatty(STDERR_FILENO);
  if (!tty) return d.WaitScrubIdle();
  for (media::ScrubStatus s; (s = d.GetScrubStatus()).active;) {
    ShowProgress("scrub", s.progress, d.size());
    usleep(100 * 1000);
  }
  d.WaitScrubIdle();
  ShowProgress("scrub", d.size(), d.size());
}

void WaitIdle(dax::Device& d) {
  for (media::PmemDevice* bottom : d.Media()) WaitIdle(*bottom);
}

// Claims the scrub slot of each device; if one is taken, runs the scrubs
// already claimed (nothing else frees a slot) and says why.
Status BeginScrubs(const std::vector<media::PmemDevice*>& bottoms) {
  for (size_t i = 0; i < bottoms.size(); ++i) {
    Status s = bottoms[i]->BeginScrub(static_cast<uint32_t>(getpid()));
    if (s.ok()) continue;
    for (size_t j = 0; j < i; ++j) (void)bottoms[j]->RunScrub();
    return s;
  }
  return Status::Ok();
}

// The scrubber runs in a detached grandchild; it reports through `fd`
// whether it won the device's scrub slot.
[[noreturn]] void RunDetachedScrub(const std::string& path, int fd) {
  setsid();
  if (fork() != 0) _exit(0);
  // Let go of the caller's terminal and pipes so nobody waits on us for EOF.
  int null = open("/dev/null", O_RDWR);
  for (int std_fd = 0; std_fd < 3; ++std_fd) dup2(null, std_fd);
  auto d = dm::OpenDaxDevice(path);
  std::vector<media::PmemDevice*> bottoms;
  if (d.ok()) bottoms = (*d)->Media();
  Status s = d.ok() ? BeginScrubs(bottoms) : d.status();
  std::string reply = s.ok() ? "" : s.message();
  reply.push_back('\n');
  (void)!write(fd, reply.data(), reply.size());
  close(fd);
  if (s.ok())
    for (media::PmemDevice* bottom : bottoms) (void)bottom->RunScrub();
  _exit(0);
}

int RunStart(const ScrubArgs& a) {
  const char* cmd = "start-scrub";
  auto d = dm::OpenDaxDevice(a.dev);
  if (!d.ok()) return Fail(cmd, d.status());
  int fds[2];
  if (pipe(fds) != 0) return Fail(cmd, Status::FromErrno(errno, "pipe"));
  std::fflush(nullptr);
  pid_t child = fork();
  if (child < 0) return Fail(cmd, Status::FromErrno(errno, "fork"));
  if (child == 0) {
    close(fds[0]);
    RunDetachedScrub(a.dev, fds[1]);
  }
  close(fds[1]);
  waitpid(child, nullptr, 0);
  std::string reply;
  char c;
  while (read(fds[0], &c, 1) == 1 && c != '\n') reply.push_back(c);
  close(fds[0]);
  if (!reply.empty()) return Fail(cmd, reply);
  if (a.wait) WaitIdle(**d);
  PrintJson(ScrubJson(a.dev, **d));
  return 0;
}

int RunWait(const ScrubArgs& a) {
  auto d = dm::OpenDaxDevice(a.dev);
  if (!d.ok()) return Fail("wait-scrub", d.status());
  WaitIdle(**d);
  PrintJson(ScrubJson(a.dev, **d));
  return 0;
}

}  // namespace

void AddScrubCommands(CLI::App& app, int* rc) {
  auto sa = std::make_shared<ScrubArgs>();
  auto* s = app.add_subcommand("start-scrub", "start an address range scrub in the background");
  s->add_option("DEV", sa->dev, "device or stack file")->required();
  s->add_flag("-w,--wait", sa->wait, "wait for the scrub to finish");
  s->callback([sa, rc] { *rc = RunStart(*sa); });

  auto wa = std::make_shared<ScrubArgs>();
  auto* w = app.add_subcommand("wait-scrub", "wait for a running scrub to finish");
  w->add_option("DEV", wa->dev, "device or stack file")->required();
  w->callback([wa, rc] { *rc = RunWait(*wa); });
}

}  // namespace daxguard::tools
