#include "dm/replace.h"

#include <unistd.h>

#include <filesystem>

#include "dax/stand_in_holder.h"
#include "dm/open.h"
#include "dm/stack_file.h"

namespace daxguard::dm {
namespace {

namespace stdfs = std::filesystem;

stdfs::path Canonical(const stdfs::path& dir, const std::string& dev) {
  stdfs::path p(dev);
  return stdfs::weakly_canonical(p.is_absolute() ? p : dir / p);
}

// The new DEV as the table will name it: relative to the stack's directory
// when given relative, so the directory can still move as a whole.
std::string TableName(const stdfs::path& dir, const std::string& dev) {
  stdfs::path p(dev);
  if (p.is_absolute() || dev == kMissingLeg) return dev;
  return stdfs::absolute(p).lexically_normal().lexically_relative(dir).string();
}

// The table with the legs on `old_dev` moved; which (segment, leg) they
// are, counting the legs with a device only (as the stack does).
std::vector<std::pair<size_t, size_t>> MoveLegs(std::vector<TableLine>* table, const stdfs::path& dir,
                                                const std::string& old_dev, const std::string& new_dev,
                                                std::optional<uint64_t> offset) {
  stdfs::path old_here = stdfs::weakly_canonical(stdfs::absolute(old_dev));
  std::vector<std::pair<size_t, size_t>> moved;
  for (size_t i = 0; i < table->size(); ++i) {
    TableLine& line = (*table)[i];
    if (line.target != "raid1") continue;
    for (size_t leg = 0; 2 + 2 * leg < line.args.size(); ++leg) {
      std::string& dev = line.args[1 + 2 * leg];
      if (dev != old_dev && Canonical(dir, dev) != old_here) continue;
      dev = TableName(dir, new_dev);
      if (offset) line.args[2 + 2 * leg] = std::to_string(*offset);
      size_t present = 0;
      for (size_t before = 0; before < leg; ++before) present += line.args[1 + 2 * before] != kMissingLeg;
      moved.push_back({i, present});
    }
  }
  return moved;
}

Result<ReplaceReport> Resync(const std::string& next, const std::vector<std::pair<size_t, size_t>>& legs,
                             const Stack::Progress& progress) {
  auto stack = OpenStack(next);
  if (!stack.ok()) return stack.status();
  if (uint32_t pid = (*stack)->HolderPid())
    return Status::Busy("a device of the stack is held by process " + std::to_string(pid) +
                        " (a mount?): release it first");
  DG_RETURN_IF_ERROR((*stack)->StartResync(legs));
  dax::StandInHolder holder;  // so that nobody mounts the stack meanwhile
  DG_RETURN_IF_ERROR((*stack)->RegisterHolder(&holder));
  auto done = (*stack)->RunResync(progress);
  (*stack)->ReleaseHolder(&holder);
  if (!done.ok()) return done.status();
  // Known only now, unacknowledged: the next holder (a mount) hears of them.
  for (const dax::MediaRun& r : done->lost_media) {
    uint64_t sector = r.offset / kSectorSize, count = std::max<uint64_t>(1, r.len / kSectorSize);
    DG_RETURN_IF_ERROR(r.media->AddKnown({{sector, count, false}}));
    DG_RETURN_IF_ERROR(r.media->Unacknowledge(sector, count));
  }
  DG_RETURN_IF_ERROR(holder.RetellTo(**stack));
  return ReplaceReport{legs.size(), done->bytes, std::move(done->lost_sectors)};
}

// Writes `table` beside `stack` (".STACK.replace"), opens and resyncs
// `legs` of it, and only then gives it the stack's name.
Result<ReplaceReport> Rewrite(const std::string& stack, const std::vector<TableLine>& table,
                              const std::vector<std::pair<size_t, size_t>>& legs, const Stack::Progress& progress) {
  stdfs::path p = stdfs::absolute(stack);
  std::string next = (p.parent_path() / ("." + p.filename().string() + ".replace")).string();
  unlink(next.c_str());  // left by one that crashed
  DG_RETURN_IF_ERROR(WriteStackFile(next, table));
  auto report = Resync(next, legs, progress);
  Status named = report.ok() ? RenameStackFile(next, stack) : report.status();
  if (named.ok()) return report;
  unlink(next.c_str());
  // The new table's file is named as "STACK (new table)".
  std::string why = named.message();
  if (why.starts_with(next)) why = stack + " (new table)" + why.substr(next.size());
  return Status::Error(named.err(), why);
}

}  // namespace

Result<ReplaceReport> ReplaceLeg(const std::string& stack, const std::string& old_dev, const std::string& new_dev,
                                 std::optional<uint64_t> offset, const Stack::Progress& progress) {
  auto table = ReadStackFile(stack);
  if (!table.ok()) return table.status();
  auto legs = MoveLegs(&*table, stdfs::absolute(stack).parent_path(), old_dev, new_dev, offset);
  if (legs.empty()) return Status::Invalid(stack + ": no raid1 leg is on " + old_dev);
  return Rewrite(stack, *table, legs, progress);
}

Status FailLeg(const std::string& stack, const std::string& dev) {
  auto table = ReadStackFile(stack);
  if (!table.ok()) return table.status();
  if (dev == kMissingLeg || MoveLegs(&*table, stdfs::absolute(stack).parent_path(), dev, kMissingLeg, {}).empty())
    return Status::Invalid(stack + ": no raid1 leg is on " + dev);
  return Rewrite(stack, *table, {}, {}).status();
}

}  // namespace daxguard::dm
