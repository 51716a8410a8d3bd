#include "dm/open.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "dax/pmem_dax.h"
#include "dm/media_map.h"
#include "dm/stack.h"
#include "dm/stack_file.h"

namespace daxguard::dm {
namespace {

namespace fs = std::filesystem;

// The stacks being opened, outermost first, by canonical path: one that
// shows up again below itself is a cycle.
using Chain = std::vector<std::string>;

Result<std::unique_ptr<dax::Device>> OpenAny(const std::string& path, const Chain& chain, media::OpenMode mode);

std::string Identity(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  return ec ? fs::absolute(path, ec).lexically_normal().string() : p.string();
}

// Opens a stack's bases relative to its directory.
class FileOpener final : public BaseOpener {
 public:
  FileOpener(fs::path dir, Chain chain, media::OpenMode mode)
      : dir_(std::move(dir)), chain_(std::move(chain)), mode_(mode) {}
  Result<std::string> Identify(const std::string& dev) override { return Identity(Resolve(dev)); }
  Result<std::unique_ptr<dax::Device>> Open(const std::string& dev) override {
    auto d = OpenAny(Resolve(dev), chain_, mode_);
    // Like Linux device-dax, which has no block device for dm to stack on.
    auto* pmem = d.ok() ? dynamic_cast<dax::PmemDax*>(d->get()) : nullptr;
    if (pmem && pmem->media().geometry().mode == media::Mode::kDevdax)
      return Status::Invalid(dev + " is a devdax device (used whole, by mapping only): it cannot be a stack's base");
    return d;
  }

 private:
  std::string Resolve(const std::string& dev) const {
    fs::path p(dev);
    return (p.is_absolute() ? p : dir_ / p).string();
  }
  fs::path dir_;
  Chain chain_;
  media::OpenMode mode_;
};

// A device has one holder, and a stack holds its bases: no device may sit
// under two different bases of one stack.
Status CheckOneHolderPerDevice(Stack& s) {
  std::map<std::string, size_t> owner;
  for (size_t i = 0; i < s.base_count(); ++i) {
    for (dax::PmemDax* d : BottomDevices(s.base(i))) {
      auto [it, fresh] = owner.emplace(Identity(d->media().path()), i);
      if (!fresh && it->second != i)
        return Status::Invalid("device " + d->media().path() + " lies under both " + s.base_label(it->second) +
                               " and " + s.base_label(i) + " (a device has one holder)");
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<dax::Device>> OpenStack(const std::string& path, std::vector<TableLine> table,
                                               const Chain& chain, media::OpenMode mode) {
  FileOpener opener(fs::path(path).parent_path(), chain, mode);
  auto s = Stack::Build(path, std::move(table), opener);
  Status st = s.ok() ? CheckOneHolderPerDevice(**s) : s.status();
  if (!st.ok()) return Status::Error(st.err(), path + ": " + st.message());
  return std::unique_ptr<dax::Device>(std::move(s).value());
}

Result<std::unique_ptr<dax::Device>> OpenAny(const std::string& path, const Chain& chain, media::OpenMode mode) {
  std::string id = Identity(path);
  if (std::find(chain.begin(), chain.end(), id) != chain.end())
    return Status::Invalid("stack " + path + " includes itself");
  if (!LooksLikeStackFile(path)) {
    auto d = dax::PmemDax::Open(path, mode);
    if (!d.ok()) return d.status();
    return std::unique_ptr<dax::Device>(std::move(d).value());
  }
  auto table = ReadStackFile(path);
  if (!table.ok()) return table.status();
  Chain below = chain;
  below.push_back(id);
  return OpenStack(path, std::move(table).value(), below, mode);
}

}  // namespace

Result<std::unique_ptr<dax::Device>> OpenDaxDevice(const std::string& path, media::OpenMode mode) {
  return OpenAny(path, {}, mode);
}

Status CreateStackFile(const std::string& path, const std::vector<TableLine>& table) {
  std::error_code ec;
  if (fs::symlink_status(path, ec).type() != fs::file_type::not_found)
    return Status::Error(EEXIST, path + " already exists");
  auto s = OpenStack(path, table, {Identity(path)}, media::OpenMode::kReadWrite);
  if (!s.ok()) return s.status();
  return WriteStackFile(path, table);
}

}  // namespace daxguard::dm
