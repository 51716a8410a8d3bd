// make_seeds OUT: writes the binary seed corpora (fs_image, fs_log,
// ops_codec, device_file) under OUT/<harness>/, from devices and
// filesystems the library makes as the tools would, trimmed to the bytes
// that matter. The text corpora (units, io_cmd, dm_table, stack_file) are
// written by hand.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "fs/meta_log.h"
#include "fuzz/device_input.h"
#include "fuzz/fs_input.h"

using namespace daxguard;
namespace stdfs = std::filesystem;

namespace {

std::string g_out;
std::set<std::string> g_ops_written;

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "make_seeds: %s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

void Seed(const std::string& harness, const std::string& name, const std::string& bytes) {
  stdfs::create_directories(g_out + "/" + harness);
  fuzz::WriteFile(g_out + "/" + harness + "/" + name, bytes);
}

std::string ReadDev(dax::Device& d, uint64_t off, uint64_t len) {
  std::string s(len, '\0');
  (void)d.ReadAll(off, s.data(), len);  // poison reads as zeroes here
  return s;
}

std::string TrimZeroes(std::string s) {
  size_t end = s.find_last_not_of('\0');
  s.resize(end == std::string::npos ? 0 : end + 1);
  return s;
}

// The image's metadata as both filesystem harnesses take it, and each
// distinct record payload for ops_codec.
void SeedsFromImage(dax::Device& dev, const std::string& name) {
  fuzz::FsLayout l;
  fs::MetaLog log(dev, l.g);
  std::vector<std::string> payloads;
  fs::ReplayReport rep;
  Check(log.Replay([&](const std::vector<fs::Op>& ops) {
          payloads.emplace_back();
          fs::EncodeOps(ops, &payloads.back());
          return Status::Ok();
        }, &rep),
        "replay");
  const fs::SuperBlock& sb = log.super();
  const int slot = static_cast<int>(sb.active_slot);
  fs::CleanEnd end{};
  (void)dev.ReadAll(l.CleanEnd(0), &end, sizeof end);

  fuzz::ImageInput img;
  img.flags = 1 | 2 | (slot ? 4 : 0);
  img.super[0] = ReadDev(dev, l.Super(0), fuzz::kSuperBytes) + ReadDev(dev, l.CleanEnd(0), sizeof end);
  img.log[0] = ReadDev(dev, l.Slot(0, slot), log.tail());
  Seed("fs_image", name, fuzz::EncodeImage(img));

  fuzz::LogInput in;
  in.version = static_cast<uint8_t>(sb.version - 1);
  in.flags = static_cast<uint8_t>(slot | (end.magic == fs::kCleanEndMagic ? 2 : 0) | (sb.protection ? 16 : 0));
  in.start = static_cast<uint8_t>(sb.log_start_seq - 1);
  in.generation = static_cast<uint8_t>(sb.generation - 1);
  for (const std::string& p : payloads) in.records.push_back({0, p});
  Seed("fs_log", name, fuzz::EncodeLog(in));
  // A few distinct payloads per image: the snapshot's and the first changes'.
  for (size_t i = 0, kept = 0; i < payloads.size() && kept < 6; ++i)
    if (g_ops_written.insert(payloads[i]).second) Seed("ops_codec", name + "-" + std::to_string(kept++), payloads[i]);
}

struct Fs {
  std::unique_ptr<dax::PmemDax> dev;
  std::unique_ptr<fs::Filesystem> fs;
  std::vector<std::unique_ptr<fs::File>> open;  // handles open until the image is taken
  media::PmemDevice& media() { return dev->media(); }
};

Fs MakeFs(const std::string& path, fs::DataProtection protection) {
  unlink(path.c_str());
  media::CreateOptions opt;
  opt.size = fuzz::kFsDeviceSize;
  Check(media::PmemDevice::Create(path, opt).status(), "create");
  auto d = dax::PmemDax::Open(path);
  Check(d.status(), "open");
  Check(fs::Filesystem::Mkfs(**d, protection), "mkfs");
  auto f = fs::Filesystem::Mount(**d);
  Check(f.status(), "mount");
  return {std::move(d).value(), std::move(f).value(), {}};
}

std::unique_ptr<fs::File> Put(fs::Filesystem& f, const std::string& path, uint64_t len, uint8_t byte) {
  auto file = f.Open(path, fs::kCreate);
  Check(file.status(), path.c_str());
  std::vector<uint8_t> data(len, byte);
  Check((*file)->Write(0, data.data(), len).status(), "write");
  return std::move(file).value();
}

uint64_t DeviceOffsetOf(fs::File& f) {
  auto m = f.Fiemap();
  Check(m.status(), "fiemap");
  return m->at(0).physical;
}

// Builds a filesystem with `make` and seeds from it: after a clean unmount,
// or with `crash`, as it is while still mounted (no clean-end record, files
// still open).
void FsSeed(const std::string& name, const std::function<void(Fs&)>& make, bool crash = false,
            fs::DataProtection protection = fs::DataProtection::kNone) {
  std::string path = g_out + "/.image";
  Fs f = MakeFs(path, protection);
  make(f);
  if (crash) SeedsFromImage(*f.dev, name);
  f.open.clear();
  f.fs.reset();
  if (!crash) SeedsFromImage(*f.dev, name);
  f.dev.reset();
  unlink(path.c_str());
}

void FsSeeds() {
  FsSeed("fresh", [](Fs&) {});
  FsSeed("parity", [](Fs& f) {
    Check(f.fs->Mkdir("/d"), "mkdir");
    Put(*f.fs, "/d/f", 100000, 'p');
  }, /*crash=*/true, fs::DataProtection::kParity);
  FsSeed("tree", [](Fs& f) {
    Check(f.fs->Mkdir("/d"), "mkdir");
    Check(f.fs->Mkdir("/d/e"), "mkdir");
    Put(*f.fs, "/d/e/small", 100, 'a');
    Put(*f.fs, "/big", 3 << 20, 'b');  // 2 MiB extents
    Check(f.fs->Link("/big", "/d/big-link"), "link");
    Check(f.fs->Rename("/d/e/small", "/d/moved"), "rename");
  });
  FsSeed("reflink-truncate-punch", [](Fs& f) {
    auto a = Put(*f.fs, "/a", 64 << 10, 'a');
    auto b = Put(*f.fs, "/b", 0, 'b');
    Check(b->CloneFrom(*a, 0, 0, 0), "reflink");
    Check(a->Truncate(8192), "truncate");
    Check(b->Fallocate(fs::kFallocPunchHole | fs::kFallocKeepSize, 4096, 8192), "punch");
    Check(b->Fallocate(0, 1 << 20, 1 << 20), "falloc");
    Check(f.fs->Unlink("/a"), "unlink");
  });
  FsSeed("damage-quarantine", [](Fs& f) {
    auto a = Put(*f.fs, "/damaged", 16 << 10, 'd');
    Check(f.media().Inject((DeviceOffsetOf(*a) + 4096) / kSectorSize, 1, {true, true, media::Source::kInjected}),
          "inject");
    // A free block far from any file: quarantined.
    Check(f.media().Inject((12ull << 20) / kSectorSize, 1, {true, true, media::Source::kInjected}), "inject");
  });
  FsSeed("unlinked-open-crash", [](Fs& f) {
    f.open.push_back(Put(*f.fs, "/open", 4096, 'o'));
    Check(f.fs->Unlink("/open"), "unlink");
  }, /*crash=*/true);
  FsSeed("compacted", [](Fs& f) {
    // Enough records to fill half a slot: the log moves to the other slot.
    auto a = Put(*f.fs, "/churn", 4096, 'c');
    fs::SuperBlock sb{};
    for (uint64_t i = 0; sb.active_slot == 0; ++i) {
      Check(a->Truncate(i % 2 ? 4096 : 8192), "truncate");
      (void)f.dev->ReadAll(0, &sb, sizeof sb);
    }
    Put(*f.fs, "/after", 4096, 'z');
  });
}

// --- device files
std::string ReadFileBytes(const std::string& path, uint64_t off, uint64_t len) {
  std::string s(len, '\0');
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f || std::fseek(f, static_cast<long>(off), SEEK_SET) != 0) std::exit(1);
  s.resize(std::fread(s.data(), 1, len, f));
  std::fclose(f);
  return s;
}

