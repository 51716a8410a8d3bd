// The data path of daxfs: reads and writes go straight to device blocks
// through the dax layer; shared blocks are copied before a write, holes are
// filled from free space, and a damaged page is repaired by a write that
// keeps its good lines and leaves the lines it did not cover reading as EIO.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "common/light_section.h"
#include "dax/dax_io.h"
#include "fs/filesystem.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kLinesPerBlock = kBlockSize / kLineSize;
constexpr size_t kMaxOpsPerCommit = 65536;
constexpr size_t kMaxStagedOps = 1024;  // well inside a quarter of the smallest log slot

}  // namespace

File::~File() {
  if (!dp_) return;  // the filesystem went first
  DataPath::Scope g(dp_);
  dp_->CloseHandle(this);
}

Result<Inode*> File::Begin(Guard* g, Access a) {
  if (!dp_) return Status::Error(EBADF, "the filesystem was unmounted");
  g->emplace(dp_);
  if (a == Access::kChange) DG_RETURN_IF_ERROR(dp_->Writable());
  DG_ASSIGN_OR_RETURN(Inode* in, Me());
  if (a == Access::kChange) dp_->Quiesce();
  return in;
}

Result<Inode*> File::Me() {
  if (dp_->gone()) return Status::Io("device has gone away");
  Inode* in = dp_->state().Find(ino_);
  if (!in) return Status::Error(ESTALE, "file no longer exists");
  return in;
}

// The fast path: one lookup in the handle's fast map and one device call,
// inside a light section instead of the filesystem's lock (see Quiesce).
// Everything that would need more — holes, damage, known or latent poison,
// shared blocks, the size changing, a stale map — misses and goes the
// careful way under the lock.
template <typename Mem>
bool File::FastIo(uint64_t off, size_t len, Mem* mem) {
  constexpr bool kWrite = std::is_const_v<Mem>;
  DataPath* fs = dp_;
  if (!fs || len == 0) return false;
  LightSection::Enter(fs);
  uint64_t at, vouched;
  bool done = fast_.Find(fs->data_gen(std::memory_order_acquire), off, len, kWrite, &at, &vouched);
  if constexpr (kWrite) done = done && fs->clean().Write(at, mem, len, vouched);
  else done = done && fs->clean().Read(at, mem, len, vouched);
  LightSection::Exit();
  if (kWrite && done && !times_marked_.load(std::memory_order_relaxed))
    times_marked_.store(true, std::memory_order_relaxed);
  return done;
}

bool File::FastEligible(const Inode& in, uint64_t off, uint64_t len) const {
  if (len == 0 || off >= in.attr.size || len > in.attr.size - off) return false;
  // A current map that spans off missed for a reason a refill keeps.
  if (fast_.Spans(dp_->data_gen(std::memory_order_relaxed), off)) return false;
  auto e = in.ExtentAt(off / kBlockSize);
  return e && !e->unwritten;
}

void File::RefillFastMap(const Inode& in, uint64_t off) {
  fast_.Fill(dp_->data_gen(std::memory_order_relaxed), in, dp_->state().space(), off, dp_->Writable().ok(),
             dp_->clean());
  dp_->NoteFastMapFilled();
}

Result<size_t> File::Read(uint64_t off, void* dst, size_t len) {
  if (FastIo(off, len, dst)) [[likely]] return len;
  return ReadSlow(off, dst, len);
}

Result<size_t> File::ReadSlow(uint64_t off, void* dst, size_t len) {
  Guard g;
  DG_ASSIGN_OR_RETURN(Inode* in, Begin(&g, Access::kLook));
  bool refill = FastEligible(*in, off, len);
  auto r = ReadLocked(in, off, static_cast<uint8_t*>(dst), len);
  if (refill) RefillFastMap(*in, off);
  return r;
}

