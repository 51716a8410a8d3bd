// Inputs of the two filesystem-image harnesses, and how each is laid on a
// fresh 16 MiB device (daxfs's smallest: superblocks at blocks 0 and 2048,
// log copies of 256 blocks after each, two 128-block slots per copy).
//
// fs_image: the metadata areas' bytes, as they are.
//   u8 flags        bit 0: superblock B is A's bytes; bit 1: log copy B is
//                   A's bytes; bit 2: the log bytes go to slot 1
//   120 bytes       superblock A (88; a format 1-3 one uses the first 72)
//                   and its clean-end record (32)
//   120 bytes       the same for B, unless flags bit 0
//   u16 n, n bytes  log copy A from the slot's start (flags bit 1: no n,
//                   the rest of the input is the log, in both copies)
//   rest            log copy B
//
// fs_log: record payloads, each sealed with a valid header and CRC (so the
// fuzzer explores what records say, not their checksums), with a valid
// superblock written for them.
//   u8 version      the superblock's format version: 1 + version % 4
//   u8 flags        bit 0: slot 1 is active; bit 1: a clean-end record
//                   names the log's end; bit 2: superblock B is a stale
//                   copy (one generation older); bit 3: superblock A's
//                   checksum is broken; bit 4 (format 4): the data is
//                   protected with parity
//   u8 start        the slot's first sequence number: 1 + start
//   u8 generation   the superblock's: 1 + generation
//   records         each: u8 rflags, u16 n, n payload bytes (fs/ops.h)
//     rflags bit 0: damaged in copy A (checksum off); bit 1: in copy B;
//     bit 2: one sequence number skipped before it; bit 3: poison on its
//     header in copy A; bit 4: in copy B; bit 5: that poison is already
//     known (reported) rather than latent
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fs/format.h"
#include "fuzz/fuzz_util.h"
#include "media/pmem_device.h"

