#include "fs/meta_log.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <random>

#include "dax/dax_io.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kMaxPayload = 1 << 20;  // snapshots are cut into records of this size

const char* CopyName(int c) { return c == 0 ? "A" : "B"; }

std::string LostRecords(uint64_t first, uint64_t next) {
  if (next == first + 1) return "metadata log record " + std::to_string(first);
  return "metadata log records " + std::to_string(first) + " to " + std::to_string(next - 1);
}

// Payloads of at most kMaxPayload bytes (a single op may exceed it).
std::vector<std::string> SplitPayloads(const std::vector<Op>& ops) {
  std::vector<std::string> out(1);
  for (const Op& op : ops) {
    if (out.back().size() >= kMaxPayload) out.emplace_back();
    EncodeOps({op}, &out.back());
  }
  return out;
}

}  // namespace

// The CRC is seeded from the filesystem's uuid, so records left over from an
// earlier filesystem on the same device never pass for ours.
static std::string BuildRecord(uint32_t seed, uint64_t seq, const std::string& payload) {
  RecordHeader h{kRecordMagic, static_cast<uint32_t>(payload.size()), seq, 0, 0};
  std::string rec(RecordSpan(payload.size()), '\0');
  std::memcpy(rec.data(), &h, sizeof h);
  std::memcpy(rec.data() + sizeof h, payload.data(), payload.size());
  uint32_t crc = Crc32c(rec.data(), sizeof h + payload.size(), seed);
  std::memcpy(rec.data() + offsetof(RecordHeader, crc), &crc, sizeof crc);
  return rec;
}

static uint32_t SeedOf(const SuperBlock& sb) {
  uint32_t seed;
  std::memcpy(&seed, sb.uuid, sizeof seed);
  return seed;
}

MetaLog::Read MetaLog::ReadRecord(int copy, uint64_t pos, uint64_t seq, std::string* bytes) const {
  int slot = static_cast<int>(sb_.active_slot);
  if (pos + sizeof(RecordHeader) > SlotBytes()) return Read::kEnd;
  RecordHeader h;
  if (dev_.ReadMcSafe(SlotAddr(copy, slot, pos), &h, sizeof h) != sizeof h) return Read::kPoison;
  if (h.magic != kRecordMagic || h.seq != seq || h.len > SlotBytes() - pos - sizeof h) return Read::kEnd;
  bytes->assign(RecordSpan(h.len), '\0');
  size_t want = sizeof h + h.len;
  if (dev_.ReadMcSafe(SlotAddr(copy, slot, pos), bytes->data(), want) != want) return Read::kPoison;
  uint32_t crc = h.crc;
  std::memset(bytes->data() + offsetof(RecordHeader, crc), 0, sizeof crc);
  bool ok = Crc32c(bytes->data(), want, SeedOf(sb_)) == crc;
  std::memcpy(bytes->data() + offsetof(RecordHeader, crc), &crc, sizeof crc);
  return ok ? Read::kOk : Read::kEnd;
}

void MetaLog::ReadEither(uint64_t off, uint8_t* dst, size_t len) const {
  int slot = static_cast<int>(sb_.active_slot);
  for (size_t done = 0; done < len;) {
    done += dev_.ReadMcSafe(SlotAddr(0, slot, off + done), dst + done, len - done);
    if (done == len) break;
    size_t line_end = std::min<uint64_t>(AlignDown(off + done, kLineSize) + kLineSize - off, len);
    size_t n = line_end - done;
    if (dev_.ReadMcSafe(SlotAddr(1, slot, off + done), dst + done, n) != n) std::memset(dst + done, 0, n);
    done = line_end;
  }
}

bool MetaLog::FindNextRecord(uint64_t pos, uint64_t seq, uint64_t* next_pos, uint64_t* next_seq) const {
  constexpr uint64_t kChunk = 64 << 10;
  constexpr uint64_t kHeader = sizeof(RecordHeader);
  std::vector<uint8_t> buf(kChunk + kHeader);
  std::string rec;
  uint64_t zeroes = 0;  // bytes in a row
  for (uint64_t base = pos + 8; base + kHeader <= SlotBytes(); base += kChunk) {
    uint64_t n = std::min(kChunk + kHeader, SlotBytes() - base);
    ReadEither(base, buf.data(), n);
    for (uint64_t i = 0; i < kChunk && i + kHeader <= n; i += 8) {
      uint64_t word;
      std::memcpy(&word, buf.data() + i, sizeof word);
      if (word == 0) {
        // Never written since mkfs: no record lies past that many zeroes.
        if ((zeroes += 8) >= kEndOfLogZeroes) return false;
        continue;
      }
      zeroes = 0;
      if (static_cast<uint32_t>(word) != kRecordMagic) continue;  // the header's first field
      RecordHeader h;
      std::memcpy(&h, buf.data() + i, kHeader);
      if (h.seq <= seq) continue;
      for (int c = 0; c < 2; ++c) {
        if (ReadRecord(c, base + i, h.seq, &rec) != Read::kOk) continue;
        *next_pos = base + i;
        *next_seq = h.seq;
        return true;
      }
    }
  }
  return false;
}