// The device file's header and its tables' live bytes (entries in use,
// filters up to their last set bit).
void DeviceSeed(const std::string& name, const media::CreateOptions& opt,
                const std::function<void(media::PmemDevice&)>& make, uint8_t flags = 0) {
  std::string path = g_out + "/.device";
  unlink(path.c_str());
  auto d = media::PmemDevice::Create(path, opt);
  Check(d.status(), "create device");
  make(**d);
  d->reset();
  fuzz::DeviceImage img;
  img.flags = flags;
  std::string head = ReadFileBytes(path, 0, sizeof img.header);
  std::memcpy(&img.header, head.data(), head.size());
  for (int i = 0; i < 4; ++i) {
    uint64_t off = img.WindowOffset(i);
    if (i % 2) {
      const media::Geometry& g = img.header.geo;
      img.windows[i] = TrimZeroes(ReadFileBytes(path, off, i == 1 ? g.poison_filter_bytes : g.badblocks_filter_bytes));
      continue;
    }
    media::RangeTableHeader h;
    std::memcpy(&h, ReadFileBytes(path, off, sizeof h).data(), sizeof h);
    img.windows[i] = ReadFileBytes(path, off, media::RangeTable::BytesFor(h.count));
  }
  // Then: inject 2 sectors at sector 16, scrub.
  img.params = std::string("\x00\x10\x00\x00\x00\x01\x07", 7);
  Seed("device_file", name, fuzz::EncodeDeviceImage(img));
  unlink(path.c_str());
}

