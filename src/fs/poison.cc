// How daxfs turns a media error into owners, and answers who owns what.
//
// The device tells its holder (this filesystem) of every error that becomes
// known. Through the reverse map each bad block resolves to its owners:
// every (file, offset) sharing it is recorded as damaged on the device and
// its open handles are told; metadata is rebuilt from its other copy; free
// blocks are quarantined so no file is ever handed them.
#include <algorithm>

#include "fs/filesystem.h"

namespace daxguard::fs {

void Filesystem::NotifyFailure(uint64_t offset, uint64_t len, int flags) {
  {
    std::lock_guard<std::mutex> g(failures_mu_);
    failures_.push_back({offset, len, flags});
    failures_pending_.store(true);
  }
  if (in_op_ == this) return;  // the running operation handles it before it ends
  // Another thread's operation, if one runs, handles it before it ends; it
  // may be waiting for this call (dax::Holder), so it is not waited for.
  if (TryLock()) OpGuard g(this, std::adopt_lock);  // handled as the guard is let go
}

// A failure reported by this thread was flagged before this runs; one
// reported by another thread after the flag was read is handled by that
// thread or, if it found the lock held, by the holder after letting go
// (see NotifyFailure and ~OpGuard).
void Filesystem::ProcessFailures() {
  for (;;) {
    if (!failures_pending_.load()) return;
    std::vector<Failure> batch;
    {
      std::lock_guard<std::mutex> g(failures_mu_);
      batch.swap(failures_);
      failures_pending_.store(false);
    }
    if (batch.empty()) return;
    for (const Failure& f : batch) HandleFailure(f);
  }
}

void Filesystem::DamageFileRange(uint64_t ino, uint64_t off, uint64_t len, std::vector<Op>* ops) {
  uint64_t lo = AlignDown(off, kLineSize), hi = AlignUp(off + len, kLineSize);
  Inode* in = state_.Find(ino);
  if (!in || in->damage.Contains(lo, hi - lo)) return;
  ops->push_back(Op::Damage(ino, lo, hi - lo, true));
  NoticeDamage(ino, lo, hi - lo, &callbacks_);
}

void Filesystem::HandleFailure(const Failure& f) {
  if (f.flags & dax::kFailurePreRemove) {
    Quiesce();
    removed_ = true;
    return;
  }
  std::vector<Op> ops;
  uint64_t end = f.offset + f.len;
  for (uint64_t b = f.offset / kBlockSize; b * kBlockSize < end && b < geo_.blocks; ++b) {
    if (geo_.IsMeta(b)) {
      bool lost = false;
      std::string what = log_.Describe(b);
      Status s = log_.Repair(b, &lost);
      ++metadata_repairs_;
      // Both copies bad: the state in memory is whole, so write it out afresh.
      if (s.ok() && lost && Writable().ok()) s = log_.Compact(state_.Snapshot());
      if (s.ok() && lost) s = log_.Repair(b, &lost);
      if (!s.ok()) GoReadOnly(what + " could not be repaired: " + s.message());
      if (s.ok() && journal_)
        journal_->Publish("media-error-repaired", {{"offset", b * kBlockSize},
                                                   {"length", kBlockSize},
                                                   {"source", "metadata copy"},
                                                   {"metadata", what}});
      continue;
    }
    // A write may have repaired the block since the error was reported.
    if (!dev_.KnownUnreadable(b * kBlockSize, kBlockSize)) continue;
    uint64_t lo = std::max(f.offset, b * kBlockSize), hi = std::min(end, (b + 1) * kBlockSize);
    auto runs = state_.space().Lookup(b, 1);
    if (runs.empty()) {
      if (!state_.space().quarantine().Overlaps(b, 1)) ops.push_back(Op::Quarantine(b, 1, true));
      continue;
    }
    for (const Owner& o : runs[0].owners) DamageFileRange(o.ino, o.fblk * kBlockSize + (lo - b * kBlockSize), hi - lo, &ops);
  }
  if (ops.empty()) return;
  // Read-only: keep the knowledge in memory, since nothing may be written.
  if (!Writable().ok() || !Commit(ops).ok()) {
    Quiesce();
    (void)state_.ApplyAll(ops);
    RefreshMappings(ops);
  }
  PublishHandled(ops);
}

// One event per run: a file range lost (its owner named), or free space
// quarantined.
void Filesystem::PublishHandled(const std::vector<Op>& ops) {
  if (!journal_) return;
  std::vector<Op> runs;
  for (const Op& op : ops) {
    if (op.type != OpType::kQuarantine && op.type != OpType::kDamage) continue;
    Op* last = runs.empty() ? nullptr : &runs.back();
    if (last && last->type == OpType::kQuarantine && op.type == last->type && op.pblk == last->pblk + last->len)
      last->len += op.len;
    else if (last && last->type == OpType::kDamage && op.type == last->type && op.ino == last->ino &&
             op.off == last->off + last->len)
      last->len += op.len;
    else
      runs.push_back(op);
  }
  for (const Op& r : runs) {
    if (r.type == OpType::kQuarantine)
      journal_->Publish("media-error-quarantined", {{"offset", r.pblk * kBlockSize}, {"length", r.len * kBlockSize}});
    else
      journal_->Publish("media-error-unrepairable",
                        {{"path", PathOf(r.ino)}, {"ino", r.ino}, {"file_offset", r.off}, {"length", r.len}});
  }
}

Result<std::vector<OwnerInfo>> Filesystem::Who(uint64_t offset, uint64_t length) {
  OpGuard g(this);
  return WhoLocked(offset, length);
}

Result<std::vector<OwnerInfo>> Filesystem::WhoLocked(uint64_t offset, uint64_t length) {
  if (length == 0 || offset >= dev_.size() || length > dev_.size() - offset)
    return Status::Range("range is beyond the device (" + std::to_string(dev_.size()) + " bytes)");
  std::vector<OwnerInfo> out;
  uint64_t end = offset + length;
  for (uint64_t b = offset / kBlockSize; b * kBlockSize < end;) {
    uint64_t lo = std::max(offset, b * kBlockSize);
    if (geo_.IsMeta(b)) {
      out.push_back({OwnerInfo::Kind::kMetadata, lo, std::min(end, (b + 1) * kBlockSize) - lo, 0, "", 0,
                     log_.Describe(b)});
      ++b;
      continue;
    }
    auto runs = state_.space().Lookup(b, AlignUp(end, kBlockSize) / kBlockSize - b);
    uint64_t next = runs.empty() ? AlignUp(end, kBlockSize) / kBlockSize : runs[0].pblk;
    if (next > b) {  // unowned blocks up to the next owned run (or metadata)
      uint64_t stop = b;
      bool q = state_.space().quarantine().Overlaps(b, 1);
      while (stop < next && !geo_.IsMeta(stop) && state_.space().quarantine().Overlaps(stop, 1) == q) ++stop;
      out.push_back({q ? OwnerInfo::Kind::kQuarantined : OwnerInfo::Kind::kFree, lo,
                     std::min(end, stop * kBlockSize) - lo, 0, "", 0, ""});
      b = stop;
      continue;
    }
    const OwnedRun& r = runs[0];
    uint64_t hi = std::min(end, (r.pblk + r.len) * kBlockSize);
    for (const Owner& o : r.owners)
      out.push_back({OwnerInfo::Kind::kFile, lo, hi - lo, o.ino, PathOf(o.ino),
                     o.fblk * kBlockSize + (lo - r.pblk * kBlockSize), ""});
    b = r.pblk + r.len;
  }
  return out;
}

HealthReport Filesystem::Health() {
  OpGuard g(this);
  HealthReport h;
  for (const auto& [ino, in] : state_.inodes()) {
    if (in->damage.empty()) continue;
    DamagedFile d{ino, PathOf(ino), {}};
    for (const auto& iv : in->damage.intervals()) d.ranges.push_back(iv);
    h.files.push_back(std::move(d));
  }
  for (const auto& [pblk, len] : state_.space().quarantine().intervals())
    h.quarantined.push_back({pblk * kBlockSize, len * kBlockSize});
  for (const auto& [ino, in] : state_.inodes())
    for (const auto& [name, child] : in->entries)
      if (!ns_.EntryTarget(child))
        h.damaged_entries.push_back(PathOf(ino) + "/" + name + ": names " +
                                    (child == kRootIno ? "the root" : "missing inode " + std::to_string(child)));
  h.lost_metadata = read_only_why_;
  h.lost_metadata.insert(h.lost_metadata.end(), state_.lost().begin(), state_.lost().end());
  h.read_only = !read_only_why_.empty();
  h.metadata_repairs = metadata_repairs_ + mount_report_.repaired_blocks + mount_report_.repaired.size();
  h.protection = geo_.protection;
  if (protect_) {
    ProtectedDevice::Counts c = protect_->counts();
    h.repaired_blocks = c.repaired;
    h.unrepaired_blocks = c.unrepaired;
    h.checksum_mismatches = c.mismatches;
    for (const ProtectedDevice::RepairEvent& e : protect_->repairs()) {
      HealthReport::Repaired r{e.when_ns, e.block * kBlockSize, kBlockSize, e.poison ? "poison" : "checksum mismatch", {}};
      if (auto who = WhoLocked(r.offset, r.length); who.ok()) r.owners = std::move(who).value();
      h.repaired.push_back(std::move(r));
    }
  }
  return h;
}

}  // namespace daxguard::fs