Result<size_t> File::ReadLocked(Inode* in, uint64_t off, uint8_t* out, size_t len) {
  if (off >= in->attr.size || len == 0) return size_t{0};
  len = std::min<uint64_t>(len, in->attr.size - off);
  size_t done = 0;
  while (done < len) {
    uint64_t pos = off + done, want = len - done;
    if (auto d = in->damage.FirstOverlap(pos, want)) {
      if (d->first == pos) break;
      want = d->first - pos;
    }
    uint64_t fblk = pos / kBlockSize, in_blk = pos % kBlockSize;
    FileRun run = in->RunAt(fblk, (pos + want - 1) / kBlockSize + 1);
    const std::optional<Extent>& e = run.extent;
    uint64_t n = std::min(want, run.len * kBlockSize - in_blk);
    if (!e || e->unwritten) {  // holes and unwritten extents read as zeroes
      std::memset(out + done, 0, n);
      done += n;
      continue;
    }
    uint64_t dev_off = e->pblk * kBlockSize + in_blk;
    auto r = dax::ReadAt(dp_->device(), dev_off, out + done, n);
    uint64_t got = r.ok() ? *r : 0;
    bool stopped = false;
    if (got < n) {
      // The device refuses the whole page; the file knows its damage to the
      // line, so the page is read line-precisely, and when the page's poison
      // lies outside the range the read goes on with the next page.
      uint64_t page_end = std::min(n, AlignUp(dev_off + got + 1, kBlockSize) - dev_off);
      uint64_t part = dp_->device().ReadMcSafe(dev_off + got, out + done + got, page_end - got).value_or(0);
      stopped = part < page_end - got;
      got += part;
    }
    done += got;
    if (stopped) break;
  }
  if (done == 0) return Status::Io("media error in file range");
  return done;
}

Status File::CheckPartLines(const Inode& in, uint64_t off, uint64_t len) const {
  if (len == 0) return Status::Ok();
  for (uint64_t line : {AlignDown(off, kLineSize), AlignDown(off + len - 1, kLineSize)}) {
    bool whole = line >= off && line + kLineSize <= off + len;
    if (whole || line >= in.attr.size) continue;
    // Poison nobody knew of counts too: reading the line makes it known
    // (and the file's damage) before anything is written.
    auto e = in.ExtentAt(line / kBlockSize);
    uint8_t bytes[kLineSize];
    if (in.damage.Overlaps(line, kLineSize) ||
        (e && !e->unwritten &&
         !dp_->device().ReadAll(e->pblk * kBlockSize + line % kBlockSize, bytes, kLineSize)))
      return Status::Io("the range covers part of the damaged line at file offset " + std::to_string(line));
  }
  return Status::Ok();
}