Result<uint64_t> MetaLog::RebuildBlock(int slot, uint64_t idx) {
  uint8_t page[kBlockSize];
  uint8_t line[2][kLineSize];
  bool rewrite[2] = {false, false};
  uint64_t lost = 0;
  for (uint64_t l = 0; l < kBlockSize / kLineSize; ++l) {
    uint64_t off = idx * kBlockSize + l * kLineSize;
    bool ok[2];
    for (int c = 0; c < 2; ++c) ok[c] = dev_.ReadMcSafe(SlotAddr(c, slot, off), line[c], kLineSize) == kLineSize;
    int src = ok[0] ? 0 : ok[1] ? 1 : -1;
    if (src < 0) {
      ++lost;
      std::memset(page + l * kLineSize, 0, kLineSize);
    } else {
      std::memcpy(page + l * kLineSize, line[src], kLineSize);
    }
    rewrite[0] |= !ok[0];
    rewrite[1] |= !ok[1] || (ok[0] && std::memcmp(line[0], line[1], kLineSize) != 0);
  }
  for (int c = 0; c < 2; ++c) {
    if (!rewrite[c] || dry_run_) continue;
    auto w = dev_.RecoveryWrite(SlotAddr(c, slot, idx * kBlockSize), page, kBlockSize);
    if (!w.ok()) return w.status();
  }
  return lost;
}

Status MetaLog::WriteBytes(int copy, int slot, uint64_t off, const std::string& bytes) {
  if (dry_run_) return Status::Ok();
  auto w = dax::WriteAt(dev_, SlotAddr(copy, slot, off), bytes.data(), bytes.size());
  if (w.ok() && *w == bytes.size()) return Status::Ok();
  // Known poison under a partial page: rebuild those blocks, then retry.
  for (uint64_t b = off / kBlockSize; b <= (off + bytes.size() - 1) / kBlockSize; ++b) {
    auto r = RebuildBlock(slot, b);
    if (!r.ok()) return r.status();
  }
  w = dax::WriteAt(dev_, SlotAddr(copy, slot, off), bytes.data(), bytes.size());
  if (!w.ok()) return w.status();
  return *w == bytes.size() ? Status::Ok() : Status::Io("short metadata write");
}

Status MetaLog::WriteRecords(int slot, uint64_t off, uint64_t seq, const std::vector<std::string>& payloads,
                             uint64_t* end) {
  for (const std::string& p : payloads) {
    std::string rec = BuildRecord(SeedOf(sb_), seq++, p);
    if (off + rec.size() > SlotBytes()) return Status::Error(ENOSPC, "metadata log full");
    for (int c = 0; c < 2; ++c) DG_RETURN_IF_ERROR(WriteBytes(c, slot, off, rec));
    off += rec.size();
  }
  *end = off;
  return Status::Ok();
}

Status MetaLog::WriteSuper() {
  SealSuperBlock(&sb_);
  if (dry_run_) return Status::Ok();
  std::string page(kBlockSize, '\0');
  std::memcpy(page.data(), &sb_, sizeof sb_);
  for (int c = 0; c < 2; ++c) {
    auto w = dev_.RecoveryWrite(geo_.SuperBlock(c) * kBlockSize, page.data(), page.size());
    if (!w.ok()) return w.status();
  }
  return Status::Ok();
}

static uint32_t CleanEndCrc(CleanEnd end) {
  end.crc = 0;
  return Crc32c(&end, sizeof end);
}

bool MetaLog::CleanEndAt(uint64_t pos, uint64_t seq) const {
  for (int c = 0; c < 2; ++c) {
    CleanEnd end;
    if (dev_.ReadMcSafe(geo_.SuperBlock(c) * kBlockSize + kCleanEndOffset, &end, sizeof end) != sizeof end) continue;
    if (end.magic == kCleanEndMagic && end.crc == CleanEndCrc(end) && end.generation == sb_.generation &&
        end.tail == pos && end.next_seq == seq)
      return true;
  }
  return false;
}

Status MetaLog::WriteCleanEnd(const CleanEnd& end) {
  if (dry_run_) return Status::Ok();
  for (int c = 0; c < 2; ++c) {
    auto w = dax::WriteAt(dev_, geo_.SuperBlock(c) * kBlockSize + kCleanEndOffset, &end, sizeof end);
    if (!w.ok()) return w.status();
    if (*w != sizeof end) return Status::Io("short superblock write");
  }
  return Status::Ok();
}

