// fsx for daxfs: long seeded random sequences of file operations run against
// the filesystem (through the src/fs API) and against an in-memory model,
// with poison injected, found, uninjected and cleared at random.
//
// Every read is compared byte for byte: it returns the model's bytes, or
// stops (EIO, or a short count) at a range the filesystem reported as
// damaged — never other bytes, never an error nobody was told of. Damage
// enters the model only as a fresh report (absent from the health report
// before the operation) over poison the media had; it leaves only when
// rewritten, zeroed, punched or truncated away. Writes, punches and zeroing
// that cover part of a damaged line within the file must fail (EIO) and
// change nothing; everything else must succeed.
//
// Reproduce a failure from the seed and operation count it prints:
//   FSX_SEED=<seed> FSX_OPS=<ops> build/tests/fs/fsx_test --gtest_filter='*/0'
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dax/pmem_dax.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kDevSize = 32ull << 20;
constexpr uint64_t kMaxFileSize = 1ull << 20;
constexpr size_t kMaxFiles = 6;
constexpr uint64_t kSector = 512;
constexpr uint64_t kEnd = UINT64_MAX / 2;  // "to the end" for interval sets
constexpr uint64_t kOpsPerSeed = 25000;    // four seeds: 100,000 operations per run
const char* const kNames[] = {"/a", "/b", "/c", "/d/a", "/d/b", "/d/e", "/f", "/d/g"};

uint64_t EnvOr(const char* name, uint64_t dflt) {
  const char* v = getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : dflt;
}

std::string Str(const IntervalSet& s) {
  std::string out;
  for (const auto& [o, l] : s.intervals()) out += (out.empty() ? "" : " ") + std::to_string(o) + "+" + std::to_string(l);
  return out.empty() ? "none" : out;
}

IntervalSet Minus(IntervalSet a, const IntervalSet& b) {
  for (const auto& [o, l] : b.intervals()) a.Remove(o, l);
  return a;
}

struct ModelFile {
  std::vector<uint8_t> data;  // its size is the file's
  IntervalSet damage;         // reported damaged lines, up to the line holding the end
  uint32_t nlink = 0;
};

// What was true before an operation: the damage daxfs reported, the poison
// the media had (sector units), and where the operation's files lay.
struct Before {
  std::map<uint64_t, IntervalSet> health;
  IntervalSet poison;
  std::map<uint64_t, std::vector<FiemapExtent>> layout;
};

