#include "common/status.h"

#include <cstring>

namespace daxguard {

const std::string& Status::message() const {
  static const std::string kEmpty;
  return state_ ? state_->msg : kEmpty;
}

Status Status::FromErrno(int err, const std::string& what) {
  return Status(err, what + ": " + std::strerror(err));
}

}  // namespace daxguard