Status MetaLog::MarkCleanEnd() {
  CleanEnd end{kCleanEndMagic, 0, sb_.generation, tail_, next_seq_};
  end.crc = CleanEndCrc(end);
  DG_RETURN_IF_ERROR(WriteCleanEnd(end));
  clean_end_cleared_ = false;
  return Status::Ok();
}

Status MetaLog::ChooseSuper() {
  bool found = false;
  bool stale = false;
  Status why = Status::Corrupt("no valid daxfs superblock (run daxguard mkfs first)");
  for (int c = 0; c < 2; ++c) {
    SuperBlock sb;
    bool read = dev_.ReadMcSafe(geo_.SuperBlock(c) * kBlockSize, &sb, sizeof sb) == sizeof sb;
    Status check = read ? CheckSuperBlock(sb, dev_.size()) : Status::Corrupt("superblock unreadable");
    bool ok = check.ok();
    // A daxfs superblock refused for its version says so, not "no daxfs".
    if (check.err() == EPROTONOSUPPORT) why = check;
    if (ok && (!found || sb.generation > sb_.generation)) {
      stale |= found;  // the copy read before is older
      sb_ = sb;
      found = true;
    } else if (!ok || std::memcmp(&sb, &sb_, sizeof sb) != 0) {
      stale = true;
    }
  }
  if (!found) return why;
  return stale ? WriteSuper() : Status::Ok();
}

Status MetaLog::Format(const std::vector<Op>& snapshot) {
  std::memcpy(sb_.magic, kSuperMagic, sizeof kSuperMagic);
  sb_.version = kFormatVersion;
  sb_.blocks = geo_.blocks;
  sb_.meta_blocks = geo_.meta_blocks;
  sb_.generation = 1;
  sb_.active_slot = 0;
  sb_.log_start_seq = 1;
  std::random_device rd;
  for (auto& b : sb_.uuid) b = static_cast<uint8_t>(rd());
  // Clearing the areas also clears any poison in them.
  for (int c = 0; c < 2; ++c)
    DG_RETURN_IF_ERROR(dev_.ZeroPageRange(geo_.SuperBlock(c), geo_.AreaStart(c) + geo_.meta_blocks - geo_.SuperBlock(c)));
  DG_RETURN_IF_ERROR(WriteRecords(0, 0, 1, SplitPayloads(snapshot), &tail_));
  next_seq_ = 1 + SplitPayloads(snapshot).size();
  return WriteSuper();
}

Status MetaLog::Replay(const std::function<Status(const std::vector<Op>&)>& apply, ReplayReport* report) {
  DG_RETURN_IF_ERROR(ChooseSuper());
  int slot = static_cast<int>(sb_.active_slot);
  uint64_t pos = 0, seq = sb_.log_start_seq, last = UINT64_MAX;
  std::string rec, other;
  for (;; ++seq) {
    Read a = ReadRecord(0, pos, seq, &rec);
    if (a != Read::kOk) {
      Read b = ReadRecord(1, pos, seq, &rec);
      if (b != Read::kOk) {
        // The end of the log, a write torn by a crash, or a hole: a valid
        // record further on tells a hole, and replay goes on from there.
        uint64_t next_pos, next_seq;
        if (CleanEndAt(pos, seq)) break;
        if (FindNextRecord(pos, seq, &next_pos, &next_seq)) {
          report->lost.push_back(LostRecords(seq, next_seq) + " unreadable in both copies; replay resumed at record " +
                                 std::to_string(next_seq));
          pos = next_pos;
          seq = next_seq - 1;
          continue;
        }
        if (a == Read::kPoison && b == Read::kPoison)
          report->lost.push_back("metadata log record " + std::to_string(seq) +
                                 " unreadable in both copies; changes from it on are missing");
        break;
      }
      DG_RETURN_IF_ERROR(WriteBytes(0, slot, pos, rec));  // copy A rebuilt from B
      ++report->repaired_blocks;
    }
    std::vector<Op> ops;
    DG_RETURN_IF_ERROR(DecodeOps(std::string_view(rec).substr(sizeof(RecordHeader),
                                                              reinterpret_cast<RecordHeader*>(rec.data())->len),
                                 &ops));
    if (Status applied = apply(ops); !applied.ok()) {
      // Past a hole a change may build on what was lost: named, not fatal.
      if (report->lost.empty()) return applied;
      report->lost.push_back("metadata log record " + std::to_string(seq) + " could not be applied after the loss: " +
                             applied.message());
    }
    ++report->records;
    last = pos;
    pos += rec.size();
  }
  tail_ = pos;
  next_seq_ = seq;
  // A crash between the two copies' writes leaves B without the last record.
  if (last != UINT64_MAX && report->lost.empty()) {
    ReadRecord(0, last, seq - 1, &rec);
    if (ReadRecord(1, last, seq - 1, &other) != Read::kOk || other != rec) {
      DG_RETURN_IF_ERROR(WriteBytes(1, slot, last, rec));
      report->last_record_resynced = true;
      if (dry_run_) unsynced_from_ = last;
    }
  }
  return Status::Ok();
}

