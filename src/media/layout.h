// The on-file layout of an emulated device. One file is one whole device:
// a header page, the data area, then the "hardware" state the firmware would
// keep (media poison list, badblocks list, their bitmaps). Everything
// lives in the file so that every process mapping it shares one device.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace daxguard::media {

enum class Kind : uint32_t { kPmem = 0, kCxl = 1 };
enum class Mode : uint32_t { kFsdax = 0, kDevdax = 1 };

inline constexpr char kMagic[8] = {'D', 'A', 'X', 'G', 'D', 'E', 'V', '1'};
inline constexpr uint32_t kVersion = 2;
inline constexpr uint64_t kAreaAlign = 2ull << 20;  // keeps the data area hugepage-aligned

// Static geometry, written once at creation.
struct Geometry {
  uint64_t size;        // data bytes
  uint32_t clear_unit;  // bytes, power of two in [64, 4096]
  Kind kind;
  Mode mode;
  uint32_t reserved0;
  uint64_t align;       // device-dax fault size, 0 for fsdax
  uint64_t data_off;
  uint64_t poison_off;
  uint64_t poison_filter_off;
  uint64_t badblocks_off;
  uint64_t badblocks_filter_off;
  uint64_t poison_capacity;     // entries, in 64-byte line units
  uint64_t badblocks_capacity;  // entries, in 512-byte sector units
  uint64_t poison_filter_bytes;     // one bit per 4 KiB page
  uint64_t badblocks_filter_bytes;  // one bit per 512-byte sector: exact
  uint64_t file_size;
  bool operator==(const Geometry&) const = default;
};

// Live state, shared by all processes; only touched through std::atomic_ref.
struct LiveState {
  uint32_t error_events;  // bumped whenever errors become known
  uint32_t scrub_active;  // futex word: 1 while a scrub runs
  uint32_t scrub_pid;
  uint32_t holder_pid;
  uint64_t holder_token;
  uint64_t scrub_count;     // completed scrubs
  uint64_t scrub_progress;  // bytes scanned by the running scrub
  // Futex word: bumped whenever the media poison changes (inject, clear,
  // uninject), known or latent, so mappings can trap or free pages, and
  // whenever errors become known, so holders hear. Files made before it
  // existed hold zero here, which is a valid start.
  uint32_t poison_events;
  uint32_t reserved1;
};

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t reserved;
  Geometry geo;
  uint8_t pad[256 - 16 - sizeof(Geometry)];
  LiveState live;
};

// Between the header page and the data area (data_off is kAreaAlign on
// every device): the errors cleared before any holder was told of them
// (PmemDevice::ClearErrors), sector ranges kept so the next holder hears
// of them. A range table with a coarse filter of kUntoldFilterBytes. A file
// made before it existed holds zeroes there: a table not yet formatted.
inline constexpr uint64_t kUntoldOff = 4096;
inline constexpr uint64_t kUntoldCapacity = 65536;
inline constexpr uint64_t kUntoldFilterOff = (kUntoldOff + 64 + kUntoldCapacity * 16 + 4095) / 4096 * 4096;
inline constexpr uint64_t kUntoldFilterBytes = 64 << 10;
static_assert(kUntoldFilterOff + kUntoldFilterBytes <= kAreaAlign);
// Sectors per filter bit of the untold table, for a device of `size` bytes.
uint64_t UntoldSectorsPerBit(uint64_t size);

// Computes where everything goes for a device of this size and clear unit.
Geometry ComputeGeometry(uint64_t size, uint32_t clear_unit, Kind kind, Mode mode, uint64_t align);
// Checks a header read from a file of `file_size` bytes; says what is wrong.
Status ValidateHeader(const Header& h, uint64_t file_size);

}  // namespace daxguard::media