// Repairs-or-writes one block: the old content is read line by line (bad
// lines are those the media or the file's damage list refuses), the new
// bytes laid over, and the whole page written with a recovery write, onto
// a fresh block if the old one is shared (or `place` asks). Lines that were
// bad and are not covered stay recorded as damaged: they read as EIO, never
// as zeroes; lines wholly past the end of the file are not the file's bytes.
Status File::StageBlock(Inode* in, uint64_t fblk, uint64_t in_blk, const uint8_t* src, uint64_t n, PartLine part,
                        Place place, Transaction* tx) {
  dax::Device& dev = dp_->device();
  auto e = in->ExtentAt(fblk);
  uint8_t page[kBlockSize] = {};
  bool bad[kLinesPerBlock] = {};
  uint64_t blk_off = fblk * kBlockSize;
  bool had_damage = in->damage.Overlaps(blk_off, kBlockSize);
  bool written = e && !e->unwritten;  // else the page reads as zeroes
  bool old_bad = false;
  // Usually the whole block reads: one read (one checksum, through data
  // protection), not one per line.
  bool all_read = written && !had_damage && dev.ReadAll(e->pblk * kBlockSize, page, kBlockSize);
  for (uint64_t l = 0; l < kLinesPerBlock; ++l) {
    uint64_t at = l * kLineSize;
    bad[l] = (had_damage && in->damage.Overlaps(blk_off + at, kLineSize)) ||
             (written && !all_read && !dev.ReadAll(e->pblk * kBlockSize + at, page + at, kLineSize));
    old_bad = old_bad || bad[l];
    if (bad[l]) std::memset(page + at, 0, kLineSize);
    if (blk_off + at >= in->attr.size) bad[l] = false;
  }
  auto whole = [&](uint64_t l) { return l * kLineSize >= in_blk && (l + 1) * kLineSize <= in_blk + n; };
  for (uint64_t l : {in_blk / kLineSize, (in_blk + n - 1) / kLineSize})
    if (part == PartLine::kRefuse && bad[l] && !whole(l))
      return Status::Io("the write covers part of the damaged line at file offset " +
                        std::to_string(blk_off + l * kLineSize));
  std::memcpy(page + in_blk, src, n);
  for (uint64_t l = 0; l < kLinesPerBlock; ++l)
    if (whole(l)) bad[l] = false;
  bool own = written && dp_->state().space().Exclusive(e->pblk, 1);
  uint64_t target = e ? e->pblk : 0;
  if (!e || !own || place == Place::kFresh) {
    auto prev = fblk ? in->ExtentAt(fblk - 1) : std::nullopt;
    auto got = FreeRun(1, prev ? prev->pblk + 1 : 0, tx->ops());
    if (!got) return Status::Error(ENOSPC, "no free space");
    target = got->first;
  }
  auto w = dev.RecoveryWrite(target * kBlockSize, page, kBlockSize);
  if (!w.ok()) return w.status();
  // The block let go keeps its poison: quarantined, never handed out again.
  if (own && target != e->pblk && old_bad) tx->Add(Op::Quarantine(e->pblk, 1, true));
  if (!e || target != e->pblk || e->unwritten) tx->Add(Op::Map(ino_, fblk, target, 1, false));
  if (had_damage) tx->Add(Op::Damage(ino_, fblk * kBlockSize, kBlockSize, false));
  for (uint64_t l = 0; l < kLinesPerBlock; ++l)
    if (bad[l]) tx->Add(Op::Damage(ino_, fblk * kBlockSize + l * kLineSize, kLineSize, true));
  return Status::Ok();
}

Status File::WriteBlock(Inode* in, uint64_t fblk, uint64_t in_blk, const uint8_t* src, uint64_t n, PartLine part,
                        Transaction* tx) {
  DG_RETURN_IF_ERROR(StageBlock(in, fblk, in_blk, src, n, part, Place::kOwnInPlace, tx));
  return tx->Commit();
}

std::optional<IntervalSet::Interval> File::FreeRun(uint64_t want, uint64_t goal, const std::vector<Op>& staged) const {
  for (size_t tries = 0; tries <= staged.size(); ++tries) {
    auto got = dp_->state().space().FindFree(want, goal);
    if (!got) return got;
    auto [p, n] = *got;
    uint64_t clash = p + n, clash_end = 0;
    for (const Op& op : staged)
      if (op.type == OpType::kMap && op.pblk < clash && p < op.pblk + op.len)
        clash = std::max(op.pblk, p), clash_end = op.pblk + op.len;
    if (clash == p + n) return got;
    if (clash > p) return IntervalSet::Interval{p, clash - p};
    goal = clash_end;
    want = 1;  // first fit from there on (a large request would look for an aligned run again)
  }
  return std::nullopt;
}

