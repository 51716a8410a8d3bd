// Reaches into the daxfs log of an unmounted device as damage, a bug or an
// older daxguard would leave it: lists records, scribbles over them in both
// copies, appends or compacts hand-made operations, rewrites superblocks.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "fs/meta_log.h"
#include "fs/state.h"

namespace daxguard::fs {

struct LogRecord {
  uint64_t pos = 0;  // byte offset in the active slot
  uint64_t seq = 0;
  uint64_t span = 0;  // bytes, header included
  std::vector<Op> ops;
};

class LogSurgery {
 public:
  // Replays the log into state() (as a mount would, without mounting).
  explicit LogSurgery(dax::Device& dev) : dev_(dev), geo_(GeometryFor(dev.size())), log_(dev, geo_), state_(geo_) {
    Status s = log_.Replay([&](const std::vector<Op>& ops) { return state_.ApplyAll(ops); }, &report_);
    EXPECT_TRUE(s.ok()) << s.message();
  }

  // Every record of the active slot, read from copy A.
  std::vector<LogRecord> Records() {
    std::vector<LogRecord> out;
    uint64_t pos = 0;
    for (uint64_t seq = log_.super().log_start_seq; pos < log_.tail(); ++seq) {
      RecordHeader h;
      EXPECT_EQ(dev_.ReadMcSafe(Addr(0, pos), &h, sizeof h).value_or(SIZE_MAX), sizeof h);
      if (h.magic != kRecordMagic || h.seq != seq) break;
      std::string payload(h.len, '\0');
      EXPECT_EQ(dev_.ReadMcSafe(Addr(0, pos) + sizeof h, payload.data(), h.len).value_or(SIZE_MAX), h.len);
      uint64_t span = RecordSpan(h.len + h.summary_len);
      LogRecord r{pos, seq, span, {}};
      EXPECT_TRUE(DecodeOps(payload, &r.ops).ok());
      out.push_back(std::move(r));
      pos += span;
    }
    return out;
  }
  // The record holding a kLink of `name`.
  LogRecord RecordLinking(const std::string& name) {
    for (LogRecord& r : Records())
      for (const Op& op : r.ops)
        if (op.type == OpType::kLink && op.name == name) return r;
    ADD_FAILURE() << "no record links " << name;
    return {};
  }
  // The first record holding an operation of `type` on inode `ino`.
  LogRecord RecordWith(OpType type, uint64_t ino) {
    for (LogRecord& r : Records())
      for (const Op& op : r.ops)
        if (op.type == type && op.ino == ino) return r;
    ADD_FAILURE() << "no record has operation " << static_cast<int>(type) << " on inode " << ino;
    return {};
  }
  // Device offset of byte `pos` of the active slot in copy `copy`.
  uint64_t Addr(int copy, uint64_t pos) const {
    return geo_.SlotStart(copy, static_cast<int>(log_.super().active_slot)) * kBlockSize + pos;
  }
  // Overwrites [pos, +len) of the active slot in both copies with `byte`.
  void Scribble(uint64_t pos, uint64_t len, uint8_t byte) {
    std::vector<uint8_t> junk(len, byte);
    for (int c = 0; c < 2; ++c) ASSERT_TRUE(dev_.Write(Addr(c, pos), junk.data(), len).ok());
  }
  // Writes both superblocks with format version `v`.
  void SetVersion(uint32_t v) {
    SuperBlock sb = log_.super();
    sb.version = v;
    SealSuperBlock(&sb);
    for (int c = 0; c < 2; ++c) ASSERT_TRUE(dev_.Write(geo_.SuperBlock(c) * kBlockSize, &sb, sizeof sb).ok());
  }

  MetaLog& log() { return log_; }
  State& state() { return state_; }
  const Geometry& geometry() const { return geo_; }

 private:
  dax::Device& dev_;
  Geometry geo_;
  MetaLog log_;
  State state_;
  ReplayReport report_;
};

}  // namespace daxguard::fs
