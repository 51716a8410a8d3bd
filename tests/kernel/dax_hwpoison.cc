// dax_hwpoison NODE SIZE OFFSET: maps device-dax NODE (SIZE bytes) and has
// the kernel treat the page at OFFSET as failed memory
// (madvise(MADV_HWPOISON)), as a machine check on real persistent memory
// would. Prints what happened; for the oracle's guest tests.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <csignal>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: dax_hwpoison NODE SIZE OFFSET\n");
    return 2;
  }
  size_t size = std::strtoull(argv[2], nullptr, 0), off = std::strtoull(argv[3], nullptr, 0) & ~4095ull;
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) return std::perror(argv[1]), 1;
  auto* p = static_cast<volatile unsigned char*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (p == MAP_FAILED) return std::perror("mmap"), 1;
  (void)p[off];  // fault it in
  std::signal(SIGBUS, SIG_IGN);  // the kernel may signal its mappers; we only want the page failed
  int r = madvise(const_cast<unsigned char*>(p) + off, 4096, MADV_HWPOISON);
  std::printf("madvise(MADV_HWPOISON) at %zu: %s\n", off, r ? std::strerror(errno) : "ok");
  return r ? 1 : 0;
}
