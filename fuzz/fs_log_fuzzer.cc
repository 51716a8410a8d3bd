// Filesystem logs whose records pass their checksums: the input's record
// payloads (see fs_input.h) are sealed into a valid log on a 16 MiB device,
// with the damage, poison and superblock states the input asks for, so the
// fuzzer explores what records say: snapshots, reverse-map records, every
// operation in any order. Then ExerciseFilesystem.
#include <cstddef>
#include <cstdint>

#include "fuzz/fs_exercise.h"
#include "fuzz/fs_input.h"

using namespace daxguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Cursor c(data, size);
  fuzz::LogInput in = fuzz::DecodeLog(c);
  const std::string path = fuzz::ScratchPath("fs-log");
  fuzz::LayLog(*fuzz::FreshFsDevice(path), in);
  fuzz::ExerciseFilesystem(path);
  return 0;
}
