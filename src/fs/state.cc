#include "fs/state.h"

#include <sys/stat.h>

#include <algorithm>

namespace daxguard::fs {

bool Inode::is_dir() const { return S_ISDIR(attr.mode); }

std::optional<Extent> Inode::ExtentAt(uint64_t fblk) const {
  auto it = extents.upper_bound(fblk);
  if (it == extents.begin()) return std::nullopt;
  --it;
  const Extent& e = it->second;
  if (fblk >= it->first + e.len) return std::nullopt;
  uint64_t skip = fblk - it->first;
  return Extent{e.pblk + skip, e.len - skip, e.unwritten};
}

FileRun Inode::RunAt(uint64_t fblk, uint64_t end) const {
  auto next = extents.upper_bound(fblk);
  if (std::optional<Extent> e = ExtentAt(fblk)) {
    e->len = std::min(e->len, end - fblk);
    return {e->len, e};
  }
  return {(next == extents.end() ? end : std::min(end, next->first)) - fblk, std::nullopt};
}

const char* State::BadDeviceRun(uint64_t pblk, uint64_t len) const {
  if (len == 0 || pblk + len < pblk || pblk + len > geo_.blocks) return "lies beyond the device";
  if (geo_.OverlapsMeta(pblk, len)) return "overlaps metadata";
  return nullptr;
}

Inode* State::Find(uint64_t ino) {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : it->second.get();
}

const Inode* State::Find(uint64_t ino) const {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : it->second.get();
}

void State::Unmap(Inode* in, uint64_t fblk, uint64_t len, bool own) {
  uint64_t end = fblk + len;
  if (!lost_ranges_.empty()) ForgetLostRange(in, fblk, len);
  auto it = in->extents.upper_bound(fblk);
  if (it != in->extents.begin()) --it;
  while (it != in->extents.end() && it->first < end) {
    uint64_t s = it->first;
    Extent e = it->second;
    if (s + e.len <= fblk) {
      ++it;
      continue;
    }
    it = in->extents.erase(it);
    uint64_t cut_lo = std::max(s, fblk), cut_hi = std::min(s + e.len, end);
    if (own) space_.RemoveOwner(e.pblk + (cut_lo - s), cut_hi - cut_lo, {in->ino, cut_lo});
    if (s < cut_lo) in->extents[s] = Extent{e.pblk, cut_lo - s, e.unwritten};
    if (s + e.len > cut_hi)
      it = in->extents.emplace(cut_hi, Extent{e.pblk + (cut_hi - s), s + e.len - cut_hi, e.unwritten}).first;
  }
}

Status State::Map(Inode* in, uint64_t fblk, uint64_t pblk, uint64_t len, bool unwritten, bool own) {
  // Never applied (a file must not reach outside its blocks); reported by
  // mount and fsck, dropped by fsck --repair.
  const char* why = fblk + len < fblk ? "lies beyond the device" : BadDeviceRun(pblk, len);
  if (why) {
    bad_extents_.push_back({{in->ino, fblk, pblk, len}, why});
    return Status::Ok();
  }
  Unmap(in, fblk, len, own);
  if (own)
    space_.AddOwner(pblk, len, {in->ino, fblk});
  else
    stored_extent_blocks_ += len;
  // Join with the extent before when it continues on the device.
  auto it = in->extents.lower_bound(fblk);
  if (it != in->extents.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.len == fblk && prev->second.pblk + prev->second.len == pblk &&
        prev->second.unwritten == unwritten) {
      prev->second.len += len;
      auto next = in->extents.find(fblk + len);
      if (next != in->extents.end() && next->second.pblk == pblk + len && next->second.unwritten == unwritten) {
        prev->second.len += next->second.len;
        in->extents.erase(next);
      }
      return Status::Ok();
    }
  }
  in->extents[fblk] = Extent{pblk, len, unwritten};
  auto next = in->extents.find(fblk + len);
  if (next != in->extents.end() && next->second.pblk == pblk + len && next->second.unwritten == unwritten) {
    in->extents[fblk].len += next->second.len;
    in->extents.erase(next);
  }
  return Status::Ok();
}

