// The record codec: every operation survives a round trip, and damaged
// bytes are refused (never a crash, never a half-read operation).
#include <gtest/gtest.h>

#include <random>

#include "fs/ops.h"

namespace daxguard::fs {
namespace {

bool SameOp(const Op& a, const Op& b) {
  return a.type == b.type && a.ino == b.ino && a.attr == b.attr && a.parent == b.parent && a.name == b.name &&
         a.fblk == b.fblk && a.pblk == b.pblk && a.len == b.len && a.owners == b.owners && a.off == b.off &&
         a.unwritten == b.unwritten;
}

std::vector<Op> OneOfEach() {
  Attr a{0100644, 1000, 1000, 2, 12345, 1, 2, 3};
  return {Op::SetInode(7, a),
          Op::FreeInode(8),
          Op::Link(1, "name with spaces", 9),
          Op::Unlink(1, "x"),
          Op::Map(9, 10, 5000, 3, true),
          Op::Unmap(9, 11, 1),
          Op::Damage(9, 4096, 64, true),
          Op::Damage(9, 4096, 64, false),
          Op::Quarantine(6000, 2, true),
          Op::Quarantine(6000, 2, false),
          Op::MetaLost("log record seq 12"),
          Op::Extent(9, 0, 7000, 4, false),
          Op::Owners(7000, 4, {{9, 0}, {10, 8}}),
          Op::MetaOwner(0, 1, "superblock copy A"),
          Op::Super(std::string(80, '\x5a'), 3)};
}

TEST(OpsCodec, EveryOperationRoundTrips) {
  std::vector<Op> ops = OneOfEach();
  std::string bytes;
  EncodeOps(ops, &bytes);
  std::vector<Op> back;
  ASSERT_TRUE(DecodeOps(bytes, &back).ok());
  ASSERT_EQ(back.size(), ops.size());
  for (size_t i = 0; i < ops.size(); ++i) EXPECT_TRUE(SameOp(ops[i], back[i])) << "op " << i;
}

TEST(OpsCodec, EveryTruncationIsRefused) {
  std::string bytes;
  EncodeOps(OneOfEach(), &bytes);
  // Cutting inside an operation must fail; cutting between two decodes
  // fewer whole operations.
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<Op> back;
    Status s = DecodeOps(std::string_view(bytes).substr(0, n), &back);
    if (s.ok()) {
      std::string again;
      EncodeOps(back, &again);
      EXPECT_EQ(again, bytes.substr(0, n)) << "prefix " << n;
    }
  }
}

TEST(OpsCodec, UnknownTypeAndHugeCountsAreRefused) {
  std::vector<Op> back;
  EXPECT_FALSE(DecodeOps(std::string(1, '\x7f'), &back).ok());
  // kOwners claiming 2^32-1 owners in a few bytes.
  std::string bytes;
  EncodeOps({Op::Owners(1, 1, {{1, 0}})}, &bytes);
  bytes[17] = bytes[18] = bytes[19] = bytes[20] = '\xff';
  EXPECT_FALSE(DecodeOps(bytes, &back).ok());
  // A name longer than the record.
  bytes.clear();
  EncodeOps({Op::Link(1, "abc", 2)}, &bytes);
  bytes[17] = '\x7f';
  EXPECT_FALSE(DecodeOps(bytes, &back).ok());
}

TEST(OpsCodec, RandomBytesNeverCrash) {
  std::mt19937_64 rng(3);
  std::string good;
  EncodeOps(OneOfEach(), &good);
  for (int i = 0; i < 20000; ++i) {
    std::string b = good;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) b[rng() % b.size()] = static_cast<char>(rng());
    std::vector<Op> back;
    (void)DecodeOps(b, &back);
  }
}

}  // namespace
}  // namespace daxguard::fs
