// Status and Result: how every layer reports failure without exceptions.
// A Status carries an errno value (so callers can map it to what Linux would
// return: EIO, EHWPOISON, ENXIO, ...) and a one-line human message.
#pragma once

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <variant>

namespace daxguard {

// Like LevelDB's, an OK Status is a null pointer, so the passing case on the
// data path costs nothing to build, copy or destroy.
class [[nodiscard]] Status {
 public:
  Status() noexcept = default;
  Status(const Status& o) : state_(o.state_ ? std::make_unique<State>(*o.state_) : nullptr) {}
  Status& operator=(const Status& o) {
    if (this != &o) state_ = o.state_ ? std::make_unique<State>(*o.state_) : nullptr;
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status Ok() { return Status(); }
  static Status Error(int err, std::string msg) { return Status(err, std::move(msg)); }
  static Status Invalid(std::string msg) { return Status(EINVAL, std::move(msg)); }
  static Status Io(std::string msg) { return Status(EIO, std::move(msg)); }
  static Status Poison(std::string msg) { return Status(EHWPOISON, std::move(msg)); }
  static Status Range(std::string msg) { return Status(ERANGE, std::move(msg)); }
  static Status Busy(std::string msg) { return Status(EBUSY, std::move(msg)); }
  static Status Corrupt(std::string msg) { return Status(EUCLEAN, std::move(msg)); }
  static Status FromErrno(int err, const std::string& what);

  bool ok() const { return state_ == nullptr; }
  int err() const { return state_ ? state_->err : 0; }
  const std::string& message() const;
  std::string ToString() const { return ok() ? "OK" : state_->msg; }

 private:
  struct State {
    int err;
    std::string msg;
  };
  Status(int err, std::string msg) : state_(std::make_unique<State>(State{err, std::move(msg)})) {}
  std::unique_ptr<State> state_;
};

// A value or the Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}           // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}    // NOLINT: implicit by design
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  T value_or(T alt) const { return ok() ? value() : alt; }

 private:
  std::variant<T, Status> v_;
};

}  // namespace daxguard

// Propagate a failed Status from the current function.
#define DG_RETURN_IF_ERROR(expr)            \
  do {                                      \
    ::daxguard::Status dg_s_ = (expr);      \
    if (!dg_s_.ok()) return dg_s_;          \
  } while (0)

// `lhs = *expr` when the Result holds a value; else return its Status.
#define DG_ASSIGN_OR_RETURN(lhs, expr) DG_ASSIGN_OR_RETURN_I(DG_CONCAT(dg_r_, __LINE__), lhs, expr)
#define DG_ASSIGN_OR_RETURN_I(r, lhs, expr) \
  auto r = (expr);                          \
  if (!r.ok()) return r.status();           \
  lhs = std::move(r).value()
#define DG_CONCAT(a, b) DG_CONCAT_I(a, b)
#define DG_CONCAT_I(a, b) a##b
