// daxguard: one command for the emulated persistent-memory stack, shaped
// after ndctl, cxl-cli and xfs_io so their users' habits carry over.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "tools/cli_util.h"

int main(int argc, char** argv) {
  // Past the file size limit a write fails with EFBIG, reported and undone
  // like any failed write, instead of killing the tool halfway.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"daxguard: persistent-memory devices with a faithful poison model"};
  app.require_subcommand(1);
  int rc = 0;
  daxguard::tools::AddDeviceCommands(app, &rc);
  daxguard::tools::AddScrubCommands(app, &rc);
  daxguard::tools::AddIoCommand(app, &rc);
  daxguard::tools::AddDemoCommand(app, &rc);
  daxguard::tools::AddDmCommands(app, &rc);
  daxguard::tools::AddFsCommands(app, &rc);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "daxguard: %s (see daxguard --help)\n", e.what());
    return 2;
  }
  return rc;
}