Status State::Apply(const Op& op) {
  Inode* in = op.type == OpType::kSetInode || op.type == OpType::kLink || op.type == OpType::kUnlink ||
                      op.type == OpType::kQuarantine || op.type == OpType::kUnquarantine ||
                      op.type == OpType::kMetaLost || op.type == OpType::kUnrepaired || op.type == OpType::kOwners ||
                      op.type == OpType::kMetaOwner
                  ? nullptr
                  : Find(op.ino);
  auto need = [&]() -> Status {
    return in ? Status::Ok() : Status::Corrupt("operation on missing inode " + std::to_string(op.ino));
  };
  switch (op.type) {
    case OpType::kSetInode: {
      auto& slot = inodes_[op.ino];
      if (!slot) slot = std::make_unique<Inode>(), slot->ino = op.ino;
      // daxfs never changes an inode's type (a new file is a new inode): a
      // record that does is damaged, and would strand a directory's entries.
      if ((slot->attr.mode & S_IFMT) != (op.attr.mode & S_IFMT) && slot->attr.mode != 0) {
        unapplied_records_.push_back("inode record for inode " + std::to_string(op.ino) + " changes its type");
        return Status::Ok();
      }
      slot->attr = op.attr;
      next_ino_ = std::max(next_ino_, op.ino + 1);
      return Status::Ok();
    }
    case OpType::kFreeInode:
      DG_RETURN_IF_ERROR(need());
      Unmap(in, 0, UINT64_MAX / 2);
      for (const auto& [name, child] : in->entries) RemoveParent(child, op.ino, name);
      inodes_.erase(op.ino);
      return Status::Ok();
    case OpType::kLink:
    case OpType::kUnlink: {
      Inode* dir = Find(op.parent);
      if (!dir || !dir->is_dir()) return Status::Corrupt("link in missing directory " + std::to_string(op.parent));
      auto old = dir->entries.find(op.name);
      if (old != dir->entries.end()) RemoveParent(old->second, op.parent, op.name);
      if (op.type == OpType::kLink) {
        dir->entries[op.name] = op.ino;
        AddParent(op.ino, op.parent, op.name);
      } else if (old != dir->entries.end()) {
        dir->entries.erase(old);
      }
      return Status::Ok();
    }
    case OpType::kMap:
      DG_RETURN_IF_ERROR(need());
      return Map(in, op.fblk, op.pblk, op.len, op.unwritten, /*own=*/true);
    case OpType::kExtent:
      DG_RETURN_IF_ERROR(need());
      return Map(in, op.fblk, op.pblk, op.len, op.unwritten, /*own=*/false);
    case OpType::kOwners:
      LoadOwners(op);
      return Status::Ok();
    case OpType::kMetaOwner:
      meta_owners_.push_back({op.pblk, op.len, op.name});
      return Status::Ok();
    case OpType::kUnmap:
      DG_RETURN_IF_ERROR(need());
      Unmap(in, op.fblk, op.len);
      return Status::Ok();
    case OpType::kDamage:
    case OpType::kUndamage: {
      DG_RETURN_IF_ERROR(need());
      uint64_t len = std::min(op.len, UINT64_MAX - op.off);  // file bytes end at 2^64
      if (op.type == OpType::kDamage)
        in->damage.Add(op.off, len);
      else
        in->damage.Remove(op.off, len);
      return Status::Ok();
    }
    case OpType::kQuarantine:
    case OpType::kUnquarantine:
      // Unquarantined metadata would be handed to files: never applied.
      if (const char* why = BadDeviceRun(op.pblk, op.len)) {
        unapplied_records_.push_back("quarantine record for device blocks " + std::to_string(op.pblk) + "+" +
                                     std::to_string(op.len) + " " + why);
        return Status::Ok();
      }
      space_.SetQuarantine(op.pblk, op.len, op.type == OpType::kQuarantine);
      return Status::Ok();
    case OpType::kMetaLost:
      lost_.push_back(op.name);
      return Status::Ok();
    case OpType::kSuper:
      return Status::Ok();
    case OpType::kUnrepaired:
      unrepaired_.push_back(op.name);
      return Status::Ok();
    case OpType::kSetXattr:
      DG_RETURN_IF_ERROR(need());
      in->xattrs[op.name] = op.value;
      return Status::Ok();
    case OpType::kRemoveXattr:
      DG_RETURN_IF_ERROR(need());
      in->xattrs.erase(op.name);
      return Status::Ok();
  }
  return Status::Corrupt("unknown operation");
}

