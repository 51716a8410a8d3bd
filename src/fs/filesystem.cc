#include "fs/filesystem.h"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <string_view>
#include <thread>

#include "common/light_section.h"

namespace daxguard::fs {
namespace {

Attr NewAttr(uint32_t mode, uint32_t nlink, Caller who = Caller::Self()) {
  Attr a;
  a.mode = mode;
  a.nlink = nlink;
  a.uid = who.uid;
  a.gid = who.gid;
  a.atime_ns = a.mtime_ns = a.ctime_ns = NowNs();
  return a;
}

// An inode whose own record changed (a name, an attribute): ctime now.
Op CtimeNow(const Inode& in) {
  Attr a = in.attr;
  a.ctime_ns = NowNs();
  return Op::SetInode(in.ino, a);
}

// A directory whose entries changed: its times, and its link count moved
// by `links` (a subdirectory's "..").
Op DirChanged(const Inode& dir, int links = 0) {
  Attr a = dir.attr;
  a.nlink = static_cast<uint32_t>(std::max<int64_t>(0, int64_t{a.nlink} + links));
  a.mtime_ns = a.ctime_ns = NowNs();
  return Op::SetInode(dir.ino, a);
}

}  // namespace

Caller Caller::Self() { return {static_cast<uint32_t>(getuid()), static_cast<uint32_t>(getgid())}; }

thread_local Filesystem* Filesystem::in_op_ = nullptr;

Filesystem::OpGuard::OpGuard(Filesystem* fs) : fs_(fs) { fs_->Lock(); }

Filesystem::OpGuard::OpGuard(Filesystem* fs, std::adopt_lock_t) : fs_(fs) {}

Filesystem::OpGuard::~OpGuard() { fs_->EndOp(); }

void Filesystem::EndOp() {
  do {
    ProcessFailures();
    std::vector<std::function<void()>> callbacks = std::move(callbacks_);
    callbacks_.clear();
    Unlock();
    for (auto& cb : callbacks) cb();  // unlocked (see File::OnDamage)
    // A failure another thread reported after ProcessFailures was left to us.
  } while (failures_pending_.load() && TryLock());
}

void Filesystem::Lock() {
  mu_.lock();
  locked_.store(true);
  in_op_ = this;
}

void Filesystem::Unlock() {
  in_op_ = nullptr;
  locked_.store(false);
  mu_.unlock();
}

bool Filesystem::TryLock() {
  for (;;) {
    if (mu_.try_lock()) {
      locked_.store(true);
      in_op_ = this;
      return true;
    }
    if (locked_.load()) return false;
    std::this_thread::yield();  // between another's lock and its flag
  }
}

Filesystem::Filesystem(dax::Device& base, const Geometry& g, std::unique_ptr<ProtectedDevice> protect)
    : DataPath(protect ? *protect : base),
      protect_(std::move(protect)),
      dev_(protect_ ? *protect_ : base),
      geo_(g),
      log_(dev_, geo_),
      state_(geo_) {}

Filesystem::~Filesystem() {
  dev_.ReleaseHolder(this);
  std::lock_guard<std::mutex> g(mu_);
  // As sync at unmount: what fast paths stored in place becomes durable
  // (a device that went away takes nothing more).
  if (!removed_ && WriteBackMappedStores().ok()) dev_.Fence();
  DetachAll();
  if (mounted_ && Writable().ok()) {
    if (protect_) (void)protect_->MarkClean();  // every record is up to date
    (void)log_.MarkCleanEnd();  // spares the next mount its search past the end
  }
}

Status Filesystem::Mkfs(dax::Device& dev, DataProtection protection) {
  Geometry g = GeometryFor(dev.size(), protection);
  if (g.blocks < kMinBlocks) return Status::Invalid("device too small for daxfs (16 MiB at least)");
  DG_RETURN_IF_ERROR(dev.CheckNotHeld());
  State fresh(g);
  DG_RETURN_IF_ERROR(fresh.Apply(Op::SetInode(kRootIno, NewAttr(S_IFDIR | 0755, 2))));
  MetaLog log(dev, g);
  DG_RETURN_IF_ERROR(log.Format(fresh.Snapshot()));
  // Once the new filesystem has taken over: a crash before leaves the old
  // one its own bitmap, and one after leaves stray marks (chunks resynced
  // at mount for nothing).
  return ProtectedDevice::Format(dev, g);
}

Filesystem::LogUsage Filesystem::log_usage() {
  OpGuard g(this);
  return {log_.tail(), log_.CompactsAt()};
}

namespace {

// One event per run of adjacent blocks repaired for the same cause: a
// patrol that repairs a whole file says so once.
void PublishRepairs(EventJournal& j, const std::vector<ProtectedDevice::RepairEvent>& batch) {
  for (size_t i = 0; i < batch.size();) {
    size_t n = 1;
    while (i + n < batch.size() && batch[i + n].block == batch[i].block + n && batch[i + n].poison == batch[i].poison)
      ++n;
    j.Publish("media-error-repaired", {{"offset", batch[i].block * kBlockSize},
                                       {"length", n * kBlockSize},
                                       {"cause", batch[i].poison ? "poison" : "checksum mismatch"},
                                       {"source", "parity"}});
    i += n;
  }
}

}  // namespace

Result<std::unique_ptr<Filesystem>> Filesystem::Mount(dax::Device& dev) {
  // Replay may write (repairs, upgrades): never under another holder.
  DG_RETURN_IF_ERROR(dev.CheckNotHeld());
  std::optional<SuperBlock> sb = MetaLog::FindSuper(dev);
  Geometry g = GeometryFor(dev.size(), static_cast<DataProtection>(sb ? sb->protection : 0));
  std::unique_ptr<ProtectedDevice> protect;
  if (g.protection != DataProtection::kNone) {
    DG_ASSIGN_OR_RETURN(protect, ProtectedDevice::Open(dev, g, sb->protection_tag));
  }
  std::unique_ptr<Filesystem> fs(new Filesystem(dev, g, std::move(protect)));
  if (fs->geo_.blocks < kMinBlocks) return Status::Invalid("device too small to hold daxfs");
  Status s = fs->log_.Replay([&](const std::vector<Op>& ops) { return fs->state_.ApplyAll(ops); },
                             &fs->mount_report_, [&](const Summary& lost) { fs->state_.ApplyLoss(lost); });
  fs->state_.EndReplay();
  if (!s.ok()) return Status::Corrupt("cannot mount: " + s.message());
  for (const std::string& what : fs->mount_report_.lost) fs->GoReadOnly(what);
  if (!fs->state_.Find(kRootIno)) {
    if (fs->mount_report_.lost.empty()) return Status::Corrupt("cannot mount: no root directory");
    // Lost with the metadata: an empty root, read-only, so health still shows what happened.
    (void)fs->state_.Apply(Op::SetInode(kRootIno, NewAttr(S_IFDIR | 0755, 2)));
  }
  for (const std::string& what : fs->state_.unrepaired())
    fs->GoReadOnly("fsck --repair could not repair: " + what + " (run daxguard fsck --repair)");
  if (Status c = fs->CheckAtMount(); !c.ok()) return Status::Corrupt("cannot mount: " + c.message());
  {
    OpGuard g(fs.get());
    // An rm -r the system stopped in goes on (one that fails leaves its
    // tree detached, for fsck to name); files unlinked while open when the
    // system stopped are freed.
    if (fs->Writable().ok())
      DG_RETURN_IF_ERROR(fs->FinishUnlinked([&](std::vector<Op> ops) { return fs->Commit(std::move(ops)); }));
  }
  fs->journal_ = std::make_unique<EventJournal>(EventJournalPath(dev));
  if (const ReplayReport& r = fs->mount_report_; r.repaired_blocks || !r.repaired.empty())
    fs->journal_->Publish("metadata-repaired", {{"blocks", r.repaired_blocks}, {"what", r.repaired}});
  if (fs->protect_)
    fs->protect_->OnRepair([j = fs->journal_.get()](const std::vector<ProtectedDevice::RepairEvent>& batch) {
      PublishRepairs(*j, batch);
    });
  // Registering replays errors that became known while unmounted.
  DG_RETURN_IF_ERROR(fs->dev_.RegisterHolder(fs.get()));
  fs->mounted_ = true;
  return fs;
}

Status Filesystem::Writable() const {
  if (removed_) return Status::Error(EIO, "device has gone away");
  if (read_only_why_.empty()) return Status::Ok();
  return Status::Error(EROFS, "filesystem is read-only: " + read_only_why_.front());
}

void Filesystem::GoReadOnly(const std::string& why) {
  Quiesce();  // fast writes stop with the rest
  read_only_why_.push_back(why);
}

bool Filesystem::read_only() {
  OpGuard g(this);
  return !read_only_why_.empty();
}

Status Filesystem::Commit(std::vector<Op> ops) {
  DG_RETURN_IF_ERROR(Writable());
  if (ops.empty()) return Status::Ok();
  Quiesce();
  if (log_.WantsCompaction()) DG_RETURN_IF_ERROR(log_.Compact(state_.Snapshot()));
  DG_RETURN_IF_ERROR(log_.Append(ops));
  if (Status s = state_.ApplyAll(ops); !s.ok()) {
    GoReadOnly("in-memory state diverged: " + s.message());
    return s;
  }
  RefreshMappings(ops);
  return Status::Ok();
}


Result<std::unique_ptr<File>> Filesystem::Open(const PathRef& ref, int flags, uint32_t mode, Caller who) {
  OpGuard g(this);
  const std::string& path = ref.path;
  auto at = ns_.Locate(ref);
  if (!at.ok()) return at.status();
  uint64_t ino;
  if (at->inode) {
    if (flags & kExclusive && flags & kCreate) return Status::Error(EEXIST, path + ": file exists");
    if (at->inode->is_dir()) return Status::Error(EISDIR, path + ": is a directory");
    // Links are followed by the kernel, never opened (O_NOFOLLOW's answer).
    if (S_ISLNK(at->inode->attr.mode)) return Status::Error(ELOOP, path + ": is a symbolic link");
    ino = at->inode->ino;
  } else {
    if (!(flags & kCreate)) return NoEntry(path);
    if (at->must_be_dir) return Status::Error(EISDIR, path + ": is a directory");  // as open(2) says
    DG_ASSIGN_OR_RETURN(ino, CreateNode(*at, S_IFREG | (mode & 07777), who));
  }
  std::unique_ptr<File> f = NewHandle(ino);
  if (flags & kTruncate) {
    Unlock();  // Truncate takes the guard itself
    Status s = f->Truncate(0);
    Lock();
    if (!s.ok()) return s;
  }
  return f;
}

Result<uint64_t> Filesystem::CreateNode(const Located& at, uint32_t mode, Caller who) {
  uint64_t ino = state_.NextIno();
  DG_RETURN_IF_ERROR(Commit({Op::SetInode(ino, NewAttr(mode, 1, who)), Op::Link(at.parent()->ino, at.name(), ino),
                             DirChanged(*at.parent())}));
  return ino;
}

Status Filesystem::Mknod(const PathRef& path, uint32_t mode, Caller who) {
  uint32_t type = mode & S_IFMT;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK)
    return Status::Error(EPERM, path.path + ": daxfs keeps no device nodes");
  OpGuard g(this);
  auto at = ns_.LocateEntry(path);
  if (!at.ok()) return at.status();
  if (at->inode) return Status::Error(EEXIST, path.path + ": file exists");
  if (at->must_be_dir) return Status::Error(ENOENT, path.path + ": not a directory");
  return CreateNode(*at, type | (mode & 07777), who).status();
}

