#include "tools/crash_workloads.h"

#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>

#include "common/units.h"
#include "fs/format.h"
#include "media/pmem_device.h"

namespace daxguard::tools {
namespace {

using fs::Filesystem;

// Bytes no other write (nor a zeroed block) holds: never 0, different per
// write and per offset, so a stale or misplaced byte shows.
std::vector<uint8_t> Pattern(uint64_t seed, uint64_t len) {
  std::vector<uint8_t> v(len);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& b : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b = static_cast<uint8_t>(1 + x % 255);
  }
  return v;
}

Status WriteOn(fs::File& f, uint64_t off, const std::vector<uint8_t>& bytes) {
  auto w = f.Write(off, bytes.data(), bytes.size());
  if (!w.ok()) return w.status();
  return *w == bytes.size() ? Status::Ok() : Status::Io("short write");
}

void Lay(std::vector<uint8_t>& v, uint64_t off, const std::vector<uint8_t>& bytes) {
  if (v.size() < off + bytes.size()) v.resize(off + bytes.size());
  std::copy(bytes.begin(), bytes.end(), v.begin() + off);
}

// Writes `len` bytes of pattern `seed` at `off` of `path`, through one
// handle in `pieces` writes (after the first, a handle's writes may take the
// fast path), then fsyncs if asked.
CrashStep Write(std::string path, uint64_t off, uint64_t len, uint64_t seed, int pieces = 1, bool fsync = false) {
  std::string name = "write " + path + " " + std::to_string(off) + "+" + std::to_string(len) +
                     (pieces > 1 ? " in " + std::to_string(pieces) : "") + (fsync ? " + fsync" : "");
  return {name, [=](Filesystem& fs, ModelTree& m, const Returned& returned) -> Status {
            auto f = fs.Open(path, fs::kCreate);
            if (!f.ok()) return f.status();
            if (!m.Find(path)) {
              m.Add(path, false);
              returned();
            }
            auto bytes = Pattern(seed, len);
            uint64_t step = len / pieces;
            for (int p = 0; p < pieces; ++p) {
              uint64_t a = p * step, b = p + 1 == pieces ? len : a + step;
              std::vector<uint8_t> piece(bytes.begin() + a, bytes.begin() + b);
              DG_RETURN_IF_ERROR(WriteOn(**f, off + a, piece));
              Lay(m.Find(path)->Change(), off + a, piece);
              m.Find(path)->Rewrote(off + a, piece.size());
              returned();
            }
            if (fsync) {
              DG_RETURN_IF_ERROR((*f)->Fsync());
              m.Find(path)->Synced();
            }
            return Status::Ok();
          }};
}

// fsyncs `path` (so the file before is exact), then writes `len` bytes of
// pattern `seed` at `off` untorn: the image shows all of them or none.
CrashStep AtomicWrite(std::string path, uint64_t off, uint64_t len, uint64_t seed) {
  return {"atomic write " + path + " " + std::to_string(off) + "+" + std::to_string(len),
          [=](Filesystem& fs, ModelTree& m, const Returned& returned) -> Status {
            auto f = fs.Open(path, fs::kCreate);
            if (!f.ok()) return f.status();
            if (!m.Find(path)) m.Add(path, false);
            DG_RETURN_IF_ERROR((*f)->Fsync());
            m.Find(path)->Synced();
            returned();
            auto bytes = Pattern(seed, len);
            DG_RETURN_IF_ERROR((*f)->WriteAtomic(off, bytes.data(), bytes.size()));
            ModelFile* mf = m.Find(path);
            Lay(mf->Change(), off, bytes);
            mf->Rewrote(off, len);
            mf->Synced();  // durable at return
            mf->untorn = true;
            returned();
            mf->untorn = false;
            return Status::Ok();
          }};
}

CrashStep Fsync(std::string path) {
  return {"fsync " + path, [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            auto f = fs.Open(path);
            if (!f.ok()) return f.status();
            DG_RETURN_IF_ERROR((*f)->Fsync());
            m.Find(path)->Synced();
            return Status::Ok();
          }};
}

CrashStep Truncate(std::string path, uint64_t size) {
  return {"truncate " + path + " " + std::to_string(size), [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            auto f = fs.Open(path);
            if (!f.ok()) return f.status();
            DG_RETURN_IF_ERROR((*f)->Truncate(size));
            ModelFile* mf = m.Find(path);
            mf->Change().resize(size);
            mf->Clip(size);
            return Status::Ok();
          }};
}

CrashStep Fallocate(std::string path, int mode, uint64_t off, uint64_t len) {
  std::string what = mode & fs::kFallocPunchHole ? "punch " : mode & fs::kFallocZeroRange ? "zero " : "falloc ";
  return {what + path + " " + std::to_string(off) + "+" + std::to_string(len),
          [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            auto f = fs.Open(path);
            if (!f.ok()) return f.status();
            DG_RETURN_IF_ERROR((*f)->Fallocate(mode, off, len));
            ModelFile* mf = m.Find(path);
            std::vector<uint8_t>& v = mf->Change();
            uint64_t end = off + len;
            if (!(mode & fs::kFallocKeepSize) && v.size() < end) v.resize(end);
            if (mode & (fs::kFallocPunchHole | fs::kFallocZeroRange)) {
              std::fill(v.begin() + std::min<uint64_t>(off, v.size()), v.begin() + std::min<uint64_t>(end, v.size()), 0);
              mf->Rewrote(off, len);
            }
            return Status::Ok();
          }};
}

CrashStep Rename(std::string from, std::string to) {
  return {"rename " + from + " " + to, [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            DG_RETURN_IF_ERROR(fs.Rename(from, to));
            m.Rename(from, to);
            return Status::Ok();
          }};
}

CrashStep Link(std::string from, std::string to) {
  return {"link " + from + " " + to, [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            DG_RETURN_IF_ERROR(fs.Link(from, to));
            m.names[to] = m.names.at(from);
            return Status::Ok();
          }};
}

CrashStep Unlink(std::string path) {
  return {"unlink " + path, [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            DG_RETURN_IF_ERROR(fs.Unlink(path));
            m.Unname(path);
            return Status::Ok();
          }};
}

CrashStep Mkdir(std::string path) {
  return {"mkdir " + path, [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            DG_RETURN_IF_ERROR(fs.Mkdir(path));
            m.Add(path, true);
            return Status::Ok();
          }};
}

CrashStep RemoveTree(std::string path) {
  return {"rm -r " + path, [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            DG_RETURN_IF_ERROR(fs.RemoveTree(path));
            std::vector<std::string> gone;
            for (const auto& [p, i] : m.names)
              if (p == path || p.starts_with(path + "/")) gone.push_back(p);
            for (const auto& p : gone) m.Unname(p);
            return Status::Ok();
          }};
}

// A new file sharing all of `src`'s blocks (reflink).
CrashStep Clone(std::string src, std::string dst) {
  return {"reflink " + src + " " + dst, [=](Filesystem& fs, ModelTree& m, const Returned& returned) -> Status {
            auto s = fs.Open(src);
            if (!s.ok()) return s.status();
            auto d = fs.Open(dst, fs::kCreate | fs::kExclusive);
            if (!d.ok()) return d.status();
            m.Add(dst, false);
            returned();
            DG_RETURN_IF_ERROR((*d)->CloneFrom(**s, 0, 0, 0));
            ModelFile& copy = *m.Find(dst);  // shared blocks: whatever src may hold
            copy.versions = m.Find(src)->versions;
            copy.lost = m.Find(src)->lost;
            return Status::Ok();
          }};
}

// Replaces `path` all or nothing with a new file of `len` bytes.
CrashStep Publish(std::string path, uint64_t len, uint64_t seed) {
  return {"publish " + path + " " + std::to_string(len), [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            auto f = fs.CreateUnnamed(path);
            if (!f.ok()) return f.status();
            auto bytes = Pattern(seed, len);
            DG_RETURN_IF_ERROR(WriteOn(**f, 0, bytes));
            DG_RETURN_IF_ERROR(fs.Publish(**f, path));
            m.Unname(path);
            m.Add(path, false);
            m.Find(path)->versions = {bytes};
            return Status::Ok();
          }};
}

CrashStep Exchange(std::string a, std::string b) {
  return {"exchange " + a + " " + b, [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            DG_RETURN_IF_ERROR(fs.Rename(a, b, fs::kRenameExchange));
            m.Exchange(a, b);
            return Status::Ok();
          }};
}

// A link to `target` (its bytes `len` long, so a long one fills most of a block).
CrashStep Symlink(std::string target, std::string path, size_t len = 0) {
  if (len > target.size()) target.resize(len, 'x');
  return {"symlink " + path + " (" + std::to_string(target.size()) + " bytes)",
          [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            DG_RETURN_IF_ERROR(fs.Symlink(target, path));
            m.AddNode(path, S_IFLNK | 0777, std::vector<uint8_t>(target.begin(), target.end()));
            return Status::Ok();
          }};
}

CrashStep Mknod(std::string path, uint32_t mode) {
  return {"mknod " + path, [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            DG_RETURN_IF_ERROR(fs.Mknod(path, mode));
            m.AddNode(path, mode);
            return Status::Ok();
          }};
}

CrashStep Chmod(std::string path, uint32_t perm) {
  return {"chmod " + path, [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            auto st = fs.Stat(path);
            if (!st.ok()) return st.status();
            fs::Attr a;
            a.mode = perm;
            auto set = fs.SetAttr(st->ino, a, fs::kAttrMode);
            if (!set.ok()) return set.status();
            ModelFile* mf = m.Find(path);
            mf->mode = (mf->mode & S_IFMT) | perm;
            return Status::Ok();
          }};
}

// Sets attribute `name` of `path` to `len` bytes (XATTR_CREATE/REPLACE in `flags`).
CrashStep SetXattr(std::string path, std::string name, size_t len, uint64_t seed, int flags = 0) {
  auto bytes = Pattern(seed, len);
  std::string value(bytes.begin(), bytes.end());
  return {"setxattr " + path + " " + name + " " + std::to_string(len),
          [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            auto st = fs.Stat(path);
            if (!st.ok()) return st.status();
            DG_RETURN_IF_ERROR(fs.SetXattr(st->ino, name, value, flags));
            m.Find(path)->xattrs[name] = value;
            return Status::Ok();
          }};
}

CrashStep RemoveXattr(std::string path, std::string name) {
  return {"removexattr " + path + " " + name, [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            auto st = fs.Stat(path);
            if (!st.ok()) return st.status();
            DG_RETURN_IF_ERROR(fs.RemoveXattr(st->ino, name));
            m.Find(path)->xattrs.erase(name);
            return Status::Ok();
          }};
}

// Stores `len` bytes through a writable mapping of `path`, then fsyncs
// (what msync is to a mapping of a daxfs file: its stores made durable).
CrashStep MappedWrite(std::string path, uint64_t off, uint64_t len, uint64_t seed) {
  return {"mapped write " + path + " " + std::to_string(off) + "+" + std::to_string(len) + " + fsync",
          [=](Filesystem& fs, ModelTree& m, const Returned& returned) -> Status {
            auto f = fs.Open(path);
            if (!f.ok()) return f.status();
            auto st = (*f)->Stat();
            if (!st.ok()) return st.status();
            if (st->attr.size < off + len) return Status::Invalid("past the end: the store would trap");
            auto map = (*f)->Map(0, AlignUp(off + len, kPageSize), true);
            if (!map.ok()) return map.status();
            returned();  // mapping may unshare blocks: a commit
            auto bytes = Pattern(seed, len);
            std::copy(bytes.begin(), bytes.end(), (*map)->addr() + off);
            Lay(m.Find(path)->Change(), off, bytes);
            m.Find(path)->Rewrote(off, bytes.size());
            returned();
            DG_RETURN_IF_ERROR((*f)->Fsync());
            m.Find(path)->Synced();
            return Status::Ok();
          }};
}

// Poisons the 512-byte sector at device byte `at`, made known at once, as
// a scrub or a consumed line would: the filesystem hears of it inside the call.
Status PoisonDevice(Filesystem& fs, uint64_t at) {
  std::vector<media::PmemDevice*> media = fs.mounted_device().Media();
  if (media.size() != 1) return Status::Invalid("poison workloads run on a device file");
  return media[0]->Inject(at / kSectorSize, 1, {true, true, media::Source::kInjected});
}

// The sector under byte `off` of `path`: the file's data there is lost.
CrashStep PoisonFile(std::string path, uint64_t off) {
  return {"poison " + path + " " + std::to_string(off), [=](Filesystem& fs, ModelTree& m, const Returned&) -> Status {
            auto f = fs.Open(path);
            if (!f.ok()) return f.status();
            auto extents = (*f)->Fiemap();
            if (!extents.ok()) return extents.status();
            for (const fs::FiemapExtent& e : *extents) {
              if (off < e.logical || off >= e.logical + e.length || e.unwritten) continue;
              DG_RETURN_IF_ERROR(PoisonDevice(fs, e.physical + (off - e.logical)));
              m.Find(path)->Lose(AlignDown(off, kSectorSize), kSectorSize,
                                 fs.protection() == fs::DataProtection::kParity);
              return Status::Ok();
            }
            return Status::Invalid(path + " has no written block at " + std::to_string(off));
          }};
}

// The device's last block, free in the small trees the workloads make: the
// filesystem quarantines it, and no file may ever be given it.
CrashStep PoisonFreeBlock() {
  return {"poison a free block", [](Filesystem& fs, ModelTree&, const Returned&) -> Status {
            uint64_t at = fs.mounted_device().size() - kPageSize;
            auto who = fs.Who(at, kPageSize);
            if (!who.ok()) return who.status();
            if (who->size() != 1 || (*who)[0].kind != fs::OwnerInfo::Kind::kFree)
              return Status::Invalid("the last block is not free");
            return PoisonDevice(fs, at);
          }};
}

// The first block of copy A's first log slot: rebuilt from copy B.
CrashStep PoisonLogBlock() {
  return {"poison a log block", [](Filesystem& fs, ModelTree&, const Returned&) -> Status {
            return PoisonDevice(fs, fs::GeometryFor(fs.mounted_device().size()).SlotStart(0, 0) * fs::kBlockSize);
          }};
}

// fsck --repair's rewrite: the whole state as one fresh snapshot in the
// other log slot (a clean filesystem keeps its tree).
CrashStep Repair() {
  return {"repair (fresh snapshot)", [](Filesystem& fs, ModelTree&, const Returned&) { return fs.RepairForFsck(); }};
}

// fsyncs `path` until the log compacts (each fsync logs the file's times).
CrashStep FsyncUntilCompaction(std::string path) {
  return {"fsync " + path + " until the log compacts", [=](Filesystem& fs, ModelTree&, const Returned& returned) {
            auto f = fs.Open(path);
            if (!f.ok()) return f.status();
            for (int i = 0; i < 1000; ++i) {
              uint64_t used = fs.log_usage().used;
              DG_RETURN_IF_ERROR((*f)->Fsync());
              returned();
              if (fs.log_usage().used < used) return Status::Ok();
            }
            return Status::Io("the log did not compact");
          }};
}

}  // namespace

