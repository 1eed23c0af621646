// Errors as values. Every fallible call across a module boundary returns
// Status or Expected<T>; the CLI turns a failed one into one line on stderr
// and a non-zero exit code.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace dydca {

class [[nodiscard]] Status {
 public:
  Status() = default;  // success
  static Status ok() { return {}; }
  static Status error(std::string message) {
    Status s;
    s.failed_ = true;
    s.message_ = std::move(message);
    return s;
  }
  bool is_ok() const { return !failed_; }
  explicit operator bool() const { return !failed_; }
  const std::string& message() const { return message_; }
  // Prefixes context ("open input.mp4: ") to an error, keeps success as is.
  Status with_context(const std::string& context) const {
    return failed_ ? error(context + ": " + message_) : *this;
  }

 private:
  bool failed_ = false;
  std::string message_;
};

template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Expected(Status error) : v_(std::move(error)) { assert(!std::get<Status>(v_).is_ok()); }

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  Status status() const { return has_value() ? Status::ok() : std::get<1>(v_); }
  const std::string& error_message() const { return std::get<1>(v_).message(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace dydca

// Early return of a failed Status (or the status of a failed Expected).
#define DYDCA_TRY(expr)                          \
  do {                                           \
    ::dydca::Status dydca_try_s_ = (expr);       \
    if (!dydca_try_s_) return dydca_try_s_;      \
  } while (0)