Result<Located> Filesystem::ReplaceableEntry(const std::string& path) {
  auto at = ns_.LocateEntry(path);
  if (!at.ok()) return at.status();
  if ((at->inode && at->inode->is_dir()) || at->must_be_dir) return Status::Error(EISDIR, path + ": is a directory");
  return at;
}

Result<std::unique_ptr<File>> Filesystem::CreateUnnamed(const std::string& path, uint32_t mode) {
  OpGuard g(this);
  auto at = ReplaceableEntry(path);
  if (!at.ok()) return at.status();
  if (at->inode) mode = at->inode->attr.mode;
  uint64_t ino = state_.NextIno();
  DG_RETURN_IF_ERROR(Commit({Op::SetInode(ino, NewAttr(S_IFREG | (mode & 07777), 0))}));
  return NewHandle(ino);
}

Status Filesystem::Publish(File& f, const std::string& path) {
  OpGuard g(this);
  Inode* in = Holds(f) ? state_.Find(f.ino()) : nullptr;
  if (!in || in->is_dir() || in->attr.nlink != 0) return Status::Invalid(path + ": not an unnamed file to publish");
  auto at = ReplaceableEntry(path);
  if (!at.ok()) return at.status();
  Inode* old = at->inode;
  FoldTimes(in);
  Attr a = in->attr;
  a.nlink = 1;
  a.ctime_ns = NowNs();
  std::vector<Op> ops;
  uint64_t victim = old ? old->ino : 0;
  if (victim) {
    Attr va = old->attr;
    va.nlink--;
    va.ctime_ns = a.ctime_ns;
    ops.push_back(Op::SetInode(victim, va));
  }
  ops.push_back(Op::Link(at->parent()->ino, at->name(), in->ino));
  ops.push_back(Op::SetInode(in->ino, a));
  DG_RETURN_IF_ERROR(Commit(std::move(ops)));
  // Published: freeing the replaced file is tidying, which the next mount
  // does for an orphan if this fails.
  ops.clear();
  if (Inode* v = victim ? state_.Find(victim) : nullptr) DropIfUnused(v, &ops);
  (void)Commit(std::move(ops));
  return Status::Ok();
}