std::vector<CrashWorkload> SpecialCrashWorkloads() {
  // A log a few records short of compacting.
  auto nearly_full = [](Filesystem& fs, ModelTree&) -> Status {
    auto f = fs.Open("/a");
    if (!f.ok()) return f.status();
    for (Filesystem::LogUsage u; (u = fs.log_usage()).used + 2048 < u.compacts_at;)
      DG_RETURN_IF_ERROR((*f)->Fsync());
    return Status::Ok();
  };
  std::vector<CrashWorkload> special = {
      {"mkfs over a filesystem", nullptr, true, {}},
      {"mkfs over a filesystem; write /n2 0+3000 + fsync", nullptr, true, {Write("/n2", 0, 3000, 11, 1, true)}},
      {"log compaction", nearly_full, false, {FsyncUntilCompaction("/a"), Write("/a", 1000, 100, 12)}},
      {"log compaction; rename /a /d/a2", nearly_full, false, {FsyncUntilCompaction("/a"), Rename("/a", "/d/a2")}},
  };
  // Poison: recording the loss, then each way of ending it (a whole-page
  // recovery write, a line-aligned one, zeroing, punching, truncating).
  CrashStep lose = PoisonFile("/big", 8192);
  std::vector<CrashStep> after_loss = {
      Fsync("/big"),
      Write("/big", 8192, 4096, 21, 1, true),
      Write("/big", 8192, 512, 22),
      Fallocate("/big", fs::kFallocZeroRange | fs::kFallocKeepSize, 8192, 4096),
      Fallocate("/big", fs::kFallocPunchHole | fs::kFallocKeepSize, 8192, 4096),
      Truncate("/big", 8192),
      Write("/a", 0, 2000, 23, 1, true),
  };
  special.push_back({lose.name, nullptr, false, {lose}});
  for (const CrashStep& s : after_loss) special.push_back({lose.name + "; " + s.name, nullptr, false, {lose, s}});
  CrashStep free_block = PoisonFreeBlock(), log_block = PoisonLogBlock();
  special.push_back({free_block.name + "; write /n2", nullptr, false, {free_block, Write("/n2", 0, 3000, 24, 1, true)}});
  special.push_back({log_block.name + "; rename /a /d/a2", nullptr, false, {log_block, Rename("/a", "/d/a2")}});
  return special;
}

