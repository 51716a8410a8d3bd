// Filesystem commands: mkfs, fs ls|mkdir|rm|mv|put|get, who, health, fsck,
// and file I/O for `io DEV:/path`.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>

#include "dm/open.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "tools/cli_util.h"
#include "tools/fs_io.h"

namespace daxguard::tools {
namespace {

struct Mounted {
  std::unique_ptr<dax::Device> dev;
  std::unique_ptr<fs::Filesystem> fs;
};

Result<Mounted> MountDev(const std::string& dev) {
  auto d = dm::OpenDaxDevice(dev);
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

int RunMkfs(const std::string& dev, bool force) {
  auto d = dm::OpenDaxDevice(dev);
  if (!d.ok()) return Fail("mkfs", d.status());
  Status fsdax = CheckNotDevdax(**d, dev, "daxfs needs an fsdax device");
  if (!fsdax.ok()) return Fail("mkfs", fsdax);
  if (!force && fs::Filesystem::Mount(**d).ok())
    return Fail("mkfs", dev + " already holds a daxfs filesystem (use -f to overwrite it)");
  Status s = fs::Filesystem::Mkfs(**d);
  if (!s.ok()) return Fail("mkfs", s);
  fs::Geometry g = fs::GeometryFor((*d)->size());
  std::printf("daxfs on %s: %llu blocks of 4096 bytes, metadata log 2 x %llu blocks\n", dev.c_str(),
              static_cast<unsigned long long>(g.blocks), static_cast<unsigned long long>(g.meta_blocks));
  return 0;
}

int RunLs(const std::string& target, bool long_form) {
  auto t = Target(target);
  if (!t.ok()) return Fail("fs ls", t.status());
  auto m = MountDev(t->first);
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
  for (const fs::DirEntry& e : entries) {
    if (!long_form) {
      std::printf("%s%s\n", e.name.c_str(), S_ISDIR(e.mode) ? "/" : "");
      continue;
    }
    std::string p = S_ISDIR(st->attr.mode) ? t->second + "/" + e.name : t->second;
    auto es = m->fs->Stat(p);
    std::printf("%c%04o %3u %10llu %8llu %s\n", S_ISDIR(e.mode) ? 'd' : '-', e.mode & 07777, es->attr.nlink,
                static_cast<unsigned long long>(es->attr.size), static_cast<unsigned long long>(e.ino),
                e.name.c_str());
  }
  return 0;
}

Status Put(fs::Filesystem& f, const std::string& host, const std::string& path) {
  std::ifstream in(host, std::ios::binary);
  if (!in) return Status::FromErrno(errno, host);
  auto file = f.Open(path, fs::kCreate | fs::kTruncate);
  if (!file.ok()) return file.status();
  std::vector<char> buf(1 << 20);
  uint64_t off = 0;
  while (in.read(buf.data(), buf.size()) || in.gcount() > 0) {
    auto w = (*file)->Write(off, buf.data(), in.gcount());
    if (!w.ok()) return w.status();
    off += *w;
  }
  return (*file)->Fsync();
}

Status Get(fs::Filesystem& f, const std::string& path, const std::string& host) {
  auto file = f.Open(path);
  if (!file.ok()) return file.status();
  uint64_t size = (*file)->Stat()->attr.size;
  std::vector<char> buf(1 << 20);
  std::string tmp = host + ".daxguard-partial";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::FromErrno(errno, host);
    for (uint64_t off = 0; off < size;) {
      auto r = (*file)->Read(off, buf.data(), buf.size());
      if (!r.ok() || *r == 0) {
        std::remove(tmp.c_str());
        return Status::Io(path + ": media error at offset " + std::to_string(off) + "; nothing written");
      }
      out.write(buf.data(), *r);
      off += *r;
    }
  }
  if (std::rename(tmp.c_str(), host.c_str()) != 0) return Status::FromErrno(errno, host);
  return Status::Ok();
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
  auto m = MountDev(t->first);
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
    s = Put(f, args[0], t->second);
  } else {
    s = Get(f, t->second, args[1]);
  }
  return s.ok() ? 0 : Fail(cmd, s);
}

const char* KindText(fs::OwnerInfo::Kind k) {
  switch (k) {
    case fs::OwnerInfo::Kind::kFile: return "file";
    case fs::OwnerInfo::Kind::kMetadata: return "metadata";
    case fs::OwnerInfo::Kind::kFree: return "free";
    case fs::OwnerInfo::Kind::kQuarantined: return "quarantined";
  }
  return "?";
}

int RunWho(const std::string& dev, const std::string& off_text, const std::string& len_text) {
  auto off = ParseSizeArg("offset", off_text);
  auto len = ParseSizeArg("length", len_text);
  if (!off.ok()) return Fail("who", off.status());
  if (!len.ok()) return Fail("who", len.status());
  if (*len == 0) return Fail("who", "--length must be positive");
  auto m = MountDev(dev);
  if (!m.ok()) return Fail("who", m.status());
  auto owners = m->fs->Who(*off, *len);
  if (!owners.ok()) return Fail("who", owners.status());
  Json list = Json::array();
  for (const fs::OwnerInfo& o : *owners) {
    Json j{{"offset", o.offset}, {"length", o.length}, {"owner", KindText(o.kind)}};
    if (o.kind == fs::OwnerInfo::Kind::kFile) {
      j["path"] = o.path;
      j["inode"] = o.ino;
      j["file_offset"] = o.file_offset;
    }
    if (o.kind == fs::OwnerInfo::Kind::kMetadata) j["structure"] = o.what;
    list.push_back(j);
  }
  PrintJson(list);
  return 0;
}

int RunHealth(const std::string& dev) {
  auto m = MountDev(dev);
  if (!m.ok()) return Fail("health", m.status());
  fs::HealthReport h = m->fs->Health();
  Json files = Json::array(), quarantine = Json::array();
  for (const fs::DamagedFile& d : h.files) {
    Json ranges = Json::array();
    for (auto [o, l] : d.ranges) ranges.push_back({{"offset", o}, {"length", l}});
    files.push_back({{"path", d.path}, {"inode", d.ino}, {"damaged", ranges}});
  }
  for (auto [o, l] : h.quarantined) quarantine.push_back({{"offset", o}, {"length", l}});
  PrintJson(Json{{"dev", dev},
                 {"read_only", h.read_only},
                 {"damaged_files", files},
                 {"quarantined", quarantine},
                 {"lost_metadata", h.lost_metadata},
                 {"metadata_repairs", h.metadata_repairs}});
  return 0;
}

int RunFsck(const std::string& dev, bool repair) {
  auto d = dm::OpenDaxDevice(dev);
  if (!d.ok()) return Fail("fsck", d.status());
  Status fsdax = CheckNotDevdax(**d, dev, "it holds no filesystem");
  if (!fsdax.ok()) return Fail("fsck", fsdax);
  auto report = fs::Fsck(**d, repair);
  if (!report.ok()) return Fail("fsck", report.status());
  for (const std::string& p : report->problems) std::printf("%s\n", p.c_str());
  for (const std::string& f : report->fixed) std::printf("fixed: %s\n", f.c_str());
  std::printf("%s: %llu inodes, %llu extents, %llu log records; %zu problem(s)%s\n", dev.c_str(),
              static_cast<unsigned long long>(report->inodes), static_cast<unsigned long long>(report->extents),
              static_cast<unsigned long long>(report->records), report->problems.size(),
              repair ? (", " + std::to_string(report->fixed.size()) + " fixed").c_str() : "");
  bool clean = report->problems.empty() || (repair && report->fixed.size() == report->problems.size());
  return clean ? 0 : 1;
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
  auto m = MountDev(t->first);
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
  auto mk = std::make_shared<std::pair<std::string, bool>>();
  auto* m = app.add_subcommand("mkfs", "make a daxfs filesystem on a device or stack");
  m->add_option("DEV", mk->first, "device or stack file")->required();
  m->add_flag("-f,--force", mk->second, "overwrite an existing filesystem");
  m->callback([mk, rc] { *rc = RunMkfs(mk->first, mk->second); });

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
