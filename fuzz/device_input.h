// The device_file harness's input: a device file described by its header
// and the windows of its error tables, so the fuzzer works on the bytes a
// device file keeps state in rather than on megabytes of sparse zeroes.
//
//   u8 flags                 bit 0: the file is a page shorter than the
//                            header says; bit 1: a holder registers
//   Header                   sizeof(media::Header) bytes, as on the device
//   4 x (u16 n, n bytes)     poison table, poison filter, badblocks table,
//                            badblocks filter, each at its header offset
//   rest                     parameters of the commands run on the device
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "media/layout.h"

namespace daxguard::fuzz {

struct DeviceImage {
  uint8_t flags = 0;
  media::Header header{};
  std::string windows[4];  // poison table, poison filter, badblocks table, badblocks filter
  std::string params;

  // Where window i goes, from the header as given (it may be nonsense).
  uint64_t WindowOffset(int i) const {
    const media::Geometry& g = header.geo;
    const uint64_t offs[4] = {g.poison_off, g.poison_filter_off, g.badblocks_off, g.badblocks_filter_off};
    return offs[i];
  }
};

inline void AppendU16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xff));
  out->push_back(static_cast<char>(v >> 8));
}

inline std::string EncodeDeviceImage(const DeviceImage& d) {
  std::string out(1, static_cast<char>(d.flags));
  out.append(reinterpret_cast<const char*>(&d.header), sizeof d.header);
  for (const std::string& w : d.windows) {
    AppendU16(&out, static_cast<uint16_t>(w.size()));
    out += w.substr(0, 0xffff);
  }
  return out + d.params;
}

}  // namespace daxguard::fuzz
