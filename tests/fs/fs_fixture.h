// A fresh emulated device with daxfs on it, per test.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dax/pmem_dax.h"
#include "fs/filesystem.h"

namespace daxguard::fs {

class FsTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kDevSize = 64ull << 20;

  void SetUp() override {
    char tmpl[] = "/tmp/daxfs-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/pmem0";
    media::CreateOptions opt;
    opt.size = kDevSize;
    ASSERT_TRUE(media::PmemDevice::Create(path_, opt).ok());
    OpenDevice();
    ASSERT_TRUE(Filesystem::Mkfs(*dev_, Protection()).ok());
    Mount();
  }
  // What mkfs is asked for (--data-protection).
  virtual DataProtection Protection() const { return DataProtection::kNone; }
  void TearDown() override {
    fs_.reset();
    dev_.reset();
    std::filesystem::remove_all(dir_);
  }
  void OpenDevice() {
    auto d = dax::PmemDax::Open(path_);
    ASSERT_TRUE(d.ok()) << d.status().message();
    dev_ = std::move(d).value();
  }
  void Mount() {
    auto f = Filesystem::Mount(*dev_);
    ASSERT_TRUE(f.ok()) << f.status().message();
    fs_ = std::move(f).value();
  }
  void Remount() {
    fs_.reset();
    dev_.reset();
    OpenDevice();
    Mount();
  }
  std::unique_ptr<File> Create(const std::string& path) {
    auto f = fs_->Open(path, kCreate);
    EXPECT_TRUE(f.ok()) << f.status().message();
    return f.ok() ? std::move(f).value() : nullptr;
  }
  std::unique_ptr<File> OpenFile(const std::string& path) {
    auto f = fs_->Open(path);
    EXPECT_TRUE(f.ok()) << f.status().message();
    return f.ok() ? std::move(f).value() : nullptr;
  }
  static void Fill(File& f, uint64_t off, uint64_t len, uint8_t byte) {
    std::vector<uint8_t> buf(len, byte);
    auto w = f.Write(off, buf.data(), len);
    ASSERT_TRUE(w.ok()) << w.status().message();
    ASSERT_EQ(*w, len);
  }
  static std::vector<uint8_t> ReadAll(File& f, uint64_t off, uint64_t len, Status* why = nullptr) {
    std::vector<uint8_t> buf(len);
    auto r = f.Read(off, buf.data(), len);
    if (!r.ok()) {
      if (why) *why = r.status();
      return {};
    }
    buf.resize(*r);
    return buf;
  }
  // The device offset of file offset `off`.
  static uint64_t DeviceOffset(File& f, uint64_t off) {
    auto m = f.Fiemap();
    for (const FiemapExtent& e : *m)
      if (off >= e.logical && off < e.logical + e.length) return e.physical + (off - e.logical);
    ADD_FAILURE() << "file offset " << off << " is not mapped";
    return 0;
  }
  media::PmemDevice& media() { return dev_->media(); }

  std::string dir_, path_;
  std::unique_ptr<dax::PmemDax> dev_;
  std::unique_ptr<Filesystem> fs_;
};

}  // namespace daxguard::fs