namespace daxguard::fuzz {

inline constexpr uint64_t kFsDeviceSize = 16ull << 20;
inline constexpr size_t kSuperBytes = sizeof(fs::SuperBlock);  // then the clean end
inline constexpr size_t kSuperWindow = kSuperBytes + sizeof(fs::CleanEnd);
static_assert(kSuperWindow == 120);
inline constexpr uint8_t kFuzzUuid[16] = {0x64, 0x61, 0x78, 0x67, 0x75, 0x61, 0x72, 0x64,
                                          0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x21, 0x21, 0x21};

// Offsets of the metadata structures on the harnesses' device.
struct FsLayout {
  fs::Geometry g = fs::GeometryFor(kFsDeviceSize);
  uint64_t Super(int copy) const { return g.SuperBlock(copy) * fs::kBlockSize; }
  uint64_t CleanEnd(int copy) const { return Super(copy) + fs::kCleanEndOffset; }
  uint64_t Slot(int copy, int slot) const { return g.SlotStart(copy, slot) * fs::kBlockSize; }
  uint64_t SlotBytes() const { return g.SlotBlocks() * fs::kBlockSize; }
};

// A fresh device file at `path` (any old one is replaced).
inline std::unique_ptr<media::PmemDevice> FreshFsDevice(const std::string& path) {
  unlink(path.c_str());
  media::CreateOptions opt;
  opt.size = kFsDeviceSize;
  auto d = media::PmemDevice::Create(path, opt);
  DG_FUZZ_CHECK(d.ok(), "cannot create %s: %s", path.c_str(), d.status().message().c_str());
  return std::move(d).value();
}

// Writes `bytes` at `off`, clipped to `limit` bytes (past the device: not at all).
inline void Lay(media::PmemDevice& d, uint64_t off, std::string_view bytes, uint64_t limit) {
  (void)d.Write(off, bytes.data(), std::min<uint64_t>(bytes.size(), limit));
}

// --- fs_image
struct ImageInput {
  uint8_t flags = 0;
  std::string super[2];  // kSuperWindow bytes each
  std::string log[2];
};

inline std::string EncodeImage(const ImageInput& in) {
  std::string out(1, static_cast<char>(in.flags));
  out += in.super[0];
  if (!(in.flags & 1)) out += in.super[1];
  if (in.flags & 2) return out + in.log[0];
  out.push_back(static_cast<char>(in.log[0].size() & 0xff));
  out.push_back(static_cast<char>(in.log[0].size() >> 8));
  return out + in.log[0] + in.log[1];
}

inline ImageInput DecodeImage(Cursor& c) {
  ImageInput in;
  in.flags = c.U8();
  in.super[0] = c.Take(kSuperWindow);
  in.super[1] = in.flags & 1 ? in.super[0] : std::string(c.Take(kSuperWindow));
  in.log[0] = c.Take(in.flags & 2 ? c.left() : c.U16());
  in.log[1] = in.flags & 2 ? in.log[0] : std::string(c.Rest());
  return in;
}

inline void LayImage(media::PmemDevice& d, const ImageInput& in) {
  FsLayout l;
  for (int c = 0; c < 2; ++c) {
    std::string_view sb(in.super[c]);
    Lay(d, l.Super(c), sb.substr(0, kSuperBytes), kSuperBytes);
    if (sb.size() > kSuperBytes) Lay(d, l.CleanEnd(c), sb.substr(kSuperBytes), sizeof(fs::CleanEnd));
    Lay(d, l.Slot(c, in.flags & 4 ? 1 : 0), in.log[c], l.SlotBytes());
  }
}

// --- fs_log
struct LogRecordInput {
  uint8_t flags = 0;
  std::string payload;
};

struct LogInput {
  uint8_t version = 3;  // 1 + 3 % 4 = 4, the current format
  uint8_t flags = 2;
  uint8_t start = 0;
  uint8_t generation = 0;
  std::vector<LogRecordInput> records;
};

inline std::string EncodeLog(const LogInput& in) {
  std::string out = {static_cast<char>(in.version), static_cast<char>(in.flags), static_cast<char>(in.start),
                     static_cast<char>(in.generation)};
  for (const LogRecordInput& r : in.records) {
    size_t n = std::min<size_t>(r.payload.size(), 0xffff);
    out.push_back(static_cast<char>(r.flags));
    out.push_back(static_cast<char>(n & 0xff));
    out.push_back(static_cast<char>(n >> 8));
    out.append(r.payload, 0, n);
  }
  return out;
}

inline LogInput DecodeLog(Cursor& c) {
  LogInput in;
  in.version = c.U8();
  in.flags = c.U8();
  in.start = c.U8();
  in.generation = c.U8();
  while (c.left()) {
    LogRecordInput r;
    r.flags = c.U8();
    r.payload = c.Take(c.U16());
    in.records.push_back(std::move(r));
  }
  return in;
}

inline void LayLog(media::PmemDevice& d, const LogInput& in) {
  FsLayout l;
  const int slot = in.flags & 1;
  fs::SuperBlock sb{};
  std::memcpy(sb.magic, fs::kSuperMagic, sizeof sb.magic);
  sb.version = 1 + in.version % 4;
  if (sb.version >= 4 && (in.flags & 16)) {
    sb.protection = static_cast<uint32_t>(fs::DataProtection::kParity);
    sb.protect_blocks = fs::GeometryFor(kFsDeviceSize, fs::DataProtection::kParity).protect_blocks;
    sb.protection_tag = 0x7a7a7566;
  }
  sb.blocks = l.g.blocks;
  sb.meta_blocks = l.g.meta_blocks;
  sb.generation = 1 + in.generation;
  sb.active_slot = slot;
  sb.log_start_seq = 1 + in.start;
  std::memcpy(sb.uuid, kFuzzUuid, sizeof sb.uuid);
  uint32_t seed;
  std::memcpy(&seed, sb.uuid, sizeof seed);

  uint64_t pos = 0, seq = sb.log_start_seq;
  struct Poison { uint64_t off; bool known; };
  std::vector<Poison> poison;
  for (const LogRecordInput& r : in.records) {
    if (r.flags & 4) ++seq;
    fs::RecordHeader h{fs::kRecordMagic, static_cast<uint32_t>(r.payload.size()), seq++, 0, 0};
    std::string rec(fs::RecordSpan(r.payload.size()), '\0');
    std::memcpy(rec.data(), &h, sizeof h);
    std::memcpy(rec.data() + sizeof h, r.payload.data(), r.payload.size());
    uint32_t crc = fs::Crc32c(rec.data(), sizeof h + r.payload.size(), seed);
    if (pos + rec.size() > l.SlotBytes()) break;
    for (int c = 0; c < 2; ++c) {
      uint32_t stored = r.flags & (1 << c) ? ~crc : crc;
      std::memcpy(rec.data() + offsetof(fs::RecordHeader, crc), &stored, sizeof stored);
      Lay(d, l.Slot(c, slot) + pos, {reinterpret_cast<const char*>(rec.data()), rec.size()}, rec.size());
      if (r.flags & (8 << c)) poison.push_back({l.Slot(c, slot) + pos, (r.flags & 0x20) != 0});
    }
    pos += rec.size();
  }

  fs::SealSuperBlock(&sb);
  for (int c = 0; c < 2; ++c) {
    fs::SuperBlock copy = sb;
    if (c == 1 && (in.flags & 4)) copy.generation--, fs::SealSuperBlock(&copy);
    if (c == 0 && (in.flags & 8)) copy.crc ^= 1;
    Lay(d, l.Super(c), {reinterpret_cast<const char*>(&copy), sizeof copy}, sizeof copy);
    if (in.flags & 2) {
      fs::CleanEnd end{fs::kCleanEndMagic, 0, copy.generation, pos, seq};
      end.crc = fs::Crc32c(&end, sizeof end);
      Lay(d, l.CleanEnd(c), {reinterpret_cast<const char*>(&end), sizeof end}, sizeof end);
    }
  }
  // Poison last: it spares the bytes beneath it from nothing, and a known
  // error waits for the mount (the holder) to be told.
  for (const Poison& p : poison) {
    media::InjectOptions opt;
    opt.notify = p.known;
    opt.saturate = true;
    (void)d.Inject(p.off / kSectorSize, 1, opt);
  }
}

}  // namespace daxguard::fuzz
