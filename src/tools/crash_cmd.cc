// `daxguard crashcheck`: runs crashcheck's workloads (tools/crash_check.h)
// and prints what it checked, with the failures it found; exit 1 if any.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "tools/cli_util.h"
#include "tools/crash_check.h"

namespace daxguard::tools {
namespace {

struct CrashArgs {
  uint64_t states = 10000;
  uint64_t seed = 1;
  std::string dir;
  bool json = false;
  std::string protection = "none";
};

Json ReportJson(const CrashCheckReport& r) {
  return Json{{"workloads", r.workloads},  {"crash_points", r.fences}, {"states_generated", r.generated},
              {"states_checked", r.checked}, {"recovery_states_checked", r.recovery_checked}, {"failures", r.failed},   {"seconds", r.seconds},
              {"states_per_second", r.seconds > 0 ? r.checked / r.seconds : 0.0}, {"first_failures", r.failures}};
}

int RunCrashCheckCmd(const CrashArgs& a) {
  CrashCheckOptions opt;
  auto p = fs::ParseProtection(a.protection);
  if (!p) return Fail("crashcheck", "--data-protection must be none, checksum or parity, not '" + a.protection + "'");
  opt.protection = *p;
  opt.states = a.states;
  opt.seed = a.seed;
  std::error_code ec;
  opt.dir = a.dir.empty() ? std::filesystem::temp_directory_path(ec).string() : a.dir;
  if (!std::filesystem::is_directory(opt.dir, ec)) return Fail("crashcheck", opt.dir + ": not a directory");
  if (isatty(STDERR_FILENO))
    opt.progress = [&](const CrashCheckReport& r) {
      std::fprintf(stderr, "\rcrashcheck: %llu/%llu states, %llu workloads, %llu failures",
                   (unsigned long long)r.checked, (unsigned long long)a.states, (unsigned long long)r.workloads,
                   (unsigned long long)r.failed);
    };
  auto r = RunCrashCheck(opt);
  if (opt.progress) std::fputc('\n', stderr);
  if (!r.ok()) return Fail("crashcheck", r.status());
  if (a.json) {
    PrintJson(ReportJson(*r));
  } else {
    std::printf("crashcheck: %llu workloads, %llu crash points, %llu states generated, %llu checked "
                "(+%llu crashed again in recovery), %llu failures\n",
                (unsigned long long)r->workloads, (unsigned long long)r->fences, (unsigned long long)r->generated,
                (unsigned long long)r->checked, (unsigned long long)r->recovery_checked,
                (unsigned long long)r->failed);
    std::printf("crashcheck: %.1f s, %.0f states/s\n", r->seconds, r->seconds > 0 ? r->checked / r->seconds : 0.0);
    for (const std::string& f : r->failures) std::printf("FAIL %s\n", f.c_str());
  }
  return r->failed ? 1 : 0;
}

}  // namespace

void AddCrashCheckCommand(CLI::App& app, int* rc) {
  auto a = std::make_shared<CrashArgs>();
  auto* c = app.add_subcommand("crashcheck",
                               "check daxfs against simulated power failures: fsck, mount and every file's bytes "
                               "in each crash state of its workloads");
  c->add_option("--states,-n", a->states, "distinct crash states to check (default 10000)");
  c->add_option("--seed", a->seed, "seed of the workload and subset choice (default 1)");
  c->add_option("--dir", a->dir, "where the two 16 MiB device files go (default: the temporary directory)");
  c->add_flag("--json,-j", a->json, "print the summary as JSON");
  c->add_option("--data-protection", a->protection, "mkfs the workloads' filesystem with none, checksum or parity");
  c->callback([a, rc] { *rc = RunCrashCheckCmd(*a); });
}

}  // namespace daxguard::tools
