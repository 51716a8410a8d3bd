#include "media/linux_sysfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace daxguard::media::sysfs {
namespace {

namespace stdfs = std::filesystem;

Result<std::string> ReadAttr(const stdfs::path& p) {
  std::ifstream in(p);
  if (!in) return Status::FromErrno(errno ? errno : ENOENT, "cannot read " + p.string());
  std::stringstream s;
  s << in.rdbuf();
  if (in.bad()) return Status::Io("cannot read " + p.string());
  return s.str();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// A number as sysfs writes them: decimal, or hexadecimal after 0x.
Result<uint64_t> ReadNumber(const stdfs::path& p) {
  DG_ASSIGN_OR_RETURN(std::string text, ReadAttr(p));
  std::string_view s = Trim(text);
  int base = 10;
  if (s.starts_with("0x")) {
    s.remove_prefix(2);
    base = 16;
  }
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    return Status::Corrupt(p.string() + ": not a number: \"" + std::string(Trim(text)) + "\"");
  return v;
}

// The region directory above a node's: the first ancestor named regionN.
Result<stdfs::path> RegionOf(const stdfs::path& node) {
  for (stdfs::path p = node.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path())
    if (p.filename().string().starts_with("region")) return p;
  return Status::Error(ENODEV, node.string() + ": no region above it");
}

}  // namespace

Result<PathKind> Classify(const std::string& path, const std::string& root) {
  struct statx stx {};
  if (statx(AT_FDCWD, path.c_str(), 0, STATX_TYPE, &stx) != 0) return PathKind{};  // opening it says what is wrong
  mode_t type = stx.stx_mode & S_IFMT;
  if (type == S_IFCHR) {
    auto name = DevDaxNameOf(root, makedev(stx.stx_rdev_major, stx.stx_rdev_minor));
    if (!name.ok()) return Status::Error(ENODEV, path + " is a character device but not a device-dax node (/dev/daxX.Y)");
    return PathKind{RealKind::kDevDax, *name};
  }
  if (type == S_IFBLK)
    return Status::Error(ENOTBLK, path + " is a block device, which gives no direct access: use its device-dax node "
                                         "(ndctl create-namespace -m devdax) or a file on it mounted with -o dax");
  if (type != S_IFREG) return Status::Invalid(path + " is not a device file, a device-dax node or a file on a DAX filesystem");
  bool dax = (stx.stx_attributes_mask & STATX_ATTR_DAX) && (stx.stx_attributes & STATX_ATTR_DAX);
  return PathKind{dax ? RealKind::kFsDaxFile : RealKind::kNotReal, ""};
}

Result<DevDaxInfo> DescribeDevDax(const std::string& root, const std::string& name) {
  std::error_code ec;
  stdfs::path link = stdfs::path(root) / "bus/dax/devices" / name;
  stdfs::path dir = stdfs::canonical(link, ec);
  if (ec) return Status::Error(ENODEV, name + " is not a device-dax node (" + link.string() + ": " + ec.message() + ")");
  DevDaxInfo d;
  d.name = name;
  DG_ASSIGN_OR_RETURN(d.size, ReadNumber(dir / "size"));
  DG_ASSIGN_OR_RETURN(d.align, ReadNumber(dir / "align"));
  DG_ASSIGN_OR_RETURN(d.phys, ReadNumber(dir / "resource"));
  DG_ASSIGN_OR_RETURN(stdfs::path region, RegionOf(dir));
  d.region_dir = region.string();
  DG_ASSIGN_OR_RETURN(d.region_phys, ReadNumber(region / "resource"));
  if (d.size == 0 || d.align == 0 || (d.align & (d.align - 1)) || d.phys < d.region_phys)
    return Status::Corrupt(dir.string() + ": size " + std::to_string(d.size) + ", align " + std::to_string(d.align) +
                           " or resource below its region's make no sense");
  return d;
}

Result<std::string> DevDaxNameOf(const std::string& root, dev_t rdev) {
  std::string id = std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev));
  std::error_code ec;
  stdfs::path dir = stdfs::canonical(stdfs::path(root) / "dev/char" / id, ec);
  if (ec) return Status::Error(ENODEV, "character device " + id + " is not known to sysfs");
  stdfs::path subsystem = stdfs::canonical(dir / "subsystem", ec);
  if (ec || subsystem.filename() != "dax")
    return Status::Error(ENODEV, "character device " + id + " is not a device-dax node");
  return dir.filename().string();
}

Result<std::vector<BadBlock>> ParseBadBlocks(std::string_view text, const std::string& what) {
  std::vector<BadBlock> out;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (line.empty()) continue;
    uint64_t sector = 0, count = 0;
    size_t gap = line.find_first_of(" \t");
    std::string_view a = line.substr(0, gap), b = gap == std::string_view::npos ? "" : Trim(line.substr(gap));
    auto r1 = std::from_chars(a.data(), a.data() + a.size(), sector);
    auto r2 = std::from_chars(b.data(), b.data() + b.size(), count);
    if (r1.ec != std::errc() || r1.ptr != a.data() + a.size() || r2.ec != std::errc() ||
        r2.ptr != b.data() + b.size() || count == 0 || sector + count < sector)
      return Status::Corrupt(what + " line " + std::to_string(line_no) + ": expected \"SECTOR COUNT\", got \"" +
                             std::string(line) + "\"");
    out.push_back({sector, count, false});
  }
  return out;
}

std::vector<BadBlock> ClipToDevice(const std::vector<BadBlock>& region_bad, uint64_t region_phys, uint64_t phys,
                                   uint64_t size) {
  std::vector<BadBlock> out;
  uint64_t lo_dev = phys - region_phys, hi_dev = lo_dev + size;  // in bytes from the region's start
  for (const BadBlock& b : region_bad) {
    if (b.sector > UINT64_MAX / kSectorSize || b.count > (UINT64_MAX - b.sector * kSectorSize) / kSectorSize) continue;
    uint64_t lo = std::max(b.sector * kSectorSize, lo_dev), hi = std::min((b.sector + b.count) * kSectorSize, hi_dev);
    if (lo >= hi) continue;
    uint64_t s0 = (lo - lo_dev) / kSectorSize, s1 = (hi - lo_dev + kSectorSize - 1) / kSectorSize;
    out.push_back({s0, s1 - s0, false});
  }
  std::sort(out.begin(), out.end(), [](const BadBlock& a, const BadBlock& b) { return a.sector < b.sector; });
  return out;
}

Result<std::vector<BadBlock>> DevDaxBadBlocks(const DevDaxInfo& d) {
  stdfs::path p = stdfs::path(d.region_dir) / "badblocks";
  DG_ASSIGN_OR_RETURN(std::string text, ReadAttr(p));
  DG_ASSIGN_OR_RETURN(std::vector<BadBlock> region_bad, ParseBadBlocks(text, p.string()));
  return ClipToDevice(region_bad, d.region_phys, d.phys, d.size);
}

}  // namespace daxguard::media::sysfs