Status Filesystem::Mkdir(const PathRef& path, uint32_t mode, Caller who) {
  OpGuard g(this);
  auto at = ns_.LocateEntry(path);
  if (!at.ok()) return at.status();
  if (at->inode) return Status::Error(EEXIST, path.path + ": file exists");
  Inode* parent = at->parent();
  uint64_t ino = state_.NextIno();
  return Commit({Op::SetInode(ino, NewAttr(S_IFDIR | (mode & 07777), 2, who)),
                 Op::Link(parent->ino, at->name(), ino), DirChanged(*parent, +1)});
}

// Ops that unmap file blocks [fblk, +len); blocks whose last owner this is
// and that hold known poison go to quarantine instead of free space.
std::vector<Op> Filesystem::FreeBlocksOps(Inode* in, uint64_t fblk, uint64_t len) {
  std::vector<Op> ops;
  for (auto it = in->extents.begin(); it != in->extents.end(); ++it) {
    uint64_t s = std::max(it->first, fblk), e = std::min(it->first + it->second.len, fblk + len);
    if (s >= e) continue;
    uint64_t pblk = it->second.pblk + (s - it->first);
    for (const OwnedRun& r : state_.space().Lookup(pblk, e - s)) {
      if (r.owners.size() != 1) continue;
      for (uint64_t b = r.pblk; b < r.pblk + r.len; ++b)
        if (dev_.KnownUnreadable(b * kBlockSize, kBlockSize)) ops.push_back(Op::Quarantine(b, 1, true));
    }
  }
  ops.push_back(Op::Unmap(in->ino, fblk, len));
  return ops;
}