void State::ForgetLostRange(Inode* in, uint64_t fblk, uint64_t len) {
  constexpr uint64_t kMaxBlocks = UINT64_MAX / kBlockSize;
  auto it = lost_ranges_.find(in->ino);
  if (it == lost_ranges_.end() || fblk >= kMaxBlocks) return;
  uint64_t off = fblk * kBlockSize, n = std::min(len, kMaxBlocks - fblk) * kBlockSize;
  for (const auto& [d, dl] : it->second.Overlapping(off, n)) in->damage.Remove(d, dl);
  it->second.Remove(off, n);
}

Inode* State::StandIn(uint64_t ino, uint32_t mode) {
  Attr a;
  a.mode = mode;
  a.nlink = S_ISDIR(mode) ? 2 : 1;  // linked somewhere: fsck --repair finds where, or reconnects it
  (void)Apply(Op::SetInode(ino, a));
  return Find(ino);
}

void State::ApplyLoss(const Summary& s) {
  std::unordered_map<uint64_t, uint64_t> size_before;
  for (const Touch& t : s.touches) {
    Inode* in = Find(t.ino);
    switch (t.kind) {
      case Touch::Kind::kAttr:
        if (!in) in = StandIn(t.ino, t.mode);
        size_before.emplace(t.ino, in->attr.size);
        in->attr.size = t.size;
        break;
      case Touch::Kind::kEntries:
        if (!in) StandIn(t.ino, S_IFDIR | 0700);
        break;
      case Touch::Kind::kData: {
        if (!in) {  // made by a record lost before: it held these bytes at least
          in = StandIn(t.ino, S_IFREG | 0600);
          if (t.len != Touch::kToEnd) in->attr.size = t.off + t.len;
        }
        uint64_t len = t.len;
        if (len == Touch::kToEnd) {  // as far as the file reached before or after
          auto b = size_before.find(t.ino);
          uint64_t end = std::max(in->attr.size, b == size_before.end() ? 0 : b->second);
          len = end > t.off ? end - t.off : 0;
        }
        in->damage.Add(t.off, len);
        lost_ranges_[t.ino].Add(t.off, len);
        break;
      }
    }
  }
}

void State::LoadOwners(const Op& op) {
  const char* why = BadDeviceRun(op.pblk, op.len);
  if (!why && op.owners.empty()) why = "has no owner";
  for (const Owner& o : op.owners)
    if (!why && o.fblk > UINT64_MAX - op.len) why = "has an owner whose file blocks wrap past 2^64";
  if (!why) return LoadRun(op);
  unapplied_records_.push_back("reverse-map record for device blocks " + std::to_string(op.pblk) + "+" +
                               std::to_string(op.len) + " " + why);
}

void State::LoadRun(const Op& op) {
  for (const Owner& o : op.owners) {
    const Inode* in = Find(o.ino);
    for (uint64_t done = 0; done < op.len && !owner_unbacked_;) {
      auto e = in ? in->ExtentAt(o.fblk + done) : std::nullopt;
      owner_unbacked_ = !e || e->pblk != op.pblk + done;
      done += e ? e->len : 0;
    }
  }
  stored_owner_blocks_ += op.len * op.owners.size();
  if (!space_.LoadRun(op.pblk, op.len, op.owners)) owner_unbacked_ = true;  // overlapping runs: not as stored
}

