// The data path's own state: open handles, their fast maps' generation, and
// the mappings (placed in file_map.cc).
#include "fs/data_path.h"

#include "common/light_section.h"
#include "fs/file_map.h"
#include "fs/filesystem.h"

namespace daxguard::fs {

std::unique_ptr<File> DataPath::NewHandle(uint64_t ino) {
  std::unique_ptr<File> f(new File(this, ino));
  OpenInode(ino);
  open_files_.insert(f.get());
  return f;
}

void DataPath::CloseHandle(File* f) {
  if (Inode* in = state().Find(f->ino_)) FoldTimes(in);
  open_files_.erase(f);
  CloseInode(f->ino_);
}

Status DataPath::WriteBackMappedStores(const Inode& in) {
  if (!mapped_for_write_.count(in.ino)) return Status::Ok();
  for (const auto& [fblk, e] : in.extents)
    if (!e.unwritten) DG_RETURN_IF_ERROR(device().WriteBack(e.pblk * kBlockSize, e.len * kBlockSize));
  return Status::Ok();
}

Status DataPath::WriteBackMappedStores() {
  Status first;
  for (uint64_t ino : mapped_for_write_)
    if (const Inode* in = state().Find(ino); in)
      if (Status s = WriteBackMappedStores(*in); !s.ok() && first.ok()) first = s;
  return first;
}

bool DataPath::Holds(const File& f) const { return f.dp_ == this; }

void DataPath::Quiesce() {
  if (!fast_maps_filled_) return;  // every map is of an older generation already
  fast_maps_filled_ = false;
  data_gen_.store(data_gen_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  LightSection::WaitOut(this);
}

void DataPath::FoldTimes(Inode* in) {
  for (File* f : open_files_) {
    if (f->ino_ != in->ino || !f->times_marked_.exchange(false)) continue;
    in->attr.mtime_ns = in->attr.ctime_ns = NowNs();
  }
}

void DataPath::NoticeDamage(uint64_t ino, uint64_t off, uint64_t len, std::vector<std::function<void()>>* out) {
  for (File* f : open_files_)
    if (f->ino_ == ino && f->on_damage_) out->push_back([cb = f->on_damage_, off, len] { cb(off, len); });
  if (any_damage_) out->push_back([cb = any_damage_, ino, off, len] { cb(ino, off, len); });
}

void DataPath::DetachAll() {
  for (File* f : open_files_) f->dp_ = nullptr;
  for (auto& [ino, m] : mappings_) {
    (void)m->region_->Trap(0, m->length(), dax::TrapKind::kGone);
    MappingGone(*m->region_);
    m->dp_ = nullptr;
  }
}

}  // namespace daxguard::fs
