// `daxguard dm create|table|status|replace|fail`: remapping devices in dmsetup's
// terms.
// A stack lives in a small text file (dm/stack_file.h); every command that
// takes a device takes a stack file too.
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "dm/open.h"
#include "dm/replace.h"
#include "dm/stack.h"
#include "dm/stack_file.h"
#include "tools/cli_util.h"

namespace daxguard::tools {
namespace {

struct CreateArgs {
  std::string stack;
  std::vector<std::string> lines;
};

int RunCreate(const CreateArgs& a) {
  const char* cmd = "dm create";
  std::vector<dm::TableLine> table;
  for (const std::string& text : a.lines) {
    auto line = dm::ParseTableLine(text);
    if (!line.ok()) return Fail(cmd, line.status());
    table.push_back(std::move(line).value());
  }
  Status s = dm::CreateStackFile(a.stack, table);
  return s.ok() ? 0 : Fail(cmd, s);
}

// Only reads the file, so that a stack whose devices are gone still shows.
int RunTable(const std::string& path) {
  auto table = dm::ReadStackFile(path);
  if (!table.ok()) return Fail("dm table", table.status());
  for (const dm::TableLine& l : *table) std::printf("%s\n", dm::FormatTableLine(l).c_str());
  return 0;
}

std::string Joined(const std::vector<std::string>& words) {
  std::string s;
  for (const std::string& w : words) s += (s.empty() ? "" : ",") + w;
  return s.empty() ? "-" : s;
}

// One line per segment: "START LEN TARGET devices=A,B recovery=yes|no
// badblocks=SECTOR+COUNT,...", sectors of the stack; "-" for none; a
// raid1 segment adds "leg_badblocks=N,M": each present leg's bad sectors,
// and "missing_legs=K" when it runs degraded.
int RunStatus(const std::string& path) {
  const char* cmd = "dm status";
  auto stack = dm::OpenStack(path, kReadOnly);
  if (!stack.ok()) return Fail(cmd, stack.status());
  for (const dm::SegmentStatus& st : (*stack)->SegmentStatuses()) {
    std::vector<std::string> bad;
    for (const media::BadBlock& b : st.bad) bad.push_back(std::to_string(b.sector) + "+" + std::to_string(b.count));
    std::string legs;
    if (!st.leg_bad.empty()) {
      std::vector<std::string> counts;
      for (uint64_t n : st.leg_bad) counts.push_back(std::to_string(n));
      legs = " leg_badblocks=" + Joined(counts);
      auto missing = std::count(st.line.args.begin() + 1, st.line.args.end(), dm::kMissingLeg);
      if (missing) legs += " missing_legs=" + std::to_string(missing);
    }
    std::printf("%llu %llu %s devices=%s recovery=%s badblocks=%s%s\n", static_cast<unsigned long long>(st.line.start),
                static_cast<unsigned long long>(st.line.len), st.line.target.c_str(), Joined(st.devices).c_str(),
                st.can_recover ? "yes" : "no", Joined(bad).c_str(), legs.c_str());
  }
  return 0;
}

struct FailArgs {
  std::string stack, dev;
};

int RunFail(const FailArgs& a) {
  Status s = dm::FailLeg(a.stack, a.dev);
  if (!s.ok()) return Fail("dm fail", s);
  std::printf("%s: the raid1 legs on %s are missing (-); the mirror runs on the others\n", a.stack.c_str(),
              a.dev.c_str());
  return 0;
}

struct ReplaceArgs {
  std::string stack, old_dev, new_dev, offset;
};

// Prints what moved and what no remaining leg held, as one line.
int RunReplace(const ReplaceArgs& a) {
  const char* cmd = "dm replace";
  std::optional<uint64_t> offset;
  if (!a.offset.empty()) {
    offset = dm::ParseSectors(a.offset);
    if (!offset || *offset % dm::kSectorsPerPage)
      return Fail(cmd, "--offset '" + a.offset + "' is not a sector count that is a multiple of 8 (4 KiB)");
  }
  dm::Stack::Progress progress;
  if (isatty(STDERR_FILENO)) progress = [](uint64_t done, uint64_t total) { ShowProgress("resync", done, total); };
  auto r = dm::ReplaceLeg(a.stack, a.old_dev, a.new_dev, offset, progress);
  if (!r.ok()) return Fail(cmd, r.status());
  std::string lost;
  for (uint64_t s : r->lost_sectors) lost += (lost.empty() ? "" : ",") + std::to_string(s);
  std::printf("%s: %llu leg(s) moved from %s to %s, %llu sectors resynced, lost=%s\n", a.stack.c_str(),
              static_cast<unsigned long long>(r->legs), a.old_dev.c_str(), a.new_dev.c_str(),
              static_cast<unsigned long long>(r->bytes / kSectorSize), lost.empty() ? "-" : lost.c_str());
  return 0;
}

}  // namespace

void AddDmCommands(CLI::App& app, int* rc) {
  auto* dm = app.add_subcommand("dm", "remapping devices (device-mapper style stacks)");
  dm->require_subcommand(1);

  auto ca = std::make_shared<CreateArgs>();
  auto* c = dm->add_subcommand("create", "check a table and write it as a new stack file");
  c->add_option("STACK", ca->stack, "stack file to create")->required();
  c->add_option("--table", ca->lines,
                "segment \"START LEN TARGET ARGS\" in 512-byte sectors (repeatable, in order): "
                "linear DEV OFFSET | striped N CHUNK DEV OFFSET... | raid1 N DEV OFFSET... | error; "
                "relative DEV paths are relative to the stack file's directory")
      ->required();
  c->callback([ca, rc] { *rc = RunCreate(*ca); });

  auto table_path = std::make_shared<std::string>();
  auto* t = dm->add_subcommand("table", "print a stack's table");
  t->add_option("STACK", *table_path, "stack file")->required();
  t->callback([table_path, rc] { *rc = RunTable(*table_path); });

  auto status_path = std::make_shared<std::string>();
  auto* s = dm->add_subcommand("status", "per segment: devices, recovery, known bad blocks (stack sectors)");
  s->add_option("STACK", *status_path, "stack file")->required();
  s->callback([status_path, rc] { *rc = RunStatus(*status_path); });

  auto ra = std::make_shared<ReplaceArgs>();
  auto* r = dm->add_subcommand("replace",
                               "move every raid1 leg on OLD to NEW and resync it from the other legs (OLD may be gone); "
                               "refused while the stack is held");
  r->add_option("STACK", ra->stack, "stack file")->required();
  r->add_option("OLD", ra->old_dev, "the legs' device, as the table or this directory names it")->required();
  r->add_option("NEW", ra->new_dev, "the device to move them to")->required();
  r->add_option("--offset", ra->offset, "sector of NEW the legs start at (default: as on OLD)");
  r->callback([ra, rc] { *rc = RunReplace(*ra); });

  auto fa = std::make_shared<FailArgs>();
  auto* f = dm->add_subcommand("fail",
                               "mark every raid1 leg on DEV missing (\"-\"): the mirror runs degraded on the other legs "
                               "until dm replace STACK - NEW; refused while the stack is held");
  f->add_option("STACK", fa->stack, "stack file")->required();
  f->add_option("DEV", fa->dev, "the legs' device, as the table or this directory names it")->required();
  f->callback([fa, rc] { *rc = RunFail(*fa); });
}

}  // namespace daxguard::tools
