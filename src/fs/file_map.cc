// File mappings: placing a file's extents into a mapped region, and keeping
// every mapping in step with the file as committed operations change it.
#include <algorithm>

#include "fs/data_path.h"
#include "fs/filesystem.h"

namespace daxguard::fs {

FileMapping::~FileMapping() {
  if (!dp_) return;  // the filesystem went first and took the pages back
  DataPath::Scope g(dp_);
  dp_->DropMapping(this);
}

Result<std::unique_ptr<FileMapping>> File::Map(uint64_t off, uint64_t len, bool writable) {
  Guard g;
  DG_ASSIGN_OR_RETURN(Inode* in, Begin(&g, writable ? Access::kChange : Access::kLook));
  if (off % kBlockSize || len == 0) return Status::Invalid("mapping offset must be a multiple of 4096, length non-zero");
  len = AlignUp(len, kBlockSize);
  if (off + len < off || off + len > dp_->device().size()) return Status::Error(EFBIG, "mapping beyond the device size");
  uint64_t b0 = off / kBlockSize, b1 = (off + len) / kBlockSize;
  if (writable) DG_RETURN_IF_ERROR(Unshare(in, b0, std::min(b1, AlignUp(in->attr.size, kBlockSize) / kBlockSize)));
  auto region = dax::MappedRegion::Reserve(len, writable, dp_->state().PathOf(ino_), ino_);
  if (!region.ok()) return region.status();
  std::unique_ptr<FileMapping> m(new FileMapping(dp_, ino_, off, in->attr.size, std::move(region).value()));
  dp_->PlaceMapping(m.get(), b0, b1);
  dp_->AddMapping(m.get());
  // Its stores reach the media as plain stores: fsync writes them back.
  if (writable) dp_->NoteWritableMapping(ino_);
  return m;
}

Status File::Unshare(Inode* in, uint64_t b0, uint64_t b1) {
  Transaction tx(dp_);
  for (uint64_t f = b0; f < b1;) {
    auto [n, e] = in->RunAt(f, b1);
    if (!e) {  // a hole: zeroed blocks of its own, in as few runs as free space allows
      DG_RETURN_IF_ERROR(FillHole(in, f, n, 0, nullptr, 0, &tx, false));
      f += n;
      continue;
    }
    if (e->unwritten || !dp_->state().space().Exclusive(e->pblk, n))
      for (uint64_t i = 0; i < n; ++i) DG_RETURN_IF_ERROR(UnshareBlock(in, f + i, &tx));
    f += n;
  }
  return tx.Commit();
}

Status File::UnshareBlock(Inode* in, uint64_t fblk, Transaction* tx) {
  auto e = in->ExtentAt(fblk);
  if (!e->unwritten && dp_->state().space().Exclusive(e->pblk, 1)) return Status::Ok();
  // A damaged block stays as it is: its page traps until a write repairs
  // it, and that write gives this file a block of its own.
  if (in->damage.Overlaps(fblk * kBlockSize, kBlockSize)) return Status::Ok();
  uint8_t page[kBlockSize] = {};
  if (!e->unwritten && !dp_->device().ReadAll(e->pblk * kBlockSize, page, kBlockSize))
    return Status::Ok();  // poison just found: the failure handling marks it damaged
  return WriteBlock(in, fblk, 0, page, kBlockSize, PartLine::kRefuse, tx);
}

Status File::UnshareMapped(Inode* in, uint64_t b0, uint64_t b1) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const FileMapping* m : dp_->MappingsOf(ino_)) {
    uint64_t m0 = m->off_ / kBlockSize, m1 = m0 + m->length() / kBlockSize;
    uint64_t eof = AlignUp(in->attr.size, kBlockSize) / kBlockSize;
    if (m->writable() && std::max(b0, m0) < std::min({b1, m1, eof}))
      ranges.emplace_back(std::max(b0, m0), std::min({b1, m1, eof}));
  }
  for (auto [f0, f1] : ranges) DG_RETURN_IF_ERROR(Unshare(in, f0, f1));
  return Status::Ok();
}

namespace {

// Lifts the filesystem's traps from region range [lo, hi) except where
// `keep` (sorted region ranges) still holds damage, so that a damaged page
// is never open, not even for a moment.
void UntrapExcept(dax::MappedRegion& r, uint64_t lo, uint64_t hi, const std::vector<std::pair<uint64_t, uint64_t>>& keep) {
  for (auto [klo, khi] : keep) {
    if (khi <= lo || klo >= hi) continue;
    if (klo > lo) (void)r.Untrap(lo, klo - lo);
    lo = std::max(lo, khi);
  }
  if (lo < hi) (void)r.Untrap(lo, hi - lo);
}

}  // namespace

