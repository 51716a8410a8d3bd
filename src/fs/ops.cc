#include "fs/ops.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "fs/format.h"

namespace daxguard::fs {
namespace {

void Put64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }
void Put32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool Get(void* dst, size_t n) {
    if (in_.size() < n) return false;
    std::memcpy(dst, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool Get64(uint64_t* v) { return Get(v, 8); }
  bool Get64(int64_t* v) { return Get(v, 8); }
  bool Get32(uint32_t* v) { return Get(v, 4); }
  bool GetString(std::string* s) {
    uint32_t n;
    if (!Get32(&n) || n > in_.size()) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool empty() const { return in_.empty(); }
  bool Has(uint64_t n) const { return n <= in_.size(); }

 private:
  std::string_view in_;
};

void PutString(std::string* out, const std::string& s) {
  Put32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

}  // namespace

void EncodeOps(const std::vector<Op>& ops, std::string* out) {
  for (const Op& o : ops) {
    out->push_back(static_cast<char>(o.type));
    switch (o.type) {
      case OpType::kSetInode:
        Put64(out, o.ino);
        Put32(out, o.attr.mode), Put32(out, o.attr.uid), Put32(out, o.attr.gid), Put32(out, o.attr.nlink);
        Put64(out, o.attr.size);
        Put64(out, o.attr.atime_ns), Put64(out, o.attr.mtime_ns), Put64(out, o.attr.ctime_ns);
        break;
      case OpType::kFreeInode:
        Put64(out, o.ino);
        break;
      case OpType::kLink:
      case OpType::kUnlink:
        Put64(out, o.parent), Put64(out, o.ino), PutString(out, o.name);
        break;
      case OpType::kMap:
      case OpType::kUnmap:
      case OpType::kExtent:
        Put64(out, o.ino), Put64(out, o.fblk), Put64(out, o.pblk), Put64(out, o.len);
        out->push_back(o.unwritten ? 1 : 0);
        break;
      case OpType::kDamage:
      case OpType::kUndamage:
        Put64(out, o.ino), Put64(out, o.off), Put64(out, o.len);
        break;
      case OpType::kQuarantine:
      case OpType::kUnquarantine:
        Put64(out, o.pblk), Put64(out, o.len);
        break;
      case OpType::kMetaLost:
      case OpType::kUnrepaired:
        PutString(out, o.name);
        break;
      case OpType::kOwners:
        Put64(out, o.pblk), Put64(out, o.len), Put32(out, static_cast<uint32_t>(o.owners.size()));
        for (const Owner& w : o.owners) Put64(out, w.ino), Put64(out, w.fblk);
        break;
      case OpType::kMetaOwner:
        Put64(out, o.pblk), Put64(out, o.len), PutString(out, o.name);
        break;
      case OpType::kSuper:
        Put64(out, o.len), PutString(out, o.name);
        break;
      case OpType::kSetXattr:
        Put64(out, o.ino), PutString(out, o.name), PutString(out, o.value);
        break;
      case OpType::kRemoveXattr:
        Put64(out, o.ino), PutString(out, o.name);
        break;
    }
  }
}

Status DecodeOps(std::string_view in, std::vector<Op>* ops) {
  Reader r(in);
  while (!r.empty()) {
    Op o;
    uint8_t t = 0;
    bool ok = r.Get(&t, 1);
    o.type = static_cast<OpType>(t);
    switch (o.type) {
      case OpType::kSetInode:
        ok = ok && r.Get64(&o.ino) && r.Get32(&o.attr.mode) && r.Get32(&o.attr.uid) &&
             r.Get32(&o.attr.gid) && r.Get32(&o.attr.nlink) && r.Get64(&o.attr.size) &&
             r.Get64(&o.attr.atime_ns) && r.Get64(&o.attr.mtime_ns) && r.Get64(&o.attr.ctime_ns);
        break;
      case OpType::kFreeInode:
        ok = ok && r.Get64(&o.ino);
        break;
      case OpType::kLink:
      case OpType::kUnlink:
        ok = ok && r.Get64(&o.parent) && r.Get64(&o.ino) && r.GetString(&o.name);
        break;
      case OpType::kMap:
      case OpType::kUnmap:
      case OpType::kExtent: {
        uint8_t u = 0;
        ok = ok && r.Get64(&o.ino) && r.Get64(&o.fblk) && r.Get64(&o.pblk) && r.Get64(&o.len) && r.Get(&u, 1);
        o.unwritten = u != 0;
        break;
      }
      case OpType::kDamage:
      case OpType::kUndamage:
        ok = ok && r.Get64(&o.ino) && r.Get64(&o.off) && r.Get64(&o.len);
        break;
      case OpType::kQuarantine:
      case OpType::kUnquarantine:
        ok = ok && r.Get64(&o.pblk) && r.Get64(&o.len);
        break;
      case OpType::kMetaLost:
      case OpType::kUnrepaired:
        ok = ok && r.GetString(&o.name);
        break;
      case OpType::kOwners: {
        uint32_t n = 0;
        ok = ok && r.Get64(&o.pblk) && r.Get64(&o.len) && r.Get32(&n) && r.Has(uint64_t{n} * 16);
        if (ok) o.owners.resize(n);
        for (Owner& w : o.owners) ok = ok && r.Get64(&w.ino) && r.Get64(&w.fblk);
        break;
      }
      case OpType::kMetaOwner:
        ok = ok && r.Get64(&o.pblk) && r.Get64(&o.len) && r.GetString(&o.name);
        break;
      case OpType::kSuper:
        ok = ok && r.Get64(&o.len) && r.GetString(&o.name);
        break;
      case OpType::kSetXattr:
        ok = ok && r.Get64(&o.ino) && r.GetString(&o.name) && r.GetString(&o.value);
        break;
      case OpType::kRemoveXattr:
        ok = ok && r.Get64(&o.ino) && r.GetString(&o.name);
        break;
      default:
        ok = false;
    }
    if (!ok) return Status::Corrupt("malformed metadata record (operation " + std::to_string(t) + ")");
    ops->push_back(std::move(o));
  }
  return Status::Ok();
}

namespace {

constexpr size_t kMaxTouches = 4096;  // a snapshot chunk lists at most this many
// Past anything a device can hold: ranges reaching beyond this (truncate
// and free use them) go to the end of the file.
constexpr uint64_t kMaxFileBytes = 1ull << 62;

struct Touched {
  std::optional<Touch> attr;
  uint64_t lo = UINT64_MAX, hi = 0;  // data bytes, hi UINT64_MAX: to the end
  bool entries = false;
  void Data(uint64_t off, uint64_t len) {
    if (len == 0 || off >= kMaxFileBytes) return;
    lo = std::min(lo, off);
    hi = len > kMaxFileBytes - off ? UINT64_MAX : std::max(hi, off + len);
  }
  void Blocks(uint64_t fblk, uint64_t len) {
    constexpr uint64_t kMaxBlocks = kMaxFileBytes / kBlockSize;
    if (fblk < kMaxBlocks) Data(fblk * kBlockSize, std::min(len, kMaxBlocks) * kBlockSize);
  }
};

}  // namespace

Summary Summarize(std::span<const Op> ops) {
  std::map<uint64_t, Touched> by_ino;
  for (const Op& o : ops) {
    switch (o.type) {
      case OpType::kSetInode:
        by_ino[o.ino].attr = Touch{Touch::Kind::kAttr, o.ino, 0, 0, o.attr.size, o.attr.mode};
        break;
      case OpType::kFreeInode:
        by_ino.erase(o.ino);  // gone: nothing of it to name
        break;
      case OpType::kLink:
      case OpType::kUnlink:
        by_ino[o.parent].entries = true;
        break;
      case OpType::kMap:
      case OpType::kUnmap:
      case OpType::kExtent:
        by_ino[o.ino].Blocks(o.fblk, o.len);
        break;
      case OpType::kDamage:
      case OpType::kUndamage:
        by_ino[o.ino].Data(o.off, o.len);
        break;
      default:
        break;
    }
  }
  Summary s;
  for (const auto& [ino, t] : by_ino) {
    if (t.attr) s.touches.push_back(*t.attr);
    if (t.lo < t.hi)
      s.touches.push_back({Touch::Kind::kData, ino, t.lo, t.hi == UINT64_MAX ? Touch::kToEnd : t.hi - t.lo, 0, 0});
    if (t.entries) s.touches.push_back({Touch::Kind::kEntries, ino, 0, 0, 0, 0});
  }
  if (s.touches.size() > kMaxTouches) {
    s.touches.resize(kMaxTouches);
    s.complete = false;
  }
  return s;
}

void EncodeSummary(const Summary& s, std::string* out) {
  Put32(out, static_cast<uint32_t>(s.touches.size()));
  out->push_back(s.complete ? 1 : 0);
  for (const Touch& t : s.touches) {
    out->push_back(static_cast<char>(t.kind));
    Put64(out, t.ino);
    if (t.kind == Touch::Kind::kData) Put64(out, t.off), Put64(out, t.len);
    if (t.kind == Touch::Kind::kAttr) Put64(out, t.size), Put32(out, t.mode);
  }
}

Status DecodeSummary(std::string_view in, Summary* s) {
  Reader r(in);
  uint32_t n = 0;
  uint8_t complete = 0;
  bool ok = r.Get32(&n) && r.Get(&complete, 1) && complete <= 1 && r.Has(uint64_t{n} * 9);
  s->complete = complete == 1;
  for (uint32_t i = 0; ok && i < n; ++i) {
    Touch t;
    ok = r.Get(&t.kind, 1) && r.Get64(&t.ino);
    switch (t.kind) {
      case Touch::Kind::kData:
        ok = ok && r.Get64(&t.off) && r.Get64(&t.len) && (t.len == Touch::kToEnd || t.off + t.len >= t.off);
        break;
      case Touch::Kind::kAttr:
        ok = ok && r.Get64(&t.size) && r.Get32(&t.mode);
        break;
      case Touch::Kind::kEntries:
        break;
      default:
        ok = false;
    }
    if (ok) s->touches.push_back(t);
  }
  if (!ok || !r.empty()) return Status::Corrupt("malformed record summary");
  return Status::Ok();
}

}  // namespace daxguard::fs
