#include "tools/map_cmds.h"

#include <fmt/format.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#include <cstring>
#include <sstream>
#include <vector>

#include "common/units.h"
#include "dax/mapping.h"
#include "tools/cli_util.h"

namespace daxguard::tools {
namespace {

// What the SIGBUS handler saw; the tool runs its commands on one thread.
sigjmp_buf g_resume;
volatile sig_atomic_t g_armed = 0;
struct {
  int code = 0;
  const void* addr = nullptr;
  bool described = false;
  dax::FaultReport report;
} g_fault;

void OnSigbus(int sig, siginfo_t* si, void*) {
  if (!g_armed) {  // not ours to catch: die of it as the process would have
    signal(sig, SIG_DFL);
    return;
  }
  g_fault.code = si->si_code;
  g_fault.addr = si->si_addr;
  g_fault.described = dax::DescribeFault(si->si_addr, &g_fault.report);
  siglongjmp(g_resume, 1);
}

std::string FaultMessage() {
  const dax::FaultReport& r = g_fault.report;
  if (!g_fault.described) return fmt::format("SIGBUS at address {}", g_fault.addr);
  if (r.kind == dax::TrapKind::kGone)
    return fmt::format("offset {} of {} is past the end of the file or was taken back (BUS_ADRERR)", r.offset, r.name);
  return fmt::format("media error at offset {} of {}: {} bytes from offset {} are lost (BUS_MCEERR_AR)",
                     r.offset, r.name, r.unit_length, r.unit_offset);
}

Status ParseRange(const MapCommand& c, const std::vector<std::string>& args, size_t i, MapCommand* out) {
  if (i == args.size()) return Status::Ok();
  if (args.size() != i + 2) return Status::Invalid(c.name + ": expected [OFFSET LENGTH]");
  auto off = ParseSizeArg("offset", args[i]);
  auto len = ParseSizeArg("length", args[i + 1]);
  if (!off.ok()) return Status::Invalid(c.name + ": " + off.status().message());
  if (!len.ok()) return Status::Invalid(c.name + ": " + len.status().message());
  out->whole = false;
  out->offset = *off;
  out->length = *len;
  return Status::Ok();
}

}  // namespace

bool IsMapCommand(const std::string& text) {
  std::istringstream in(text);
  std::string name;
  in >> name;
  return name == "mmap" || name == "mread" || name == "mwrite" || name == "msync" || name == "munmap";
}

Result<MapCommand> ParseMapCommand(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> args;
  for (std::string w; in >> w;) args.push_back(w);
  MapCommand c;
  c.name = args.empty() ? "" : args[0];
  size_t i = 1;
  auto flag = [&](const char* f) { return i < args.size() && args[i] == f ? (++i, true) : false; };
  if (c.name == "mmap") {
    c.op = MapCommand::Op::kMmap;
    bool r = false, w = false;
    for (bool more = true; more;) more = (flag("-r") && (r = true)) || (flag("-w") && (w = true));
    c.writable = w || !r;
  } else if (c.name == "mread") {
    c.op = MapCommand::Op::kMread;
    while (flag("-v")) c.verbose = true;
  } else if (c.name == "mwrite") {
    c.op = MapCommand::Op::kMwrite;
    if (flag("-S")) {
      auto p = i < args.size() ? ParseSize(args[i]) : std::nullopt;
      if (!p || *p > 0xff) return Status::Invalid("mwrite: -S needs a byte value (0..0xff)");
      c.pattern = static_cast<uint8_t>(*p);
      ++i;
    }
  } else if (c.name == "msync") {
    c.op = MapCommand::Op::kMsync;
  } else if (c.name == "munmap") {
    c.op = MapCommand::Op::kMunmap;
    if (i != args.size()) return Status::Invalid("munmap: unexpected argument '" + args[i] + "'");
    return c;
  } else {
    return Status::Invalid("unknown mapping command '" + c.name + "'");
  }
  if (i < args.size() && args[i].size() > 1 && args[i][0] == '-')
    return Status::Invalid(c.name + ": unknown option '" + args[i] + "'");
  DG_RETURN_IF_ERROR(ParseRange(c, args, i, &c));
  if (c.op == MapCommand::Op::kMmap && c.whole) return Status::Invalid("mmap: expected OFFSET LENGTH");
  return c;
}

namespace {

// Runtime and check messages leave the command's name to whoever prints them.
Status NotMapped() { return Status::Invalid("no mapped regions (mmap first)"); }

// The range mread, mwrite or msync touch: theirs, or the whole mapping.
Status CheckWithin(const MapCommand& c, uint64_t map_off, uint64_t map_len, uint64_t* off, uint64_t* len) {
  *off = c.whole ? map_off : c.offset;
  *len = c.whole ? map_len : c.length;
  if (*off < map_off || *len > map_len || *off - map_off > map_len - *len)
    return Status::Range(fmt::format("range {}+{} is not within the mapping ({}+{})", *off, *len, map_off, map_len));
  return Status::Ok();
}

}  // namespace

Status MapPlan::Check(const MapCommand& c) {
  if (c.op == MapCommand::Op::kMmap) {
    mapped_ = true;
    offset_ = c.offset;
    length_ = c.length;
    return Status::Ok();
  }
  if (!mapped_) return NotMapped();
  if (c.op == MapCommand::Op::kMunmap) {
    mapped_ = false;
    return Status::Ok();
  }
  uint64_t off, len;
  return CheckWithin(c, offset_, length_, &off, &len);
}

Status MapSession::Run(const MapCommand& c, std::ostream& out) {
  if (c.op == MapCommand::Op::kMmap) {
    view_ = {};
    auto v = mapper_(c.offset, c.length, c.writable);
    if (!v.ok()) return v.status();
    view_ = std::move(v).value();
    return Status::Ok();
  }
  if (!view_.addr) return NotMapped();
  if (c.op == MapCommand::Op::kMunmap) {
    view_ = {};
    return Status::Ok();
  }
  return Access(c, out);
}

// mread, mwrite, msync over [offset, offset+length) of the current mapping.
Status MapSession::Access(const MapCommand& c, std::ostream& out) {
  uint64_t off, len;
  DG_RETURN_IF_ERROR(CheckWithin(c, view_.offset, view_.length, &off, &len));
  uint8_t* p = view_.addr + (off - view_.offset);
  if (c.op == MapCommand::Op::kMsync) {
    uint8_t* start = p - (reinterpret_cast<uintptr_t>(p) % kPageSize);
    if (msync(start, len + (p - start), MS_SYNC) != 0) return Status::FromErrno(errno, "msync");
    return view_.persist ? view_.persist(off, len) : Status::Ok();
  }
  struct sigaction sa = {}, old = {};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGBUS, &sa, &old);
  std::vector<uint8_t> buf(c.verbose ? std::min<uint64_t>(len, 64 * 1024) : 0);
  bool faulted = sigsetjmp(g_resume, 1) != 0;
  g_armed = !faulted;
  if (!faulted) {
    for (uint64_t done = 0; done < len;) {
      uint64_t n = std::min<uint64_t>(len - done, 64 * 1024);
      if (c.op == MapCommand::Op::kMwrite) {
        std::memset(p + done, c.pattern, n);
      } else if (c.verbose) {
        std::memcpy(buf.data(), p + done, n);
        HexDump(out, off + done, buf.data(), n);
      } else {
        for (uint64_t i = 0; i < n; i += 64) (void)*static_cast<volatile uint8_t*>(p + done + i);
      }
      done += n;
    }
  }
  g_armed = 0;
  sigaction(SIGBUS, &old, nullptr);
  if (faulted)  // not EIO: the tool prints EIO as strerror, and this says more
    return Status::Error(g_fault.report.kind == dax::TrapKind::kGone ? EFAULT : EHWPOISON, FaultMessage());
  return Status::Ok();
}

}  // namespace daxguard::tools
