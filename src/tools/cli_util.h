// Shared pieces of the daxguard command line: one-line errors, size
// arguments, JSON output, and the subcommand registry.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "dax/dax_device.h"
#include "media/pmem_device.h"

namespace daxguard::tools {

using Json = nlohmann::ordered_json;

// Prints "daxguard CMD: message" on stderr; returns the exit code to use.
int Fail(const std::string& cmd, const Status& s);
int Fail(const std::string& cmd, const std::string& message);

// "\rWHAT [####    ]  NN%" on stderr, a newline once done reaches total;
// for callers that checked stderr is a terminal.
void ShowProgress(const char* what, uint64_t done, uint64_t total);

// "NAME: message", or the message as it is when a layer below already
// begins it with NAME: every error names its subject once.
Status Named(const std::string& name, const Status& s);

// How a command that writes nothing opens its device: a device file it may
// not write is read (media::OpenMode::kReadOnlyFallback), the file untouched.
inline constexpr media::OpenMode kReadOnly = media::OpenMode::kReadOnlyFallback;
inline constexpr media::OpenMode kReadWrite = media::OpenMode::kReadWrite;

// Parses a size or offset argument ("4096", "0x1000", "64k", "1g").
Result<uint64_t> ParseSizeArg(const std::string& what, const std::string& text);

// A name as `ls -b` prints it in the C locale, so that no name can forge
// lines or terminal escapes in a listing: backslash and C's control escapes
// (\n, \t, \r, \a, \b, \f, \v) as such, every other byte outside printable
// ASCII as three octal digits (\033, \377).
std::string EscapeName(std::string_view name);

void PrintJson(const Json& j);
// Bad-block runs as ndctl lists them: [{"offset": SECTOR, "length": N}],
// sectors moved by `shift`.
Json BadBlocksJson(const std::vector<media::BadBlock>& bbs, uint64_t shift = 0);

// xfs_io's output: the closing line of a transfer ("4 KiB, 1 ops; ..."), and
// pread -v's hex dump.
void PrintRate(std::ostream& out, uint64_t bytes, uint64_t ops, double secs);
void HexDump(std::ostream& out, uint64_t offset, const uint8_t* p, size_t n);

// A devdax device is used whole and by mapping only: commands that need
// byte I/O or a filesystem refuse it ("NAME is a devdax device ...: INSTEAD").
bool IsDevdax(dax::Device& dev);
Status CheckNotDevdax(dax::Device& dev, const std::string& name, const std::string& instead);

const char* KindName(media::Kind k);
const char* ModeName(media::Mode m);

// Every subcommand registers itself on the app and stores its exit code in
// *rc when it runs.
void AddDeviceCommands(CLI::App& app, int* rc);  // create-device, list, inject-error, clear-errors
void AddScrubCommands(CLI::App& app, int* rc);   // start-scrub, wait-scrub
void AddMonitorCommand(CLI::App& app, int* rc);  // monitor
void AddPatrolCommand(CLI::App& app, int* rc);   // scrub
void AddIoCommand(CLI::App& app, int* rc);       // io
void AddDemoCommand(CLI::App& app, int* rc);     // demo
void AddDmCommands(CLI::App& app, int* rc);      // dm create, dm table, dm status
void AddFsCommands(CLI::App& app, int* rc);      // mkfs, fs, who, health, fsck
void AddCrashCheckCommand(CLI::App& app, int* rc);  // crashcheck
void AddMountCommands(CLI::App& app, int* rc);      // mount, umount

// `io` on DEV:/path: xfs_io's file commands on a daxfs file.
bool IsFsTarget(const std::string& arg);
int RunFileIo(const std::string& target, const std::vector<std::string>& cmds, bool create);

}  // namespace daxguard::tools