Status MetaLog::Append(const std::vector<Op>& ops) {
  if (!clean_end_cleared_) {  // the log is about to go past it
    DG_RETURN_IF_ERROR(WriteCleanEnd(CleanEnd{}));
    clean_end_cleared_ = true;
  }
  std::string payload;
  EncodeOps(ops, &payload);
  DG_RETURN_IF_ERROR(WriteRecords(static_cast<int>(sb_.active_slot), tail_, next_seq_, {payload}, &tail_));
  ++next_seq_;
  return Status::Ok();
}

Status MetaLog::Compact(const std::vector<Op>& snapshot) {
  int other = 1 - static_cast<int>(sb_.active_slot);
  std::vector<std::string> payloads = SplitPayloads(snapshot);
  uint64_t end = 0;
  DG_RETURN_IF_ERROR(WriteRecords(other, 0, next_seq_, payloads, &end));
  SuperBlock old = sb_;
  sb_.generation++;
  sb_.version = kFormatVersion;  // a fresh snapshot is always in the current format
  sb_.active_slot = other;
  sb_.log_start_seq = next_seq_;
  if (Status s = WriteSuper(); !s.ok()) {
    sb_ = old;
    return s;
  }
  tail_ = end;
  next_seq_ += payloads.size();
  return Status::Ok();
}

std::string MetaLog::Describe(uint64_t blk) const {
  for (int c = 0; c < 2; ++c) {
    if (blk == geo_.SuperBlock(c)) return std::string("superblock copy ") + CopyName(c);
    if (blk >= geo_.AreaStart(c) && blk < geo_.AreaStart(c) + geo_.meta_blocks) {
      uint64_t rel = blk - geo_.AreaStart(c);
      int slot = static_cast<int>(rel / geo_.SlotBlocks());
      uint64_t idx = rel % geo_.SlotBlocks();
      bool live = slot == static_cast<int>(sb_.active_slot) && idx * kBlockSize < tail_;
      return std::string("metadata log copy ") + CopyName(c) + " slot " + std::to_string(slot) + " block " +
             std::to_string(idx) + (live ? " (live)" : " (unused)");
    }
  }
  return "not metadata";
}

Status MetaLog::Repair(uint64_t blk, bool* lost) {
  *lost = false;
  for (int c = 0; c < 2; ++c) {
    if (blk == geo_.SuperBlock(c)) return WriteSuper();
    if (blk < geo_.AreaStart(c) || blk >= geo_.AreaStart(c) + geo_.meta_blocks) continue;
    uint64_t rel = blk - geo_.AreaStart(c);
    int slot = static_cast<int>(rel / geo_.SlotBlocks());
    uint64_t idx = rel % geo_.SlotBlocks();
    if (slot != static_cast<int>(sb_.active_slot) || idx * kBlockSize >= tail_)
      return dev_.ZeroPageRange(blk, 1);  // holds nothing live: just clear it
    auto r = RebuildBlock(slot, idx);
    if (!r.ok()) return r.status();
    *lost = *r > 0;
    return Status::Ok();
  }
  return Status::Invalid("block " + std::to_string(blk) + " is not metadata");
}

Status MetaLog::Scrub(ReplayReport* report) {
  int slot = static_cast<int>(sb_.active_slot);
  // Only the live bytes count: past the tail, a write torn by a crash may
  // have reached one copy and not the other (and so may the last record).
  uint64_t end = std::min(tail_, unsynced_from_);
  for (uint64_t idx = 0; idx * kBlockSize < end; ++idx) {
    uint64_t live = std::min(kBlockSize, end - idx * kBlockSize);
    uint8_t a[kBlockSize], b[kBlockSize];
    bool same = dev_.ReadMcSafe(SlotAddr(0, slot, idx * kBlockSize), a, live) == live &&
                dev_.ReadMcSafe(SlotAddr(1, slot, idx * kBlockSize), b, live) == live &&
                std::memcmp(a, b, live) == 0;
    if (same) continue;
    auto r = RebuildBlock(slot, idx);
    if (!r.ok()) return r.status();
    ++report->repaired_blocks;
    if (*r) report->lost.push_back("metadata log block " + std::to_string(idx) + ": " + std::to_string(*r) +
                                   " lines unreadable in both copies");
  }
  return Status::Ok();
}

}  // namespace daxguard::fs
