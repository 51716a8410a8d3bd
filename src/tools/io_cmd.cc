#include "tools/io_cmd.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <sstream>

#include "common/units.h"
#include "dax/dax_io.h"
#include "dax/mapping.h"
#include "dax/pmem_dax.h"
#include "dm/open.h"
#include "tools/cli_util.h"

namespace daxguard::tools {
namespace {

constexpr uint64_t kIoChunk = 64 * 1024;  // one "op", as xfs_io's default buffer

Status ParseOffLen(const std::string& name, const std::vector<std::string>& args, size_t i,
                   IoCommand* c) {
  if (args.size() != i + 2) return Status::Invalid(name + ": expected OFFSET LENGTH");
  auto off = ParseSizeArg("offset", args[i]);
  if (!off.ok()) return Status::Invalid(name + ": " + off.status().message());
  auto len = ParseSizeArg("length", args[i + 1]);
  if (!len.ok()) return Status::Invalid(name + ": " + len.status().message());
  c->offset = *off;
  c->length = *len;
  return Status::Ok();
}


std::string Reason(const Status& s) {
  // Media failures read as xfs_io prints them; everything else says why.
  return s.err() == EIO ? std::strerror(EIO) : s.message();
}

// Moves [offset, offset+length) in chunks; returns the bytes done and sets
// *why when the transfer stopped early.
template <typename ChunkFn>
uint64_t Transfer(const IoCommand& c, ChunkFn fn, uint64_t* ops, Status* why) {
  uint64_t done = 0;
  while (done < c.length) {
    uint64_t n = std::min(kIoChunk, c.length - done);
    Result<size_t> r = fn(c.offset + done, n);
    ++*ops;
    if (!r.ok()) {
      *why = r.status();
      break;
    }
    done += *r;
    if (*r < n) {
      *why = Status::Io("short transfer");
      break;
    }
  }
  return done;
}

// mmap of a device range: the device places it, translating down to the media.
MapSession DeviceMapSession(dax::Device& dev, const std::string& name) {
  return MapSession([&dev, name](uint64_t off, uint64_t len, bool writable) -> Result<MapView> {
    auto r = dax::MappedRegion::Reserve(AlignUp(len, kPageSize), writable, name);
    if (!r.ok()) return r.status();
    std::shared_ptr<dax::MappedRegion> region = std::move(r).value();
    DG_RETURN_IF_ERROR(dev.MapInto(*region, 0, off, region->length(), off));
    auto persist = [&dev](uint64_t o, uint64_t n) -> Status {
      DG_RETURN_IF_ERROR(dev.WriteBack(o, n));
      dev.Fence();
      return Status::Ok();
    };
    return MapView{region->addr(), off, len, region, persist};
  });
}

bool RunOne(dax::Device& dev, const IoCommand& c, std::ostream& out, std::ostream& err) {
  auto t0 = std::chrono::steady_clock::now();
  uint64_t ops = 0;
  Status why;
  uint64_t done = 0;
  const char* name = c.op == IoCommand::Op::kPread ? "pread" : c.op == IoCommand::Op::kPwrite ? "pwrite" : "zero";
  if (c.op == IoCommand::Op::kZero) {
    why = dax::ZeroAt(dev, c.offset, c.length);  // written back by the device
    dev.Fence();
    ops = 1;
    done = why.ok() ? c.length : 0;
  } else if (c.op == IoCommand::Op::kPwrite) {
    std::vector<uint8_t> buf(std::min(kIoChunk, c.length), c.pattern);
    // Durable when the command returns: each chunk written back, then a fence.
    done = Transfer(c, [&](uint64_t off, uint64_t n) { return dax::WriteAt(dev, off, buf.data(), n); }, &ops, &why);
    dev.Fence();
  } else {
    std::vector<uint8_t> buf(std::min(kIoChunk, c.length));
    done = Transfer(c, [&](uint64_t off, uint64_t n) -> Result<size_t> {
      auto r = dax::ReadAt(dev, off, buf.data(), n);
      if (r.ok() && c.verbose) HexDump(out, off, buf.data(), *r);
      return r;
    }, &ops, &why);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (done > 0 || why.ok()) {
    const char* verb = c.op == IoCommand::Op::kPread ? "read" : c.op == IoCommand::Op::kPwrite ? "wrote" : "zeroed";
    out << fmt::format("{} {}/{} bytes at offset {}\n", verb, done, c.length, c.offset);
    PrintRate(out, done, ops, secs);
  }
  if (!why.ok()) {
    out.flush();
    err << name << ": " << Reason(why) << "\n";
    err.flush();
  }
  return why.ok();
}

}  // namespace

Result<IoCommand> ParseIoCommand(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> args;
  for (std::string w; in >> w;) args.push_back(w);
  if (args.empty()) return Status::Invalid("empty command");
  IoCommand c{};
  const std::string& name = args[0];
  size_t i = 1;
  if (IsMapCommand(text)) {
    auto m = ParseMapCommand(text);
    if (!m.ok()) return m.status();
    c.op = IoCommand::Op::kMap;
    c.map = *m;
    return c;
  }
  if (name == "pread") {
    c.op = IoCommand::Op::kPread;
    for (; i < args.size() && args[i] == "-v"; ++i) c.verbose = true;
  } else if (name == "pwrite") {
    c.op = IoCommand::Op::kPwrite;
    if (i < args.size() && args[i] == "-S") {
      auto p = i + 1 < args.size() ? ParseSize(args[i + 1]) : std::nullopt;
      if (!p || *p > 0xff) return Status::Invalid("pwrite: -S needs a byte value (0..0xff)");
      c.pattern = static_cast<uint8_t>(*p);
      i += 2;
    }
  } else if (name == "zero") {
    c.op = IoCommand::Op::kZero;
  } else {
    return Status::Invalid("unknown command '" + name + "' (known: pread, pwrite, zero, mmap, mread, mwrite, msync, munmap)");
  }
  if (i < args.size() && args[i].size() > 1 && args[i][0] == '-')
    return Status::Invalid(name + ": unknown option '" + args[i] + "'");
  DG_RETURN_IF_ERROR(ParseOffLen(name, args, i, &c));
  return c;
}

Status CheckIoCommand(dax::Device& dev, const std::string& name, const IoCommand& c, MapPlan* plan) {
  bool mmap = c.op == IoCommand::Op::kMap && c.map.op == MapCommand::Op::kMmap;
  if (c.op == IoCommand::Op::kMap && !mmap) return plan->Check(c.map);
  if (!mmap) DG_RETURN_IF_ERROR(CheckNotDevdax(dev, name, "this is byte I/O; use mmap, mread and mwrite"));
  uint64_t off = mmap ? c.map.offset : c.offset, len = mmap ? c.map.length : c.length;
  if (off > dev.size() || len > dev.size() - off)
    return Status::Range("reaches beyond the device end (" + std::to_string(dev.size()) + " bytes)");
  if (c.op == IoCommand::Op::kZero && (!IsAligned(off, kPageSize) || !IsAligned(len, kPageSize)))
    return Status::Invalid("offset and length must be multiples of 4096 bytes");
  if (!mmap) return Status::Ok();
  // As the device will place it: whole fault units once rounded up to pages.
  uint64_t unit = dev.caps().fault_unit;  // what the device will place
  if (len == 0) return Status::Invalid("mapping length must not be zero");
  if (!IsAligned(off, unit) || !IsAligned(AlignUp(len, kPageSize), unit))
    return Status::Invalid("mappings of " + name + " must start and end on " + HumanBytes(double(unit)) + " boundaries");
  return plan->Check(c.map);
}

int RunIoCommands(dax::Device& dev, const std::string& name, const std::vector<IoCommand>& cmds,
                  std::ostream& out, std::ostream& err) {
  int failed = 0;
  MapSession maps = DeviceMapSession(dev, name);
  for (const IoCommand& c : cmds) {
    if (c.op != IoCommand::Op::kMap) {
      failed += RunOne(dev, c, out, err) ? 0 : 1;
      continue;
    }
    if (Status s = maps.Run(c.map, out); !s.ok()) {
      ++failed;
      out.flush();
      err << c.map.name << ": " << Reason(s) << "\n";
      err.flush();
    }
  }
  return failed;
}

}  // namespace daxguard::tools

namespace daxguard::tools {
namespace {

struct IoArgs {
  bool create = false;
  std::string dev;
  std::vector<std::string> cmds;
};

bool Writes(const IoCommand& c) {
  if (c.op == IoCommand::Op::kMap) return c.map.op == MapCommand::Op::kMwrite;
  return c.op != IoCommand::Op::kPread;
}

int RunIo(const IoArgs& a) {
  const char* cmd = "io";
  if (IsFsTarget(a.dev)) return RunFileIo(a.dev, a.cmds, a.create);
  // Every command is parsed, then checked against the device, before any
  // runs: bad input changes nothing.
  std::vector<IoCommand> cmds;
  for (const std::string& text : a.cmds) {
    auto c = ParseIoCommand(text);
    if (!c.ok()) return Fail(cmd, c.status());
    cmds.push_back(*c);
  }
  bool reads_only = std::all_of(cmds.begin(), cmds.end(), [](const IoCommand& c) { return c.op == IoCommand::Op::kPread; });
  auto dev = dm::OpenDaxDevice(a.dev, reads_only ? kReadOnly : kReadWrite);
  if (!dev.ok()) return Fail(cmd, dev.status());
  MapPlan plan;
  for (size_t i = 0; i < cmds.size(); ++i)
    if (Status s = CheckIoCommand(**dev, a.dev, cmds[i], &plan); !s.ok())
      return Fail(cmd, "'" + a.cmds[i] + "': " + s.message());
  // Raw writes under a holder would change its data behind its back.
  for (size_t i = 0; i < cmds.size(); ++i) {
    if (!Writes(cmds[i])) continue;
    if (Status held = (*dev)->CheckNotHeld(); !held.ok())
      return Fail(cmd, a.dev + ": " + held.message() + "; '" + a.cmds[i] + "' would write under it");
  }
  return RunIoCommands(**dev, a.dev, cmds, std::cout, std::cerr) ? 1 : 0;
}

}  // namespace

void AddIoCommand(CLI::App& app, int* rc) {
  auto a = std::make_shared<IoArgs>();
  auto* io = app.add_subcommand("io", "xfs_io-style I/O: -c \"pread [-v] OFF LEN\" -c \"pwrite [-S BYTE] OFF LEN\" -c \"zero OFF LEN\" "
                                      "-c \"mmap [-r] OFF LEN\" -c \"mread [-v] [OFF LEN]\" -c \"mwrite [-S BYTE] [OFF LEN]\" -c msync -c munmap; "
                                      "on DEV:/path also pwrite -A (untorn, within one page), fzero, fpunch, falloc, fiemap, reflink, "
                                      "truncate, fsync, stat");
  io->add_option("DEV", a->dev, "device or stack file")->required();
  io->add_option("-c,--command", a->cmds, "command to run (repeatable)")->required();
  io->add_flag("-f", a->create, "DEV:/path: create the file if missing");
  io->callback([a, rc] { *rc = RunIo(*a); });
}

}  // namespace daxguard::tools
