// Shared pieces of the libFuzzer harnesses: a scratch directory per process,
// a cursor over the fuzz bytes, and a check that aborts with a message (an
// abort is a crash libFuzzer reports and keeps the input of).
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

namespace daxguard::fuzz {

// A directory of this process's own, removed at exit; on tmpfs when there
// is one, since harnesses make and drop device files on every input.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    std::string tmpl = std::string(base) + "/daxguard-fuzz-XXXXXX";
    if (!mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      abort();
    }
    static std::string removed_at_exit;
    removed_at_exit = tmpl;
    atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(removed_at_exit, ec);
    });
    return tmpl;
  }();
  return dir;
}

inline std::string ScratchPath(const std::string& name) { return ScratchDir() + "/" + name; }

// Writes `bytes` to `path`, replacing it.
inline void WriteFile(const std::string& path, std::string_view bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::perror(path.c_str());
    abort();
  }
}

// Reads the fuzz bytes front to back; past the end everything reads as zero.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  uint8_t U8() { return n_ ? (--n_, *p_++) : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | U8() << 8); }
  uint32_t U32() { return U16() | static_cast<uint32_t>(U16()) << 16; }
  // Up to `max` bytes, fewer at the end.
  std::string_view Take(size_t max) {
    size_t k = max < n_ ? max : n_;
    std::string_view out(reinterpret_cast<const char*>(p_), k);
    p_ += k;
    n_ -= k;
    return out;
  }
  std::string_view Rest() { return Take(n_); }
  size_t left() const { return n_; }

 private:
  const uint8_t* p_;
  size_t n_;
};

// Aborts naming the broken invariant, so libFuzzer keeps the input.
#define DG_FUZZ_CHECK(cond, ...)                                               \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond, __FILE__, \
                   __LINE__);                                                  \
      std::fprintf(stderr, __VA_ARGS__);                                       \
      std::fprintf(stderr, "\n");                                              \
      abort();                                                                 \
    }                                                                          \
  } while (0)

}  // namespace daxguard::fuzz
