#include "fs/filesystem.h"

#include <sys/stat.h>
#include <time.h>

#include <sstream>

#include "common/light_section.h"

namespace daxguard::fs {
namespace {

int64_t NowNs() {
  // Coarse, as Linux's inode timestamps are (current_time()): a few ns
  // instead of ~30 on every write, at the kernel tick's resolution.
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '/');)
    if (!p.empty() && p != ".") parts.push_back(p);
  return parts;
}

Attr NewAttr(uint32_t mode, uint32_t nlink) {
  Attr a;
  a.mode = mode;
  a.nlink = nlink;
  a.uid = getuid();
  a.gid = getgid();
  a.atime_ns = a.mtime_ns = a.ctime_ns = NowNs();
  return a;
}

}  // namespace

thread_local Filesystem* Filesystem::in_op_ = nullptr;

Filesystem::OpGuard::OpGuard(Filesystem* fs) : fs_(fs) {
  fs_->mu_.lock();
  in_op_ = fs_;
}

Filesystem::OpGuard::~OpGuard() {
  fs_->ProcessFailures();
  std::vector<std::function<void()>> callbacks = std::move(fs_->callbacks_);
  fs_->callbacks_.clear();
  in_op_ = nullptr;
  fs_->mu_.unlock();
  for (auto& cb : callbacks) cb();  // a handle's callback may use the filesystem
}

Filesystem::Filesystem(dax::Device& dev)
    : dev_(dev), geo_(GeometryFor(dev.size())), log_(dev, geo_), state_(geo_) {}

Filesystem::~Filesystem() {
  dev_.ReleaseHolder(this);
  std::lock_guard<std::mutex> g(mu_);
  if (mounted_ && Writable().ok()) (void)log_.MarkCleanEnd();  // spares the next mount its search past the end
  for (File* f : open_files_) f->fs_ = nullptr;  // handles left open now fail cleanly
  // Mappings left behind lose their pages: the device is no longer ours to hand out.
  for (auto& [ino, m] : mappings_) {
    (void)m->region_->Trap(0, m->length(), dax::TrapKind::kGone);
    m->fs_ = nullptr;
  }
}

Status Filesystem::Mkfs(dax::Device& dev) {
  Geometry g = GeometryFor(dev.size());
  if (g.blocks < kMinBlocks) return Status::Invalid("device too small for daxfs (16 MiB at least)");
  if (dev.HasHolder()) return Status::Busy("device is in use (mounted?)");
  State fresh(g);
  DG_RETURN_IF_ERROR(fresh.Apply(Op::SetInode(kRootIno, NewAttr(S_IFDIR | 0755, 2))));
  MetaLog log(dev, g);
  return log.Format(fresh.Snapshot());
}

Result<std::unique_ptr<Filesystem>> Filesystem::Mount(dax::Device& dev) {
  std::unique_ptr<Filesystem> fs(new Filesystem(dev));
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
    // Files unlinked while open when the system stopped are freed now.
    std::vector<Op> ops;
    for (const auto& [ino, in] : fs->state_.inodes())
      if (in->attr.nlink == 0) fs->DropIfUnused(in.get(), &ops);
    if (!ops.empty() && fs->Writable().ok()) DG_RETURN_IF_ERROR(fs->Commit(std::move(ops)));
  }
  // Registering replays errors that became known while unmounted.
  DG_RETURN_IF_ERROR(dev.RegisterHolder(fs.get()));
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