// Frees an inode nobody links or holds open.
void Filesystem::CloseInode(uint64_t ino) {
  auto it = open_inodes_.find(ino);
  if (it != open_inodes_.end()) open_inodes_.erase(it);
  Inode* in = state_.Find(ino);
  std::vector<Op> ops;
  if (in && Writable().ok()) DropIfUnused(in, &ops);
  if (!ops.empty()) (void)Commit(std::move(ops));
}

void Filesystem::DropIfUnused(Inode* in, std::vector<Op>* ops) {
  // An entry still naming it (a link count damage left too low) keeps it, as
  // the root is kept whatever its count says, and a directory still holding
  // entries.
  if (in->attr.nlink > 0 || open_inodes_.count(in->ino) || state_.NameCount(in->ino) || in->ino == kRootIno ||
      !in->entries.empty())
    return;
  for (Op& op : FreeBlocksOps(in, 0, UINT64_MAX / 2)) ops->push_back(std::move(op));
  ops->push_back(Op::FreeInode(in->ino));
}

Status Filesystem::Unlink(const PathRef& ref) {
  OpGuard g(this);
  const std::string& path = ref.path;
  auto at = ns_.LocateEntry(ref);
  if (!at.ok()) return at.status();
  if (!at->inode) return NoEntry(path);
  if (at->inode->is_dir()) return Status::Error(EISDIR, path + ": is a directory");
  return UnlinkEntry(at->parent(), at->name(), at->inode);
}

Status Filesystem::UnlinkEntry(Inode* parent, const std::string& name, Inode* in) {
  Attr a = in->attr;
  if (a.nlink) a.nlink--;  // a damaged count stays at 0, never wraps
  a.ctime_ns = NowNs();
  DG_RETURN_IF_ERROR(Commit({Op::Unlink(parent->ino, name), Op::SetInode(in->ino, a), DirChanged(*parent)}));
  // A crash before the blocks are freed leaves an orphan, freed at mount.
  std::vector<Op> ops;
  DropIfUnused(in, &ops);
  return Commit(std::move(ops));
}

Status Filesystem::Rmdir(const PathRef& ref) {
  OpGuard g(this);
  const std::string& path = ref.path;
  auto at = ns_.LocateEntry(ref);
  if (!at.ok()) return at.status();
  if (!at->inode) return NoEntry(path);
  if (!at->inode->is_dir()) return Status::Error(ENOTDIR, path + ": not a directory");
  if (!at->inode->entries.empty()) return Status::Error(ENOTEMPTY, path + ": directory not empty");
  return RmdirEntry(at->parent(), at->name(), at->inode);
}

Status Filesystem::RmdirEntry(Inode* parent, const std::string& name, Inode* in) {
  std::vector<Op> ops = {Op::Unlink(parent->ino, name), DirChanged(*parent, -1)};
  // A directory damage left with a second name lives on under it.
  if (state_.NameCount(in->ino) <= 1) ops.push_back(Op::FreeInode(in->ino));
  return Commit(std::move(ops));
}

