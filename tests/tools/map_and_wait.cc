// A program with a file mapped when poison strikes: maps FILE shared,
// reads page PAGE (so it is resident), prints "mapped", waits for a line on
// stdin, then reads it again and prints "read" -- or dies of SIGBUS, if the
// page was taken away. Usage: map_and_wait FILE PAGE
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  int fd = open(argv[1], O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return perror(argv[1]), 2;
  auto* p = static_cast<volatile unsigned char*>(mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd, 0));
  if (p == MAP_FAILED) return perror("mmap"), 2;
  off_t at = std::atoll(argv[2]) * 4096;
  if (at >= st.st_size) return 2;
  unsigned sum = p[at];
  std::cout << "mapped " << sum % 2 << std::endl;
  std::string line;
  std::getline(std::cin, line);
  sum += p[at];
  std::cout << "read " << sum % 2 << std::endl;
  return 0;
}
