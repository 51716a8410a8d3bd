#include "tools/fs_io.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <set>
#include <sstream>

#include "common/units.h"
#include "tools/cli_util.h"

namespace daxguard::tools {
namespace {

constexpr uint64_t kChunk = 64 * 1024;

Status ParseNumbers(const std::string& name, const std::vector<std::string>& args, size_t i, size_t want,
                    std::vector<uint64_t>* out) {
  if (args.size() - i != want)
    return Status::Invalid(name + ": expected " + std::to_string(want) + " numeric arguments");
  for (; i < args.size(); ++i) {
    auto v = ParseSizeArg("number", args[i]);
    if (!v.ok()) return Status::Invalid(name + ": " + v.status().message());
    out->push_back(*v);
  }
  return Status::Ok();
}

std::string Reason(const Status& s) { return s.err() == EIO ? std::strerror(EIO) : s.message(); }

void Rate(std::ostream& out, const char* verb, uint64_t done, uint64_t len, uint64_t off, uint64_t ops,
          std::chrono::steady_clock::time_point t0) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out << fmt::format("{} {}/{} bytes at offset {}\n", verb, done, len, off);
  PrintRate(out, done, ops, secs);
}

Status DoPwrite(fs::File& f, const FileCommand& c, std::ostream& out) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<uint8_t> buf(std::min(kChunk, std::max<uint64_t>(c.length, 1)), c.pattern);
  if (c.atomic) {
    DG_RETURN_IF_ERROR(f.WriteAtomic(c.offset, buf.data(), c.length));
    Rate(out, "wrote", c.length, c.length, c.offset, 1, t0);
    return Status::Ok();
  }
  uint64_t done = 0, ops = 0;
  Status why;
  while (done < c.length) {
    uint64_t n = std::min<uint64_t>(buf.size(), c.length - done);
    auto w = f.Write(c.offset + done, buf.data(), n);
    ++ops;
    if (!w.ok()) {
      why = w.status();
      break;
    }
    done += *w;
    if (*w < n) {
      why = Status::Io("short write");
      break;
    }
  }
  if (done || why.ok()) Rate(out, "wrote", done, c.length, c.offset, ops, t0);
  return why;
}

Status DoPread(fs::File& f, const FileCommand& c, std::ostream& out) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<uint8_t> buf(std::min(kChunk, std::max<uint64_t>(c.length, 1)));
  uint64_t done = 0, ops = 0;
  Status why;
  while (done < c.length) {
    uint64_t n = std::min<uint64_t>(buf.size(), c.length - done);
    auto r = f.Read(c.offset + done, buf.data(), n);
    ++ops;
    if (!r.ok()) {
      why = r.status();
      break;
    }
    if (c.verbose) HexDump(out, c.offset + done, buf.data(), *r);
    done += *r;
    if (*r < n) break;  // end of file, or damage (reported by the next read)
  }
  if (why.ok() && done < c.length) {
    // Short because of damage rather than end of file?
    uint8_t b;
    auto probe = f.Read(c.offset + done, &b, 1);
    if (!probe.ok()) why = probe.status();
  }
  if (done || why.ok()) Rate(out, "read", done, c.length, c.offset, ops, t0);
  return why;
}

void DoFiemap(fs::File& f, const std::string& path, bool verbose, std::ostream& out) {
  auto m = f.Fiemap();
  out << path << ":\n";
  if (verbose) out << " EXT: FILE-OFFSET      BLOCK-RANGE      TOTAL FLAGS\n";
  uint64_t pos = 0;
  int n = 0;
  auto line = [&](uint64_t lo, uint64_t hi, const std::string& where, uint64_t total, unsigned flags) {
    std::string range = fmt::format("[{}..{}]:", lo / 512, hi / 512 - 1);
    if (verbose)
      out << fmt::format("{:4}: {:<16} {:<16} {:>5}{}\n", n++, range, where, total / 512,
                         flags == ~0u ? "" : fmt::format(" 0x{:x}", flags));
    else
      out << fmt::format("{:>2}: {} {}\n", n++, range, where);
  };
  for (const fs::FiemapExtent& e : *m) {
    if (e.logical > pos) line(pos, e.logical, "hole", e.logical - pos, ~0u);
    unsigned flags = (e.last ? 0x1 : 0) | (e.unwritten ? 0x800 : 0) | (e.shared ? 0x2000 : 0);
    std::string where = fmt::format("{}..{}", e.physical / 512, (e.physical + e.length) / 512 - 1);
    if (e.damaged) where += " (damaged)";
    line(e.logical, e.logical + e.length, where, e.length, flags);
    pos = e.logical + e.length;
  }
}