Status Filesystem::RemoveTree(const std::string& path) {
  OpGuard g(this);
  auto top = ns_.LocateEntry(path);
  if (!top.ok()) return top.status();
  if (!top->inode) return NoEntry(path);
  // A damaged entry, or a directory with a second name (which would see its
  // contents go; replay makes such names, and cycles of them, of lost
  // records), refuses the lot before anything goes.
  std::vector<TreeEntry> tree = {{top->parent(), top->name(), top->inode}};
  if (top->inode->is_dir()) DG_RETURN_IF_ERROR(ns_.AddTreeBelow(top->inode, &tree));
  DG_RETURN_IF_ERROR(Writable());
  if (tree.size() == 1) return Commit(RemoveTreeOps(tree));
  // The tree leaves the namespace in one commit; what it held goes after,
  // and a crash meanwhile leaves it to the next mount (State::DetachedDirs).
  Inode* dir = top->inode;
  Attr pa = top->parent()->attr, da = dir->attr;
  if (pa.nlink) pa.nlink--;
  da.nlink = 0;
  da.ctime_ns = NowNs();
  DG_RETURN_IF_ERROR(Commit({Op::Unlink(top->parent()->ino, top->name()), Op::SetInode(top->parent()->ino, pa),
                             Op::SetInode(dir->ino, da)}));
  Sink commit = [this](std::vector<Op> ops) { return Commit(std::move(ops)); };
  DG_RETURN_IF_ERROR(EmptyDetached(dir, commit));
  std::vector<Op> ops;
  DropIfUnused(dir, &ops);
  return Commit(std::move(ops));
}

Status Filesystem::EmptyDetached(Inode* top, const Sink& sink) {
  std::vector<TreeEntry> tree;
  DG_RETURN_IF_ERROR(ns_.AddTreeBelow(top, &tree));
  // From the end (deepest first), a bounded number of entries per batch:
  // each directory goes once what it holds is gone.
  for (size_t end = tree.size(); end > 0;) {
    size_t n = std::min<size_t>(end, kRemoveBatch);
    std::vector<Op> ops;
    for (;; n = (n + 1) / 2) {
      ops = RemoveTreeOps({tree.begin() + static_cast<ptrdiff_t>(end - n), tree.begin() + static_cast<ptrdiff_t>(end)});
      if (n == 1 || log_.FitsOneRecord(ops)) break;
    }
    DG_RETURN_IF_ERROR(sink(std::move(ops)));
    end -= n;
  }
  return Status::Ok();
}

Status Filesystem::FinishUnlinked(const Sink& sink) {
  std::vector<uint64_t> unlinked;
  for (const auto& [ino, in] : state_.inodes())
    if (in->attr.nlink == 0) unlinked.push_back(ino);
  // One that cannot be emptied (it holds a directory also named elsewhere)
  // stays detached: fsck names it, and fsck --repair reconnects it.
  for (uint64_t ino : unlinked)
    if (Inode* in = state_.Find(ino); in && state_.IsDetached(*in)) (void)EmptyDetached(in, sink);
  std::vector<Op> ops;
  for (uint64_t ino : unlinked)
    if (Inode* in = state_.Find(ino)) DropIfUnused(in, &ops);
  return ops.empty() ? Status::Ok() : sink(std::move(ops));
}

// Deepest entries first: each directory is unlinked and freed once it is
// empty; link counts are set once at the end, and files left with no name
// nor open handle are freed with their blocks.
std::vector<Op> Filesystem::RemoveTreeOps(const std::vector<TreeEntry>& tree) {
  std::vector<Op> ops;
  std::map<uint64_t, Attr> attrs;       // link counts as they end up
  std::map<uint64_t, size_t> unlinked;  // names each file loses
  int64_t now = NowNs();
  for (auto e = tree.rbegin(); e != tree.rend(); ++e) {
    ops.push_back(Op::Unlink(e->parent->ino, e->name));
    Attr& pa = attrs.try_emplace(e->parent->ino, e->parent->attr).first->second;
    if (e->in->is_dir()) {
      if (pa.nlink) pa.nlink--;
      ops.push_back(Op::FreeInode(e->in->ino));
      attrs.erase(e->in->ino);
      continue;
    }
    Attr& a = attrs.try_emplace(e->in->ino, e->in->attr).first->second;
    if (a.nlink) a.nlink--;  // a damaged count stays at 0, never wraps
    a.ctime_ns = now;
    unlinked[e->in->ino]++;
  }
  for (const auto& [ino, a] : attrs) {
    // Only files lose names here; a directory kept (a parent) keeps its
    // count, even the 0 of a detached one that is emptied batch by batch.
    auto lost = unlinked.find(ino);
    if (lost == unlinked.end() || a.nlink || open_inodes_.count(ino) || state_.NameCount(ino) != lost->second) {
      ops.push_back(Op::SetInode(ino, a));
      continue;
    }
    for (Op& op : FreeBlocksOps(state_.Find(ino), 0, UINT64_MAX / 2)) ops.push_back(std::move(op));
    ops.push_back(Op::FreeInode(ino));
  }
  return ops;
}

