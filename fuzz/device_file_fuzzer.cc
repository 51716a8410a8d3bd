// Device files (media/layout.*, media/range_table.*, media/pmem_device.*):
// a file made of the fuzz bytes (see device_input.h) is opened as a device,
// and what every command does with one is done: list its known and media
// errors, read it, inject, clear, forget and uninject errors, scrub it, and
// hand its unreported errors to a holder.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dax/pmem_dax.h"
#include "fuzz/device_input.h"
#include "fuzz/fuzz_util.h"
#include "media/pmem_device.h"

using namespace daxguard;

namespace {

constexpr uint64_t kMaxFile = 64ull << 20;  // sparse, but every page touched costs
constexpr uint64_t kMaxScan = 4ull << 20;   // bytes read through per input

fuzz::DeviceImage Decode(fuzz::Cursor& in) {
  fuzz::DeviceImage d;
  d.flags = in.U8();
  std::string_view h = in.Take(sizeof d.header);
  std::memcpy(&d.header, h.data(), h.size());
  for (std::string& w : d.windows) w = in.Take(in.U16());
  d.params = in.Rest();
  return d;
}

void WriteDeviceFile(const std::string& path, const fuzz::DeviceImage& d) {
  uint64_t size = d.header.geo.file_size;
  if (size < sizeof d.header || size > kMaxFile) size = 4ull << 20;
  if (d.flags & 1) size -= std::min<uint64_t>(size, kPageSize);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  DG_FUZZ_CHECK(fd >= 0 && ftruncate(fd, static_cast<off_t>(size)) == 0, "cannot make %s", path.c_str());
  auto put = [&](uint64_t off, const void* p, size_t n) {
    if (off < size && n <= size - off) DG_FUZZ_CHECK(pwrite(fd, p, n, static_cast<off_t>(off)) == ssize_t(n), "pwrite");
  };
  put(0, &d.header, std::min<uint64_t>(sizeof d.header, size));
  for (int i = 0; i < 4; ++i) put(d.WindowOffset(i), d.windows[i].data(), d.windows[i].size());
  close(fd);
}

class CountingHolder final : public dax::Holder {
 public:
  void NotifyFailure(uint64_t, uint64_t, int) override { ++told; }
  uint64_t told = 0;
};

void Exercise(media::PmemDevice& m, fuzz::Cursor& params) {
  const uint64_t size = m.size();
  (void)m.BadBlocks();
  (void)m.MediaErrors();
  (void)m.GetScrubStatus();
  (void)m.HasPoison(0, size);
  (void)m.FirstKnownError(0, size);
  std::vector<uint8_t> buf(64 << 10);
  for (uint64_t off = 0; off < std::min(size, kMaxScan); off += buf.size()) {
    uint64_t n = std::min<uint64_t>(buf.size(), size - off);
    (void)m.PagesClean(off, n, true);
    (void)m.ReadMcSafe(off, buf.data(), n);  // stops at poison, which becomes known
  }
  for (const media::BadBlock& b : m.Unacknowledged()) (void)m.Acknowledge(b);
  // A few commands at places the input picks (sectors, as the CLI takes them).
  const uint64_t sectors = size / kSectorSize;
  for (int i = 0; i < 4 && params.left(); ++i) {
    uint8_t op = params.U8();
    uint64_t sector = params.U32() % (sectors + 2);
    uint64_t count = 1 + params.U8() % 16;
    media::InjectOptions opt;
    opt.notify = !(op & 0x10);
    opt.saturate = op & 0x20;
    switch (op & 7) {
      case 0: (void)m.Inject(sector, count, opt); break;
      case 1: (void)m.Uninject(sector, count); break;
      case 2: (void)m.ClearPoison(sector * kSectorSize, count * m.clear_unit()); break;
      case 3: (void)m.ForgetKnown(sector * kSectorSize, count * kSectorSize); break;
      case 4: (void)m.MediaErrorsIn(sector * kSectorSize, count * kSectorSize); break;
      case 5: (void)m.ReadMcSafe(std::min(sector * kSectorSize, size), buf.data(), std::min<uint64_t>(buf.size(), count * kSectorSize)); break;
      case 6: {
        std::vector<uint8_t> src(count * kSectorSize, 0xab);
        (void)m.Write(sector * kSectorSize, src.data(), src.size());
        break;
      }
      default:
        if (m.BeginScrub(static_cast<uint32_t>(getpid())).ok()) (void)m.RunScrub();
    }
  }
  (void)m.BadBlocks();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Cursor in(data, size);
  fuzz::DeviceImage d = Decode(in);
  const std::string path = fuzz::ScratchPath("device");
  WriteDeviceFile(path, d);
  auto m = media::PmemDevice::Open(path);
  if (!m.ok()) return 0;
  fuzz::Cursor params(reinterpret_cast<const uint8_t*>(d.params.data()), d.params.size());
  Exercise(**m, params);
  if (d.flags & 2) {  // a holder is told every error nobody was told about
    dax::PmemDax dev(std::move(m).value());
    CountingHolder holder;
    if (dev.RegisterHolder(&holder).ok()) dev.ReleaseHolder(&holder);
  }
  return 0;
}