void Filesystem::Quiesce() {
  if (!fast_maps_filled_) return;  // every map is of an older generation already
  fast_maps_filled_ = false;
  data_gen_.store(data_gen_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  LightSection::WaitOut(this);
}

void Filesystem::FoldTimes(Inode* in) {
  for (File* f : open_files_) {
    if (f->ino_ != in->ino || !f->times_marked_.exchange(false)) continue;
    in->attr.mtime_ns = in->attr.ctime_ns = NowNs();
  }
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

Result<Inode*> Filesystem::Resolve(const std::string& path) {
  Inode* cur = state_.Find(kRootIno);
  for (const std::string& part : SplitPath(path)) {
    if (!cur->is_dir()) return Status::Error(ENOTDIR, path + ": not a directory");
    auto it = cur->entries.find(part);
    if (it == cur->entries.end()) return Status::Error(ENOENT, path + ": no such file or directory");
    cur = state_.Find(it->second);
    if (!cur) return Status::Corrupt(path + ": dangling directory entry");
  }
  return cur;
}

Status Filesystem::ResolveParent(const std::string& path, Inode** parent, std::string* name) {
  std::vector<std::string> parts = SplitPath(path);
  if (parts.empty()) return Status::Invalid(path + ": names the root");
  *name = parts.back();
  if (name->size() > kMaxNameLen) return Status::Error(ENAMETOOLONG, path + ": name longer than 255 bytes");
  if (*name == "..") return Status::Invalid(path + ": '..' is not supported");
  std::string dir;
  for (size_t i = 0; i + 1 < parts.size(); ++i) dir += "/" + parts[i];
  auto p = Resolve(dir);
  if (!p.ok()) return p.status();
  if (!(*p)->is_dir()) return Status::Error(ENOTDIR, dir + ": not a directory");
  *parent = *p;
  return Status::Ok();
}

Result<Inode*> Filesystem::ResolveEntry(const std::string& path, Inode** parent, std::string* name) {
  DG_RETURN_IF_ERROR(ResolveParent(path, parent, name));
  auto it = (*parent)->entries.find(*name);
  if (it == (*parent)->entries.end()) return Status::Error(ENOENT, path + ": no such file or directory");
  Inode* in = state_.Find(it->second);
  if (!in) return Status::Corrupt(path + ": dangling directory entry");
  return in;
}

Result<std::unique_ptr<File>> Filesystem::Open(const std::string& path, int flags, uint32_t mode) {
  OpGuard g(this);
  Inode* parent = nullptr;
  std::string name;
  auto found = Resolve(path);
  uint64_t ino;
  if (found.ok()) {
    if (flags & kExclusive && flags & kCreate) return Status::Error(EEXIST, path + ": file exists");
    if ((*found)->is_dir()) return Status::Error(EISDIR, path + ": is a directory");
    ino = (*found)->ino;
  } else {
    if (!(flags & kCreate) || found.status().err() != ENOENT) return found.status();
    DG_RETURN_IF_ERROR(ResolveParent(path, &parent, &name));
    ino = state_.NextIno();
    DG_RETURN_IF_ERROR(Commit({Op::SetInode(ino, NewAttr(S_IFREG | (mode & 07777), 1)),
                               Op::Link(parent->ino, name, ino)}));
  }
  std::unique_ptr<File> f(new File(this, ino));
  open_inodes_.insert(ino);
  open_files_.insert(f.get());
  if (flags & kTruncate) {
    mu_.unlock();  // Truncate takes the guard itself
    in_op_ = nullptr;
    Status s = f->Truncate(0);
    mu_.lock();
    in_op_ = this;
    if (!s.ok()) return s;
  }
  return f;
}

Status Filesystem::Mkdir(const std::string& path, uint32_t mode) {
  OpGuard g(this);
  Inode* parent;
  std::string name;
  DG_RETURN_IF_ERROR(ResolveParent(path, &parent, &name));
  if (parent->entries.count(name)) return Status::Error(EEXIST, path + ": file exists");
  uint64_t ino = state_.NextIno();
  Attr pa = parent->attr;
  pa.nlink++;
  pa.mtime_ns = pa.ctime_ns = NowNs();
  return Commit({Op::SetInode(ino, NewAttr(S_IFDIR | (mode & 07777), 2)), Op::Link(parent->ino, name, ino),
                 Op::SetInode(parent->ino, pa)});
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
        if (!dev_.DirectAccess(b, 1, dax::AccessMode::kAccess).ok()) ops.push_back(Op::Quarantine(b, 1, true));
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
  if (in->attr.nlink > 0 || open_inodes_.count(in->ino)) return;
  for (Op& op : FreeBlocksOps(in, 0, UINT64_MAX / 2)) ops->push_back(std::move(op));
  ops->push_back(Op::FreeInode(in->ino));
}

Status Filesystem::Unlink(const std::string& path) {
  OpGuard g(this);
  Inode* parent;
  std::string name;
  auto found = ResolveEntry(path, &parent, &name);
  if (!found.ok()) return found.status();
  Inode* in = *found;
  if (in->is_dir()) return Status::Error(EISDIR, path + ": is a directory");
  Attr a = in->attr;
  a.nlink--;
  a.ctime_ns = NowNs();
  DG_RETURN_IF_ERROR(Commit({Op::Unlink(parent->ino, name), Op::SetInode(in->ino, a)}));
  // A crash before the blocks are freed leaves an orphan, freed at mount.
  std::vector<Op> ops;
  DropIfUnused(in, &ops);
  return Commit(std::move(ops));
}

Status Filesystem::Rmdir(const std::string& path) {
  OpGuard g(this);
  Inode* parent;
  std::string name;
  auto found = ResolveEntry(path, &parent, &name);
  if (!found.ok()) return found.status();
  Inode* in = *found;
  if (!in->is_dir()) return Status::Error(ENOTDIR, path + ": not a directory");
  if (!in->entries.empty()) return Status::Error(ENOTEMPTY, path + ": directory not empty");
  Attr pa = parent->attr;
  pa.nlink--;
  return Commit({Op::Unlink(parent->ino, name), Op::SetInode(parent->ino, pa), Op::FreeInode(in->ino)});
}

Status Filesystem::Link(const std::string& existing, const std::string& path) {
  OpGuard g(this);
  auto src = Resolve(existing);
  if (!src.ok()) return src.status();
  if ((*src)->is_dir()) return Status::Error(EPERM, existing + ": hard links to directories are not allowed");
  Inode* parent;
  std::string name;
  DG_RETURN_IF_ERROR(ResolveParent(path, &parent, &name));
  if (parent->entries.count(name)) return Status::Error(EEXIST, path + ": file exists");
  Attr a = (*src)->attr;
  a.nlink++;
  a.ctime_ns = NowNs();
  return Commit({Op::Link(parent->ino, name, (*src)->ino), Op::SetInode((*src)->ino, a)});
}

Status Filesystem::Rename(const std::string& from, const std::string& to) {
  OpGuard g(this);
  Inode *fp, *tp;
  std::string fname, tname;
  auto found = ResolveEntry(from, &fp, &fname);
  if (!found.ok()) return found.status();
  Inode* in = *found;
  DG_RETURN_IF_ERROR(ResolveParent(to, &tp, &tname));
  // A directory may not move under itself: none of to's parents may be it.
  if (in->is_dir()) {
    std::vector<std::string> parts = SplitPath(to);
    Inode* walk = state_.Find(kRootIno);
    for (size_t i = 0; walk && i < parts.size(); ++i) {
      if (walk->ino == in->ino) return Status::Invalid(to + ": cannot move a directory inside itself");
      if (i + 1 == parts.size()) break;
      auto e = walk->entries.find(parts[i]);
      walk = e == walk->entries.end() ? nullptr : state_.Find(e->second);
    }
  }
  std::vector<Op> ops;
  auto target = tp->entries.find(tname);
  if (target != tp->entries.end()) {
    if (target->second == in->ino) return Status::Ok();
    Inode* victim = state_.Find(target->second);
    if (victim->is_dir() != in->is_dir())
      return Status::Error(victim->is_dir() ? EISDIR : ENOTDIR, to + ": type mismatch");
    if (victim->is_dir() && !victim->entries.empty()) return Status::Error(ENOTEMPTY, to + ": directory not empty");
    Attr va = victim->attr;
    va.nlink = victim->is_dir() ? 0 : va.nlink - 1;
    ops.push_back(Op::SetInode(victim->ino, va));
  }
  ops.push_back(Op::Unlink(fp->ino, fname));
  ops.push_back(Op::Link(tp->ino, tname, in->ino));
  if (in->is_dir() && fp != tp) {
    Attr a = fp->attr, b = tp->attr;
    a.nlink--;
    b.nlink++;
    ops.push_back(Op::SetInode(fp->ino, a));
    ops.push_back(Op::SetInode(tp->ino, b));
  }
  uint64_t victim = target != tp->entries.end() ? target->second : 0;
  DG_RETURN_IF_ERROR(Commit(std::move(ops)));
  ops.clear();
  if (Inode* v = victim ? state_.Find(victim) : nullptr) DropIfUnused(v, &ops);
  return Commit(std::move(ops));
}

Result<std::vector<DirEntry>> Filesystem::ReadDir(const std::string& path) {
  OpGuard g(this);
  auto d = Resolve(path);
  if (!d.ok()) return d.status();
  if (!(*d)->is_dir()) return Status::Error(ENOTDIR, path + ": not a directory");
  std::vector<DirEntry> out;
  for (const auto& [name, ino] : (*d)->entries) out.push_back({name, ino, state_.Find(ino)->attr.mode});
  return out;
}

static uint64_t BlocksOf(const Inode& in) {
  uint64_t n = 0;
  for (const auto& [f, e] : in.extents) n += e.len;
  return n;
}

Result<FileStat> Filesystem::Stat(const std::string& path) {
  OpGuard g(this);
  auto in = Resolve(path);
  if (!in.ok()) return in.status();
  FoldTimes(*in);
  return FileStat{(*in)->ino, (*in)->attr, BlocksOf(**in)};
}

// One path to `ino` (used by who/health).
std::string Filesystem::PathOf(uint64_t ino) { return state_.PathOf(ino); }

}  // namespace daxguard::fs