Status Filesystem::Link(const PathRef& existing, const PathRef& path) {
  OpGuard g(this);
  auto src = ns_.Resolve(existing);
  if (!src.ok()) return src.status();
  if ((*src)->is_dir()) return Status::Error(EPERM, existing.path + ": hard links to directories are not allowed");
  // An open file whose last name went may not get a new one (linkat(2)'s ENOENT).
  if ((*src)->attr.nlink == 0) return NoEntry(existing.path);
  auto at = ns_.LocateEntry(path);
  if (!at.ok()) return at.status();
  if (at->inode) return Status::Error(EEXIST, path.path + ": file exists");
  if (at->must_be_dir) return Status::Error(ENOTDIR, path.path + ": not a directory");
  Attr a = (*src)->attr;
  a.nlink++;
  a.ctime_ns = NowNs();
  return Commit({Op::Link(at->parent()->ino, at->name(), (*src)->ino), Op::SetInode((*src)->ino, a),
                 DirChanged(*at->parent())});
}

Status Filesystem::Symlink(const std::string& target, const PathRef& path, Caller who) {
  if (target.empty()) return Status::Error(ENOENT, path.path + ": a symbolic link needs a target");
  if (target.size() >= kBlockSize) return Status::Error(ENAMETOOLONG, path.path + ": link target longer than 4095 bytes");
  auto free_entry = [&]() -> Result<Located> {
    auto at = ns_.LocateEntry(path);
    if (at.ok() && at->inode) return Status::Error(EEXIST, path.path + ": file exists");
    if (at.ok() && at->must_be_dir) return Status::Error(ENOENT, path.path + ": a symbolic link is not a directory");
    return at;
  };
  std::unique_ptr<File> f;
  {
    OpGuard g(this);
    auto at = free_entry();
    if (!at.ok()) return at.status();
    uint64_t ino = state_.NextIno();
    DG_RETURN_IF_ERROR(Commit({Op::SetInode(ino, NewAttr(S_IFLNK | 0777, 0, who))}));
    f = NewHandle(ino);  // unnamed until the target is in: freed on close if it never is
  }
  auto w = f->Write(0, target.data(), target.size());
  if (!w.ok()) return w.status();
  if (*w != target.size()) return Status::Io(path.path + ": link target written short");
  OpGuard g(this);
  auto at = free_entry();
  if (!at.ok()) return at.status();
  Inode* in = state_.Find(f->ino());
  if (!in) return Status::Io(path.path + ": link lost before it was named");
  FoldTimes(in);
  Attr a = in->attr;
  a.nlink = 1;
  return Commit({Op::Link(at->parent()->ino, at->name(), in->ino), Op::SetInode(in->ino, a), DirChanged(*at->parent())});
}

Result<std::string> Filesystem::ReadLink(const PathRef& path) {
  std::unique_ptr<File> f;
  {
    OpGuard g(this);
    auto in = ns_.Resolve(path);
    if (!in.ok()) return in.status();
    if (!S_ISLNK((*in)->attr.mode)) return Status::Invalid(path.path + ": not a symbolic link");
    f = NewHandle((*in)->ino);
  }
  auto st = f->Stat();
  if (!st.ok()) return st.status();
  std::string target(std::min<uint64_t>(st->attr.size, kBlockSize), '\0');
  auto r = f->Read(0, target.data(), target.size());
  if (!r.ok()) return r.status();
  if (*r != target.size()) return Status::Io(path.path + ": link target cut short");
  return target;
}

// Whether `dir` lies on the way to `at` (so moving it there would put it inside itself).
static bool OnTheWay(const Inode* dir, const Located& at) {
  return dir->is_dir() && std::find(at.dirs.begin(), at.dirs.end(), dir) != at.dirs.end();
}