class Fsx {
 public:
  Fsx(uint64_t seed, uint64_t ops) : seed_(seed), ops_(ops), rng_(seed) {}
  ~Fsx() {
    handles_.clear();
    fs_.reset();
    dev_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // How often each interesting thing happened, for the log.
  std::string Counts() const {
    std::string out;
    for (const auto& [what, n] : counts_) out += (out.empty() ? "" : ", ") + what + " " + std::to_string(n);
    return out;
  }

  // "" when the filesystem agreed with the model throughout.
  std::string Run() {
    if (!Setup()) return failure_;
    for (op_ = 0; op_ < ops_ && failure_.empty(); ++op_) Step();
    if (failure_.empty()) VerifyAll();
    if (failure_.empty()) Remount(false);
    if (failure_.empty()) VerifyAll();
    return failure_;
  }

 private:
  // --- setup and failure reporting
  bool Setup() {
    char tmpl[] = "/tmp/daxfs-fsx-XXXXXX";
    if (!mkdtemp(tmpl)) return Bad("mkdtemp failed"), false;
    dir_ = tmpl;
    std::string path = dir_ + "/pmem0";
    media::CreateOptions opt;
    opt.size = kDevSize;
    Check(media::PmemDevice::Create(path, opt).status(), "create device");
    auto d = dax::PmemDax::Open(path);
    Check(d.status(), "open device");
    if (!d.ok()) return false;
    dev_ = std::move(d).value();
    Check(Filesystem::Mkfs(*dev_), "mkfs");
    Mount();
    if (fs_) Check(fs_->Mkdir("/d"), "mkdir /d");
    return failure_.empty();
  }
  void Mount() {
    auto f = Filesystem::Mount(*dev_);
    Check(f.status(), "mount");
    if (f.ok()) fs_ = std::move(f).value();
  }
  void Bad(const std::string& why) {
    if (!failure_.empty()) return;
    failure_ = "seed " + std::to_string(seed_) + ", operation " + std::to_string(op_) + ": " + why +
               "\nlast operations (newest last):";
    for (const std::string& h : history_) failure_ += "\n  " + h;
    failure_ += "\nreproduce: FSX_SEED=" + std::to_string(seed_) + " FSX_OPS=" + std::to_string(op_ + 1) +
                " build/tests/fs/fsx_test --gtest_filter='*/0'";
  }
  void Check(const Status& s, const std::string& what) {
    if (!s.ok()) Bad(what + " failed: " + s.message());
  }
  void Log(const std::string& what) {
    if (getenv("FSX_VERBOSE")) std::fprintf(stderr, "#%llu %s\n", static_cast<unsigned long long>(op_), what.c_str());
    history_.push_back("#" + std::to_string(op_) + " " + what);
    if (history_.size() > 40) history_.pop_front();
  }

  // --- random choices
  uint64_t Rand(uint64_t n) { return n ? rng_() % n : 0; }
  bool Chance(int percent) { return Rand(100) < static_cast<uint64_t>(percent); }
  media::PmemDevice& media() { return dev_->media(); }

  // An offset near the places where bugs live: the end of the file, block
  // and line edges, the edges of damage; or anywhere.
  uint64_t PickOffset(const ModelFile& mf) {
    uint64_t size = mf.data.size(), off;
    switch (Rand(6)) {
      case 0: off = size + Rand(512) - std::min<uint64_t>(size, 256); break;
      case 1: off = AlignDown(Rand(size + 16384), kBlockSize) + Rand(3) * kLineSize; break;
      case 2:
        if (!mf.damage.empty()) {
          auto it = mf.damage.intervals().begin();
          std::advance(it, Rand(mf.damage.intervals().size()));
          uint64_t edge = Chance(50) ? it->first : it->first + it->second;
          off = edge + Rand(200) - std::min<uint64_t>(edge, 100);
          break;
        }
        [[fallthrough]];
      case 3: off = AlignDown(Rand(size + 8192), kLineSize) + Rand(2) * Rand(kLineSize); break;
      default: off = Rand(size + 65536); break;
    }
    return std::min(off, kMaxFileSize - 1);
  }
  uint64_t PickLength(uint64_t off) {
    uint64_t len;
    switch (Rand(8)) {
      case 0: case 1: case 2: len = 1 + Rand(256); break;
      case 3: case 4: len = 1 + Rand(16384); break;
      case 5: len = kBlockSize * (1 + Rand(16)); break;
      case 6: len = kLineSize * (1 + Rand(80)); break;
      default: len = 1 + Rand(256 * 1024); break;
    }
    return std::max<uint64_t>(1, std::min(len, kMaxFileSize - off));
  }
  std::vector<uint64_t> Inos() const {
    std::vector<uint64_t> v;
    for (const auto& [ino, mf] : files_) v.push_back(ino);
    return v;
  }
  // A file to work on: an existing one, or (maybe) a new one made by name.
  std::optional<uint64_t> PickFile(bool may_create) {
    if (may_create && (files_.empty() || (files_.size() < kMaxFiles && Chance(10)))) {
      std::string name = kNames[Rand(std::size(kNames))];
      if (!names_.count(name)) return Create(name);
    }
    if (files_.empty()) return std::nullopt;
    auto v = Inos();
    return v[Rand(v.size())];
  }
  std::optional<uint64_t> Create(const std::string& name) {
    auto f = fs_->Open(name, kCreate);
    if (!f.ok()) {
      Bad("create " + name + ": " + f.status().message());
      return std::nullopt;
    }
    uint64_t ino = (*f)->ino();
    Log("create " + name + " -> inode " + std::to_string(ino));
    if (files_.count(ino)) Bad("create " + name + " returned inode " + std::to_string(ino) + ", which is in use");
    files_[ino].nlink = 1;
    names_[name] = ino;
    handles_[ino].push_back(std::move(f).value());
    return ino;
  }
  // One open handle of `ino`: a random one of those open, or a new one by name.
  File* Handle(uint64_t ino) {
    auto& hs = handles_[ino];
    if (hs.empty() || (hs.size() < 2 && Chance(3))) {
      for (const auto& [name, i] : names_) {
        if (i != ino) continue;
        auto f = fs_->Open(name);
        if (!f.ok()) {
          Bad("open " + name + ": " + f.status().message());
          return nullptr;
        }
        hs.push_back(std::move(f).value());
        break;
      }
      if (hs.empty()) {
        Bad("inode " + std::to_string(ino) + " has neither a name nor an open handle");
        return nullptr;
      }
    }
    return hs[Rand(hs.size())].get();
  }
  // Forgets files nobody links or holds open, as daxfs frees them.
  void DropIfUnused(uint64_t ino) {
    auto it = files_.find(ino);
    if (it != files_.end() && it->second.nlink == 0 && handles_[ino].empty()) {
      files_.erase(it);
      handles_.erase(ino);
    }
  }

  // --- damage bookkeeping
  std::map<uint64_t, IntervalSet> Health() {
    std::map<uint64_t, IntervalSet> out;
    for (const DamagedFile& d : fs_->Health().files)
      for (const auto& [o, l] : d.ranges) out[d.ino].Add(o, l);
    return out;
  }
  IntervalSet Poison() {
    IntervalSet s;
    for (const media::MediaError& e : media().MediaErrors()) {
      uint64_t lo = AlignDown(e.offset, kSector);
      s.Add(lo, AlignUp(e.offset + e.length, kSector) - lo);
    }
    for (const media::BadBlock& b : media().BadBlocks()) s.Add(b.sector * kSector, b.count * kSector);
    return s;
  }
  std::vector<FiemapExtent> Layout(uint64_t ino) {
    File* h = Handle(ino);
    if (!h) return {};
    auto m = h->Fiemap();
    if (!m.ok()) Bad("fiemap of inode " + std::to_string(ino) + ": " + m.status().message());
    return m.ok() ? *m : std::vector<FiemapExtent>{};
  }
  Before Snapshot(std::initializer_list<uint64_t> inos) {
    Before b{Health(), Poison(), {}};
    for (uint64_t ino : inos) b.layout[ino] = Layout(ino);
    return b;
  }
  // Whether every sector of file bytes [off, +len) lay on poison, before
  // the operation or after it (the layout may have changed in between).
  bool OverPoison(uint64_t ino, uint64_t off, uint64_t len, const Before& b, const IntervalSet& poison) {
    std::vector<const std::vector<FiemapExtent>*> layouts;
    auto it = b.layout.find(ino);
    if (it != b.layout.end()) layouts.push_back(&it->second);
    std::vector<FiemapExtent> now = Layout(ino);
    layouts.push_back(&now);
    for (uint64_t s = AlignDown(off, kSector); s < off + len; s += kSector) {
      bool found = false;
      for (const auto* l : layouts)
        for (const FiemapExtent& e : *l)
          if (s >= e.logical && s < e.logical + e.length && poison.Overlaps(e.physical + (s - e.logical), kSector))
            found = true;
      if (!found) return false;
    }
    return true;
  }
  // After every operation: the model's damage (already updated for what
  // the operation repairs) against what daxfs reports now.
  void Reconcile(const Before& b, const IntervalSet& injected = {}) {
    if (!failure_.empty()) return;
    IntervalSet poison = b.poison;
    for (const auto& [o, l] : injected.intervals()) poison.Add(o, l);
    auto health = Health();
    for (const auto& [ino, set] : health)
      if (!files_.count(ino)) Bad("damage " + Str(set) + " reported for inode " + std::to_string(ino) + ", which is gone");
    for (auto& [ino, mf] : files_) {
      IntervalSet now = health[ino];
      now.Remove(AlignUp(mf.data.size(), kLineSize), kEnd);  // past the end nobody reads it
      IntervalSet vanished = Minus(mf.damage, now);
      if (!vanished.empty())
        Bad("inode " + std::to_string(ino) + ": damage " + Str(vanished) + " vanished without being rewritten (reported: " +
            Str(now) + ")");
      IntervalSet added = Minus(now, mf.damage);
      auto was = b.health.find(ino);
      for (const auto& [o, l] : added.intervals()) {
        if (was != b.health.end() && was->second.Overlaps(o, l))
          Bad("inode " + std::to_string(ino) + ": damage " + std::to_string(o) + "+" + std::to_string(l) +
              " was not reported by this operation: an old record now inside the file (model: " + Str(mf.damage) +
              ")");
        else if (!OverPoison(ino, o, l, b, poison))
          Bad("inode " + std::to_string(ino) + ": damage " + std::to_string(o) + "+" + std::to_string(l) +
              " reported where the media had no poison (model: " + Str(mf.damage) + ", reported: " + Str(now) + ")");
        mf.damage.Add(o, l);
        ++counts_["damage reports"];
      }
    }
  }
  // Whether [off, +len) covers only part of a line the model knows damaged.
  static bool PartLineDamaged(const ModelFile& mf, uint64_t off, uint64_t len) {
    for (uint64_t line : {AlignDown(off, kLineSize), AlignDown(off + len - 1, kLineSize)}) {
      bool whole = line >= off && line + kLineSize <= off + len;
      if (!whole && mf.damage.Overlaps(line, kLineSize)) return true;
    }
    return false;
  }
  // Damage is kept in whole lines: the line holding the end stays whole.
  static void Resize(ModelFile& mf, uint64_t size) {
    mf.data.resize(size, 0);
    mf.damage.Remove(AlignUp(size, kLineSize), kEnd);
  }
  void CheckStat(uint64_t ino) {
    if (!failure_.empty() || !files_.count(ino)) return;
    File* h = Handle(ino);
    if (!h) return;
    auto st = h->Stat();
    if (!st.ok()) return Bad("stat: " + st.status().message());
    const ModelFile& mf = files_[ino];
    if (st->attr.size != mf.data.size())
      Bad("inode " + std::to_string(ino) + " has size " + std::to_string(st->attr.size) + ", model " +
          std::to_string(mf.data.size()));
    if (st->attr.nlink != mf.nlink)
      Bad("inode " + std::to_string(ino) + " has " + std::to_string(st->attr.nlink) + " links, model " +
          std::to_string(mf.nlink));
  }
  // A failed data operation is right only when it would have left bytes
  // unreadable: EIO, over part of a damaged line (as known after it).
  void CheckRefusal(const char* what, uint64_t ino, uint64_t off, uint64_t len, const Status& s, bool expected) {
    const ModelFile& mf = files_[ino];
    if (s.ok() && expected) Bad(std::string(what) + " over part of a damaged line succeeded (damage " + Str(mf.damage) + ")");
    if (!s.ok() && (s.err() != EIO || !PartLineDamaged(mf, off, len)))
      Bad(std::string(what) + " failed: " + s.message() + " (damage " + Str(mf.damage) + ")");
  }

  // --- the operations
  void Step() {
    uint64_t r = Rand(1000);
    if (r < 270) return OpWrite();
    if (r < 470) return OpRead();
    if (r < 530) return OpTruncate();
    if (r < 580) return OpPunchOrZero(true);
    if (r < 630) return OpPunchOrZero(false);
    if (r < 660) return OpFallocate();
    if (r < 720) return OpClone();
    if (r < 740) return OpRename();
    if (r < 755) return OpLink();
    if (r < 780) return OpUnlink();
    if (r < 795) return OpClose();
    if (r < 805) return OpFsync();
    if (r < 810) return Remount(Chance(50));
    if (r < 860) return OpInject();
    if (r < 895) return OpClear();
    if (r < 910) return OpUninject();
    if (r < 915) return OpScrub();
    if (r < 925) return VerifyAll();
    if (r < 930) return CheckNames();
    return OpRead();
  }

  void OpWrite() {
    auto ino = PickFile(true);
    if (!ino) return;
    ModelFile& mf = files_[*ino];
    uint64_t off = PickOffset(mf), len = PickLength(off);
    std::vector<uint8_t> buf(len);
    uint8_t base = static_cast<uint8_t>(rng_());
    for (uint64_t i = 0; i < len; ++i) buf[i] = static_cast<uint8_t>(base + i * 7 + (i >> 9));
    Log("write inode " + std::to_string(*ino) + " " + std::to_string(off) + "+" + std::to_string(len) + " (size " +
        std::to_string(mf.data.size()) + ")");
    bool refuse = PartLineDamaged(mf, off, len);
    Before b = Snapshot({*ino});
    File* h = Handle(*ino);
    if (!h) return;
    auto w = h->Write(off, buf.data(), len);
    uint64_t n = w.ok() ? *w : 0;
    if (n) {
      if (off + n > mf.data.size()) Resize(mf, off + n);
      std::memcpy(mf.data.data() + off, buf.data(), n);
      mf.damage.Remove(off, n);
    }
    Reconcile(b);
    Status s = !w.ok() ? w.status() : n < len ? Status::Io("short write of " + std::to_string(n) + " bytes") : Status::Ok();
    CheckRefusal("write", *ino, off, len, s, refuse);
    if (n > 0 && mf.damage.Overlaps(off, n)) Bad("the write succeeded, but its bytes are reported damaged: " + Str(mf.damage));
    if (!s.ok()) ++counts_["writes refused"];
    CheckStat(*ino);
  }

  void OpRead() {
    auto ino = PickFile(false);
    if (!ino) return;
    uint64_t off = PickOffset(files_[*ino]);
    uint64_t len = PickLength(off);
    Log("read inode " + std::to_string(*ino) + " " + std::to_string(off) + "+" + std::to_string(len));
    CheckRead(*ino, off, len);
  }

  // Reads [off, +len) and checks it; returns the bytes read (0 on EIO).
  uint64_t CheckRead(uint64_t ino, uint64_t off, uint64_t len) {
    Before b = Snapshot({});
    File* h = Handle(ino);
    if (!h) return 0;
    std::vector<uint8_t> buf(len);
    auto r = h->Read(off, buf.data(), len);
    Reconcile(b);
    if (!failure_.empty()) return 0;
    const ModelFile& mf = files_[ino];
    uint64_t size = mf.data.size(), want = off >= size ? 0 : std::min(len, size - off);
    std::string at = "read of inode " + std::to_string(ino) + " " + std::to_string(off) + "+" + std::to_string(len) +
                     " (size " + std::to_string(size) + ", damage " + Str(mf.damage) + ")";
    if (!r.ok()) {
      if (r.status().err() != EIO) Bad(at + " failed: " + r.status().message());
      else if (want == 0) Bad(at + " failed with EIO at or past the end");
      else if (!mf.damage.Overlaps(off, 1)) Bad(at + " failed with EIO where no damage was reported");
      ++counts_["reads failed"];
      return 0;
    }
    uint64_t n = *r;
    if (n > want || (n == 0 && want > 0)) {
      Bad(at + " returned " + std::to_string(n) + " bytes");
      return 0;
    }
    if (std::memcmp(buf.data(), mf.data.data() + off, n) != 0) {
      uint64_t i = 0;
      while (buf[i] == mf.data[off + i]) ++i;
      uint64_t j = i;
      while (j < n && buf[j] != mf.data[off + j]) ++j;
      Bad(at + ": bytes " + std::to_string(off + i) + ".." + std::to_string(off + j) + " differ: read " +
          std::to_string(buf[i]) + ", model " + std::to_string(mf.data[off + i]));
    } else if (n > 0 && mf.damage.Overlaps(off, n)) {
      Bad(at + " returned bytes of a damaged range");
    } else if (n < want && !mf.damage.Overlaps(off + n, 1)) {
      Bad(at + " stopped at " + std::to_string(off + n) + ", where no damage was reported");
    }
    ++counts_[n < want ? "reads stopped short" : "reads whole"];
    return n;
  }

  // Reads every file whole, in pieces of random size, stepping over damage.
  void VerifyAll() {
    Log("verify every file");
    for (uint64_t ino : Inos()) {
      for (uint64_t off = 0; failure_.empty() && off < files_[ino].data.size();) {
        uint64_t len = 1 + Rand(Chance(50) ? 300000 : 5000);
        uint64_t n = CheckRead(ino, off, len);
        off += n;
        if (n < len) {  // stopped at damage: go on after it
          auto d = files_[ino].damage.FirstOverlap(off, kEnd);
          if (d && d->first == off) off = d->first + d->second;
          else if (n == 0) break;
        }
      }
    }
  }

  void OpTruncate() {
    auto ino = PickFile(false);
    if (!ino) return;
    ModelFile& mf = files_[*ino];
    uint64_t size = Chance(30) ? mf.data.size() + Rand(9000) - std::min<uint64_t>(mf.data.size(), 4500)
                    : Chance(50) ? PickOffset(mf) : Rand(kMaxFileSize);
    size = std::min(size, kMaxFileSize);
    Log("truncate inode " + std::to_string(*ino) + " to " + std::to_string(size) + " (size " +
        std::to_string(mf.data.size()) + ")");
    Before b = Snapshot({*ino});
    File* h = Handle(*ino);
    if (!h) return;
    Status s = h->Truncate(size);
    if (s.ok()) Resize(mf, size);
    Reconcile(b);
    Check(s, "truncate");
    CheckStat(*ino);
  }

  void OpPunchOrZero(bool punch) {
    auto ino = PickFile(false);
    if (!ino) return;
    ModelFile& mf = files_[*ino];
    uint64_t off = PickOffset(mf), len = PickLength(off);
    bool keep = punch || Chance(50);
    const char* what = punch ? "punch" : "zero range";
    Log(std::string(what) + (keep ? " (keep size)" : "") + " inode " + std::to_string(*ino) + " " +
        std::to_string(off) + "+" + std::to_string(len) + " (size " + std::to_string(mf.data.size()) + ")");
    bool refuse = PartLineDamaged(mf, off, len);
    Before b = Snapshot({*ino});
    File* h = Handle(*ino);
    if (!h) return;
    Status s = h->Fallocate((punch ? kFallocPunchHole : kFallocZeroRange) | (keep ? kFallocKeepSize : 0), off, len);
    if (s.ok()) {
      if (!keep && off + len > mf.data.size()) Resize(mf, off + len);
      uint64_t end = std::min<uint64_t>(off + len, mf.data.size());
      if (off < end) std::memset(mf.data.data() + off, 0, end - off);
      mf.damage.Remove(off, len);
    }
    Reconcile(b);
    CheckRefusal(what, *ino, off, len, s, refuse);
    if (s.ok() && mf.damage.Overlaps(off, len)) Bad(std::string(what) + " succeeded, but its range is reported damaged: " + Str(mf.damage));
    if (!s.ok()) ++counts_["punches and zeroings refused"];
    CheckStat(*ino);
  }

  void OpFallocate() {
    auto ino = PickFile(false);
    if (!ino) return;
    ModelFile& mf = files_[*ino];
    uint64_t off = PickOffset(mf), len = PickLength(off);
    bool keep = Chance(50);
    Log(std::string("fallocate") + (keep ? " (keep size)" : "") + " inode " + std::to_string(*ino) + " " +
        std::to_string(off) + "+" + std::to_string(len) + " (size " + std::to_string(mf.data.size()) + ")");
    Before b = Snapshot({*ino});
    File* h = Handle(*ino);
    if (!h) return;
    Status s = h->Fallocate(keep ? kFallocKeepSize : 0, off, len);
    if (s.ok() && !keep && off + len > mf.data.size()) Resize(mf, off + len);
    Reconcile(b);
    Check(s, "fallocate");
    CheckStat(*ino);
  }

  void OpClone() {
    auto src = PickFile(false);
    if (!src || files_[*src].data.empty()) return;
    auto dst = PickFile(true);
    if (!dst) return;
    ModelFile& s = files_[*src];
    ModelFile& d = files_[*dst];
    uint64_t ssize = s.data.size();
    uint64_t soff = AlignDown(Rand(ssize), kBlockSize);
    uint64_t len = Chance(30) ? 0 : kBlockSize * (1 + Rand(Chance(80) ? 8 : 64));
    uint64_t doff = Chance(30) ? soff : AlignDown(PickOffset(d), kBlockSize);
    uint64_t n = len == 0 || soff + len > ssize ? ssize - soff : len;  // what is cloned
    uint64_t span = AlignUp(n, kBlockSize);
    Log("clone inode " + std::to_string(*src) + " " + std::to_string(soff) + "+" + std::to_string(len) + " (size " +
        std::to_string(ssize) + ") to inode " + std::to_string(*dst) + " at " + std::to_string(doff) + " (size " +
        std::to_string(d.data.size()) + ")");
    // As Linux: a partial last block may only land at or past the end of the destination.
    if (doff + n > kMaxFileSize) return;
    bool invalid = (*src == *dst && soff < doff + span && doff < soff + span) || (n % kBlockSize && doff + n < d.data.size());
    Before b = Snapshot({*src, *dst});
    File* hs = Handle(*src);
    File* hd = Handle(*dst);
    if (!hs || !hd) return;
    Status st = hd->CloneFrom(*hs, soff, doff, len);
    if (st.ok() && !invalid) {
      std::vector<uint8_t> bytes(s.data.begin() + soff, s.data.begin() + soff + n);
      IntervalSet moved;
      for (const auto& [o, l] : s.damage.Overlapping(soff, span)) moved.Add(doff + (o - soff), l);
      if (doff + n > d.data.size()) Resize(d, doff + n);
      std::memcpy(d.data.data() + doff, bytes.data(), n);
      d.damage.Remove(doff, span);
      for (const auto& [o, l] : moved.intervals()) d.damage.Add(o, l);
      d.damage.Remove(AlignUp(d.data.size(), kLineSize), kEnd);
    }
    Reconcile(b);
    if (invalid && st.ok()) Bad("an invalid clone succeeded");
    if (!invalid && !st.ok()) Bad("clone failed: " + st.message());
    if (invalid && st.err() != EINVAL) Bad("an invalid clone failed with " + st.message());
    CheckStat(*dst);
  }

  void OpRename() {
    if (names_.empty()) return;
    auto it = names_.begin();
    std::advance(it, Rand(names_.size()));
    std::string from = it->first, to = kNames[Rand(std::size(kNames))];
    uint64_t ino = it->second;
    Log("rename " + from + " to " + to);
    Before b = Snapshot({});
    Status s = fs_->Rename(from, to);
    Check(s, "rename " + from + " to " + to);
    if (s.ok() && from != to) {
      auto victim = names_.find(to);
      if (victim != names_.end() && victim->second != ino) {
        uint64_t v = victim->second;
        files_[v].nlink--;
        names_[to] = ino;
        names_.erase(from);
        DropIfUnused(v);
      } else if (victim == names_.end()) {
        names_[to] = ino;
        names_.erase(from);
      }  // two links to one inode: nothing changes
    }
    Reconcile(b);
    CheckStat(ino);
  }

  void OpLink() {
    if (names_.empty()) return;
    auto it = names_.begin();
    std::advance(it, Rand(names_.size()));
    std::string from = it->first, to = kNames[Rand(std::size(kNames))];
    uint64_t ino = it->second;
    Log("link " + from + " to " + to);
    Status s = fs_->Link(from, to);
    if (names_.count(to)) {
      if (s.err() != EEXIST) Bad("link over an existing name: " + (s.ok() ? std::string("succeeded") : s.message()));
      return;
    }
    Check(s, "link " + from + " to " + to);
    if (!s.ok()) return;
    names_[to] = ino;
    files_[ino].nlink++;
    CheckStat(ino);
  }

  void OpUnlink() {
    if (names_.empty()) return;
    auto it = names_.begin();
    std::advance(it, Rand(names_.size()));
    std::string name = it->first;
    uint64_t ino = it->second;
    Log("unlink " + name);
    Before b = Snapshot({});
    Status s = fs_->Unlink(name);
    Check(s, "unlink " + name);
    if (!s.ok()) return;
    names_.erase(name);
    files_[ino].nlink--;
    DropIfUnused(ino);
    Reconcile(b);
    CheckStat(ino);
  }

  void OpClose() {
    std::vector<uint64_t> open;
    for (const auto& [ino, hs] : handles_)
      if (!hs.empty()) open.push_back(ino);
    if (open.empty()) return;
    uint64_t ino = open[Rand(open.size())];
    Log("close a handle of inode " + std::to_string(ino));
    Before b = Snapshot({});
    auto& hs = handles_[ino];
    hs.erase(hs.begin() + Rand(hs.size()));
    DropIfUnused(ino);
    Reconcile(b);
  }

  void OpFsync() {
    auto ino = PickFile(false);
    if (!ino) return;
    Log("fsync inode " + std::to_string(*ino));
    if (File* h = Handle(*ino)) Check(h->Fsync(), "fsync");
  }

  // Unmount (every handle closed), check the device, mount again; maybe
  // inject poison under a file while nobody holds the device.
  void Remount(bool inject_while_away) {
    Log(std::string("remount") + (inject_while_away ? ", injecting while unmounted" : ""));
    std::optional<std::pair<uint64_t, uint64_t>> target;  // device sector, file
    if (inject_while_away) target = FileSector();
    Before b = Snapshot({});
    handles_.clear();
    for (uint64_t ino : Inos()) DropIfUnused(ino);
    fs_.reset();
    auto report = Fsck(*dev_, false);
    if (!report.ok()) return Bad("fsck: " + report.status().message());
    for (const std::string& p : report->problems) Bad("fsck: " + p);
    IntervalSet injected;
    if (target) {
      Check(media().Inject(target->first, 1, {true, Chance(50), media::Source::kInjected}), "inject");
      injected.Add(target->first * kSector, kSector);
    }
    Mount();
    if (fs_) Reconcile(b, injected);
    if (fs_ && fs_->read_only()) Bad("read-only after mount");
  }

  // A sector of some file's data, or nothing.
  std::optional<std::pair<uint64_t, uint64_t>> FileSector() {
    auto ino = PickFile(false);
    if (!ino) return std::nullopt;
    auto layout = Layout(*ino);
    if (layout.empty()) return std::nullopt;
    const FiemapExtent& e = layout[Rand(layout.size())];
    return std::pair<uint64_t, uint64_t>{(e.physical + Rand(e.length)) / kSector, *ino};
  }

  void OpInject() {
    uint64_t sector;
    if (auto t = Chance(80) ? FileSector() : std::nullopt) {
      sector = t->first;
    } else {  // anywhere but metadata: free space, another file
      sector = Rand(kDevSize / kSector);
      auto who = fs_->Who(sector * kSector, kSector);
      if (!who.ok() || who->empty()) return Bad("who: " + who.status().message());
      for (const OwnerInfo& o : *who)
        if (o.kind == OwnerInfo::Kind::kMetadata) return;
    }
    bool notify = Chance(70), saturate = Chance(50);
    Log(std::string("inject ") + (notify ? "known" : "latent") + (saturate ? " saturated" : "") + " poison at sector " +
        std::to_string(sector));
    Before b = Snapshot({});
    Check(media().Inject(sector, 1, {notify, saturate, media::Source::kInjected}), "inject");
    IntervalSet injected;
    injected.Add(sector * kSector, kSector);
    Reconcile(b, injected);
  }

  // As `daxguard clear-errors -B`: one known error, in whole clear units.
  void OpClear() {
    auto known = media().BadBlocks();
    if (known.empty()) return;
    const media::BadBlock& bb = known[Rand(known.size())];
    uint64_t unit = media().clear_unit();
    uint64_t lo = AlignDown(bb.sector * kSector, unit), hi = AlignUp((bb.sector + bb.count) * kSector, unit);
    Log("clear known error at sectors " + std::to_string(bb.sector) + "+" + std::to_string(bb.count));
    Before b = Snapshot({});
    Check(media().ClearPoison(lo, hi - lo), "clear");
    Check(media().ForgetKnown(lo, hi - lo), "forget");
    Reconcile(b);
  }

  void OpUninject() {
    auto errors = media().MediaErrors();
    if (errors.empty()) return;
    uint64_t sector = errors[Rand(errors.size())].offset / kSector;
    Log("uninject sector " + std::to_string(sector));
    Before b = Snapshot({});
    Check(media().Uninject(sector, 1), "uninject");
    Reconcile(b);
  }

  void OpScrub() {
    Log("scrub");
    Before b = Snapshot({});
    Check(media().BeginScrub(static_cast<uint32_t>(getpid())), "begin scrub");
    Check(media().RunScrub(), "scrub");
    Reconcile(b);
  }

  void CheckNames() {
    Log("list directories");
    std::map<std::string, uint64_t> seen;
    for (const char* dir : {"/", "/d"}) {
      auto ents = fs_->ReadDir(dir);
      if (!ents.ok()) return Bad(std::string("readdir ") + dir + ": " + ents.status().message());
      for (const DirEntry& e : *ents)
        if (e.name != "d" || std::string(dir) != "/") seen[(std::string(dir) == "/" ? "/" : "/d/") + e.name] = e.ino;
    }
    if (seen != names_) Bad("the directories do not list the model's names");
  }

  uint64_t seed_, ops_, op_ = 0;
  std::mt19937_64 rng_;
  std::string dir_, failure_;
  std::deque<std::string> history_;
  std::unique_ptr<dax::PmemDax> dev_;
  std::unique_ptr<Filesystem> fs_;
  std::map<uint64_t, ModelFile> files_;  // by inode
  std::map<std::string, uint64_t> names_;
  std::map<uint64_t, std::vector<std::unique_ptr<File>>> handles_;
  std::map<std::string, uint64_t> counts_;
};

class FsxTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(FsxTest, FilesystemAgreesWithTheModel) {
  uint64_t seed = EnvOr("FSX_SEED", GetParam());
  uint64_t ops = EnvOr("FSX_OPS", kOpsPerSeed);
  Fsx fsx(seed, ops);
  std::string failure = fsx.Run();
  if (!failure.empty()) ADD_FAILURE() << failure;
  else std::printf("fsx seed %llu: %llu operations agreed with the model (%s)\n",
                   static_cast<unsigned long long>(seed), static_cast<unsigned long long>(ops), fsx.Counts().c_str());
}

INSTANTIATE_TEST_SUITE_P(Seeds, FsxTest, ::testing::Values(1, 2, 3, 4));

}  // namespace
}  // namespace daxguard::fs
