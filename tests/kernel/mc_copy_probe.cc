// mc_copy_probe: dax::McCopy against a real machine check, in the oracle's
// guest: a page of this process's memory is failed by the kernel
// (madvise(MADV_HWPOISON)); a copy over it must stop at the line before it
// with the right count and offset, and a copy that does not reach it must
// not notice. Exits non-zero on any difference.
#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "dax/mc_copy.h"

using daxguard::dax::McCopy;

int main() {
  constexpr size_t kPage = 4096, kPages = 16, kBad = 5;
  auto* mem = static_cast<unsigned char*>(
      mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) return std::perror("mmap"), 1;
  for (size_t i = 0; i < kPages * kPage; ++i) mem[i] = static_cast<unsigned char>(i * 7 + i / 4096);
  std::vector<unsigned char> out(kPages * kPage);
  if (McCopy(out.data(), mem, out.size()).copied != out.size()) return std::puts("FAIL: clean copy"), 1;
  if (madvise(mem + kBad * kPage, kPage, MADV_HWPOISON) != 0) return std::perror("madvise(MADV_HWPOISON)"), 1;
  int failures = 0;
  auto check = [&](size_t from, size_t len, size_t want, bool poisoned) {
    std::memset(out.data(), 0, out.size());
    auto r = McCopy(out.data(), mem + from, len);
    size_t fault = from < kBad * kPage ? kBad * kPage - from : 0;  // the first byte of it touched
    bool ok = r.copied == want && r.poisoned == poisoned && (!poisoned || r.fault == fault) &&
              std::memcmp(out.data(), mem + from, want) == 0;
    std::printf("%s: copy of %zu bytes from %zu: copied %zu, poisoned %d, fault at %zu\n", ok ? "ok" : "FAIL", len,
                from, r.copied, r.poisoned, r.fault);
    failures += !ok;
  };
  check(0, kPages * kPage, kBad * kPage, true);              // stops where the page starts
  check(100, kPages * kPage - 100, kBad * kPage - 100, true);  // from mid-page: the same place
  check(0, kBad * kPage, kBad * kPage, false);               // up to it: nothing noticed
  check((kBad + 1) * kPage, 2 * kPage, 2 * kPage, false);    // past it: nothing noticed
  check(kBad * kPage + 64, 128, 0, true);                    // inside it: nothing copied
  std::puts(failures ? "mc_copy_probe: FAILED" : "mc_copy_probe: all checks passed");
  return failures ? 1 : 0;
}
