#include "fs/meta_log.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <random>
#include <string_view>
#include <utility>

#include "dax/dax_io.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kMaxPayload = 1 << 20;  // snapshots are cut into records of this size

const char* CopyName(int c) { return c == 0 ? "A" : "B"; }

std::string LostRecords(uint64_t first, uint64_t next) {
  if (next == first + 1) return "metadata log record " + std::to_string(first);
  return "metadata log records " + std::to_string(first) + " to " + std::to_string(next - 1);
}

}  // namespace

// Records of at most kMaxPayload bytes each (a single op may exceed it).
std::vector<MetaLog::Encoded> MetaLog::Encode(const std::vector<Op>& ops) {
  std::vector<Encoded> out;
  size_t first = 0;
  std::string payload;
  for (size_t i = 0; i <= ops.size(); ++i) {
    if (i == ops.size() || payload.size() >= kMaxPayload) {
      std::string summary;
      EncodeSummary(Summarize(std::span(ops).subspan(first, i - first)), &summary);
      out.push_back({std::move(payload), std::move(summary)});
      payload.clear();
      first = i;
    }
    if (i < ops.size()) EncodeOps({ops[i]}, &payload);
  }
  return out;
}

// A snapshot's records: the first leads with a copy of `sb`, the superblock
// that is to point at it, and how many records the snapshot spans.
std::vector<MetaLog::Encoded> MetaLog::EncodeSnapshot(const SuperBlock& sb, const std::vector<Op>& snapshot) {
  std::vector<Encoded> out = Encode(snapshot);
  std::string head;
  EncodeOps({Op::Super(std::string(reinterpret_cast<const char*>(&sb), sizeof sb), out.size())}, &head);
  out[0].payload.insert(0, head);
  return out;
}

// The CRC is seeded from the filesystem's uuid, so records left over from an
// earlier filesystem on the same device never pass for ours.
static std::string BuildRecord(uint32_t seed, uint64_t seq, const std::string& payload, const std::string& summary) {
  RecordHeader h{kRecordMagic, static_cast<uint32_t>(payload.size()), seq, 0, static_cast<uint32_t>(summary.size())};
  size_t body = payload.size() + summary.size();
  std::string rec(RecordSpan(body), '\0');
  std::memcpy(rec.data(), &h, sizeof h);
  std::memcpy(rec.data() + sizeof h, payload.data(), payload.size());
  std::memcpy(rec.data() + sizeof h + payload.size(), summary.data(), summary.size());
  uint32_t crc = Crc32c(rec.data(), sizeof h + body, seed);
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
  if (!dev_.ReadAll(SlotAddr(copy, slot, pos), &h, sizeof h)) return Read::kPoison;
  uint64_t body = uint64_t{h.len} + h.summary_len;
  if (h.magic != kRecordMagic || h.seq != seq || body > SlotBytes() - pos - sizeof h) return Read::kEnd;
  bytes->assign(RecordSpan(body), '\0');
  size_t want = sizeof h + body;
  if (!dev_.ReadAll(SlotAddr(copy, slot, pos), bytes->data(), want)) return Read::kPoison;
  uint32_t crc = h.crc;
  std::memset(bytes->data() + offsetof(RecordHeader, crc), 0, sizeof crc);
  bool ok = Crc32c(bytes->data(), want, SeedOf(sb_)) == crc;
  std::memcpy(bytes->data() + offsetof(RecordHeader, crc), &crc, sizeof crc);
  return ok ? Read::kOk : Read::kEnd;
}

