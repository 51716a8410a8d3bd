#include "common/status.h"

#include <cstring>

namespace daxguard {

Status Status::FromErrno(int err, const std::string& what) {
  return Status(err, what + ": " + std::strerror(err));
}

}  // namespace daxguard
