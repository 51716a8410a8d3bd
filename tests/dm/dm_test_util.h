// Shared by the dm tests: temporary directories of device and stack files,
// and a holder that records what it is told.
#pragma once

#include "common/recording_holder.h"
#include "common/test_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "dax/dax_device.h"
#include "dax/pmem_dax.h"
#include "dm/open.h"
#include "dm/stack.h"
#include "media/pmem_device.h"

namespace daxguard::dm::testing {

using daxguard::testing::Child;
using daxguard::testing::Pipe;
using daxguard::testing::TempDir;

constexpr uint64_t kMiB = 1ull << 20;


inline void MakeDevice(const std::string& path, uint64_t size) {
  media::CreateOptions opt;
  opt.size = size;
  auto d = media::PmemDevice::Create(path, opt);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
}

// Parses the lines and writes a stack file at `path`.
inline Status MakeStack(const std::string& path, const std::vector<std::string>& lines) {
  std::vector<TableLine> table;
  for (const std::string& text : lines) {
    auto l = ParseTableLine(text);
    if (!l.ok()) return l.status();
    table.push_back(std::move(l).value());
  }
  return CreateStackFile(path, table);
}

inline std::unique_ptr<dax::Device> OpenOrDie(const std::string& path) {
  auto d = OpenDaxDevice(path);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? std::move(d).value() : nullptr;
}

using daxguard::testing::Call;
using daxguard::testing::Eventually;
using daxguard::testing::RecordingHolder;

}  // namespace daxguard::dm::testing