// Holes and unwritten blocks read as zero pages in a read-only mapping; in
// a writable one (which had them filled when made) they appear only when
// the file punches them, and then trap like pages past the end.
void DataPath::AddMapping(FileMapping* m) {
  mappings_.emplace(m->ino_, m);
  OpenInode(m->ino_);
}

void DataPath::DropMapping(FileMapping* m) {
  auto [lo, hi] = mappings_.equal_range(m->ino_);
  for (auto it = lo; it != hi; ++it)
    if (it->second == m) {
      mappings_.erase(it);
      break;
    }
  MappingGone(*m->region_);
  CloseInode(m->ino_);
}

std::vector<const FileMapping*> DataPath::MappingsOf(uint64_t ino) const {
  std::vector<const FileMapping*> out;
  auto [lo, hi] = mappings_.equal_range(ino);
  for (auto it = lo; it != hi; ++it) out.push_back(it->second);
  return out;
}

void DataPath::PlaceMapping(FileMapping* m, uint64_t b0, uint64_t b1) {
  uint64_t m0 = m->off_ / kBlockSize;
  b0 = std::max(b0, m0);
  b1 = std::min(b1, m0 + m->length() / kBlockSize);
  if (b0 >= b1) return;
  dax::MappedRegion& r = *m->region_;
  const Inode* in = state().Find(m->ino_);
  uint64_t eof = in ? AlignUp(in->attr.size, kBlockSize) / kBlockSize : 0;
  std::vector<std::pair<uint64_t, uint64_t>> damaged;  // region offsets, whole pages
  if (in)
    for (const auto& [d, dl] : in->damage.Overlapping(b0 * kBlockSize, (b1 - b0) * kBlockSize)) {
      uint64_t lo = std::max(AlignDown(d, kBlockSize), b0 * kBlockSize);
      uint64_t hi = std::min(AlignUp(d + dl, kBlockSize), b1 * kBlockSize);
      damaged.emplace_back(lo - m0 * kBlockSize, hi - m0 * kBlockSize);
      (void)r.Trap(damaged.back().first, hi - lo, dax::TrapKind::kPoison);
    }
  for (uint64_t f = b0; f < b1;) {
    uint64_t at = (f - m0) * kBlockSize;
    if (f >= eof) {
      (void)r.Trap(at, (b1 - f) * kBlockSize, dax::TrapKind::kGone);
      break;
    }
    auto [n, e] = in->RunAt(f, std::min(b1, eof));
    Status s = Status::Error(ENXIO, "nothing to place");
    if (e && !e->unwritten)
      s = device().MapInto(r, at, e->pblk * kBlockSize, n * kBlockSize, f * kBlockSize);
    else if (!m->writable())
      s = r.PlaceZeroes(at, n * kBlockSize, f * kBlockSize);
    if (s.ok())
      UntrapExcept(r, at, at + n * kBlockSize, damaged);
    else
      (void)r.Trap(at, n * kBlockSize, dax::TrapKind::kGone);
    f += n;
  }
}

void DataPath::RefreshMappings(const std::vector<Op>& ops) {
  if (mappings_.empty()) return;
  for (const Op& op : ops) {
    auto [lo, hi] = mappings_.equal_range(op.ino);
    for (auto it = lo; it != hi; ++it) {
      FileMapping* m = it->second;
      switch (op.type) {
        case OpType::kMap:
        case OpType::kUnmap:
          PlaceMapping(m, op.fblk, op.fblk + op.len);
          break;
        case OpType::kDamage:
        case OpType::kUndamage:
          PlaceMapping(m, op.off / kBlockSize, AlignUp(op.off + op.len, kBlockSize) / kBlockSize);
          break;
        case OpType::kSetInode:
          if (op.attr.size != m->size_) {
            uint64_t a = std::min(m->size_, op.attr.size), b = std::max(m->size_, op.attr.size);
            m->size_ = op.attr.size;
            PlaceMapping(m, a / kBlockSize, AlignUp(b, kBlockSize) / kBlockSize);
          }
          break;
        default:
          break;
      }
    }
  }
}

}  // namespace daxguard::fs