// Allocates device blocks for file blocks [fblk, +nblk) (a hole) and writes
// [pos, pos+n) of them from src; the rest of those blocks reads as zeroes.
// With `unwritten` nothing is written: the blocks are only reserved.
Status File::FillHole(Inode* in, uint64_t fblk, uint64_t nblk, uint64_t pos, const uint8_t* src, uint64_t n,
                      Transaction* tx, bool unwritten) {
  dax::Device& dev = dp_->device();
  while (nblk > 0) {
    auto prev = fblk ? in->ExtentAt(fblk - 1) : std::nullopt;
    auto got = FreeRun(nblk, prev ? prev->pblk + 1 : 0, tx->ops());
    if (!got) return Status::Error(ENOSPC, "no free space");
    auto [pblk, cnt] = *got;
    for (uint64_t i = 0; i < cnt && !unwritten; ++i) {
      uint64_t blk_off = (fblk + i) * kBlockSize;
      uint64_t lo = std::max(blk_off, pos), hi = std::min(blk_off + kBlockSize, pos + n);
      uint8_t page[kBlockSize] = {};
      const uint8_t* data = page;
      if (lo == blk_off && hi == blk_off + kBlockSize)
        data = src + (lo - pos);
      else if (lo < hi)
        std::memcpy(page + (lo - blk_off), src + (lo - pos), hi - lo);
      // A recovery write also clears latent poison left in free space.
      auto w = dev.RecoveryWrite((pblk + i) * kBlockSize, data, kBlockSize);
      if (!w.ok()) return w.status();
    }
    tx->Add(Op::Map(ino_, fblk, pblk, cnt, unwritten));
    // Damage in a hole (its extent record was lost) ends where whole lines
    // were written; the rest of it still reads as EIO.
    uint64_t lo = AlignUp(std::max(pos, fblk * kBlockSize), kLineSize);
    uint64_t hi = AlignDown(std::min(pos + n, (fblk + cnt) * kBlockSize), kLineSize);
    if (!unwritten && lo < hi && in->damage.Overlaps(lo, hi - lo)) tx->Add(Op::Damage(ino_, lo, hi - lo, false));
    // Written data is committed as it goes (no data journaling); unwritten
    // blocks (preallocation, zero range) wait for the caller's commit, so
    // those stay all-or-nothing unless the range is too fragmented for one
    // record.
    if (!unwritten || tx->ops().size() >= kMaxStagedOps) DG_RETURN_IF_ERROR(tx->Commit());
    fblk += cnt;
    nblk -= cnt;
  }
  return Status::Ok();
}

// Writes into a mapped extent: straight through when the blocks are this
// file's own, written and undamaged; block by block otherwise. *wrote
// counts the bytes in place, also when a later block fails.
Status File::WriteRun(Inode* in, uint64_t pos, const uint8_t* src, uint64_t n, uint64_t* wrote,
                      Transaction* tx) {
  uint64_t fblk = pos / kBlockSize;
  auto e = in->ExtentAt(fblk);
  uint64_t nblk = (pos + n - 1) / kBlockSize - fblk + 1;
  bool simple = !e->unwritten && !in->damage.Overlaps(pos, n) && dp_->state().space().Exclusive(e->pblk, nblk);
  uint64_t done = 0;
  if (simple) {
    uint64_t at = e->pblk * kBlockSize + pos % kBlockSize;
    auto w = dax::WriteAt(dp_->device(), at, src, n);  // written back
    if (w.ok()) done = *w;
    *wrote = done;
    if (done == n) return Status::Ok();
  }
  // The slow path, from the block where the fast one stopped.
  for (uint64_t p = AlignDown(pos + done, kBlockSize); p < pos + n; p = AlignDown(p, kBlockSize) + kBlockSize) {
    uint64_t lo = std::max(p, pos + done), hi = std::min(AlignDown(p, kBlockSize) + kBlockSize, pos + n);
    DG_RETURN_IF_ERROR(
        WriteBlock(in, lo / kBlockSize, lo % kBlockSize, src + (lo - pos), hi - lo, PartLine::kRefuse, tx));
    *wrote = hi - pos;
  }
  return Status::Ok();
}