Status MakeCrashBaseTree(Filesystem& fs, ModelTree* model) {
  for (const CrashStep& s : {Write("/a", 0, 5000, 101, 1, true), Mkdir("/d"), Write("/d/b", 0, 12288, 102, 1, true),
                             Write("/big", 0, 65536, 103, 1, true), SetXattr("/d/b", "user.base", 40, 104)})
    if (Status st = s.run(fs, *model, [] {}); !st.ok()) return Status::Io("base tree: " + s.name + ": " + st.message());
  return Status::Ok();
}

const std::vector<CrashStep>& CrashSteps() {
  static const std::vector<CrashStep> steps = {
      Write("/n", 0, 0, 1),  // create
      Write("/a", 1000, 100, 2),
      Write("/a", 3000, 6000, 3),
      Write("/big", 0, 65536, 4),
      Write("/d/b", 12288, 8192, 5),
      Write("/big", 8192, 12288, 6, 3),
      Write("/d/b", 100, 5000, 7, 1, true),
      Write("/n2", 0, 3000, 8, 1, true),
      MappedWrite("/big", 5000, 10000, 10),
      AtomicWrite("/a", 1000, 700, 11),
      AtomicWrite("/big", 8192, 4096, 12),
      AtomicWrite("/a", 4096 + 4000, 96, 13),
      Fsync("/a"),
      Truncate("/big", 10000),
      Truncate("/a", 20000),
      Fallocate("/big", fs::kFallocPunchHole | fs::kFallocKeepSize, 4096, 8192),
      Fallocate("/big", fs::kFallocZeroRange | fs::kFallocKeepSize, 100, 5000),
      Fallocate("/a", 0, 0, 16384),
      Rename("/a", "/d/a2"),
      Rename("/a", "/d/b"),
      Rename("/d", "/e"),
      Link("/a", "/d/l"),
      Unlink("/d/b"),
      Mkdir("/e"),
      Clone("/big", "/c"),
      Publish("/a", 7000, 9),
      RemoveTree("/d"),
      Repair(),
      Exchange("/a", "/d/b"),
      Exchange("/a", "/d"),
      Symlink("a", "/s"),
      Symlink("/d/", "/d/long", 3000),
      Mknod("/fifo", S_IFIFO | 0600),
      Chmod("/d/b", 0600),
      SetXattr("/a", "user.new", 100, 14, XATTR_CREATE),
      SetXattr("/d/b", "user.base", 3000, 15, XATTR_REPLACE),
      RemoveXattr("/d/b", "user.base"),
  };
  return steps;
}

}  // namespace daxguard::tools
