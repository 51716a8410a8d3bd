#include "common/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

namespace daxguard {
namespace {

TEST(ParseSize, PlainDecimal) {
  EXPECT_EQ(ParseSize("0"), 0u);
  EXPECT_EQ(ParseSize("4096"), 4096u);
  EXPECT_EQ(ParseSize("18446744073709551615"), UINT64_MAX);
}

TEST(ParseSize, Hex) {
  EXPECT_EQ(ParseSize("0x1000"), 4096u);
  EXPECT_EQ(ParseSize("0X1000"), 4096u);
  EXPECT_EQ(ParseSize("0xdeadBEEF"), 0xdeadbeefu);
  EXPECT_EQ(ParseSize("0xffffffffffffffff"), UINT64_MAX);
}

TEST(ParseSize, BinarySuffixesEitherCase) {
  EXPECT_EQ(ParseSize("4k"), 4096u);
  EXPECT_EQ(ParseSize("4K"), 4096u);
  EXPECT_EQ(ParseSize("1m"), 1ull << 20);
  EXPECT_EQ(ParseSize("3M"), 3ull << 20);
  EXPECT_EQ(ParseSize("2g"), 2ull << 30);
  EXPECT_EQ(ParseSize("2G"), 2ull << 30);
  EXPECT_EQ(ParseSize("1t"), 1ull << 40);
  EXPECT_EQ(ParseSize("5T"), 5ull << 40);
  EXPECT_EQ(ParseSize("0k"), 0u);
}

TEST(ParseSize, MalformedIsNullopt) {
  for (const char* bad : {"", "k", "x", "0x", "0xg", "-1", "+1", " 1", "1 ", "1kb", "1kk", "1p",
                          "1e", "1.5k", "12abc", "0x10k", "0x1m", "4 k", "0b101", "1\t"}) {
    EXPECT_EQ(ParseSize(bad), std::nullopt) << "input: '" << bad << "'";
  }
}

TEST(ParseSize, OverflowIsNullopt) {
  EXPECT_EQ(ParseSize("18446744073709551616"), std::nullopt);
  EXPECT_EQ(ParseSize("99999999999999999999999"), std::nullopt);
  EXPECT_EQ(ParseSize("0x10000000000000000"), std::nullopt);
  // Exactly at and past the limit for each suffix.
  EXPECT_EQ(ParseSize("16777215t"), 16777215ull << 40);
  EXPECT_EQ(ParseSize("16777216t"), std::nullopt);
  EXPECT_EQ(ParseSize("17179869183g"), 17179869183ull << 30);
  EXPECT_EQ(ParseSize("17179869184g"), std::nullopt);
  EXPECT_EQ(ParseSize("17592186044415m"), 17592186044415ull << 20);
  EXPECT_EQ(ParseSize("17592186044416m"), std::nullopt);
  EXPECT_EQ(ParseSize("18014398509481983k"), 18014398509481983ull << 10);
  EXPECT_EQ(ParseSize("18014398509481984k"), std::nullopt);
}

TEST(HumanBytes, WholeUnits) {
  EXPECT_EQ(HumanBytes(0), "0 bytes");
  EXPECT_EQ(HumanBytes(1), "1 bytes");
  EXPECT_EQ(HumanBytes(1023), "1023 bytes");
  EXPECT_EQ(HumanBytes(1024), "1 KiB");
  EXPECT_EQ(HumanBytes(4096), "4 KiB");
  EXPECT_EQ(HumanBytes(1 << 20), "1 MiB");
  EXPECT_EQ(HumanBytes(3.0 * (1ull << 30)), "3 GiB");
  EXPECT_EQ(HumanBytes(static_cast<double>(1ull << 40)), "1 TiB");
}

TEST(HumanBytes, FractionsAndLargest) {
  EXPECT_EQ(HumanBytes(1536), "1.500 KiB");
  EXPECT_EQ(HumanBytes(1.5 * (1 << 20)), "1.500 MiB");
  EXPECT_EQ(HumanBytes(0.5), "0.500 bytes");
  EXPECT_EQ(HumanBytes(1025), "1.001 KiB");
  // TiB is the largest unit: bigger amounts keep counting in TiB.
  EXPECT_EQ(HumanBytes(static_cast<double>(1ull << 50)), "1024 TiB");
}

}  // namespace
}  // namespace daxguard