void File::TouchAttr(Inode* in, uint64_t new_size, Transaction* tx) {
  Attr a = in->attr;
  a.mtime_ns = a.ctime_ns = NowNs();
  if (new_size != a.size) {
    a.size = new_size;
    tx->Add(Op::SetInode(ino_, a));
  } else {
    in->attr = a;  // timestamps alone are logged with the next change or fsync
  }
}

Result<size_t> File::Write(uint64_t off, const void* data, size_t len) {
  if (FastIo(off, len, data)) [[likely]] return len;
  return WriteSlow(off, data, len);
}

Result<size_t> File::WriteSlow(uint64_t off, const void* data, size_t len) {
  Guard g;
  DG_ASSIGN_OR_RETURN(Inode* in, Begin(&g, Access::kChange));
  bool refill = FastEligible(*in, off, len);
  auto r = WriteLocked(in, off, static_cast<const uint8_t*>(data), len);
  if (refill) RefillFastMap(*in, off);
  return r;
}

Result<size_t> File::WriteLocked(Inode* in, uint64_t off, const uint8_t* src, size_t len) {
  if (off + len < off || off + len > dp_->device().size()) return Status::Error(EFBIG, "file would exceed the device size");
  DG_RETURN_IF_ERROR(CheckPartLines(*in, off, len));
  DG_RETURN_IF_ERROR(GrowOver(in, off + len));
  Transaction tx(dp_);
  size_t done = 0;
  Status s;
  while (done < len && s.ok()) {
    uint64_t pos = off + done, fblk = pos / kBlockSize;
    FileRun run = in->RunAt(fblk, (off + len - 1) / kBlockSize + 1);
    uint64_t n = std::min<uint64_t>(len - done, run.len * kBlockSize - pos % kBlockSize), wrote = 0;
    if (!run.extent) {
      s = FillHole(in, fblk, run.len, pos, src + done, n, &tx, false);
      if (s.ok()) wrote = n;
    } else {
      s = WriteRun(in, pos, src + done, n, &wrote, &tx);
    }
    done += wrote;
  }
  TouchAttr(in, std::max<uint64_t>(in->attr.size, off + done), &tx);
  Status c = tx.Commit();
  if (!s.ok()) return done ? Result<size_t>(done) : Result<size_t>(s);
  if (!c.ok()) return c;
  return done;
}

Status File::WriteAtomic(uint64_t off, const void* src, size_t len) {
  if (len == 0 || off + len < off || off / kBlockSize != (off + len - 1) / kBlockSize)
    return Status::Invalid("an atomic write must be 1 to 4096 bytes within one 4096-byte page");
  Guard g;
  DG_ASSIGN_OR_RETURN(Inode* in, Begin(&g, Access::kChange));
  if (off + len > dp_->device().size()) return Status::Error(EFBIG, "file would exceed the device size");
  DG_RETURN_IF_ERROR(CheckPartLines(*in, off, len));
  DG_RETURN_IF_ERROR(GrowOver(in, off + len));
  Transaction tx(dp_);
  DG_RETURN_IF_ERROR(StageBlock(in, off / kBlockSize, off % kBlockSize, static_cast<const uint8_t*>(src), len,
                                PartLine::kRefuse, Place::kFresh, &tx));
  TouchAttr(in, std::max<uint64_t>(in->attr.size, off + len), &tx);
  return tx.Commit();
}

Status File::ZeroBytes(Inode* in, uint64_t off, uint64_t len, PartLine part, Place place, Transaction* tx) {
  static const uint8_t kZeroes[kBlockSize] = {};
  while (len > 0) {
    uint64_t fblk = off / kBlockSize, in_blk = off % kBlockSize;
    uint64_t n = std::min(len, kBlockSize - in_blk);
    auto e = in->ExtentAt(fblk);
    bool damaged = in->damage.Overlaps(off, n);
    if ((e && !e->unwritten) || damaged)
      DG_RETURN_IF_ERROR(StageBlock(in, fblk, in_blk, kZeroes, n, part, place, tx));
    off += n;
    len -= n;
  }
  return Status::Ok();
}

