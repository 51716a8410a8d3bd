// create-device, list, inject-error, clear-errors: the ndctl-style commands
// that talk to the device's "firmware" (the media layer) directly. Given a
// stack, they act on the devices below it, in the stack's sectors.
#include <cstdio>
#include <map>

#include "common/units.h"
#include "dm/media_map.h"
#include "dm/open.h"
#include "tools/cli_util.h"

namespace daxguard::tools {
namespace {

struct CreateArgs {
  std::string dev, size, clear_unit, kind = "pmem", mode = "fsdax", align = "2m";
};

int RunCreate(const CreateArgs& a) {
  const char* cmd = "create-device";
  auto size = ParseSizeArg("size", a.size);
  if (!size.ok()) return Fail(cmd, size.status());
  media::CreateOptions opt;
  opt.size = *size;
  opt.kind = a.kind == "cxl" ? media::Kind::kCxl : media::Kind::kPmem;
  auto unit = ParseSizeArg("clear unit", a.clear_unit.empty() ? (a.kind == "cxl" ? "64" : "256") : a.clear_unit);
  if (!unit.ok()) return Fail(cmd, unit.status());
  if (opt.kind == media::Kind::kCxl && *unit != kLineSize)
    return Fail(cmd, "cxl devices clear in 64-byte units; --clear-unit must be 64");
  opt.clear_unit = static_cast<uint32_t>(std::min<uint64_t>(*unit, UINT32_MAX));
  if (a.mode == "devdax") {
    auto align = ParseSizeArg("alignment", a.align);
    if (!align.ok()) return Fail(cmd, align.status());
    if (*align != 4096 && *align != (2u << 20) && *align != (1u << 30))
      return Fail(cmd, "alignment must be 4k, 2m or 1g");
    opt.mode = media::Mode::kDevdax;
    opt.align = *align;
  }
  auto dev = media::PmemDevice::Create(a.dev, opt);
  if (!dev.ok()) return Fail(cmd, dev.status());
  return 0;
}

Json DeviceJson(media::PmemDevice& d, bool media_errors) {
  const media::Geometry& g = d.geometry();
  media::ScrubStatus scrub = d.GetScrubStatus();
  Json j;
  j["dev"] = d.path();
  j["kind"] = KindName(g.kind);
  j["mode"] = ModeName(g.mode);
  j["size"] = g.size;
  if (g.mode == media::Mode::kDevdax) j["align"] = g.align;
  j["clear_unit"] = g.clear_unit;
  j["scrub_state"] = scrub.active ? "active" : "idle";
  j["scrub_count"] = scrub.count;
  if (scrub.active) j["scrub_progress"] = scrub.progress;
  std::vector<media::BadBlock> bbs = d.BadBlocks();
  j["badblock_count"] = 0;
  uint64_t sectors = 0;
  Json list = Json::array();
  for (const media::BadBlock& b : bbs) {
    sectors += b.count;
    if (media_errors) list.push_back({{"offset", b.sector}, {"length", b.count}});
  }
  // Like ndctl, the count is of bad 512-byte blocks, not of list entries.
  j["badblock_count"] = sectors;
  if (media_errors) {
    j["badblocks"] = list;
    if (g.kind == media::Kind::kCxl) {
      Json me = Json::array();
      for (const media::MediaError& e : d.MediaErrors())
        for (uint64_t off = e.offset; off < e.offset + e.length; off += kLineSize)
          me.push_back({{"offset", off}, {"length", kLineSize}, {"source", media::SourceName(e.source)}});
      j["media_errors"] = me;
    }
  }
  return j;
}

struct ListArgs {
  std::string dev;
  bool media_errors = false;
};

// A stack lists in its own sectors, translated up from every device below.
Json StackJson(const std::string& path, dax::Device& stack, bool media_errors) {
  Json devices = Json::array();
  for (dax::PmemDax* d : dm::BottomDevices(stack)) devices.push_back(d->media().path());
  Json j{{"dev", path}, {"kind", "dm"}, {"size", stack.size()}, {"devices", devices}};
  uint64_t sectors = 0;
  Json list = Json::array();
  for (const media::BadBlock& b : stack.BadBlocks()) {
    sectors += b.count;
    list.push_back({{"offset", b.sector}, {"length", b.count}});
  }
  j["badblock_count"] = sectors;
  if (media_errors) j["badblocks"] = list;
  return j;
}

int RunList(const ListArgs& a) {
  auto d = dm::OpenDaxDevice(a.dev);
  if (!d.ok()) return Fail("list", d.status());
  auto* pmem = dynamic_cast<dax::PmemDax*>(d->get());
  PrintJson(pmem ? DeviceJson(pmem->media(), a.media_errors) : StackJson(a.dev, **d, a.media_errors));
  return 0;
}

struct InjectArgs {
  std::string dev, block, count = "1", source = "injected";
  bool no_notify = false, saturate = false, uninject = false, status = false;
};

// Injected errors in the blocks of `dev`, translated up from the devices below a stack.
Json InjectedJson(const std::string& path, dax::Device& dev) {
  std::vector<dm::ByteRange> blocks;
  for (dax::PmemDax* bottom : dm::BottomDevices(dev)) {
    for (const media::MediaError& e : bottom->media().MediaErrors()) {
      if (e.source != media::Source::kInjected) continue;
      for (const dm::ByteRange& r : dm::MapFromMedia(dev, *bottom, e.offset, e.length)) {
        uint64_t first = r.off / kSectorSize, last = (r.off + r.len - 1) / kSectorSize;
        blocks.push_back({first, last + 1 - first});
      }
    }
  }
  Json list = Json::array();
  for (const dm::ByteRange& b : dm::MergeRanges(std::move(blocks))) list.push_back({{"block", b.off}, {"count", b.len}});
  return Json{{"dev", path}, {"badblocks", list}};
}

// Injects into (or uninjects from) the devices under a stack's blocks. The
// whole range is translated first, so a range touching the error target
// changes nothing.
Status InjectOnStack(dax::Device& stack, uint64_t block, uint64_t count, const media::InjectOptions& opt,
                     bool uninject) {
  uint64_t blocks = stack.size() / kSectorSize;
  if (count == 0) return Status::Invalid("count must be at least 1");
  if (block > blocks || count > blocks - block)
    return Status::Range("blocks " + std::to_string(block) + "+" + std::to_string(count) +
                         " are beyond the stack end (" + std::to_string(blocks) + " blocks)");
  auto extents = dm::MapToMedia(stack, block * kSectorSize, count * kSectorSize);
  if (!extents.ok()) return extents.status();
  for (const dm::MediaExtent& e : *extents) {
    media::PmemDevice& m = e.dev->media();
    DG_RETURN_IF_ERROR(uninject ? m.Uninject(e.offset / kSectorSize, e.len / kSectorSize)
                                : m.Inject(e.offset / kSectorSize, e.len / kSectorSize, opt));
  }
  return Status::Ok();
}

int RunInject(const InjectArgs& a) {
  const char* cmd = "inject-error";
  auto d = dm::OpenDaxDevice(a.dev);
  if (!d.ok()) return Fail(cmd, d.status());
  if (a.status) {
    PrintJson(InjectedJson(a.dev, **d));
    return 0;
  }
  if (a.block.empty()) return Fail(cmd, "--block is required");
  auto block = ParseSizeArg("block", a.block);
  if (!block.ok()) return Fail(cmd, block.status());
  auto count = ParseSizeArg("count", a.count);
  if (!count.ok()) return Fail(cmd, count.status());
  static const std::map<std::string, media::Source> kSources = {
      {"injected", media::Source::kInjected}, {"external", media::Source::kExternal},
      {"internal", media::Source::kInternal}};
  auto src = kSources.find(a.source);
  if (src == kSources.end()) return Fail(cmd, "unknown --source '" + a.source + "'");
  media::InjectOptions opt{!a.no_notify, a.saturate, src->second};
  Status s;
  if (auto* pmem = dynamic_cast<dax::PmemDax*>(d->get()))
    s = a.uninject ? pmem->media().Uninject(*block, *count) : pmem->media().Inject(*block, *count, opt);
  else
    s = InjectOnStack(**d, *block, *count, opt, a.uninject);
  return s.ok() ? 0 : Fail(cmd, s);
}

struct ClearArgs {
  std::string dev;
  bool scrub = false;
};

Status ClearOnMedia(const dm::MediaExtent& e) {
  media::PmemDevice& m = e.dev->media();
  // Round outward to whole clear units: the firmware clears nothing smaller.
  uint64_t lo = AlignDown(e.offset, m.clear_unit());
  uint64_t hi = std::min<uint64_t>(AlignUp(e.offset + e.len, m.clear_unit()), m.size());
  DG_RETURN_IF_ERROR(m.ClearPoison(lo, hi - lo));
  return m.ForgetKnown(lo, hi - lo);
}

int RunClear(const ClearArgs& a) {
  const char* cmd = "clear-errors";
  auto d = dm::OpenDaxDevice(a.dev);
  if (!d.ok()) return Fail(cmd, d.status());
  if (a.scrub) {
    for (dax::PmemDax* bottom : dm::BottomDevices(**d)) {
      Status s = bottom->media().BeginScrub(static_cast<uint32_t>(getpid()));
      if (s.ok()) s = bottom->media().RunScrub();
      if (!s.ok()) return Fail(cmd, s);
    }
  }
  uint64_t ranges = 0, sectors = 0;
  for (const media::BadBlock& b : (*d)->BadBlocks()) {
    // A stack's known errors are cleared on the devices below it.
    auto extents = dm::MapToMedia(**d, b.sector * kSectorSize, b.count * kSectorSize);
    Status s = extents.status();
    for (size_t i = 0; s.ok() && i < extents->size(); ++i) s = ClearOnMedia((*extents)[i]);
    if (!s.ok()) return Fail(cmd, "clearing sectors " + std::to_string(b.sector) + "+" +
                                      std::to_string(b.count) + " failed: " + s.message());
    ++ranges;
    sectors += b.count;
  }
  std::printf("cleared %llu bad blocks in %llu ranges on %s (their data now reads as zeroes)\n",
              static_cast<unsigned long long>(sectors), static_cast<unsigned long long>(ranges),
              a.dev.c_str());
  return 0;
}

}  // namespace

void AddDeviceCommands(CLI::App& app, int* rc) {
  auto ca = std::make_shared<CreateArgs>();
  auto* c = app.add_subcommand("create-device", "create an emulated device (one sparse file)");
  c->add_option("DEV", ca->dev, "device file to create")->required();
  c->add_option("-s,--size", ca->size, "size, e.g. 1g")->required();
  c->add_option("--clear-unit", ca->clear_unit, "firmware clear unit in bytes (power of two, 64..4096; default 256, cxl 64)");
  c->add_option("--kind", ca->kind, "pmem or cxl")->check(CLI::IsMember({"pmem", "cxl"}));
  c->add_option("--mode", ca->mode, "fsdax or devdax")->check(CLI::IsMember({"fsdax", "devdax"}));
  c->add_option("--align", ca->align, "device-dax fault size: 4k, 2m or 1g");
  c->callback([ca, rc] { *rc = RunCreate(*ca); });

  auto la = std::make_shared<ListArgs>();
  auto* l = app.add_subcommand("list", "describe a device as JSON");
  l->add_option("DEV", la->dev, "device or stack file")->required();
  l->add_flag("-M,--media-errors", la->media_errors, "include the bad block list");
  l->callback([la, rc] { *rc = RunList(*la); });

  auto ia = std::make_shared<InjectArgs>();
  auto* i = app.add_subcommand("inject-error", "inject media errors (poison)");
  i->add_option("DEV", ia->dev, "device or stack file")->required();
  i->add_option("-B,--block", ia->block, "first 512-byte block");
  i->add_option("-n,--count", ia->count, "number of blocks (default 1)");
  i->add_flag("-N,--no-notify", ia->no_notify, "leave the error latent until scrub or consumption");
  i->add_flag("-S,--saturate", ia->saturate, "poison the whole block, not only its first clear unit");
  i->add_flag("-d,--uninject", ia->uninject, "remove injected errors (known bad blocks stay listed)");
  i->add_flag("-t,--status", ia->status, "list injected errors");
  i->add_option("--source", ia->source, "injected, external or internal (cxl media error source)");
  i->callback([ia, rc] { *rc = RunInject(*ia); });

  auto cla = std::make_shared<ClearArgs>();
  auto* cl = app.add_subcommand("clear-errors", "clear every known error (its data is lost)");
  cl->add_option("DEV", cla->dev, "device or stack file")->required();
  cl->add_flag("--scrub", cla->scrub, "scrub first so latent errors are cleared too");
  cl->callback([cla, rc] { *rc = RunClear(*cla); });
}

}  // namespace daxguard::tools
