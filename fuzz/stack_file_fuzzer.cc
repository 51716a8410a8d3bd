// Stack files (dm/stack_file.*, dm/table.*, dm/open.*, the targets): the
// input is up to three stack files s0, s1, s2, separated by lines "--",
// beside three device files: a and b (fsdax, 1 MiB) and x (devdax). s0 is
// opened as every command opens a device, so stacks of stacks, cycles and
// shared devices are reached, and read and written through; its lines are
// also given to `dm create` as tables. A stack that opens must not reach
// the same bytes twice. Names with '/' are skipped: the
// harness must not open files outside its scratch directory.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "dm/open.h"
#include "dm/stack_file.h"
#include "dm/table.h"
#include "fuzz/fuzz_util.h"
#include "media/pmem_device.h"

using namespace daxguard;

namespace {

void MakeDevices() {
  static bool made = [] {
    for (const char* name : {"a", "b", "x"}) {
      media::CreateOptions opt;
      opt.size = kMinDeviceSize;
      if (name[0] == 'x') opt.mode = media::Mode::kDevdax, opt.align = kPageSize;
      auto d = media::PmemDevice::Create(fuzz::ScratchPath(name), opt);
      DG_FUZZ_CHECK(d.ok(), "cannot create device %s: %s", name, d.status().message().c_str());
    }
    return true;
  }();
  (void)made;
}

// No two pages of a stack may reach the same bytes below it: each page
// that takes a write gets its own tag, and every tag must read back where
// it was written (an aliasing stack corrupts one copy with the other).
void CheckNoAliasing(dax::Device& dev) {
  constexpr uint64_t kMaxChecked = 8ull << 20;
  if (dev.size() > kMaxChecked) return;
  const uint64_t pages = dev.size() / kPageSize;
  std::vector<bool> written(pages);
  for (uint64_t p = 0; p < pages; ++p) written[p] = dev.Write(p * kPageSize, &p, sizeof p).ok();
  for (uint64_t p = 0; p < pages; ++p) {
    uint64_t tag = p;
    if (!written[p] || !dev.ReadAll(p * kPageSize, &tag, sizeof tag)) continue;
    DG_FUZZ_CHECK(tag == p, "stack page %llu reads the tag written to page %llu: two segments reach the same bytes",
                  static_cast<unsigned long long>(p), static_cast<unsigned long long>(tag));
  }
}

void Exercise(dax::Device& dev) {
  uint64_t size = dev.size();
  (void)dev.BadBlocks();
  std::vector<uint8_t> buf(16 << 10, 0x5a);
  for (uint64_t off : {uint64_t{0}, size / 2, size - std::min<uint64_t>(size, buf.size())}) {
    uint64_t n = std::min<uint64_t>(buf.size(), size - off);
    (void)dev.ReadMcSafe(off, buf.data(), n);
    (void)dev.Write(off, buf.data(), n);
  }
  CheckNoAliasing(dev);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (text.find('/') != std::string::npos || text.find('\0') != std::string::npos) return 0;
  MakeDevices();
  std::string files[3];
  int n = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line == "--") {
      if (++n == 3) break;
      continue;
    }
    files[n] += line + "\n";
  }
  for (int i = 0; i < 3; ++i) fuzz::WriteFile(fuzz::ScratchPath("s" + std::to_string(i)), files[i]);

  (void)dm::ReadStackFile(fuzz::ScratchPath("s0"));
  auto dev = dm::OpenDaxDevice(fuzz::ScratchPath("s0"));
  if (dev.ok()) Exercise(**dev);

  // The same lines as `dm create --table` arguments.
  std::vector<dm::TableLine> table;
  std::istringstream s0(files[0]);
  for (std::string line; std::getline(s0, line);)
    if (auto l = dm::ParseTableLine(line); l.ok()) table.push_back(*l);
  std::string created = fuzz::ScratchPath("created");
  if (dm::CreateStackFile(created, table).ok()) {
    auto again = dm::OpenDaxDevice(created);
    DG_FUZZ_CHECK(again.ok(), "a stack dm create accepted does not open: %s", again.status().message().c_str());
    unlink(created.c_str());
  }
  return 0;
}
