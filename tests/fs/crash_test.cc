// Crash consistency: a writer process is killed (SIGKILL) at random points
// while it works; afterwards the filesystem mounts, every file whose data
// was acknowledged by fsync reads back exactly, and fsck finds nothing.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <set>

#include "fs/fs_fixture.h"
#include "fs/fsck.h"

namespace daxguard::fs {
namespace {

constexpr int kRounds = 25;

// The content of durable file k: deterministic, so the parent can check it.
std::vector<uint8_t> Pattern(uint64_t k) {
  std::mt19937_64 rng(k);
  std::vector<uint8_t> v(1000 + rng() % 70000);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// The child: mounts and works until killed. Durable files are written once,
// fsynced, then announced on `ack`; everything else is noise on scratch files.
[[noreturn]] void Writer(const std::string& dev_path, int ack, uint64_t first_k, uint64_t seed) {
  auto dev = dax::PmemDax::Open(dev_path);
  if (!dev.ok()) _exit(2);
  auto fs = Filesystem::Mount(**dev);
  if (!fs.ok()) _exit(3);
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> noise(256 * 1024, 0x5a);
  for (uint64_t i = 0;; ++i) {
    bool durable = i < 30;  // then keep working on one file that is never announced
    uint64_t k = durable ? first_k + i : first_k + 1000000;
    std::string name = "/f" + std::to_string(k);
    auto f = (*fs)->Open(name, kCreate);
    if (!f.ok()) _exit(4);
    auto data = Pattern(k);
    auto w = (*f)->Write(0, data.data(), data.size());
    Status s = w.ok() ? (*f)->Fsync() : w.status();
    if (!s.ok()) {
      std::fprintf(stderr, "writer: %s: %s\n", name.c_str(), s.message().c_str());
      _exit(5);
    }
    if (durable) (void)!write(ack, &k, sizeof k);
    for (int n = 0; n < 4; ++n) {
      std::string s = "/s" + std::to_string(rng() % 8);
      auto g = (*fs)->Open(s, kCreate);
      if (!g.ok()) continue;
      switch (rng() % 5) {
        case 0: (void)(*g)->Write(rng() % (1 << 20), noise.data(), 1 + rng() % noise.size()); break;
        case 1: (void)(*g)->Truncate(rng() % (1 << 20)); break;
        case 2: (void)(*g)->CloneFrom(**f, 0, 0, 0); break;
        case 3: (void)(*g)->Fallocate(kFallocPunchHole | kFallocKeepSize, rng() % (1 << 19), 1 + rng() % (1 << 18)); break;
        case 4: g->reset(); (void)(*fs)->Unlink(s); break;
      }
    }
  }
}

TEST_F(FsTest, KilledWriterLosesNothingFsynced) {
  std::mt19937_64 rng(20261122);
  std::set<uint64_t> durable;
  uint64_t next_k = 0;
  fs_.reset();
  for (int round = 0; round < kRounds; ++round) {
    dev_.reset();
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(p[0]);
      Writer(path_, p[1], next_k, rng());
    }
    close(p[1]);
    // The kill lands a random time after the writer's first fsync, however
    // slow the machine (sanitizers, load): every round makes progress.
    uint64_t k;
    if (read(p[0], &k, sizeof k) == sizeof k) {
      durable.insert(k);
      next_k = std::max(next_k, k + 1);
    }
    usleep(2000 + rng() % 40000);
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer failed early with exit " << WEXITSTATUS(status);
    while (read(p[0], &k, sizeof k) == sizeof k) {
      durable.insert(k);
      next_k = std::max(next_k, k + 1);
    }
    close(p[0]);
    ++next_k;  // a file being written at the kill may exist half-done: skip its name

    OpenDevice();
    Mount();
    for (uint64_t d : durable) {
      auto f = fs_->Open("/f" + std::to_string(d));
      ASSERT_TRUE(f.ok()) << "round " << round << ": fsynced file f" << d << " is gone";
      auto want = Pattern(d);
      EXPECT_EQ(ReadAll(**f, 0, want.size() + 10), want) << "round " << round << ": f" << d;
    }
    fs_.reset();
    auto report = Fsck(*dev_, false);
    ASSERT_TRUE(report.ok()) << report.status().message();
    for (const std::string& p : report->problems) ADD_FAILURE() << "round " << round << ": " << p;
  }
  EXPECT_GT(durable.size(), 10u) << "the writer should have made progress";
}

}  // namespace
}  // namespace daxguard::fs