void State::AddParent(uint64_t child, uint64_t dir, const std::string& name) {
  auto& links = parents_[child];
  std::pair<uint64_t, std::string> link{dir, name};
  links.insert(std::lower_bound(links.begin(), links.end(), link), std::move(link));
}

void State::RemoveParent(uint64_t child, uint64_t dir, const std::string& name) {
  auto it = parents_.find(child);
  if (it == parents_.end()) return;
  auto& links = it->second;
  auto at = std::find_if(links.begin(), links.end(), [&](const auto& l) { return l.first == dir && l.second == name; });
  if (at != links.end()) links.erase(at);
  if (links.empty()) parents_.erase(it);
}

std::string State::PathOf(uint64_t ino) const {
  if (ino == kRootIno) return "/";
  auto it = parents_.find(ino);
  if (it == parents_.end()) return "";
  for (const auto& [dir, name] : it->second) {
    std::vector<const std::string*> names = {&name};
    uint64_t cur = dir;
    // Up to the root (entries live only in existing inodes, so it exists);
    // a directory is named by one entry. Stops, and tries the next link, on
    // a directory nothing names or on a loop.
    bool ok = true;
    while (cur != kRootIno) {
      const Inode* d = Find(cur);
      auto p = parents_.find(cur);
      ok = d && d->is_dir() && p != parents_.end() && names.size() <= parents_.size();
      if (!ok) break;
      names.push_back(&p->second.front().second);
      cur = p->second.front().first;
    }
    if (!ok) continue;
    std::string path;
    for (auto n = names.rbegin(); n != names.rend(); ++n) path += "/" + **n;
    return path;
  }
  return "";
}

const std::pair<uint64_t, std::string>* State::FirstName(uint64_t ino) const {
  auto it = parents_.find(ino);
  return it == parents_.end() || it->second.empty() ? nullptr : &it->second.front();
}

size_t State::NameCount(uint64_t ino) const {
  auto it = parents_.find(ino);
  return it == parents_.end() ? 0 : it->second.size();
}

bool State::IsDetached(const Inode& in) const {
  return in.is_dir() && in.attr.nlink == 0 && in.ino != kRootIno && !NameCount(in.ino);
}

std::vector<Inode*> State::DetachedDirs() const {
  std::vector<Inode*> out;
  for (const auto& [ino, in] : inodes_)
    if (IsDetached(*in)) out.push_back(in.get());
  return out;
}

Status State::ApplyAll(const std::vector<Op>& ops) {
  Status first;
  for (const Op& op : ops)
    if (Status s = Apply(op); !s.ok() && first.ok()) first = s;
  return first;
}

std::vector<Op> State::Snapshot() const {
  std::vector<Op> ops;
  for (const auto& [ino, in] : inodes_) ops.push_back(Op::SetInode(ino, in->attr));
  for (const auto& [ino, in] : inodes_) {
    for (const auto& [name, child] : in->entries) ops.push_back(Op::Link(ino, name, child));
    for (const auto& [fblk, e] : in->extents) ops.push_back(Op::Extent(ino, fblk, e.pblk, e.len, e.unwritten));
    for (const auto& [off, len] : in->damage.intervals()) ops.push_back(Op::Damage(ino, off, len, true));
    for (const auto& [name, value] : in->xattrs) ops.push_back(Op::SetXattr(ino, name, value));
  }
  for (const auto& [pblk, run] : space_.runs()) ops.push_back(Op::Owners(pblk, run.len, run.owners));
  for (const MetaRun& m : MetadataRuns(geo_)) ops.push_back(Op::MetaOwner(m.pblk, m.len, m.what));
  for (const auto& [pblk, len] : space_.quarantine().intervals()) ops.push_back(Op::Quarantine(pblk, len, true));
  for (const std::string& what : lost_) ops.push_back(Op::MetaLost(what));
  for (const std::string& what : unrepaired_) ops.push_back(Op::Unrepaired(what));
  return ops;
}

}  // namespace daxguard::fs
