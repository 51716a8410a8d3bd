// The second half of `daxguard demo`: the filesystem on the same device,
// and what every kind of poison (data shared by reflink, metadata, free
// space) turns into for the people who own it.
#include <cstdio>
#include <iostream>
#include <random>
#include <vector>

#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "tools/cli_util.h"
#include "tools/fs_io.h"

namespace daxguard::tools {
namespace {

void Step(const char* what) { std::printf("\n==> %s\n", what); }

void ShowHealth(fs::Filesystem& f) {
  fs::HealthReport h = f.Health();
  if (h.files.empty()) std::printf("    damaged files: none\n");
  for (const fs::DamagedFile& d : h.files)
    for (auto [off, len] : d.ranges)
      std::printf("    damaged: %s bytes %llu..%llu\n", d.path.c_str(), static_cast<unsigned long long>(off),
                  static_cast<unsigned long long>(off + len - 1));
  for (auto [off, len] : h.quarantined)
    std::printf("    quarantined free space: device bytes %llu..%llu\n", static_cast<unsigned long long>(off),
                static_cast<unsigned long long>(off + len - 1));
  std::printf("    metadata blocks rebuilt from their other copy: %llu; read-only: %s\n",
              static_cast<unsigned long long>(h.metadata_repairs), h.read_only ? "yes" : "no");
}

void ShowRead(fs::Filesystem& f, const std::string& path, uint64_t off, uint64_t len) {
  auto file = f.Open(path);
  std::vector<uint8_t> buf(len);
  auto r = (*file)->Read(off, buf.data(), len);
  if (r.ok())
    std::printf("    read %s at %llu: %zu of %llu bytes\n", path.c_str(), static_cast<unsigned long long>(off), *r,
                static_cast<unsigned long long>(len));
  else
    std::printf("    read %s at %llu: %s\n", path.c_str(), static_cast<unsigned long long>(off),
                r.status().message().c_str());
}

uint64_t DeviceOffset(fs::File& f, uint64_t off) {
  auto extents = f.Fiemap();
  for (const fs::FiemapExtent& e : *extents)
    if (off >= e.logical && off < e.logical + e.length) return e.physical + (off - e.logical);
  return 0;
}

Status PutSample(fs::Filesystem& f, const std::string& path, uint64_t size, uint64_t seed) {
  auto file = f.Open(path, fs::kCreate | fs::kTruncate);
  if (!file.ok()) return file.status();
  std::vector<uint8_t> data(size);
  std::mt19937_64 rng(seed);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  auto w = (*file)->Write(0, data.data(), data.size());
  return w.ok() ? (*file)->Fsync() : w.status();
}

// What an application with the file mapped sees: the page is revoked, the
// load raises SIGBUS (BUS_MCEERR_AR), and the library names the file offset.
Status ShowMappedPoison(fs::Filesystem& f, media::PmemDevice& m) {
  auto table = f.Open("/db/table");
  if (!table.ok()) return table.status();
  MapSession maps = FileMapSession(**table);
  auto run = [&maps](const char* text) {
    auto c = ParseMapCommand(text);
    return c.ok() ? maps.Run(*c, std::cout) : c.status();
  };
  DG_RETURN_IF_ERROR(run("mmap -r 0 4m"));
  DG_RETURN_IF_ERROR(run("mread 0 4m"));
  std::printf("    mread 0 4m: every page loads\n");
  DG_RETURN_IF_ERROR(m.Inject(DeviceOffset(**table, (1 << 20) + 512) / 512, 1, {}));
  Status s = run("mread 0 4m");
  std::printf("    mread 0 4m: %s\n", s.ok() ? "every page loads (?)" : s.message().c_str());
  ShowHealth(f);
  return Status::Ok();
}

Status Run(const std::string& path) {
  auto dev = dax::PmemDax::Open(path);
  if (!dev.ok()) return dev.status();
  media::PmemDevice& m = (*dev)->media();
  Step("mkfs: daxfs straight on the dax device, metadata log in two copies");
  DG_RETURN_IF_ERROR(fs::Filesystem::Mkfs(**dev));
  auto mounted = fs::Filesystem::Mount(**dev);
  if (!mounted.ok()) return mounted.status();
  fs::Filesystem& f = **mounted;

  Step("a sample tree: documents, a photo and its reflinked copy, a 4 MiB table");
  DG_RETURN_IF_ERROR(f.Mkdir("/docs"));
  DG_RETURN_IF_ERROR(f.Mkdir("/photos"));
  DG_RETURN_IF_ERROR(f.Mkdir("/db"));
  DG_RETURN_IF_ERROR(PutSample(f, "/docs/readme.txt", 3000, 1));
  DG_RETURN_IF_ERROR(PutSample(f, "/photos/beach.jpg", 256 << 10, 2));
  DG_RETURN_IF_ERROR(PutSample(f, "/db/table", 4 << 20, 3));
  auto photo = f.Open("/photos/beach.jpg");
  auto copy = f.Open("/photos/beach-edit.jpg", fs::kCreate);
  DG_RETURN_IF_ERROR((*copy)->CloneFrom(**photo, 0, 0, 0));
  for (const char* p : {"/docs/readme.txt", "/photos/beach.jpg", "/photos/beach-edit.jpg", "/db/table"}) {
    auto file = f.Open(p);
    auto ext = (*file)->Fiemap();
    std::printf("    %-24s %8llu bytes, first extent at device byte %llu%s\n", p,
                static_cast<unsigned long long>((*file)->Stat()->attr.size),
                static_cast<unsigned long long>((*ext)[0].physical), (*ext)[0].shared ? " (shared)" : "");
  }

  uint64_t bad = DeviceOffset(**photo, 64 << 10);
  Step("poison under the photo's data: the reverse map names both reflink owners");
  (*copy)->OnDamage([](uint64_t off, uint64_t len) {
    std::printf("    open handle of beach-edit.jpg told: bytes %llu+%llu damaged\n",
                static_cast<unsigned long long>(off), static_cast<unsigned long long>(len));
  });
  DG_RETURN_IF_ERROR(m.Inject(bad / 512, 1, {}));
  ShowHealth(f);
  ShowRead(f, "/photos/beach-edit.jpg", 60 << 10, 8192);
  ShowRead(f, "/photos/beach-edit.jpg", 64 << 10, 4096);

  Step("beach-edit.jpg rewrites that page: its copy is repaired, beach.jpg still reports damage");
  std::vector<uint8_t> page(4096, 0xee);
  (void)(*copy)->Write(64 << 10, page.data(), page.size());
  ShowHealth(f);
  Step("beach.jpg zeroes the range (FALLOC_FL_ZERO_RANGE): poison cleared for its owner");
  DG_RETURN_IF_ERROR((*photo)->Fallocate(fs::kFallocZeroRange | fs::kFallocKeepSize, 64 << 10, 4096));
  ShowHealth(f);

  Step("/db/table mapped into the process; poison found later takes its page away, a load is SIGBUS");
  DG_RETURN_IF_ERROR(ShowMappedPoison(f, m));

  fs::Geometry g = fs::GeometryFor((*dev)->size());
  Step("poison under a live metadata log block (copy A): rebuilt from copy B");
  DG_RETURN_IF_ERROR(m.Inject(g.SlotStart(0, 0) * 8, 1, {}));
  ShowHealth(f);

  uint64_t free_at = ((*dev)->size() * 3 / 4) & ~4095ull;
  Step("poison in free space: quarantined, never handed to a file");
  DG_RETURN_IF_ERROR(m.Inject(free_at / 512, 1, {}));
  auto who = f.Who(free_at, 4096);
  std::printf("    who owns device byte %llu: %s\n", static_cast<unsigned long long>(free_at),
              (*who)[0].kind == fs::OwnerInfo::Kind::kQuarantined ? "quarantined free space" : "?");
  ShowHealth(f);

  Step("unmount, fsck, mount again: the record of what happened survives");
  photo->reset();
  copy->reset();
  mounted->reset();
  auto report = fs::Fsck(**dev, false);
  if (!report.ok()) return report.status();
  std::printf("    fsck: %llu inodes, %llu extents, %zu problems\n", static_cast<unsigned long long>(report->inodes),
              static_cast<unsigned long long>(report->extents), report->problems.size());
  auto again = fs::Filesystem::Mount(**dev);
  if (!again.ok()) return again.status();
  ShowHealth(**again);
  std::printf("\nTry: daxguard health %s; daxguard fs ls -l %s:/photos\n", path.c_str(), path.c_str());
  return Status::Ok();
}

}  // namespace

int RunFsDemo(const std::string& path) {
  Status s = Run(path);
  return s.ok() ? 0 : Fail("demo", s);
}

}  // namespace daxguard::tools
