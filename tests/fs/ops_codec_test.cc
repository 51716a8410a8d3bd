// The record codec: every operation survives a round trip, and damaged
// bytes are refused (never a crash, never a half-read operation).
#include <gtest/gtest.h>

#include <algorithm>
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
          Op::Unrepaired("inode 5 is unreachable"),
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

// What a record changed, in brief: per inode its attributes, the span of
// file bytes it changed (to the end of the file for truncate and free), and
// whether its entries changed; nothing of an inode it freed.
TEST(RecordSummary, NamesWhatEachInodeHad) {
  Attr a{0100644, 0, 0, 1, 6000, 0, 0, 0};
  Summary s = Summarize(std::vector<Op>{Op::Map(9, 2, 5000, 3, false), Op::Damage(9, 100, 64, true), Op::SetInode(9, a),
                         Op::Link(1, "x", 9), Op::Unmap(12, 1, UINT64_MAX / 2), Op::Map(13, 0, 7000, 1, false),
                         Op::FreeInode(13)});
  using K = Touch::Kind;
  std::vector<Touch> want = {{K::kAttr, 9, 0, 0, 6000, 0100644},
                             {K::kData, 9, 100, 5 * 4096 - 100, 0, 0},
                             {K::kEntries, 1, 0, 0, 0, 0},
                             {K::kData, 12, 4096, Touch::kToEnd, 0, 0}};
  // Sorted by inode: 1 first.
  std::sort(want.begin(), want.end(), [](const Touch& x, const Touch& y) { return x.ino < y.ino; });
  EXPECT_EQ(s.touches, want);
  EXPECT_TRUE(s.complete);
  EXPECT_EQ(Summarize(std::vector<Op>{Op::Damage(4, 8192, UINT64_MAX / 2, false)}).touches,
            (std::vector<Touch>{{K::kData, 4, 8192, Touch::kToEnd, 0, 0}}));
}

TEST(RecordSummary, RoundTripsAndRefusesDamagedBytes) {
  std::vector<Op> ops;
  for (uint64_t ino = 2; ino < 5000; ++ino) ops.push_back(Op::Map(ino, ino, ino, 1, false));
  Summary big = Summarize(ops);
  EXPECT_FALSE(big.complete) << "a snapshot's worth of inodes is cut short, and says so";
  for (const Summary& s : {Summarize(OneOfEach()), big}) {
    std::string bytes;
    EncodeSummary(s, &bytes);
    Summary back;
    ASSERT_TRUE(DecodeSummary(bytes, &back).ok());
    EXPECT_EQ(back, s);
  }
  std::string bytes;
  EncodeSummary(Summarize(OneOfEach()), &bytes);
  for (size_t n = 0; n < bytes.size(); ++n) {
    Summary back;
    EXPECT_FALSE(DecodeSummary(std::string_view(bytes).substr(0, n), &back).ok()) << "prefix " << n;
  }
  Summary back;
  EXPECT_FALSE(DecodeSummary(bytes + "x", &back).ok()) << "trailing bytes";
  std::string wraps;
  EncodeSummary({{{Touch::Kind::kData, 1, UINT64_MAX - 10, 100, 0, 0}}, true}, &wraps);
  EXPECT_FALSE(DecodeSummary(wraps, &back).ok()) << "a range past the end of the address space";
}

}  // namespace
}  // namespace daxguard::fs