void DoStat(fs::File& f, const std::string& path, std::ostream& out) {
  auto st = f.Stat();
  out << "fd.path = \"" << path << "\"\n";
  out << "stat.ino = " << st->ino << "\n";
  out << "stat.type = " << (S_ISDIR(st->attr.mode) ? "directory" : "regular file") << "\n";
  out << "stat.size = " << st->attr.size << "\n";
  out << "stat.blocks = " << st->blocks * 8 << "\n";
  out << fmt::format("stat.mode = 0{:o}\n", st->attr.mode & 07777);
  out << "stat.nlink = " << st->attr.nlink << "\n";
}

Status RunOne(fs::Filesystem& fs, fs::File& f, const std::string& path, const FileCommand& c,
              std::ostream& out) {
  const std::string& n = c.name;
  if (n == "pwrite") return DoPwrite(f, c, out);
  if (n == "pread") return DoPread(f, c, out);
  if (n == "fzero") return f.Fallocate(fs::kFallocZeroRange | (c.keep_size ? fs::kFallocKeepSize : 0), c.offset, c.length);
  if (n == "fpunch") return f.Fallocate(fs::kFallocPunchHole | fs::kFallocKeepSize, c.offset, c.length);
  if (n == "falloc") return f.Fallocate(c.keep_size ? fs::kFallocKeepSize : 0, c.offset, c.length);
  if (n == "truncate") return f.Truncate(c.offset);
  if (n == "fsync") return f.Fsync();
  if (n == "stat") return DoStat(f, path, out), Status::Ok();
  if (n == "fiemap") return DoFiemap(f, path, c.verbose, out), Status::Ok();
  if (n == "reflink") {
    auto t0 = std::chrono::steady_clock::now();
    auto src = fs.Open(c.source);
    if (!src.ok()) return src.status();
    uint64_t before = f.Stat()->attr.size;
    DG_RETURN_IF_ERROR(f.CloneFrom(**src, c.offset, c.dest, c.length));
    uint64_t len = c.length ? c.length : (*src)->Stat()->attr.size - c.offset;
    (void)before;
    Rate(out, "linked", len, len, c.dest, 1, t0);
    return Status::Ok();
  }
  return Status::Invalid("unknown command " + n);
}

}  // namespace

