// Filesystem images as they are on the device: the input's bytes become
// the superblocks, clean-end records and log copies of a 16 MiB device
// (see fs_input.h), checksums and all; then ExerciseFilesystem.
#include <cstddef>
#include <cstdint>

#include "fuzz/fs_exercise.h"
#include "fuzz/fs_input.h"

using namespace daxguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Cursor c(data, size);
  fuzz::ImageInput in = fuzz::DecodeImage(c);
  const std::string path = fuzz::ScratchPath("fs-image");
  fuzz::LayImage(*fuzz::FreshFsDevice(path), in);
  fuzz::ExerciseFilesystem(path);
  return 0;
}
