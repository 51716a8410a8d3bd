#include "tools/crash_model.h"

#include <sys/stat.h>

#include <functional>

namespace daxguard::tools {

uint64_t ModelTree::Add(const std::string& path, bool dir) {
  uint64_t ino = next_ino++;
  files[ino].dir = dir;
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

ModelFile* ModelTree::Find(const std::string& path) {
  auto it = names.find(path);
  return it == names.end() ? nullptr : &files[it->second];
}

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
      s.dir = S_ISDIR(e.mode);
      if (e.damaged) return Status::Corrupt(path + ": damaged entry");
      if (s.dir) {
        DG_RETURN_IF_ERROR(walk(path));
        continue;
      }
      auto f = fs.Open(path);
      if (!f.ok()) return Status::Io(path + ": " + f.status().message());
      auto st = (*f)->Stat();
      if (!st.ok()) return st.status();
      s.bytes.resize(st->attr.size);
      auto r = (*f)->Read(0, s.bytes.data(), s.bytes.size());
      if (!r.ok()) return Status::Io(path + ": read: " + r.status().message());
      if (*r != s.bytes.size()) return Status::Io(path + ": short read");
    }
    return Status::Ok();
  };
  DG_RETURN_IF_ERROR(walk("/"));
  return out;
}

namespace {

// The versions byte `off` of model inode `ino` may show, from both trees.
bool ByteAllowed(uint64_t ino, uint64_t off, uint8_t b, const ModelTree& t1, const ModelTree* t2) {
  for (const ModelTree* t : {&t1, t2}) {
    if (!t) continue;
    auto it = t->files.find(ino);
    if (it == t->files.end()) continue;
    for (const auto& v : it->second.versions)
      if (off < v.size() ? v[off] == b : b == 0) return true;
  }
  return false;
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
    if (s->second.dir != m.dir) return path + (m.dir ? " should be a directory" : " should be a file");
    auto [it, fresh] = fs_ino_of.emplace(ino, s->second.ino);
    if (!fresh && it->second != s->second.ino) return path + " should be a hard link of another name";
    if (m.dir) continue;
    const auto& bytes = s->second.bytes;
    if (bytes.size() != m.now().size())
      return path + " has size " + std::to_string(bytes.size()) + ", not " + std::to_string(m.now().size());
    for (uint64_t off = 0; off < bytes.size(); ++off)
      if (!ByteAllowed(ino, off, bytes[off], t1, t2))
        return path + " byte " + std::to_string(off) + " = " + std::to_string(bytes[off]) +
               ": a value the file never held there since its last fsync";
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
