// Filesystem commands: mkfs, fs ls|mkdir|rm|mv|put|get, who, health, fsck,
// and file I/O for `io DEV:/path`.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>

#include "dm/open.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "tools/cli_util.h"
#include "tools/fs_copy.h"
#include "tools/fs_io.h"
#include "tools/fs_report.h"

namespace daxguard::tools {
namespace {

struct Mounted {
  std::unique_ptr<dax::Device> dev;
  std::unique_ptr<fs::Filesystem> fs;
};

Result<Mounted> MountDev(const std::string& dev, media::OpenMode mode) {
  auto d = dm::OpenDaxDevice(dev, mode);
  if (!d.ok()) return d.status();
  DG_RETURN_IF_ERROR(CheckNotDevdax(**d, dev, "it holds no filesystem"));
  auto f = fs::Filesystem::Mount(**d);
  if (!f.ok()) return Named(dev, f.status());
  return Mounted{std::move(d).value(), std::move(f).value()};
}

// "DEV:/path" -> {DEV, /path}
bool SplitTarget(const std::string& t, std::string* dev, std::string* path) {
  size_t at = t.find(":/");
  if (at == std::string::npos || at == 0) return false;
  *dev = t.substr(0, at);
  *path = t.substr(at + 1);
  return true;
}

Result<std::pair<std::string, std::string>> Target(const std::string& t) {
  std::string dev, path;
  if (!SplitTarget(t, &dev, &path)) return Status::Invalid("'" + t + "' is not DEV:/path");
  return std::make_pair(dev, path);
}

int RunMkfs(const std::string& dev, bool force, const std::string& protection) {
  auto p = fs::ParseProtection(protection);
  if (!p) return Fail("mkfs", "--data-protection must be none, checksum or parity, not '" + protection + "'");
  auto d = dm::OpenDaxDevice(dev);
  if (!d.ok()) return Fail("mkfs", d.status());
  Status fsdax = CheckNotDevdax(**d, dev, "daxfs needs an fsdax device");
  if (!fsdax.ok()) return Fail("mkfs", fsdax);
  // Any trace of a filesystem, even one too damaged to mount, is kept
  // unless the user says otherwise.
  std::string found = force ? "" : fs::FindDaxfs(**d, fs::GeometryFor((*d)->size()));
  if (!found.empty())
    return Fail("mkfs", dev + " already holds a daxfs filesystem (found " + found + "); use -f to overwrite it");
  Status s = fs::Filesystem::Mkfs(**d, *p);
  if (!s.ok()) return Fail("mkfs", s);
  fs::Geometry g = fs::GeometryFor((*d)->size(), *p);
  std::printf("daxfs on %s: %llu blocks of 4096 bytes, metadata log 2 x %llu blocks, data protection %s", dev.c_str(),
              static_cast<unsigned long long>(g.blocks), static_cast<unsigned long long>(g.meta_blocks),
              fs::ProtectionName(*p));
  if (g.protect_blocks)
    std::printf(" (%llu blocks, %.1f%% of the device)", static_cast<unsigned long long>(g.protect_blocks),
                100.0 * static_cast<double>(g.protect_blocks) / static_cast<double>(g.blocks));
  std::printf("\n");
  return 0;
}

int RunLs(const std::string& target, bool long_form) {
  auto t = Target(target);
  if (!t.ok()) return Fail("fs ls", t.status());
  auto m = MountDev(t->first, kReadOnly);
  if (!m.ok()) return Fail("fs ls", m.status());
  auto st = m->fs->Stat(t->second);
  if (!st.ok()) return Fail("fs ls", st.status());
  std::vector<fs::DirEntry> entries;
  if (S_ISDIR(st->attr.mode)) {
    auto ls = m->fs->ReadDir(t->second);
    if (!ls.ok()) return Fail("fs ls", ls.status());
    entries = *ls;
  } else {
    entries.push_back({t->second, st->ino, st->attr.mode});
  }
  // As ls(1): the entries that can be read are listed, each one that
  // cannot is named on stderr, and the exit status says so.
  int rc = 0;
  for (const fs::DirEntry& e : entries) {
    std::string p = S_ISDIR(st->attr.mode) ? t->second + "/" + e.name : t->second;
    if (e.damaged) {
      rc = Fail("fs ls", p + ": damaged directory entry naming inode " + std::to_string(e.ino) +
                             " (run daxguard fsck --repair)");
      continue;
    }
    if (!long_form) {
      std::printf("%s%s\n", EscapeName(e.name).c_str(), S_ISDIR(e.mode) ? "/" : "");
      continue;
    }
    auto es = m->fs->Stat(p);
    if (!es.ok()) {
      rc = Fail("fs ls", es.status());
      continue;
    }
    std::printf("%c%04o %3u %10llu %8llu %s\n", S_ISDIR(e.mode) ? 'd' : '-', e.mode & 07777, es->attr.nlink,
                static_cast<unsigned long long>(es->attr.size), static_cast<unsigned long long>(e.ino),
                EscapeName(e.name).c_str());
  }
  return rc;
}

int RunFs(const std::string& verb, const std::vector<std::string>& args, bool flag) {
  static const std::set<std::string> kVerbs = {"ls", "mkdir", "rm", "mv", "put", "get"};
  if (!kVerbs.count(verb)) return Fail("fs", "unknown verb '" + verb + "' (ls, mkdir, rm, mv, put, get)");
  std::string cmd = "fs " + verb;
  if (verb == "ls") {
    if (args.size() != 1) return Fail(cmd, "usage: fs ls [-l] DEV:/path");
    return RunLs(args[0], flag);
  }
  size_t want = verb == "mkdir" || verb == "rm" ? 1 : 2;
  if (args.size() != want) return Fail(cmd, "expected " + std::to_string(want) + " arguments");
  const std::string& fs_arg = verb == "put" ? args[1] : args[0];
  auto t = Target(fs_arg);
  if (!t.ok()) return Fail(cmd, t.status());
  // The host side first: a refused copy mounts nothing.
  std::optional<HostSource> src;
  if (verb == "put") {
    auto s = HostSource::Open(args[0]);
    if (!s.ok()) return Fail(cmd, s.status());
    src.emplace(std::move(s).value());
  } else if (verb == "get") {
    if (Status s = CheckGetDestination(args[1]); !s.ok()) return Fail(cmd, s);
  }
  auto m = MountDev(t->first, verb == "get" ? kReadOnly : kReadWrite);
  if (!m.ok()) return Fail(cmd, m.status());
  fs::Filesystem& f = *m->fs;
  Status s;
  if (verb == "mkdir") {
    s = f.Mkdir(t->second);
  } else if (verb == "rm") {
    s = flag ? f.RemoveTree(t->second) : f.Unlink(t->second);
    if (s.err() == EISDIR) s = f.Rmdir(t->second);
  } else if (verb == "mv") {
    std::string dev, to = args[1];
    if (SplitTarget(args[1], &dev, &to) && dev != t->first) return Fail(cmd, "cannot move across devices");
    s = f.Rename(t->second, to);
  } else if (verb == "put") {
    s = Put(*src, f, t->second);
  } else {
    s = Get(f, t->second, args[1]);
  }
  return s.ok() ? 0 : Fail(cmd, s);
}

int RunWho(const std::string& dev, const std::string& off_text, const std::string& len_text) {
  auto off = ParseSizeArg("offset", off_text);
  auto len = ParseSizeArg("length", len_text);
  if (!off.ok()) return Fail("who", off.status());
  if (!len.ok()) return Fail("who", len.status());
  if (*len == 0) return Fail("who", "--length must be positive");
  auto m = MountDev(dev, kReadOnly);
  if (!m.ok() && m.status().err() == EBUSY) {  // mounted: its mount answers
    auto j = AskMount(dev, "who:" + std::to_string(*off) + ":" + std::to_string(*len));
    if (!j.ok()) return Fail("who", j.status().err() == ENOENT ? m.status() : j.status());
    PrintJson(*j);
    return 0;
  }
  if (!m.ok()) return Fail("who", m.status());
  auto owners = m->fs->Who(*off, *len);
  if (!owners.ok()) return Fail("who", owners.status());
  PrintJson(WhoJson(*owners));
  return 0;
}

int RunHealth(const std::string& dev) {
  auto m = MountDev(dev, kReadOnly);
  Json report;
  if (!m.ok() && m.status().err() == EBUSY) {  // mounted: its mount answers
    auto j = AskMount(dev, "health");
    if (!j.ok()) return Fail("health", j.status().err() == ENOENT ? m.status() : j.status());
    report = std::move(j).value();
  } else if (!m.ok()) {
    return Fail("health", m.status());
  } else {
    report = HealthJson(m->fs->Health());
  }
  Json out{{"dev", dev}};
  out.update(report);
  PrintJson(out);
  return 0;
}

int RunFsck(const std::string& dev, bool repair) {
  auto d = dm::OpenDaxDevice(dev, repair ? kReadWrite : kReadOnly);
  if (!d.ok()) return Fail("fsck", d.status());
  Status fsdax = CheckNotDevdax(**d, dev, "it holds no filesystem");
  if (!fsdax.ok()) return Fail("fsck", fsdax);
  auto report = fs::Fsck(**d, repair);
  if (!report.ok()) return Fail("fsck", report.status());
  for (const std::string& p : report->problems) std::printf("%s\n", p.c_str());
  for (const std::string& f : report->fixed) std::printf("fixed: %s\n", f.c_str());
  for (const std::string& n : report->notes) std::printf("note: %s\n", n.c_str());
  for (const std::string& u : report->unrepaired) std::printf("not repaired: %s\n", u.c_str());
  std::printf("%s: %llu inodes, %llu extents, %llu log records; %zu problem(s)%s\n", dev.c_str(),
              static_cast<unsigned long long>(report->inodes), static_cast<unsigned long long>(report->extents),
              static_cast<unsigned long long>(report->records), report->problems.size(),
              repair ? (", " + std::to_string(report->fixed.size()) + " fixed").c_str() : "");
  if (!report->unrepaired.empty())
    std::printf("%s: left read-only until daxguard fsck --repair succeeds\n", dev.c_str());
  return (repair ? report->unrepaired.empty() : report->problems.empty()) ? 0 : 1;
}

}  // namespace

int RunFileIo(const std::string& target, const std::vector<std::string>& texts, bool create) {
  auto t = Target(target);
  if (!t.ok()) return Fail("io", t.status());
  std::vector<FileCommand> cmds;
  for (const std::string& text : texts) {
    auto c = ParseFileCommand(text);
    if (!c.ok()) return Fail("io", c.status());
    cmds.push_back(*c);
  }
  static const std::set<std::string> kReads = {"pread", "fiemap", "stat"};
  bool reads_only = !create && std::all_of(cmds.begin(), cmds.end(), [](const FileCommand& c) { return kReads.count(c.name) > 0; });
  auto m = MountDev(t->first, reads_only ? kReadOnly : kReadWrite);
  if (!m.ok()) return Fail("io", m.status());
  // Every command is checked before any runs (or -f creates the file).
  MapPlan plan;
  for (size_t i = 0; i < cmds.size(); ++i)
    if (Status s = CheckFileCommand(cmds[i], m->dev->size(), &plan); !s.ok())
      return Fail("io", "'" + texts[i] + "': " + s.message());
  auto file = m->fs->Open(t->second, create ? fs::kCreate : 0);
  if (!file.ok()) return Fail("io", file.status());
  return RunFileCommands(*m->fs, **file, t->second, cmds, std::cout, std::cerr) ? 1 : 0;
}

bool IsFsTarget(const std::string& arg) {
  std::string dev, path;
  return SplitTarget(arg, &dev, &path);
}

void AddFsCommands(CLI::App& app, int* rc) {
  struct MkfsArgs {
    std::string dev;
    bool force = false;
    std::string protection = "none";
  };
  auto mk = std::make_shared<MkfsArgs>();
  auto* m = app.add_subcommand("mkfs", "make a daxfs filesystem on a device or stack");
  m->add_option("DEV", mk->dev, "device or stack file")->required();
  m->add_flag("-f,--force", mk->force, "overwrite an existing filesystem");
  m->add_option("--data-protection", mk->protection,
                "none; checksum (a CRC32C per 4 KiB block, checked on reads); or parity (also a parity strip "
                "per block, from which a damaged strip is rebuilt)");
  m->callback([mk, rc] { *rc = RunMkfs(mk->dev, mk->force, mk->protection); });

  struct FsArgs {
    std::string verb;
    std::vector<std::string> args;
    bool flag = false;
  };
  auto fa = std::make_shared<FsArgs>();
  auto* f = app.add_subcommand("fs", "namespace: fs ls [-l] | mkdir | rm [-r] | mv | put HOST DEV:/p | get DEV:/p HOST");
  f->add_option("VERB", fa->verb, "ls, mkdir, rm, mv, put, get")->required();
  f->add_option("ARGS", fa->args, "DEV:/path arguments");
  f->add_flag("-l,-r", fa->flag, "ls: long listing; rm: recursive");
  f->callback([fa, rc] { *rc = RunFs(fa->verb, fa->args, fa->flag); });

  auto wa = std::make_shared<std::array<std::string, 3>>();
  (*wa)[2] = "1";
  auto* w = app.add_subcommand("who", "JSON list of the owners of a device range");
  w->add_option("DEV", (*wa)[0], "device or stack file")->required();
  w->add_option("--offset", (*wa)[1], "device byte offset")->required();
  w->add_option("--length", (*wa)[2], "bytes (default 1)");
  w->callback([wa, rc] { *rc = RunWho((*wa)[0], (*wa)[1], (*wa)[2]); });

  auto ha = std::make_shared<std::string>();
  auto* h = app.add_subcommand("health", "JSON list of damaged files, quarantined space and lost metadata");
  h->add_option("DEV", *ha, "device or stack file")->required();
  h->callback([ha, rc] { *rc = RunHealth(*ha); });

  auto ka = std::make_shared<std::pair<std::string, bool>>();
  auto* k = app.add_subcommand("fsck", "check a daxfs filesystem (exit 1 on any inconsistency)");
  k->add_option("DEV", ka->first, "device or stack file")->required();
  k->add_flag("--repair", ka->second, "fix what can be fixed");
  k->callback([ka, rc] { *rc = RunFsck(ka->first, ka->second); });
}

}  // namespace daxguard::tools
