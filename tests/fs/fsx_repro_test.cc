// Discrepancies the model-based test (fsx_test.cc) found, each reduced to
// the few operations that show it.
#include "fs/fs_fixture.h"

namespace daxguard::fs {
namespace {

constexpr uint64_t kSector = 512;

class FsxRepro : public FsTest {
 protected:
  void InjectAt(uint64_t dev_off, bool notify = true) {
    ASSERT_TRUE(media().Inject(dev_off / kSector, 1, {notify, true, media::Source::kInjected}).ok());
  }
  std::vector<IntervalSet::Interval> DamageOf(uint64_t ino) {
    for (const DamagedFile& d : fs_->Health().files)
      if (d.ino == ino) return d.ranges;
    return {};
  }
};

// A read that starts after a page's damage reads that page line by line,
// then goes on with the pages after it.
TEST_F(FsxRepro, ReadPastDamageEarlierInAPageGoesOnToTheNextPages) {
  auto f = Create("/f");
  Fill(*f, 0, 16384, 0x10);
  InjectAt(DeviceOffset(*f, 8192));
  auto got = ReadAll(*f, 8704, 16384 - 8704);
  EXPECT_EQ(got.size(), 16384u - 8704);
  EXPECT_EQ(got, std::vector<uint8_t>(16384 - 8704, 0x10));
}

}  // namespace
}  // namespace daxguard::fs
