// io command strings (`daxguard io DEV -c CMD`), one a line: the device
// commands, the mapping commands and the file commands are parsed; the
// device's byte commands that parse are range-checked as `io` does and run
// on a small scratch device, so what the parser lets through is used too.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "dax/pmem_dax.h"
#include "fuzz/fuzz_util.h"
#include "tools/fs_io.h"
#include "tools/io_cmd.h"
#include "tools/map_cmds.h"

using namespace daxguard;

namespace {

dax::PmemDax& Device() {
  static std::unique_ptr<dax::PmemDax> dev = [] {
    std::string path = fuzz::ScratchPath("io-dev");
    media::CreateOptions opt;
    opt.size = kMinDeviceSize;
    DG_FUZZ_CHECK(media::PmemDevice::Create(path, opt).ok(), "cannot create %s", path.c_str());
    auto d = dax::PmemDax::Open(path);
    DG_FUZZ_CHECK(d.ok(), "cannot open %s", path.c_str());
    return std::move(d).value();
  }();
  return *dev;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream lines(std::string(reinterpret_cast<const char*>(data), size));
  std::vector<tools::IoCommand> runnable;
  for (std::string text; std::getline(lines, text);) {
    (void)tools::ParseFileCommand(text);
    if (tools::IsMapCommand(text)) (void)tools::ParseMapCommand(text);
    auto c = tools::ParseIoCommand(text);
    if (!c.ok() || c->op == tools::IoCommand::Op::kMap) continue;
    dax::PmemDax& dev = Device();
    if (c->offset > dev.size() || c->length > dev.size() - c->offset) continue;  // as `io` refuses them
    runnable.push_back(*c);
  }
  std::ostringstream out, err;
  tools::RunIoCommands(Device(), "io-dev", runnable, out, err);
  return 0;
}
