// Runs the daxguard binary as a user would, in a scratch directory.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

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
  static std::string Slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::filesystem::path dir_;
};

}  // namespace daxguard::testing