Result<FileCommand> ParseFileCommand(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> args;
  for (std::string w; in >> w;) args.push_back(w);
  if (args.empty()) return Status::Invalid("empty command");
  FileCommand c;
  c.name = args[0];
  if (IsMapCommand(text)) {
    auto m = ParseMapCommand(text);
    if (!m.ok()) return m.status();
    c.is_map = true;
    c.map = *m;
    return c;
  }
  size_t i = 1;
  auto flag = [&](const char* f) { return i < args.size() && args[i] == f ? (++i, true) : false; };
  std::vector<uint64_t> nums;
  if (c.name == "pread" || c.name == "fiemap") {
    while (flag("-v")) c.verbose = true;
  } else if (c.name == "pwrite") {
    for (;;) {
      if (flag("-A")) {
        c.atomic = true;
      } else if (flag("-S")) {
        auto p = i < args.size() ? ParseSize(args[i]) : std::nullopt;
        if (!p || *p > 0xff) return Status::Invalid("pwrite: -S needs a byte value (0..0xff)");
        c.pattern = static_cast<uint8_t>(*p);
        ++i;
      } else {
        break;
      }
    }
  } else if (c.name == "falloc" || c.name == "fzero") {
    while (flag("-k")) c.keep_size = true;
  }
  static const std::set<std::string> kOffLen = {"pwrite", "pread", "fzero", "fpunch", "falloc"};
  if (kOffLen.count(c.name)) {
    DG_RETURN_IF_ERROR(ParseNumbers(c.name, args, i, 2, &nums));
    c.offset = nums[0], c.length = nums[1];
  } else if (c.name == "truncate") {
    DG_RETURN_IF_ERROR(ParseNumbers(c.name, args, i, 1, &nums));
    c.offset = nums[0];
  } else if (c.name == "fsync" || c.name == "stat" || c.name == "fiemap") {
    if (i != args.size()) return Status::Invalid(c.name + ": unexpected argument '" + args[i] + "'");
  } else if (c.name == "reflink") {
    if (i >= args.size()) return Status::Invalid("reflink: expected SRC [SOFF DOFF LEN]");
    c.source = args[i++];
    if (auto colon = c.source.find(":/"); colon != std::string::npos) c.source = c.source.substr(colon + 1);
    if (i < args.size()) {
      DG_RETURN_IF_ERROR(ParseNumbers(c.name, args, i, 3, &nums));
      c.offset = nums[0], c.dest = nums[1], c.length = nums[2];
    }
  } else {
    return Status::Invalid("unknown command '" + c.name +
                           "' (known: pwrite, pread, fzero, fpunch, falloc, fiemap, reflink, truncate, fsync, stat, "
                           "mmap, mread, mwrite, msync, munmap)");
  }
  return c;
}

Status CheckFileCommand(const FileCommand& c, uint64_t dev_size, MapPlan* plan) {
  const std::string& n = c.name;
  if (c.is_map && c.map.op != MapCommand::Op::kMmap) return plan->Check(c.map);
  uint64_t off = c.offset, len = c.length;
  if (c.is_map) {
    off = c.map.offset, len = c.map.length;
    if (off % fs::kBlockSize || len == 0) return Status::Invalid("mapping offset must be a multiple of 4096, length non-zero");
  } else if (n == "fzero" || n == "fpunch" || n == "falloc") {
    if (len == 0) return Status::Invalid("length must not be zero");
  } else if (n == "reflink") {
    if (c.offset % fs::kBlockSize || c.dest % fs::kBlockSize) return Status::Invalid("offsets must be multiples of 4096");
    off = c.dest;
  } else if (n == "truncate") {
    len = 0;
  } else if (n != "pwrite") {
    return Status::Ok();  // reads and the rest end at the file's end
  } else if (c.atomic && (len == 0 || len > fs::kBlockSize || off % fs::kBlockSize + len > fs::kBlockSize)) {
    return Status::Invalid("pwrite -A: 1 to 4096 bytes within one 4096-byte page");
  }
  if (off > dev_size || len > dev_size - off)
    return Status::Error(EFBIG, "reaches beyond the device size (" + std::to_string(dev_size) +
                                    " bytes), the most a file can hold");
  if (c.is_map) return plan->Check(c.map);
  return Status::Ok();
}

MapSession FileMapSession(fs::File& file) {
  return MapSession([&file](uint64_t off, uint64_t len, bool writable) -> Result<MapView> {
    auto m = file.Map(off, len, writable);
    if (!m.ok()) return m.status();
    std::shared_ptr<fs::FileMapping> keep = std::move(m).value();
    // msync of a file mapping: the file's stores in place, written back.
    return MapView{keep->addr(), off, len, keep, [&file](uint64_t, uint64_t) { return file.Fsync(); }};
  });
}

int RunFileCommands(fs::Filesystem& fs, fs::File& file, const std::string& path,
                    const std::vector<FileCommand>& cmds, std::ostream& out, std::ostream& err) {
  int failed = 0;
  MapSession maps = FileMapSession(file);
  for (const FileCommand& c : cmds) {
    Status s = c.is_map ? maps.Run(c.map, out) : RunOne(fs, file, path, c, out);
    if (s.ok()) continue;
    ++failed;
    out.flush();
    err << c.name << ": " << Reason(s) << "\n";
    err.flush();
  }
  return failed;
}

}  // namespace daxguard::tools
