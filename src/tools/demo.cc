// `daxguard demo`: the README's main job. A guided walk through the poison
// lifecycle on the default emulated device, printing what each layer does.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "common/units.h"
#include "dax/dax_io.h"
#include "dax/pmem_dax.h"
#include "tools/cli_util.h"

namespace daxguard::tools {

int RunFsDemo(const std::string& path);  // demo_fs.cc

namespace {

constexpr uint64_t kBase = 1 << 20;  // the demo's data lives at 1 MiB
constexpr uint64_t kLen = 64 * 1024;

// Stands in for a filesystem: prints every failure the device reports.
class PrintingHolder : public dax::Holder {
 public:
  void NotifyFailure(uint64_t offset, uint64_t len, int flags) override {
    std::printf("    holder notified: %s offset %llu length %llu\n",
                flags == dax::kFailurePreRemove ? "PRE_REMOVE" : "media failure",
                static_cast<unsigned long long>(offset), static_cast<unsigned long long>(len));
  }
};

void Step(const char* what) { std::printf("\n==> %s\n", what); }

void ShowBadBlocks(media::PmemDevice& m) {
  std::printf("    badblocks:");
  auto bbs = m.BadBlocks();
  if (bbs.empty()) std::printf(" none");
  for (const auto& b : bbs)
    std::printf(" [sector %llu +%llu%s]", static_cast<unsigned long long>(b.sector),
                static_cast<unsigned long long>(b.count), b.acknowledged ? " ack" : "");
  std::printf("\n");
}

void ShowRead(dax::Device& d, uint64_t off, uint64_t len) {
  std::vector<uint8_t> buf(len);
  auto r = dax::ReadAt(d, off, buf.data(), len);
  if (r.ok())
    std::printf("    pread %llu+%llu -> %zu bytes (first byte 0x%02x)\n", static_cast<unsigned long long>(off),
                static_cast<unsigned long long>(len), *r, buf[0]);
  else
    std::printf("    pread %llu+%llu -> %s\n", static_cast<unsigned long long>(off),
                static_cast<unsigned long long>(len), r.status().message().c_str());
}

void ShowWrite(dax::Device& d, uint64_t off, uint64_t len, uint8_t byte) {
  std::vector<uint8_t> buf(len, byte);
  auto r = dax::WriteAt(d, off, buf.data(), len);
  if (r.ok())
    std::printf("    pwrite %llu+%llu -> %zu bytes\n", static_cast<unsigned long long>(off),
                static_cast<unsigned long long>(len), *r);
  else
    std::printf("    pwrite %llu+%llu -> refused: %s\n", static_cast<unsigned long long>(off),
                static_cast<unsigned long long>(len), r.status().message().c_str());
}

Status Prepare(const std::string& path) {
  if (std::filesystem::exists(path)) {
    std::printf("using existing device %s\n", path.c_str());
    return Status::Ok();
  }
  std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  media::CreateOptions opt;
  opt.size = 1ull << 30;
  auto d = media::PmemDevice::Create(path, opt);
  if (!d.ok()) return d.status();
  std::printf("created device %s: 1 GiB, sparse, clear unit 256 bytes\n", path.c_str());
  return Status::Ok();
}

int RunDemo(const std::string& path) {
  Status s = Prepare(path);
  auto opened = s.ok() ? dax::PmemDax::Open(path) : Result<std::unique_ptr<dax::PmemDax>>(s);
  if (!opened.ok()) return Fail("demo", opened.status());
  dax::PmemDax& dev = **opened;
  media::PmemDevice& m = dev.media();
  PrintingHolder holder;

  Step("start clean: clear whatever an earlier run left behind, then register a holder");
  (void)m.Uninject(kBase / kSectorSize, kLen / kSectorSize);
  if (Status z = dax::ZeroAt(dev, kBase, kLen); !z.ok()) return Fail("demo", z);
  if (Status h = dev.RegisterHolder(&holder); !h.ok()) return Fail("demo", h);
  ShowBadBlocks(m);

  Step("write 64 KiB of 0xab at 1 MiB and read it back");
  ShowWrite(dev, kBase, kLen, 0xab);
  ShowRead(dev, kBase, kLen);

  uint64_t latent = (kBase + 8192) / kSectorSize;
  Step("inject a latent error (no notify) 8 KiB into the data: nobody knows yet");
  (void)m.Inject(latent, 1, {.notify = false});
  ShowBadBlocks(m);

  Step("read the data: the machine-check-safe copy stops at the poisoned line");
  ShowRead(dev, kBase, kLen);
  ShowBadBlocks(m);
  std::printf("    (the consumed error is now known, listed and reported to the holder)\n");

  uint64_t scrubbed = (kBase + 40960) / kSectorSize;
  Step("inject another latent error and run an address range scrub to find it");
  (void)m.Inject(scrubbed, 1, {.notify = false});
  if (Status b = m.BeginScrub(static_cast<uint32_t>(getpid())); b.ok()) (void)m.RunScrub();
  ShowBadBlocks(m);

  Step("inject an error with notification: reported at once");
  (void)m.Inject((kBase + 61440) / kSectorSize, 1, {});
  ShowBadBlocks(m);

  Step("a partial-page write over poison is refused and changes nothing");
  ShowWrite(dev, kBase + 8192 + 100, 200, 0x11);
  ShowBadBlocks(m);

  Step("a whole-page write over poison takes the recovery path: clear, write, forget");
  ShowWrite(dev, kBase + 8192, kPageSize, 0x22);
  ShowRead(dev, kBase + 8192, kPageSize);
  ShowBadBlocks(m);

  Step("zeroing the scrub-found page clears its poison too (zeroinit)");
  if (Status z = dax::ZeroAt(dev, kBase + 40960, kPageSize); !z.ok()) return Fail("demo", z);
  ShowRead(dev, kBase + 40960, kPageSize);
  ShowBadBlocks(m);

  Step("uninject removes the media error but, as on real hardware, not the record");
  (void)m.Uninject((kBase + 61440) / kSectorSize, 1);
  ShowBadBlocks(m);
  ShowRead(dev, kBase + 61440, kPageSize);

  Step("clear the remaining record by zeroing its page; the device is clean again");
  (void)dax::ZeroAt(dev, kBase + 61440, kPageSize);
  ShowBadBlocks(m);
  ShowRead(dev, kBase, kLen);

  Step("the device goes away: the holder hears PRE_REMOVE");
  dev.Kill();
  dev.ReleaseHolder(&holder);
  return RunFsDemo(path);
}

}  // namespace

void AddDemoCommand(CLI::App& app, int* rc) {
  auto path = std::make_shared<std::string>("var/daxguard.dev");
  auto* d = app.add_subcommand("demo", "guided run of the poison lifecycle on an emulated device");
  d->add_option("DEV", *path, "device file (created if missing; default var/daxguard.dev; reformatted each run)");
  d->callback([path, rc] { *rc = RunDemo(*path); });
}

}  // namespace daxguard::tools