Status File::ZeroTail(Inode* in, uint64_t size, Transaction* tx) {
  uint64_t n = kBlockSize - size % kBlockSize;
  Status s = ZeroBytes(in, size, n, PartLine::kKeepDamaged, Place::kFresh, tx);
  if (s.err() != ENOSPC) return s;
  return ZeroBytes(in, size, n, PartLine::kKeepDamaged, Place::kOwnInPlace, tx);
}

Status File::GrowOver(Inode* in, uint64_t size) {
  uint64_t from = AlignUp(in->attr.size, kLineSize);
  if (size <= in->attr.size || !in->damage.Overlaps(from, UINT64_MAX / 2)) return Status::Ok();
  Transaction tx(dp_);
  for (const auto& [off, len] : in->damage.Overlapping(from, UINT64_MAX / 2))
    DG_RETURN_IF_ERROR(ZeroBytes(in, off, len, PartLine::kKeepDamaged, Place::kOwnInPlace, &tx));
  tx.Add(Op::Damage(ino_, from, UINT64_MAX / 2, false));
  return tx.Commit();
}

Status File::Truncate(uint64_t size) {
  Guard g;
  DG_ASSIGN_OR_RETURN(Inode* in, Begin(&g, Access::kChange));
  if (size > dp_->device().size()) return Status::Error(EFBIG, "file would exceed the device size");
  DG_RETURN_IF_ERROR(GrowOver(in, size));
  Transaction tx(dp_);
  if (size < in->attr.size) {
    if (size % kBlockSize) DG_RETURN_IF_ERROR(ZeroTail(in, size, &tx));
    uint64_t first = AlignUp(size, kBlockSize) / kBlockSize;
    tx.Add(dp_->FreeBlocksOps(in, first, UINT64_MAX / 2 - first));
    // Damage is kept in whole lines: one the new end cuts stays damaged.
    uint64_t past = AlignUp(size, kLineSize);
    if (in->damage.Overlaps(past, UINT64_MAX / 2)) tx.Add(Op::Damage(ino_, past, UINT64_MAX / 2, false));
  }
  Attr a = in->attr;
  a.size = size;
  a.mtime_ns = a.ctime_ns = NowNs();
  tx.Add(Op::SetInode(ino_, a));
  return tx.Commit();
}

