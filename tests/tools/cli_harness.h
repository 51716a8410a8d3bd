// Runs the daxguard binary as a user would, in a scratch directory.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace daxguard::testing {

struct CliRun {
  int rc;
  std::string out, err;
};

class CliHarness : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/daxguard-cli-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  CliRun Dg(const std::vector<std::string>& args) {
    std::string cmd = DAXGUARD_BIN;
    for (const std::string& a : args) cmd += " '" + a + "'";
    cmd += " >" + (dir_ / "out").string() + " 2>" + (dir_ / "err").string();
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(dir_ / "out"), Slurp(dir_ / "err")};
  }
  nlohmann::json DgJson(const std::vector<std::string>& args) {
    CliRun r = Dg(args);
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.rc == 0 ? nlohmann::json::parse(r.out) : nlohmann::json();
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  // The device sector holding file offset `off` of `target` (DEV:/path),
  // from `io ... fiemap -v`.
  uint64_t SectorOf(const std::string& target, uint64_t off) {
    CliRun r = Dg({"io", target, "-c", "fiemap -v"});
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      unsigned long long lo, hi, plo, phi;
      if (std::sscanf(line.c_str(), " %*d: [%llu..%llu]: %llu..%llu", &lo, &hi, &plo, &phi) == 4 &&
          off / 512 >= lo && off / 512 <= hi)
        return plo + (off / 512 - lo);
    }
    ADD_FAILURE() << "no extent for " << target << " offset " << off << "\n" << r.out;
    return 0;
  }
  static std::string Slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::filesystem::path dir_;
};

}  // namespace daxguard::testing