Status Filesystem::Rename(const PathRef& from_ref, const PathRef& to_ref, int flags) {
  OpGuard g(this);
  const std::string &from = from_ref.path, &to = to_ref.path;
  if ((flags & kRenameNoReplace) && (flags & kRenameExchange))
    return Status::Invalid("rename: RENAME_NOREPLACE and RENAME_EXCHANGE exclude each other");
  auto src = ns_.LocateEntry(from_ref);
  if (!src.ok()) return src.status();
  if (!src->inode) return NoEntry(from);
  auto dst = ns_.LocateEntry(to_ref);
  if (!dst.ok()) return dst.status();
  if (flags & kRenameExchange) return Exchange(*src, *dst, to);
  Inode *in = src->inode, *victim = dst->inode, *fp = src->parent(), *tp = dst->parent();
  if (victim && (flags & kRenameNoReplace)) return Status::Error(EEXIST, to + ": file exists");
  if (dst->must_be_dir && !in->is_dir()) return Status::Error(ENOTDIR, to + ": not a directory");
  if (victim == in) return Status::Ok();  // one inode under both names: rename(2) does nothing
  if (OnTheWay(in, *dst)) return Status::Invalid(to + ": cannot move a directory inside itself");
  std::vector<Op> ops;
  int from_links = 0, to_links = 0;  // changes to the parents' link counts
  if (victim) {
    if (victim->is_dir() && !in->is_dir()) return Status::Error(EISDIR, to + ": is a directory");
    if (!victim->is_dir() && in->is_dir()) return Status::Error(ENOTDIR, to + ": not a directory");
    if (victim->is_dir() && !victim->entries.empty()) return Status::Error(ENOTEMPTY, to + ": directory not empty");
    Attr va = victim->attr;
    va.nlink = victim->is_dir() || va.nlink == 0 ? 0 : va.nlink - 1;
    va.ctime_ns = NowNs();
    ops.push_back(Op::SetInode(victim->ino, va));
    if (victim->is_dir()) to_links--;  // its ".." goes with it
  }
  ops.push_back(Op::Unlink(fp->ino, src->name()));
  ops.push_back(Op::Link(tp->ino, dst->name(), in->ino));
  ops.push_back(CtimeNow(*in));
  if (in->is_dir()) from_links--, to_links++;  // its ".." moves
  if (fp == tp) to_links += from_links;
  if (fp != tp) ops.push_back(DirChanged(*fp, from_links));
  ops.push_back(DirChanged(*tp, to_links));
  DG_RETURN_IF_ERROR(Commit(std::move(ops)));
  ops.clear();
  if (victim) DropIfUnused(victim, &ops);
  return Commit(std::move(ops));
}

Status Filesystem::Exchange(const Located& a, const Located& b, const std::string& to) {
  if (!b.inode) return NoEntry(to);
  if (a.inode == b.inode) return Status::Ok();
  if (OnTheWay(a.inode, b) || OnTheWay(b.inode, a))
    return Status::Invalid(to + ": cannot move a directory inside itself");
  Inode *ap = a.parent(), *bp = b.parent();
  std::vector<Op> ops = {Op::Unlink(ap->ino, a.name()), Op::Unlink(bp->ino, b.name()),
                         Op::Link(ap->ino, a.name(), b.inode->ino), Op::Link(bp->ino, b.name(), a.inode->ino),
                         CtimeNow(*a.inode), CtimeNow(*b.inode)};
  // A directory moving to the other parent takes its ".." along.
  int moved = int{b.inode->is_dir()} - int{a.inode->is_dir()};  // into a's parent
  if (ap == bp) {
    ops.push_back(DirChanged(*ap));
  } else {
    ops.push_back(DirChanged(*ap, moved));
    ops.push_back(DirChanged(*bp, -moved));
  }
  return Commit(std::move(ops));
}

Result<std::vector<DirEntry>> Filesystem::ReadDir(const PathRef& path) {
  OpGuard g(this);
  auto d = ns_.Resolve(path);
  if (!d.ok()) return d.status();
  if (!(*d)->is_dir()) return Status::Error(ENOTDIR, path.path + ": not a directory");
  std::vector<DirEntry> out;
  for (const auto& [name, ino] : (*d)->entries) {
    const Inode* in = ns_.EntryTarget(ino);
    out.push_back({name, ino, in ? in->attr.mode : 0, !in});
  }
  return out;
}

static uint64_t BlocksOf(const Inode& in) {
  uint64_t n = 0;
  for (const auto& [f, e] : in.extents) n += e.len;
  return n;
}

Result<FileStat> Filesystem::Stat(const PathRef& path) {
  OpGuard g(this);
  auto in = ns_.Resolve(path);
  if (!in.ok()) return in.status();
  FoldTimes(*in);
  return FileStat{(*in)->ino, (*in)->attr, BlocksOf(**in)};
}

