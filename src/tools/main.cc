// daxguard: one command for the emulated persistent-memory stack, shaped
// after ndctl, cxl-cli and xfs_io so their users' habits carry over.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "tools/cli_util.h"

namespace {

// `daxguard help [COMMAND]`, and `daxguard` alone: the usage, as a request
// rather than an error.
void AddHelpCommand(CLI::App& app, int* rc) {
  auto topic = std::make_shared<std::string>();
  auto* h = app.add_subcommand("help", "print this usage, or a command's: help [COMMAND]");
  h->add_option("COMMAND", *topic, "the command to describe");
  h->callback([&app, topic, rc] {
    CLI::App* about = &app;
    if (!topic->empty()) {
      auto named = app.get_subcommands([&](CLI::App* s) { return s->check_name(*topic); });
      about = named.empty() ? nullptr : named.front();
      if (!about) {
        *rc = daxguard::tools::Fail("help", "no command '" + *topic + "' (daxguard help lists them)");
        return;
      }
    }
    // Not about->help(), which describes the command being run (help itself).
    std::cout << about->get_formatter()->make_help(about, about->get_name(), CLI::AppFormatMode::Normal);
  });
}

}  // namespace

int main(int argc, char** argv) {
  // Past the file size limit a write fails with EFBIG, reported and undone
  // like any failed write, instead of killing the tool halfway.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"daxguard: persistent-memory devices with a faithful poison model"};
  app.require_subcommand(0, 1);
  int rc = 0;
  daxguard::tools::AddDeviceCommands(app, &rc);
  daxguard::tools::AddScrubCommands(app, &rc);
  daxguard::tools::AddMonitorCommand(app, &rc);
  daxguard::tools::AddPatrolCommand(app, &rc);
  daxguard::tools::AddIoCommand(app, &rc);
  daxguard::tools::AddDemoCommand(app, &rc);
  daxguard::tools::AddDmCommands(app, &rc);
  daxguard::tools::AddFsCommands(app, &rc);
  daxguard::tools::AddCrashCheckCommand(app, &rc);
  daxguard::tools::AddMountCommands(app, &rc);
  AddHelpCommand(app, &rc);
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
  if (app.get_subcommands().empty()) std::cout << app.help();
  return rc;
}