Status File::Fallocate(int mode, uint64_t off, uint64_t len) {
  Guard g;
  DG_ASSIGN_OR_RETURN(Inode* in, Begin(&g, Access::kChange));
  if (len == 0) return Status::Invalid("length must not be zero");
  if (off + len < off || off + len > dp_->device().size()) return Status::Error(EFBIG, "range beyond the device size");
  bool punch = mode & kFallocPunchHole, zero = mode & kFallocZeroRange;
  if (punch && !(mode & kFallocKeepSize)) return Status::Invalid("punch hole needs keep-size");
  if (punch && zero) return Status::Invalid("punch hole and zero range exclude each other");
  if (punch || zero) DG_RETURN_IF_ERROR(CheckPartLines(*in, off, len));
  if (!(mode & kFallocKeepSize)) DG_RETURN_IF_ERROR(GrowOver(in, off + len));
  Transaction tx(dp_);
  uint64_t b0 = AlignUp(off, kBlockSize) / kBlockSize, b1 = (off + len) / kBlockSize;  // whole blocks
  // Partial blocks at the edges: just those bytes are zeroed, on fresh
  // blocks, so that nothing changes until the one commit at the end.
  if (punch || zero) {
    uint64_t end = off + len, head_end = std::min(end, AlignUp(off, kBlockSize));
    DG_RETURN_IF_ERROR(ZeroBytes(in, off, head_end - off, PartLine::kRefuse, Place::kFresh, &tx));
    uint64_t tail_start = std::max(head_end, AlignDown(end, kBlockSize));
    DG_RETURN_IF_ERROR(ZeroBytes(in, tail_start, end - tail_start, PartLine::kRefuse, Place::kFresh, &tx));
  }
  std::vector<IntervalSet::Interval> zero_after;  // own blocks made unwritten: zeroed once that is committed
  if (b1 > b0 && punch) {
    tx.Add(dp_->FreeBlocksOps(in, b0, b1 - b0));
    tx.Add(Op::Damage(ino_, b0 * kBlockSize, (b1 - b0) * kBlockSize, false));
  } else if (b1 > b0 && zero) {
    DG_RETURN_IF_ERROR(ZeroWholeBlocks(in, b0, b1, &tx, &zero_after));
  }
  if (!punch && !zero) {  // plain preallocation of the holes in the range
    uint64_t f0 = off / kBlockSize, f1 = (off + len + kBlockSize - 1) / kBlockSize;
    for (uint64_t f = f0; f < f1;) {
      auto [n, e] = in->RunAt(f, f1);
      if (!e) DG_RETURN_IF_ERROR(FillHole(in, f, n, 0, nullptr, 0, &tx, true));
      f += n;
    }
  }
  if (!(mode & kFallocKeepSize) && off + len > in->attr.size) {
    Attr a = in->attr;
    a.size = off + len;
    tx.Add(Op::SetInode(ino_, a));
  }
  DG_RETURN_IF_ERROR(tx.Commit());
  // They read as zeroes already; zeroing clears their poison (zeroinit), and
  // poison a failure leaves is cleared by the next write of each page.
  for (const auto& [pblk, n] : zero_after) (void)dp_->device().ZeroPageRange(pblk, n);
  if (!zero_after.empty()) dp_->device().Fence();
  return Status::Ok();
}

// Zero range over whole blocks [b0, b1): the file's own written blocks
// become unwritten in the commit (zeroed after it); shared blocks are let
// go and replaced, and holes filled, by fresh unwritten blocks in the same
// commit.
Status File::ZeroWholeBlocks(Inode* in, uint64_t b0, uint64_t b1, Transaction* tx,
                             std::vector<IntervalSet::Interval>* zero_after) {
  for (uint64_t f = b0; f < b1;) {
    auto [n, e] = in->RunAt(f, b1);
    if (e && !e->unwritten && dp_->state().space().Exclusive(e->pblk, n)) {
      tx->Add(Op::Map(ino_, f, e->pblk, n, true));
      zero_after->push_back({e->pblk, n});
    } else if (e && !e->unwritten) {
      tx->Add(dp_->FreeBlocksOps(in, f, n));
      DG_RETURN_IF_ERROR(FillHole(in, f, n, 0, nullptr, 0, tx, true));
    } else if (!e) {
      DG_RETURN_IF_ERROR(FillHole(in, f, n, 0, nullptr, 0, tx, true));
    }
    f += n;
  }
  tx->Add(Op::Damage(ino_, b0 * kBlockSize, (b1 - b0) * kBlockSize, false));
  return Status::Ok();
}