Result<FileStat> Filesystem::SetAttr(uint64_t ino, const Attr& a, int mask) {
  OpGuard g(this);
  auto in = ns_.Resolve(PathRef(ino, ""));
  if (!in.ok()) return in.status();
  DG_RETURN_IF_ERROR(Writable());
  FoldTimes(*in);
  Attr n = (*in)->attr;
  if (mask & kAttrMode) n.mode = (n.mode & S_IFMT) | (a.mode & 07777);
  if (mask & kAttrUid) n.uid = a.uid;
  if (mask & kAttrGid) n.gid = a.gid;
  if (mask & kAttrAtime) n.atime_ns = a.atime_ns;
  if (mask & kAttrMtime) n.mtime_ns = a.mtime_ns;
  n.ctime_ns = NowNs();
  DG_RETURN_IF_ERROR(Commit({Op::SetInode(ino, n)}));
  return FileStat{ino, n, BlocksOf(**in)};
}

static constexpr size_t kMaxXattrBytes = 64 << 10;  // names and values, per inode

Status Filesystem::SetXattr(uint64_t ino, const std::string& name, const std::string& value, int flags) {
  OpGuard g(this);
  DG_ASSIGN_OR_RETURN(Inode* in, ns_.Resolve(PathRef(ino, "")));
  DG_RETURN_IF_ERROR(Writable());
  if (name.empty() || name.size() > kMaxNameLen) return Status::Error(ERANGE, "attribute name of 1 to 255 bytes");
  if (value.size() > kMaxXattrBytes) return Status::Error(E2BIG, name + ": attribute value over 64 KiB");
  auto old = in->xattrs.find(name);
  if ((flags & XATTR_CREATE) && old != in->xattrs.end()) return Status::Error(EEXIST, name + ": attribute exists");
  if ((flags & XATTR_REPLACE) && old == in->xattrs.end()) return Status::Error(ENODATA, name + ": no such attribute");
  size_t total = name.size() + value.size();
  for (const auto& [n, v] : in->xattrs)
    if (n != name) total += n.size() + v.size();
  if (total > kMaxXattrBytes) return Status::Error(ENOSPC, "inode " + std::to_string(ino) + ": attributes over 64 KiB");
  FoldTimes(in);
  return Commit({Op::SetXattr(ino, name, value), CtimeNow(*in)});
}

Result<std::string> Filesystem::GetXattr(uint64_t ino, const std::string& name) {
  OpGuard g(this);
  DG_ASSIGN_OR_RETURN(Inode* in, ns_.Resolve(PathRef(ino, "")));
  auto it = in->xattrs.find(name);
  if (it == in->xattrs.end()) return Status::Error(ENODATA, name + ": no such attribute");
  return it->second;
}

Result<std::vector<std::string>> Filesystem::ListXattr(uint64_t ino) {
  OpGuard g(this);
  DG_ASSIGN_OR_RETURN(Inode* in, ns_.Resolve(PathRef(ino, "")));
  std::vector<std::string> names;
  for (const auto& [n, v] : in->xattrs) names.push_back(n);
  return names;
}

Status Filesystem::RemoveXattr(uint64_t ino, const std::string& name) {
  OpGuard g(this);
  DG_ASSIGN_OR_RETURN(Inode* in, ns_.Resolve(PathRef(ino, "")));
  DG_RETURN_IF_ERROR(Writable());
  if (!in->xattrs.count(name)) return Status::Error(ENODATA, name + ": no such attribute");
  FoldTimes(in);
  return Commit({Op::RemoveXattr(ino, name), CtimeNow(*in)});
}

Result<std::vector<IntervalSet::Interval>> Filesystem::DamageOf(uint64_t ino) {
  OpGuard g(this);
  DG_ASSIGN_OR_RETURN(Inode* in, ns_.Resolve(PathRef(ino, "")));
  const auto& m = in->damage.intervals();
  return std::vector<IntervalSet::Interval>(m.begin(), m.end());
}

void Filesystem::OnAnyDamage(DamageFn cb) {
  OpGuard g(this);
  SetAnyDamage(std::move(cb));
}

FsStats Filesystem::StatFs() {
  OpGuard g(this);
  const Geometry& geo = state_.geometry();
  uint64_t meta = 2 * (1 + geo.meta_blocks);  // superblock and log area, per copy
  return {geo.blocks - std::min(meta, geo.blocks), state_.space().free_space().Total(), state_.inodes().size()};
}

// One path to `ino` (used by who/health).
std::string Filesystem::PathOf(uint64_t ino) { return state_.PathOf(ino); }

}  // namespace daxguard::fs