media::CreateOptions Opt(uint64_t size, uint32_t clear_unit = 256, media::Kind kind = media::Kind::kPmem) {
  media::CreateOptions o;
  o.size = size;
  o.clear_unit = clear_unit;
  o.kind = kind;
  return o;
}

void DeviceSeeds() {
  const media::InjectOptions known{true, false, media::Source::kInjected};
  const media::InjectOptions latent{false, true, media::Source::kExternal};
  DeviceSeed("fresh", Opt(1 << 20), [](media::PmemDevice&) {});
  DeviceSeed("errors", Opt(1 << 20), [&](media::PmemDevice& d) {
    Check(d.Inject(8, 3, known), "inject");
    Check(d.Inject(100, 1, latent), "inject");
    Check(d.Inject(2000, 4, known), "inject");
    for (const media::BadBlock& b : d.Unacknowledged())
      if (b.sector == 8) Check(d.Acknowledge(b), "ack");
  }, /*flags=*/2);
  DeviceSeed("cleared-and-uninjected", Opt(2 << 20, 4096), [&](media::PmemDevice& d) {
    Check(d.Inject(40, 16, known), "inject");
    Check(d.ClearPoison(40 * kSectorSize, 4096), "clear");
    Check(d.Uninject(48, 2), "uninject");
  });
  DeviceSeed("cxl", Opt(1 << 20, 64, media::Kind::kCxl), [&](media::PmemDevice& d) {
    Check(d.Inject(3, 1, known), "inject");
    Check(d.Inject(5, 1, {true, false, media::Source::kInternal}), "inject");
  });
  media::CreateOptions devdax = Opt(4 << 20);
  devdax.mode = media::Mode::kDevdax;
  devdax.align = 2 << 20;
  DeviceSeed("devdax", devdax, [&](media::PmemDevice& d) { Check(d.Inject(4096, 1, known), "inject"); });
  DeviceSeed("truncated", Opt(1 << 20), [](media::PmemDevice&) {}, /*flags=*/1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT\n");
    return 2;
  }
  g_out = argv[1];
  FsSeeds();
  DeviceSeeds();
  return 0;
}