void MetaLog::ReadEither(uint64_t off, uint8_t* dst, size_t len) const {
  int slot = static_cast<int>(sb_.active_slot);
  for (size_t done = 0; done < len;) {
    done += dev_.ReadMcSafe(SlotAddr(0, slot, off + done), dst + done, len - done).value_or(0);
    if (done == len) break;
    size_t line_end = std::min<uint64_t>(AlignDown(off + done, kLineSize) + kLineSize - off, len);
    size_t n = line_end - done;
    if (!dev_.ReadAll(SlotAddr(1, slot, off + done), dst + done, n)) std::memset(dst + done, 0, n);
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

Result<uint64_t> MetaLog::RebuildBlock(int slot, uint64_t idx, int suspect) {
  uint8_t page[kBlockSize];
  uint8_t line[2][kLineSize];
  // The suspect copy is the one an error was reported in, else one whose
  // page holds a known error: where both read and differ (it was cleared,
  // and so zeroed, before or after the error was told) the other wins, and
  // it is rewritten, since until then every write to it fails.
  bool rewrite[2];
  for (int c = 0; c < 2; ++c)
    rewrite[c] = c == suspect || dev_.KnownUnreadable(SlotAddr(c, slot, idx * kBlockSize), kBlockSize);
  int prefer = suspect >= 0 ? 1 - suspect : rewrite[0] && !rewrite[1] ? 1 : 0;
  uint64_t lost = 0;
  for (uint64_t l = 0; l < kBlockSize / kLineSize; ++l) {
    uint64_t off = idx * kBlockSize + l * kLineSize;
    bool ok[2];
    for (int c = 0; c < 2; ++c) ok[c] = dev_.ReadAll(SlotAddr(c, slot, off), line[c], kLineSize);
    int src = ok[prefer] ? prefer : ok[1 - prefer] ? 1 - prefer : -1;
    if (src < 0) {
      ++lost;
      std::memset(page + l * kLineSize, 0, kLineSize);
    } else {
      std::memcpy(page + l * kLineSize, line[src], kLineSize);
    }
    for (int c = 0; c < 2; ++c)
      rewrite[c] |= !ok[c] || (src >= 0 && std::memcmp(line[c], line[src], kLineSize) != 0);
  }
  for (int c = 0; c < 2; ++c) {
    if (!rewrite[c] || dry_run_) continue;
    auto w = dev_.RecoveryWrite(SlotAddr(c, slot, idx * kBlockSize), page, kBlockSize);
    if (!w.ok()) return w.status();
  }
  Fence();
  return lost;
}

Status MetaLog::WriteBytes(int copy, int slot, uint64_t off, const std::string& bytes) {
  if (dry_run_) return Status::Ok();
  uint64_t at = SlotAddr(copy, slot, off);
  auto w = dax::WriteAt(dev_, at, bytes.data(), bytes.size());  // written back
  if (w.ok() && *w == bytes.size()) return Status::Ok();
  // Known poison under a partial page: rebuild those blocks, then retry.
  for (uint64_t b = off / kBlockSize; b <= (off + bytes.size() - 1) / kBlockSize; ++b) {
    auto r = RebuildBlock(slot, b);
    if (!r.ok()) return r.status();
  }
  w = dax::WriteAt(dev_, at, bytes.data(), bytes.size());
  if (!w.ok()) return w.status();
  if (*w != bytes.size()) return Status::Io("short metadata write");
  return Status::Ok();
}

Status MetaLog::WriteRecords(int slot, uint64_t off, uint64_t seq, const std::vector<Encoded>& recs,
                             const std::string& before, uint64_t* end) {
  // What the records describe (data written back, earlier records) is
  // durable before they are, and each record before the next: a crash
  // never leaves a record standing behind a torn one.
  Fence();
  for (size_t i = 0; i < recs.size(); ++i) {
    std::string rec = BuildRecord(SeedOf(sb_), seq++, recs[i].payload, i ? recs[i - 1].summary : before);
    if (off + rec.size() > SlotBytes()) return Status::Error(ENOSPC, "metadata log full");
    for (int c = 0; c < 2; ++c) DG_RETURN_IF_ERROR(WriteBytes(c, slot, off, rec));
    Fence();
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
  // One copy at a time: a crash tears at most the one being written, and
  // the other is whole (of the old generation or the new).
  for (int c = 0; c < 2; ++c) {
    auto w = dev_.RecoveryWrite(geo_.SuperBlock(c) * kBlockSize, page.data(), page.size());
    if (!w.ok()) return w.status();
    Fence();
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
    if (!dev_.ReadAll(geo_.SuperBlock(c) * kBlockSize + kCleanEndOffset, &end, sizeof end)) continue;
    if (end.magic == kCleanEndMagic && end.crc == CleanEndCrc(end) && end.generation == sb_.generation &&
        end.tail == pos && end.next_seq == seq)
      return true;
  }
  return false;
}

Status MetaLog::WriteCleanEnd(const CleanEnd& end) {
  if (dry_run_) return Status::Ok();
  for (int c = 0; c < 2; ++c) {
    uint64_t at = geo_.SuperBlock(c) * kBlockSize + kCleanEndOffset;
    auto w = dax::WriteAt(dev_, at, &end, sizeof end);
    if (!w.ok()) return w.status();
    if (*w != sizeof end) return Status::Io("short superblock write");
  }
  Fence();
  return Status::Ok();
}

Status MetaLog::MarkCleanEnd() {
  CleanEnd end{kCleanEndMagic, 0, sb_.generation, tail_, next_seq_};
  end.crc = CleanEndCrc(end);
  DG_RETURN_IF_ERROR(WriteCleanEnd(end));
  clean_end_cleared_ = false;
  return Status::Ok();
}

Status MetaLog::ChooseSuper(ReplayReport* report) {
  bool found = false;
  bool stale = false;
  std::string why[2];
  for (int c = 0; c < 2; ++c) {
    SuperBlock sb;
    bool read = ReadSuperAt(c, &sb);
    Status check = read ? CheckSuperBlock(sb, dev_.size()) : Status::Corrupt("unreadable");
    bool ok = check.ok();
    // A daxfs superblock refused for its version says so, and is not rebuilt.
    if (check.err() == EPROTONOSUPPORT) return check;
    why[c] = check.message();
    if (ok && (!found || sb.generation > sb_.generation)) {
      stale |= found;  // the copy read before is older
      sb_ = sb;
      found = true;
    } else if (!ok || std::memcmp(&sb, &sb_, sizeof sb) != 0) {
      stale = true;
    }
  }
  if (found) return stale ? WriteSuper() : Status::Ok();
  std::string from;
  if (!RecoverSuper(&from)) {
    std::string traces = FindDaxfs(dev_, geo_);
    if (traces.empty()) return Status::Corrupt("no daxfs filesystem on this device (run daxguard mkfs first)");
    return Status::Corrupt("no usable superblock (copy A: " + why[0] + "; copy B: " + why[1] +
                           ") and no metadata log copy to rebuild one from, although the device holds " + traces);
  }
  report->repaired.push_back("both superblocks were unusable (copy A: " + why[0] + "; copy B: " + why[1] +
                             "): rebuilt from the copy in " + from);
  return WriteSuper();
}

bool MetaLog::ReadSuperCopy(int copy, int slot, SuperBlock* sb, uint64_t* records) const {
  RecordHeader h;
  uint64_t at = SlotAddr(copy, slot, 0);
  if (!dev_.ReadAll(at, &h, sizeof h) || h.magic != kRecordMagic || h.len > SlotBytes() - sizeof h)
    return false;
  std::string payload(h.len, '\0');
  std::vector<Op> ops;
  if (!dev_.ReadAll(at + sizeof h, payload.data(), h.len) || !DecodeOps(payload, &ops).ok() ||
      ops.empty() || ops[0].type != OpType::kSuper ||
      (ops[0].name.size() != sizeof *sb && ops[0].name.size() != kLegacySuperBytes))
    return false;
  *sb = SuperBlock{};
  std::memcpy(sb, ops[0].name.data(), kLegacySuperBytes);
  if (sb->version >= 4) std::memcpy(sb, ops[0].name.data(), ops[0].name.size());
  *records = ops[0].len;
  return CheckSuperBlock(*sb, dev_.size()).ok() && sb->active_slot == static_cast<uint64_t>(slot) &&
         sb->log_start_seq == h.seq;
}

bool MetaLog::SnapshotWhole(const SuperBlock& sb, uint64_t records) {
  SuperBlock saved = sb_;
  sb_ = sb;  // ReadRecord reads sb's slot and checks with its seed
  std::string rec;
  bool whole = true;
  for (uint64_t i = 0, pos = 0; whole && i < records; ++i, pos += rec.size())
    whole = ReadRecord(0, pos, sb.log_start_seq + i, &rec) == Read::kOk ||
            ReadRecord(1, pos, sb.log_start_seq + i, &rec) == Read::kOk;
  sb_ = saved;
  return whole;
}

bool MetaLog::RecoverSuper(std::string* from) {
  bool found = false;
  SuperBlock best{};
  for (int slot = 0; slot < 2; ++slot) {
    for (int c = 0; c < 2; ++c) {
      SuperBlock sb;
      uint64_t records = 0;
      if (!ReadSuperCopy(c, slot, &sb, &records) || (found && sb.generation <= best.generation)) continue;
      // A snapshot cut short by a crash while compacting never took over.
      if (!SnapshotWhole(sb, records)) continue;
      best = sb;
      found = true;
      *from = std::string("metadata log copy ") + CopyName(c) + " slot " + std::to_string(slot);
    }
  }
  if (found) sb_ = best;
  return found;
}

std::string FindDaxfs(dax::Device& dev, const Geometry& g) {
  if (g.blocks < kMinBlocks) return "";  // too small to have held one
  // Poison may hide one; what can never be read (an error target) holds none.
  auto unreadable = [&](uint64_t off, void* dst, uint64_t len) {
    return !dev.ReadAll(off, dst, len) && dev.CanRecover(off, len);
  };
  for (int c = 0; c < 2; ++c) {
    SuperBlock sb{};
    std::string what = std::string("superblock copy ") + CopyName(c);
    if (unreadable(g.SuperBlock(c) * kBlockSize, &sb, sizeof sb)) return what + " (unreadable)";
    if (std::memcmp(sb.magic, kSuperMagic, sizeof kSuperMagic) == 0) return what;
  }
  // Any record header in a slot's first blocks (its first record may be
  // the damaged one).
  uint64_t span = std::min<uint64_t>(64 << 10, g.SlotBlocks() * kBlockSize);
  std::vector<uint8_t> buf(span);
  for (int c = 0; c < 2; ++c) {
    for (int slot = 0; slot < 2; ++slot) {
      std::string what = std::string("metadata log copy ") + CopyName(c) + " slot " + std::to_string(slot);
      std::fill(buf.begin(), buf.end(), 0);
      if (unreadable(g.SlotStart(c, slot) * kBlockSize, buf.data(), span)) return what + " (unreadable)";
      for (uint64_t i = 0; i + sizeof(RecordHeader) <= span; i += 8) {
        RecordHeader h;
        std::memcpy(&h, buf.data() + i, sizeof h);
        if (h.magic == kRecordMagic && h.seq != 0 && h.len < g.SlotBlocks() * kBlockSize)
          return "a record of " + what;
      }
    }
  }
  return "";
}

std::optional<SuperBlock> MetaLog::NewestValidSuper() const {
  std::optional<SuperBlock> best;
  for (int c = 0; c < 2; ++c) {
    SuperBlock sb;
    if (ReadSuperAt(c, &sb) && CheckSuperBlock(sb, dev_.size()).ok() && (!best || sb.generation > best->generation))
      best = sb;
  }
  return best;
}

bool MetaLog::ReadSuperAt(int copy, SuperBlock* sb) const {
  if (!dev_.ReadAll(geo_.SuperBlock(copy) * kBlockSize, sb, sizeof *sb)) return false;
  // Before format 4 the fields past the legacy bytes are not the superblock's.
  if (sb->version < 4) std::memset(reinterpret_cast<char*>(sb) + kLegacySuperBytes, 0, sizeof *sb - kLegacySuperBytes);
  return true;
}

std::optional<SuperBlock> MetaLog::FindSuper(dax::Device& dev) {
  MetaLog probe(dev, GeometryFor(dev.size()));
  if (auto sb = probe.NewestValidSuper()) return sb;
  std::string from;
  if (probe.RecoverSuper(&from)) return probe.sb_;
  return std::nullopt;
}

Geometry MetaLog::GeometryOf(dax::Device& dev) {
  std::optional<SuperBlock> sb = FindSuper(dev);
  return GeometryFor(dev.size(), static_cast<DataProtection>(sb ? sb->protection : 0));
}

Status MetaLog::ZeroSlot(int slot) {
  for (int c = 0; c < 2; ++c) DG_RETURN_IF_ERROR(dev_.ZeroPageRange(geo_.SlotStart(c, slot), geo_.SlotBlocks()));
  return Status::Ok();
}

Status MetaLog::Format(const std::vector<Op>& snapshot) {
  // Over a daxfs, the new one goes into the slot the old one does not use
  // and the superblocks switch to it, as a compaction does: stopped at any
  // step, the device holds the old filesystem or the new one. Zeroing
  // clears poison as well as old records.
  std::optional<SuperBlock> old = NewestValidSuper();
  std::memcpy(sb_.magic, kSuperMagic, sizeof kSuperMagic);
  sb_.version = kFormatVersion;
  sb_.protection = static_cast<uint32_t>(geo_.protection);
  sb_.protect_blocks = geo_.protect_blocks;
  sb_.blocks = geo_.blocks;
  sb_.meta_blocks = geo_.meta_blocks;
  sb_.generation = old ? old->generation + 1 : 1;
  sb_.active_slot = old ? 1 - old->active_slot : 0;
  sb_.log_start_seq = 1;
  std::random_device rd;
  for (auto& b : sb_.uuid) b = static_cast<uint8_t>(rd());
  sb_.protection_tag = rd();
  SealSuperBlock(&sb_);
  int slot = static_cast<int>(sb_.active_slot);
  if (old) {
    DG_RETURN_IF_ERROR(ZeroSlot(slot));
  } else {
    for (int c = 0; c < 2; ++c)
      DG_RETURN_IF_ERROR(dev_.ZeroPageRange(geo_.SuperBlock(c), geo_.AreaStart(c) + geo_.meta_blocks - geo_.SuperBlock(c)));
  }
  std::vector<Encoded> recs = EncodeSnapshot(sb_, snapshot);
  DG_RETURN_IF_ERROR(WriteRecords(slot, 0, 1, recs, "", &tail_));
  next_seq_ = 1 + recs.size();
  prev_summary_ = recs.back().summary;
  DG_RETURN_IF_ERROR(WriteSuper());
  return old ? ZeroSlot(1 - slot) : Status::Ok();
}

void MetaLog::NoteLoss(uint64_t first, uint64_t next, std::string_view summary,
                       const std::function<void(const Summary&)>& lost, ReplayReport* report) const {
  // Record `next` tells what the one before it changed; of any lost before
  // that, nothing is known.
  Summary sum;
  bool known = !summary.empty() && DecodeSummary(summary, &sum).ok();
  std::string what = LostRecords(first, next) + " unreadable in both copies; replay resumed at record " +
                     std::to_string(next);
  uint64_t unknown_to = known && sum.complete ? next - 1 : next;
  if (unknown_to > first) {
    what += "; what " + LostRecords(first, unknown_to) + " changed is unknown";
    report->unknown.push_back(LostRecords(first, unknown_to) + " lost in both copies; what it changed is unknown");
  }
  report->lost.push_back(what);
  if (known && lost) lost(sum);
}

Status MetaLog::Replay(const std::function<Status(const std::vector<Op>&)>& apply, ReplayReport* report,
                       const std::function<void(const Summary&)>& lost) {
  DG_RETURN_IF_ERROR(ChooseSuper(report));
  int slot = static_cast<int>(sb_.active_slot);
  uint64_t pos = 0, seq = sb_.log_start_seq, last = UINT64_MAX;
  uint64_t hole = 0;  // the first record of a hole just passed, else 0
  uint64_t rebuilt_a = UINT64_MAX;  // where A was last rebuilt from B
  std::string rec, other;
  std::vector<Op> ops;  // the last record's
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
          hole = seq;
          pos = next_pos;
          seq = next_seq - 1;
          continue;
        }
        if (a == Read::kPoison && b == Read::kPoison) {
          report->lost.push_back("metadata log record " + std::to_string(seq) +
                                 " unreadable in both copies; changes from it on are missing, what they changed is unknown");
          report->unknown.push_back("metadata log records from " + std::to_string(seq) +
                                    " on lost in both copies; what they changed is unknown");
        }
        break;
      }
      DG_RETURN_IF_ERROR(WriteBytes(0, slot, pos, rec));  // copy A rebuilt from B
      Fence();
      rebuilt_a = pos;
    }
    // A record rebuilt in A with one after it was damage; the last one may
    // be a crash between the copies' writes that reached B first.
    if (rebuilt_a < pos) ++report->repaired_blocks, rebuilt_a = UINT64_MAX;
    const RecordHeader* h = reinterpret_cast<const RecordHeader*>(rec.data());
    std::string_view body = std::string_view(rec).substr(sizeof *h);
    ops.clear();
    DG_RETURN_IF_ERROR(DecodeOps(body.substr(0, h->len), &ops));
    if (hole) NoteLoss(std::exchange(hole, 0), seq, body.substr(h->len, h->summary_len), lost, report);
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
  prev_summary_.clear();
  EncodeSummary(Summarize(ops), &prev_summary_);
  // A crash between the two copies' writes leaves one without the last
  // record: A was rebuilt from B above (a dry run leaves it), B is now.
  if (rebuilt_a != UINT64_MAX) report->last_record_resynced = true;
  if (last != UINT64_MAX && report->lost.empty()) {
    bool a_ok = ReadRecord(0, last, seq - 1, &rec) == Read::kOk;
    if (!a_ok || ReadRecord(1, last, seq - 1, &other) != Read::kOk || other != rec) {
      if (a_ok) DG_RETURN_IF_ERROR(WriteBytes(1, slot, last, rec));
      Fence();
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
  Encoded rec;
  EncodeOps(ops, &rec.payload);
  EncodeSummary(Summarize(ops), &rec.summary);
  DG_RETURN_IF_ERROR(WriteRecords(static_cast<int>(sb_.active_slot), tail_, next_seq_, {rec}, prev_summary_, &tail_));
  ++next_seq_;
  prev_summary_ = std::move(rec.summary);
  return Status::Ok();
}

bool MetaLog::FitsOneRecord(const std::vector<Op>& ops) const {
  std::string payload, summary;
  EncodeOps(ops, &payload);
  EncodeSummary(Summarize(ops), &summary);
  return RecordSpan(payload.size() + summary.size()) <= SlotBytes() / 4;
}

Status MetaLog::Compact(const std::vector<Op>& snapshot) {
  SuperBlock next = sb_;
  next.generation++;
  next.version = kFormatVersion;  // a fresh snapshot is always in the current format
  next.active_slot = 1 - sb_.active_slot;
  next.log_start_seq = next_seq_;
  SealSuperBlock(&next);
  std::vector<Encoded> recs = EncodeSnapshot(next, snapshot);
  uint64_t end = 0;
  DG_RETURN_IF_ERROR(WriteRecords(static_cast<int>(next.active_slot), 0, next_seq_, recs, "", &end));  // the first of its slot
  SuperBlock old = sb_;
  sb_ = next;
  if (Status s = WriteSuper(); !s.ok()) {
    sb_ = old;
    return s;
  }
  tail_ = end;
  next_seq_ += recs.size();
  prev_summary_ = recs.back().summary;
  return Status::Ok();
}

std::string MetaLog::Describe(uint64_t blk) const {
  if (blk >= geo_.ProtectStart() && blk < geo_.blocks) return ProtectionAreaName(geo_);
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
    auto r = RebuildBlock(slot, idx, c);  // copy c was reported: even if cleared since, the other wins
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
    bool same = dev_.ReadAll(SlotAddr(0, slot, idx * kBlockSize), a, live) &&
                dev_.ReadAll(SlotAddr(1, slot, idx * kBlockSize), b, live) &&
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