Status File::CloneFrom(File& src, uint64_t soff, uint64_t doff, uint64_t len) {
  Guard g;
  DG_ASSIGN_OR_RETURN(Inode* dst, Begin(&g, Access::kChange));
  if (src.dp_ != dp_) return Status::Error(EXDEV, "clone across filesystems");
  DG_ASSIGN_OR_RETURN(Inode* s, src.Me());
  if (soff % kBlockSize || doff % kBlockSize) return Status::Invalid("clone offsets must be multiples of 4096");
  if (soff > s->attr.size) return Status::Invalid("clone source offset beyond its end");
  if (len == 0 || soff + len > s->attr.size) len = s->attr.size - soff;
  if (len % kBlockSize && soff + len != s->attr.size) return Status::Invalid("clone length must be whole blocks");
  // The block holds the source's bytes past its end: the destination's after them would be lost.
  if (len % kBlockSize && doff + len < dst->attr.size)
    return Status::Invalid("a partial last block may be cloned only to or past the destination's end");
  uint64_t nblk = AlignUp(len, kBlockSize) / kBlockSize, sb = soff / kBlockSize, db = doff / kBlockSize;
  if (dst == s && sb < db + nblk && db < sb + nblk) return Status::Invalid("clone ranges overlap");
  if (doff + len > dp_->device().size()) return Status::Error(EFBIG, "file would exceed the device size");
  DG_RETURN_IF_ERROR(GrowOver(dst, doff + len));
  Transaction tx(dp_);
  tx.Add(dp_->FreeBlocksOps(dst, db, nblk));
  tx.Add(Op::Damage(ino_, doff, nblk * kBlockSize, false));
  for (auto it = s->extents.begin(); it != s->extents.end(); ++it) {
    uint64_t lo = std::max(it->first, sb), hi = std::min(it->first + it->second.len, sb + nblk);
    if (lo < hi)
      tx.Add(Op::Map(ino_, db + (lo - sb), it->second.pblk + (lo - it->first), hi - lo, it->second.unwritten));
    if (tx.ops().size() >= kMaxOpsPerCommit) DG_RETURN_IF_ERROR(tx.Commit());
  }
  for (const auto& [d, dl] : s->damage.Overlapping(soff, nblk * kBlockSize))
    tx.Add(Op::Damage(ino_, doff + (d - soff), dl, true));
  if (doff + len > dst->attr.size) {
    Attr a = dst->attr;
    a.size = doff + len;
    a.mtime_ns = a.ctime_ns = NowNs();
    tx.Add(Op::SetInode(ino_, a));
  }
  DG_RETURN_IF_ERROR(tx.Commit());
  // Shared now: writable mappings of either side must not store into the other.
  DG_RETURN_IF_ERROR(UnshareMapped(dst, db, db + nblk));
  return src.UnshareMapped(s, sb, sb + nblk);
}

Status File::Fsync() {
  Guard g;
  DG_ASSIGN_OR_RETURN(Inode* in, Begin(&g, Access::kLook));
  dp_->FoldTimes(in);
  // Metadata is durable already, and every store but a mapping's is
  // written back as it is made; the fence below, or the commit's first,
  // makes them durable.
  DG_RETURN_IF_ERROR(dp_->WriteBackMappedStores(*in));
  if (!dp_->Writable().ok()) {
    dp_->device().Fence();
    return Status::Ok();
  }
  return dp_->Commit({Op::SetInode(ino_, in->attr)});  // logs the timestamps
}

Result<FileStat> File::Stat() {
  Guard g;
  DG_ASSIGN_OR_RETURN(Inode* in, Begin(&g, Access::kLook));
  dp_->FoldTimes(in);
  uint64_t blocks = 0;
  for (const auto& [f, e] : in->extents) blocks += e.len;
  return FileStat{ino_, in->attr, blocks};
}

Result<std::vector<FiemapExtent>> File::Fiemap() {
  Guard g;
  DG_ASSIGN_OR_RETURN(Inode* in, Begin(&g, Access::kLook));
  std::vector<FiemapExtent> out;
  for (const auto& [fblk, e] : in->extents) {
    // Split where sharing changes, so "shared" is exact per piece.
    for (const OwnedRun& r : dp_->state().space().Lookup(e.pblk, e.len)) {
      FiemapExtent x;
      x.logical = (fblk + (r.pblk - e.pblk)) * kBlockSize;
      x.physical = r.pblk * kBlockSize;
      x.length = r.len * kBlockSize;
      x.unwritten = e.unwritten;
      x.shared = r.owners.size() > 1;
      x.damaged = in->damage.Overlaps(x.logical, x.length);
      out.push_back(x);
    }
  }
  if (!out.empty()) out.back().last = true;
  return out;
}

}  // namespace daxguard::fs
