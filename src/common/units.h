// Hardware units shared by every layer, and parsing of user-supplied sizes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace daxguard {

inline constexpr uint64_t kLineSize = 64;      // CPU poison granule
inline constexpr uint64_t kSectorSize = 512;   // badblocks record unit
inline constexpr uint64_t kPageSize = 4096;    // hwpoison / recovery-write unit
inline constexpr uint64_t kMinDeviceSize = 1ull << 20;

constexpr bool IsPowerOfTwo(uint64_t v) { return v && !(v & (v - 1)); }
constexpr uint64_t AlignDown(uint64_t v, uint64_t a) { return v / a * a; }
constexpr uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
constexpr uint64_t DivRoundUp(uint64_t v, uint64_t d) { return (v + d - 1) / d; }
constexpr bool IsAligned(uint64_t v, uint64_t a) { return v % a == 0; }

struct ByteRange {
  uint64_t off = 0;
  uint64_t len = 0;
  bool operator==(const ByteRange&) const = default;
};

// Division by a fixed divisor, by shift and mask when it is a power of two
// (chunk sizes and stripe counts usually are): stacks divide on every
// access, and a 64-bit divide costs tens of cycles.
class Divisor {
 public:
  explicit Divisor(uint64_t d) : d_(d), shift_(IsPowerOfTwo(d) ? __builtin_ctzll(d) : -1) {}
  uint64_t Div(uint64_t v) const { return shift_ >= 0 ? v >> shift_ : v / d_; }
  uint64_t Mod(uint64_t v) const { return shift_ >= 0 ? v & (d_ - 1) : v % d_; }

 private:
  uint64_t d_;
  int shift_;
};

// "4096", "0x1000", "4k", "1m", "2g", "1t" (binary multiples, as ndctl and
// xfs_io accept). Returns nullopt for anything malformed or overflowing.
std::optional<uint64_t> ParseSize(std::string_view text);

// 4096 -> "4 KiB", 1536 -> "1.500 KiB": xfs_io's way of printing amounts.
std::string HumanBytes(double bytes);

}  // namespace daxguard
