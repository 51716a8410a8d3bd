#include "tools/io_cmd.h"

#include <sstream>

#include "tools/map_cmds.h"

#include <gtest/gtest.h>

namespace daxguard::tools {
namespace {

TEST(ParseIoCommand, ReadsXfsIoSyntax) {
  auto c = ParseIoCommand("pwrite -S 0xab 4k 64k");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->op, IoCommand::Op::kPwrite);
  EXPECT_EQ(c->pattern, 0xab);
  EXPECT_EQ(c->offset, 4096u);
  EXPECT_EQ(c->length, 65536u);

  auto r = ParseIoCommand("pread -v 0 512");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->verbose);
  EXPECT_EQ(r->op, IoCommand::Op::kPread);

  auto z = ParseIoCommand("zero 1m 2m");
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->offset, 1u << 20);
  EXPECT_EQ(z->length, 2u << 20);
}

TEST(ParseIoCommand, DefaultPatternIsXfsIos) {
  auto c = ParseIoCommand("pwrite 0 1");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->pattern, 0xcd);
}

TEST(ParseIoCommand, RejectsMalformedInput) {
  for (const char* bad : {"", "frobnicate 0 1", "pread", "pread 0", "pread 0 1 2", "pread x 1",
                          "pread 0 1q", "pwrite -S 0x100 0 1", "pwrite -S 0 1", "pread -x 0 1",
                          "zero -v 0 4k"}) {
    auto c = ParseIoCommand(bad);
    EXPECT_FALSE(c.ok()) << "accepted: '" << bad << "'";
    if (!c.ok()) {
      EXPECT_EQ(c.status().err(), EINVAL) << bad;
    }
  }
}

}  // namespace
}  // namespace daxguard::tools

namespace daxguard::tools {
namespace {

// msync writes back what the mapping stored (the view's persist call), for
// the range it names or the whole mapping.
TEST(MapSession, MsyncPersistsTheRange) {
  std::vector<uint8_t> mem(3 * 4096);
  uint8_t* page = mem.data() + (4096 - reinterpret_cast<uintptr_t>(mem.data()) % 4096) % 4096;
  std::vector<std::pair<uint64_t, uint64_t>> persisted;
  MapSession s([&](uint64_t off, uint64_t len, bool) -> Result<MapView> {
    return MapView{page, off, len, nullptr, [&](uint64_t o, uint64_t n) {
                     persisted.push_back({o, n});
                     return Status::Ok();
                   }};
  });
  std::ostringstream out;
  for (const char* text : {"mmap 8192 4096", "mwrite -S 1 8192 100", "msync 8192 64", "msync"}) {
    auto c = ParseMapCommand(text);
    ASSERT_TRUE(c.ok()) << text << ": " << c.status().message();
    ASSERT_TRUE(s.Run(*c, out).ok()) << text;
  }
  EXPECT_EQ(persisted, (std::vector<std::pair<uint64_t, uint64_t>>{{8192, 64}, {8192, 4096}}));
  EXPECT_EQ(page[0], 1);
}

}  // namespace
}  // namespace daxguard::tools
