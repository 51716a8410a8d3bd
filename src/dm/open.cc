#include "dm/open.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <map>

#include "dax/devdax_device.h"
#include "dax/pmem_dax.h"
#include "media/layout.h"
#include "media/linux_sysfs.h"
#include "dm/stack.h"
#include "dm/stack_file.h"

namespace daxguard::dm {
namespace {

namespace fs = std::filesystem;

// The stacks being opened, each linking to the one that names it: going a
// level deeper copies nothing. One that shows up again below itself is a cycle.
struct Ancestor {
  std::string id;
  const Ancestor* up;
  int depth;  // 1 for the stack the command named
};

Result<std::unique_ptr<dax::Device>> OpenAny(const std::string& path, const Ancestor* above, media::OpenMode mode);

std::string FileId(const struct stat& st) {
  return "inode " + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// Which file `path` names, by device and inode, so that every name of one
// file (other spellings, symlinks, hard links) is one identity. A path that
// names nothing (a stack being created, a missing device) is its absolute,
// normal spelling; opening it fails later.
std::string Identity(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0) return FileId(st);
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  return ec ? fs::absolute(path, ec).lexically_normal().string() : p.string();
}

// Opens a stack's bases relative to its directory.
class FileOpener final : public BaseOpener {
 public:
  FileOpener(fs::path dir, const Ancestor* chain, media::OpenMode mode)
      : dir_(std::move(dir)), chain_(chain), mode_(mode) {}
  Result<std::string> Identify(const std::string& dev) override { return Identity(Resolve(dev)); }
  Result<std::unique_ptr<dax::Device>> Open(const std::string& dev) override {
    auto d = OpenAny(Resolve(dev), chain_, mode_);
    // Like Linux device-dax, which has no block device for dm to stack on.
    if (d.ok() && (*d)->caps().devdax)
      return Status::Invalid(dev + " is a devdax device (used whole, by mapping only): it cannot be a stack's base");
    return d;
  }

 private:
  std::string Resolve(const std::string& dev) const {
    fs::path p(dev);
    return (p.is_absolute() ? p : dir_ / p).string();
  }
  fs::path dir_;
  const Ancestor* chain_;
  media::OpenMode mode_;
};

// A device has one holder, and a stack holds its bases: no device may sit
// under two different bases of one stack. This also keeps two bases from
// reaching the same bytes, which Stack checks only within each base.
Status CheckOneHolderPerDevice(Stack& s) {
  std::map<std::string, size_t> owner;
  for (size_t i = 0; i < s.base_count(); ++i) {
    for (media::PmemDevice* d : s.base(i).Media()) {
      struct stat st;
      if (fstat(d->fd(), &st) != 0) return Status::FromErrno(errno, d->path());
      auto [it, fresh] = owner.emplace(FileId(st), i);
      if (!fresh && it->second != i)
        return Status::Invalid("device " + d->path() + " lies under both " + s.base_label(it->second) +
                               " and " + s.base_label(i) + " (a device has one holder)");
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<Stack>> BuildStack(const std::string& path, std::vector<TableLine> table,
                                          const Ancestor* chain, media::OpenMode mode) {
  FileOpener opener(fs::path(path).parent_path(), chain, mode);
  auto s = Stack::Build(path, std::move(table), opener);
  Status st = s.ok() ? CheckOneHolderPerDevice(**s) : s.status();
  if (!st.ok()) return Status::Error(st.err(), path + ": " + st.message());
  return s;
}

Result<std::unique_ptr<Stack>> OpenStackBelow(const std::string& path, std::string id, const Ancestor* above,
                                              media::OpenMode mode) {
  Ancestor here{std::move(id), above, above ? above->depth + 1 : 1};
  if (here.depth > kMaxStackDepth) return Status::Invalid("stack nesting deeper than " + std::to_string(kMaxStackDepth));
  auto table = ReadStackFile(path);
  if (!table.ok()) return table.status();
  return BuildStack(path, std::move(table).value(), &here, mode);
}

bool HasDeviceHeader(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[sizeof media::kMagic];
  return in.read(magic, sizeof magic) && std::memcmp(magic, media::kMagic, sizeof magic) == 0;
}

// Real persistent memory: a device-dax node is opened by its driver; a
// file on a DAX filesystem (not an emulated device's) is not used yet.
// Null: not real hardware (an emulated device file, or nothing yet).
Result<std::unique_ptr<dax::Device>> OpenReal(const std::string& path, media::OpenMode mode) {
  DG_ASSIGN_OR_RETURN(media::sysfs::PathKind k, media::sysfs::Classify(path));
  if (k.kind == media::sysfs::RealKind::kDevDax) {
    auto d = dax::DevDaxDevice::Open(path, k.devdax, true);
    if (!d.ok() && mode == media::OpenMode::kReadOnlyFallback && (d.status().err() == EACCES || d.status().err() == EROFS))
      d = dax::DevDaxDevice::Open(path, k.devdax, false);
    if (!d.ok()) return d.status();
    return std::unique_ptr<dax::Device>(std::move(d).value());
  }
  if (k.kind == media::sysfs::RealKind::kFsDaxFile && !HasDeviceHeader(path))
    return Status::Error(EOPNOTSUPP, path + " is a file on a DAX filesystem: daxguard cannot use one yet");
  return std::unique_ptr<dax::Device>();
}

Result<std::unique_ptr<dax::Device>> OpenAny(const std::string& path, const Ancestor* above, media::OpenMode mode) {
  std::string id = Identity(path);
  for (const Ancestor* a = above; a; a = a->up)
    if (a->id == id) return Status::Invalid("stack " + path + " includes itself");
  if (!LooksLikeStackFile(path)) {
    DG_ASSIGN_OR_RETURN(std::unique_ptr<dax::Device> real, OpenReal(path, mode));
    if (real) return real;
    auto d = dax::PmemDax::Open(path, mode);
    if (!d.ok()) return d.status();
    return std::unique_ptr<dax::Device>(std::move(d).value());
  }
  auto s = OpenStackBelow(path, std::move(id), above, mode);
  if (!s.ok()) return s.status();
  return std::unique_ptr<dax::Device>(std::move(s).value());
}

}  // namespace

Result<std::unique_ptr<dax::Device>> OpenDaxDevice(const std::string& path, media::OpenMode mode) {
  return OpenAny(path, nullptr, mode);
}

Result<std::unique_ptr<Stack>> OpenStack(const std::string& path, media::OpenMode mode) {
  if (!LooksLikeStackFile(path)) {
    // Opened only to say what is wrong with it: missing, unreadable, or a device.
    auto d = dax::PmemDax::Open(path, media::OpenMode::kReadOnlyFallback);
    if (!d.ok()) return d.status();
    return Status::Invalid(path + " is a device, not a stack");
  }
  return OpenStackBelow(path, Identity(path), nullptr, mode);
}

Status CreateStackFile(const std::string& path, const std::vector<TableLine>& table) {
  std::error_code ec;
  if (fs::symlink_status(path, ec).type() != fs::file_type::not_found)
    return Status::Error(EEXIST, path + " already exists");
  Ancestor top{Identity(path), nullptr, 1};
  auto s = BuildStack(path, table, &top, media::OpenMode::kReadWrite);
  if (!s.ok()) return s.status();
  return WriteStackFile(path, table);
}

}  // namespace daxguard::dm
