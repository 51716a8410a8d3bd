// Shared by the dax tests: a fresh device file driven by a PmemDax.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "dax/pmem_dax.h"
#include "media/pmem_device.h"

namespace daxguard::dax::testing {

// Null, with a failed expectation saying why, if the file cannot be made.
inline std::unique_ptr<PmemDax> NewPmemDax(const std::string& path, const media::CreateOptions& opt) {
  auto m = media::PmemDevice::Create(path, opt);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::make_unique<PmemDax>(std::move(m).value()) : nullptr;
}

inline std::unique_ptr<PmemDax> NewPmemDax(const std::string& path, uint64_t size, uint32_t clear_unit = 0) {
  media::CreateOptions opt;
  opt.size = size;
  if (clear_unit) opt.clear_unit = clear_unit;
  return NewPmemDax(path, opt);
}

}  // namespace daxguard::dax::testing
