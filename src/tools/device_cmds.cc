// create-device, list, inject-error, clear-errors: the ndctl-style commands
// that talk to the device's "firmware" (the media layer) directly. Given a
// stack, they act on the devices below it, in the stack's sectors.
#include <cstdio>
#include <filesystem>
#include <map>

#include "common/units.h"
#include "dm/stack_file.h"
#include "dm/open.h"
#include "media/linux_sysfs.h"
#include "tools/cli_util.h"

namespace daxguard::tools {
namespace {

struct CreateArgs {
  std::string dev, size, clear_unit, kind = "pmem", mode = "fsdax", align;
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
  if (a.mode != "devdax" && !a.align.empty())
    return Fail(cmd, "--align is the fault size of a devdax device; it does not apply to --mode " + a.mode);
  if (a.mode == "devdax") {
    auto align = ParseSizeArg("alignment", a.align.empty() ? "2m" : a.align);
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

// Like ndctl, the count is of bad 512-byte blocks, not of list entries.
uint64_t SectorCount(const std::vector<media::BadBlock>& bbs) {
  uint64_t sectors = 0;
  for (const media::BadBlock& b : bbs) sectors += b.count;
  return sectors;
}

// The region is the whole device file; a namespace's data begins at
// data_off, so region sector = device sector + data_off / 512 (as ndctl's
// region and namespace badblocks differ by the namespace's offset).
uint64_t RegionSectorShift(const media::Geometry& g) { return g.data_off / kSectorSize; }

Json DeviceJson(media::PmemDevice& d, bool media_errors) {
  const media::Geometry& g = d.geometry();
  media::ScrubStatus scrub = d.GetScrubStatus();
  bool devdax = g.mode == media::Mode::kDevdax;
  Json j;
  j["dev"] = d.path();
  j["kind"] = KindName(g.kind);
  j["mode"] = ModeName(g.mode);
  j["size"] = g.size;
  if (devdax) {
    j["align"] = g.align;
    j["region_offset"] = g.data_off;
  }
  j["clear_unit"] = g.clear_unit;
  j["scrub_state"] = scrub.active ? "active" : "idle";
  j["scrub_count"] = scrub.count;
  if (scrub.active) j["scrub_progress"] = scrub.progress;
  std::vector<media::BadBlock> bbs = d.BadBlocks();
  j["badblock_count"] = SectorCount(bbs);
  if (media_errors) {
    j["badblocks"] = BadBlocksJson(bbs);
    // devdax keeps a badblocks list (Linux's does not), in both terms.
    if (devdax) j["region_badblocks"] = BadBlocksJson(bbs, RegionSectorShift(g));
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

// A stack lists in its own sectors, translated up from every device below;
// with -M each device below also lists its own errors in its own sectors.
Json StackJson(const std::string& path, dax::Device& stack, bool media_errors) {
  Json devices = Json::array(), below = Json::array();
  for (media::PmemDevice* d : stack.Media()) {
    devices.push_back(d->path());
    std::vector<media::BadBlock> bbs = d->BadBlocks();
    below.push_back({{"dev", d->path()}, {"badblock_count", SectorCount(bbs)}, {"badblocks", BadBlocksJson(bbs)}});
  }
  Json j{{"dev", path}, {"kind", "dm"}, {"size", stack.size()}, {"devices", devices}};
  std::vector<media::BadBlock> bbs = stack.BadBlocks();
  j["badblock_count"] = SectorCount(bbs);
  if (media_errors) {
    j["badblocks"] = BadBlocksJson(bbs);
    j["device_badblocks"] = below;
  }
  return j;
}

// A device-dax node, from sysfs, in the terms of an emulated devdax
// device: its sectors, and with -M its region's errors clipped to it.
int ListDevDax(const ListArgs& a, const std::string& node) {
  auto d = media::sysfs::DescribeDevDax("/sys", node);
  if (!d.ok()) return Fail("list", d.status());
  Json j{{"dev", a.dev},    {"chardev", node},        {"kind", "pmem"},
         {"mode", "devdax"}, {"size", d->size},        {"align", d->align},
         {"region", std::filesystem::path(d->region_dir).filename().string()},
         {"region_offset", d->phys - d->region_phys}};
  auto bad = media::sysfs::DevDaxBadBlocks(*d);
  if (!bad.ok()) return Fail("list", bad.status().ToString() + " (the region's errors are root's to read)");
  j["badblock_count"] = SectorCount(*bad);
  if (a.media_errors) {
    j["badblocks"] = BadBlocksJson(*bad);
    j["region_badblocks"] = BadBlocksJson(*bad, (d->phys - d->region_phys) / kSectorSize);
  }
  PrintJson(j);
  return 0;
}

int RunList(const ListArgs& a) {
  auto kind = media::sysfs::Classify(a.dev);
  if (!kind.ok()) return Fail("list", kind.status());
  if (kind->kind == media::sysfs::RealKind::kDevDax) return ListDevDax(a, kind->devdax);
  auto d = dm::OpenDaxDevice(a.dev, kReadOnly);
  if (!d.ok()) return Fail("list", d.status());
  bool stack = dm::LooksLikeStackFile(a.dev);
  PrintJson(stack ? StackJson(a.dev, **d, a.media_errors) : DeviceJson(*(*d)->Media().front(), a.media_errors));
  return 0;
}

struct InjectArgs {
  std::string dev, block, count = "1", source = "injected";
  bool no_notify = false, saturate = false, uninject = false, status = false;
};

// Injected errors in the blocks of `dev`, translated up from the devices below a stack.
Json InjectedJson(const std::string& path, dax::Device& dev) {
  std::vector<ByteRange> blocks;
  for (media::PmemDevice* bottom : dev.Media()) {
    for (const media::MediaError& e : bottom->MediaErrors()) {
      if (e.source != media::Source::kInjected) continue;
      for (const ByteRange& r : dev.MapFromMedia(*bottom, e.offset, e.length)) {
        uint64_t first = r.off / kSectorSize, last = (r.off + r.len - 1) / kSectorSize;
        blocks.push_back({first, last + 1 - first});
      }
    }
  }
  Json list = Json::array();
  for (const ByteRange& b : dm::MergeRanges(std::move(blocks))) list.push_back({{"block", b.off}, {"count", b.len}});
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
  auto extents = stack.MapToMedia(block * kSectorSize, count * kSectorSize);
  if (!extents.ok()) return extents.status();
  for (const dax::MediaRun& e : *extents) {
    media::PmemDevice& m = *e.media;
    DG_RETURN_IF_ERROR(uninject ? m.Uninject(e.offset / kSectorSize, e.len / kSectorSize)
                                : m.Inject(e.offset / kSectorSize, e.len / kSectorSize, opt));
  }
  return Status::Ok();
}

int RunInject(const InjectArgs& a) {
  const char* cmd = "inject-error";
  auto d = dm::OpenDaxDevice(a.dev, a.status ? kReadOnly : kReadWrite);
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
  if (!dm::LooksLikeStackFile(a.dev)) {
    media::PmemDevice& m = *(*d)->Media().front();
    s = a.uninject ? m.Uninject(*block, *count) : m.Inject(*block, *count, opt);
  } else
    s = InjectOnStack(**d, *block, *count, opt, a.uninject);
  return s.ok() ? 0 : Fail(cmd, s);
}

struct ClearArgs {
  std::string dev, block, count;
  bool scrub = false, region = false;
};

// Adds to *untold the sectors cleared before any holder heard of them.
Status ClearOnMedia(const dax::MediaRun& e, uint64_t* untold) {
  media::PmemDevice& m = *e.media;
  // Round outward to whole clear units: the firmware clears nothing smaller.
  uint64_t lo = AlignDown(e.offset, m.clear_unit());
  uint64_t hi = std::min<uint64_t>(AlignUp(e.offset + e.len, m.clear_unit()), m.size());
  uint64_t n = 0;
  Status s = m.ClearErrors(lo, hi - lo, &n);
  *untold += n;
  return s;
}

// The sectors of `dev` to clear: all of it, or -B/-n, which --region reads
// as region sectors of a devdax device (what `list -M` shows as
// region_badblocks, and what ndctl's region badblocks would say).
Result<ByteRange> ClearRange(const ClearArgs& a, dax::Device& dev) {
  uint64_t sectors = dev.size() / kSectorSize;
  if (a.region && !IsDevdax(dev))
    return Status::Invalid("--region reads -B as a region sector of a devdax device; " + a.dev + " is not one");
  if (a.block.empty()) {
    if (!a.count.empty() || a.region) return Status::Invalid("-n and --region need -B");
    return ByteRange{0, sectors};
  }
  auto block = ParseSizeArg("block", a.block);
  if (!block.ok()) return block.status();
  auto count = ParseSizeArg("count", a.count.empty() ? "1" : a.count);
  if (!count.ok()) return count.status();
  if (*count == 0) return Status::Invalid("count must be at least 1");
  uint64_t shift = a.region ? RegionSectorShift(dev.Media().front()->geometry()) : 0;
  if (*block < shift)
    return Status::Range("region sector " + a.block + " is before the device's data (region sector " +
                         std::to_string(shift) + ")");
  uint64_t first = *block - shift;
  if (first > sectors || *count > sectors - first)
    return Status::Range("blocks " + a.block + "+" + std::to_string(*count) + " reach past the device's last block (" +
                         std::to_string(shift + sectors - 1) + ")");
  return ByteRange{first, *count};
}

int RunClear(const ClearArgs& a) {
  const char* cmd = "clear-errors";
  auto d = dm::OpenDaxDevice(a.dev);
  if (!d.ok()) return Fail(cmd, d.status());
  auto range = ClearRange(a, **d);  // checked before anything changes
  if (!range.ok()) return Fail(cmd, range.status());
  if (a.scrub) {
    for (media::PmemDevice* bottom : (*d)->Media()) {
      Status s = bottom->BeginScrub(static_cast<uint32_t>(getpid()));
      if (s.ok()) s = bottom->RunScrub();
      if (!s.ok()) return Fail(cmd, s);
    }
  }
  uint64_t ranges = 0, sectors = 0, untold = 0;
  for (const media::BadBlock& b : (*d)->BadBlocks()) {
    uint64_t lo = std::max(b.sector, range->off), hi = std::min(b.sector + b.count, range->off + range->len);
    if (lo >= hi) continue;
    // A stack's known errors are cleared on the devices below it.
    auto extents = (*d)->MapToMedia(lo * kSectorSize, (hi - lo) * kSectorSize);
    Status s = extents.status();
    for (size_t i = 0; s.ok() && i < extents->size(); ++i) s = ClearOnMedia((*extents)[i], &untold);
    if (!s.ok()) return Fail(cmd, "clearing sectors " + std::to_string(lo) + "+" +
                                      std::to_string(hi - lo) + " failed: " + s.message());
    ++ranges;
    sectors += hi - lo;
  }
  std::printf("cleared %llu bad blocks in %llu ranges on %s (their data now reads as zeroes)\n",
              static_cast<unsigned long long>(sectors), static_cast<unsigned long long>(ranges),
              a.dev.c_str());
  if (untold)
    std::printf("%llu of them no holder had been told of yet: the next one to register (a mount) is told "
                "their data is lost\n",
                static_cast<unsigned long long>(untold));
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
  c->add_option("--align", ca->align, "devdax fault size: 4k, 2m (default) or 1g; devdax only");
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
  auto* cl = app.add_subcommand("clear-errors", "clear the known errors, all or those in -B/-n (their data is lost)");
  cl->add_option("DEV", cla->dev, "device or stack file")->required();
  cl->add_flag("--scrub", cla->scrub, "scrub first so latent errors are cleared too");
  cl->add_option("-B,--block", cla->block, "clear only the known errors from this 512-byte block");
  cl->add_option("-n,--count", cla->count, "number of blocks from -B (default 1)");
  cl->add_flag("--region", cla->region, "devdax: -B is a region sector (list -M's region_badblocks)");
  cl->callback([cla, rc] { *rc = RunClear(*cla); });
}

}  // namespace daxguard::tools
