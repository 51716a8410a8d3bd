#include "tools/crash_model.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <functional>

namespace daxguard::tools {

uint64_t ModelTree::Add(const std::string& path, bool dir) {
  return AddNode(path, dir ? S_IFDIR | 0755 : S_IFREG | 0644);
}

uint64_t ModelTree::AddNode(const std::string& path, uint32_t mode, std::vector<uint8_t> bytes) {
  uint64_t ino = next_ino++;
  files[ino].mode = mode;
  files[ino].versions = {std::move(bytes)};
  names[path] = ino;
  return ino;
}

void ModelTree::Unname(const std::string& path) {
  auto it = names.find(path);
  if (it == names.end()) return;
  uint64_t ino = it->second;
  names.erase(it);
  for (const auto& [p, i] : names)
    if (i == ino) return;
  files.erase(ino);
}

void ModelTree::Rename(const std::string& from, const std::string& to) {
  if (from == to) return;
  Unname(to);
  std::map<std::string, uint64_t> moved;
  for (auto it = names.begin(); it != names.end();) {
    if (it->first == from || it->first.starts_with(from + "/")) {
      moved[to + it->first.substr(from.size())] = it->second;
      it = names.erase(it);
    } else {
      ++it;
    }
  }
  names.insert(moved.begin(), moved.end());
}

void ModelTree::Exchange(const std::string& a, const std::string& b) {
  auto under = [](const std::string& p, const std::string& top) { return p == top || p.starts_with(top + "/"); };
  std::map<std::string, uint64_t> out;
  for (const auto& [p, ino] : names) {
    if (under(p, a))
      out[b + p.substr(a.size())] = ino;
    else if (under(p, b))
      out[a + p.substr(b.size())] = ino;
    else
      out[p] = ino;
  }
  names = std::move(out);
}

namespace {

// Sets `since` on the parts of `lost` inside [off, off+len) with `fn`, splitting entries at its ends.
template <typename Fn>
void EditLost(std::vector<ModelFile::Lost>& lost, uint64_t off, uint64_t len, Fn&& fn) {
  std::vector<ModelFile::Lost> out;
  for (const ModelFile::Lost& l : lost) {
    uint64_t lo = std::max(l.off, off), hi = std::min(l.off + l.len, off + len);
    if (lo >= hi) {
      out.push_back(l);
      continue;
    }
    if (l.off < lo) out.push_back({l.off, lo - l.off, l.since, l.rebuildable});
    ModelFile::Lost mid{lo, hi - lo, l.since, l.rebuildable};
    fn(mid);
    out.push_back(mid);
    if (hi < l.off + l.len) out.push_back({hi, l.off + l.len - hi, l.since, l.rebuildable});
  }
  lost = std::move(out);
}

}  // namespace

void ModelFile::Lose(uint64_t off, uint64_t len, bool rebuildable) {
  EditLost(lost, off, len, [](Lost& l) { l.len = 0; });  // what it covers is lost anew
  std::erase_if(lost, [](const Lost& l) { return l.len == 0; });
  lost.push_back({off, len, Lost::kNever, rebuildable});
}

void ModelFile::Rewrote(uint64_t off, uint64_t len) {
  size_t newest = versions.size() - 1;
  EditLost(lost, off, len, [newest](Lost& l) { l.since = std::min(l.since, newest); });
}

void ModelFile::Synced() {
  versions = {now()};
  std::erase_if(lost, [](const Lost& l) { return l.since != Lost::kNever; });
}

void ModelFile::Clip(uint64_t size) {
  for (Lost& l : lost) l.len = l.off >= size ? 0 : std::min(l.len, size - l.off);
  std::erase_if(lost, [](const Lost& l) { return l.len == 0; });
}

ModelFile* ModelTree::Find(const std::string& path) {
  auto it = names.find(path);
  return it == names.end() ? nullptr : &files[it->second];
}

namespace {

// The file's bytes. A read stops short at lost data and the next one fails
// with EIO: the line there is noted as failed, and reading goes on after it.
Status ReadFile(fs::File& f, const std::string& path, SeenEntry* s) {
  for (uint64_t pos = 0, size = s->bytes.size(); pos < size;) {
    auto r = f.Read(pos, s->bytes.data() + pos, size - pos);
    if (r.ok() && *r == 0) return Status::Io(path + ": short read at " + std::to_string(pos));
    if (r.ok()) {
      pos += *r;
      continue;
    }
    if (r.status().err() != EIO) return Status::Io(path + ": read at " + std::to_string(pos) + ": " + r.status().message());
    uint64_t n = std::min(kLineSize - pos % kLineSize, size - pos);
    if (!s->failed.empty() && s->failed.back().off + s->failed.back().len == pos)
      s->failed.back().len += n;
    else
      s->failed.push_back({pos, n});
    pos += n;
  }
  return Status::Ok();
}

Status ReadXattrs(fs::Filesystem& fs, const std::string& path, uint64_t ino, std::map<std::string, std::string>* out) {
  auto names = fs.ListXattr(ino);
  if (!names.ok()) return Status::Io(path + ": list attributes: " + names.status().message());
  for (const std::string& name : *names) {
    auto value = fs.GetXattr(ino, name);
    if (!value.ok()) return Status::Io(path + ": attribute " + name + ": " + value.status().message());
    (*out)[name] = *value;
  }
  return Status::Ok();
}

}  // namespace

Result<std::map<std::string, SeenEntry>> ReadTree(fs::Filesystem& fs) {
  std::map<std::string, SeenEntry> out;
  std::function<Status(const std::string&)> walk = [&](const std::string& dir) -> Status {
    auto entries = fs.ReadDir(dir);
    if (!entries.ok()) return entries.status();
    for (const fs::DirEntry& e : *entries) {
      if (e.name == "." || e.name == "..") continue;
      std::string path = (dir == "/" ? "" : dir) + "/" + e.name;
      SeenEntry& s = out[path];
      s.ino = e.ino;
      if (e.damaged) return Status::Corrupt(path + ": damaged entry");
      auto st = fs.Stat(path);
      if (!st.ok()) return Status::Io(path + ": " + st.status().message());
      s.mode = st->attr.mode;
      DG_RETURN_IF_ERROR(ReadXattrs(fs, path, st->ino, &s.xattrs));
      if (S_ISDIR(s.mode)) {
        DG_RETURN_IF_ERROR(walk(path));
        continue;
      }
      if (S_ISLNK(s.mode)) {
        auto target = fs.ReadLink(path);
        if (!target.ok()) return Status::Io(path + ": " + target.status().message());
        s.bytes.assign(target->begin(), target->end());
        continue;
      }
      if (!S_ISREG(s.mode)) continue;  // FIFOs and sockets hold no data
      auto f = fs.Open(path);
      if (!f.ok()) return Status::Io(path + ": " + f.status().message());
      s.bytes.resize(st->attr.size);
      DG_RETURN_IF_ERROR(ReadFile(**f, path, &s));
    }
    return Status::Ok();
  };
  DG_RETURN_IF_ERROR(walk("/"));
  return out;
}

namespace {

const ModelFile::Lost* LostAt(const ModelFile& f, uint64_t off, uint64_t len) {
  for (const ModelFile::Lost& l : f.lost)
    if (l.off < off + len && off < l.off + l.len) return &l;
  return nullptr;
}

// The versions byte `off` of model inode `ino` may show, from both trees
// (of a lost byte, only those written since the loss).
bool ByteAllowed(uint64_t ino, uint64_t off, uint8_t b, const ModelTree& t1, const ModelTree* t2) {
  for (const ModelTree* t : {&t1, t2}) {
    if (!t) continue;
    auto it = t->files.find(ino);
    if (it == t->files.end()) continue;
    const ModelFile::Lost* lost = LostAt(it->second, off, 1);
    size_t first = lost && !lost->rebuildable ? lost->since : 0;
    for (size_t i = first; i < it->second.versions.size(); ++i) {
      const auto& v = it->second.versions[i];
      if (off < v.size() ? v[off] == b : b == 0) return true;
    }
  }
  return false;
}

// Whether [off, off+len) of model inode `ino` may read as EIO: lost in either tree.
bool FailureAllowed(uint64_t ino, uint64_t off, uint64_t len, const ModelTree& t1, const ModelTree* t2) {
  for (const ModelTree* t : {&t1, t2}) {
    if (!t) continue;
    auto it = t->files.find(ino);
    if (it != t->files.end() && LostAt(it->second, off, len)) return true;
  }
  return false;
}

bool IsUntorn(uint64_t ino, const ModelTree* t) {
  if (!t) return false;
  auto it = t->files.find(ino);
  return it != t->files.end() && it->second.untorn;
}

std::string Octal(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%o", mode);
  return buf;
}

std::string Against(const std::map<std::string, SeenEntry>& seen, const ModelTree& want, const ModelTree& t1,
                    const ModelTree* t2) {
  if (seen.size() != want.names.size()) {
    for (const auto& [p, i] : want.names)
      if (!seen.contains(p)) return p + " missing";
    for (const auto& [p, s] : seen)
      if (!want.names.contains(p)) return p + " should not exist";
  }
  std::map<uint64_t, uint64_t> fs_ino_of;  // model inode -> the image's
  for (const auto& [path, ino] : want.names) {
    auto s = seen.find(path);
    if (s == seen.end()) return path + " missing";
    const ModelFile& m = want.files.at(ino);
    if (s->second.mode != m.mode) return path + " has mode " + Octal(s->second.mode) + ", not " + Octal(m.mode);
    if (s->second.xattrs != m.xattrs) return path + " has other extended attributes than it should";
    auto [it, fresh] = fs_ino_of.emplace(ino, s->second.ino);
    if (!fresh && it->second != s->second.ino) return path + " should be a hard link of another name";
    if (m.dir()) continue;
    const auto& bytes = s->second.bytes;
    if (bytes.size() != m.now().size())
      return path + " has size " + std::to_string(bytes.size()) + ", not " + std::to_string(m.now().size());
    // An untorn write in flight: the file as `want` has it, whole.
    bool untorn = IsUntorn(ino, &t1) || IsUntorn(ino, t2);
    const ModelTree& o1 = untorn ? want : t1;
    const ModelTree* o2 = untorn ? nullptr : t2;
    const auto& failed = s->second.failed;
    for (const ByteRange& r : failed)
      if (!FailureAllowed(ino, r.off, r.len, o1, o2))
        return path + " bytes " + std::to_string(r.off) + "+" + std::to_string(r.len) +
               " read as EIO: no loss there";
    for (uint64_t off = 0, f = 0; off < bytes.size(); ++off) {
      while (f < failed.size() && failed[f].off + failed[f].len <= off) ++f;
      if (f < failed.size() && failed[f].off <= off) continue;  // failed reads have no bytes to judge
      if (!ByteAllowed(ino, off, bytes[off], o1, o2))
        return path + " byte " + std::to_string(off) + " = " + std::to_string(bytes[off]) +
               (untorn ? ": an untorn write torn" : ": a value the file never held there since its last fsync");
    }
  }
  std::map<uint64_t, uint64_t> seen_links;
  for (const auto& [model, fsino] : fs_ino_of)
    if (!seen_links.emplace(fsino, model).second) return "two files share inode " + std::to_string(fsino);
  return "";
}

}  // namespace

std::string CheckTree(const std::map<std::string, SeenEntry>& seen, const ModelTree& before, const ModelTree* after) {
  std::string b = Against(seen, before, before, after);
  if (b.empty() || !after) return b;
  std::string a = Against(seen, *after, before, after);
  if (a.empty()) return a;
  return "not the tree before the operation in flight (" + b + ") nor after it (" + a + ")";
}

}  // namespace daxguard::tools
