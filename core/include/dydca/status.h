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

// What kind of failure a Status is, for callers that act on it (the C API's
// error codes; a player that ends quietly on a cancel). Flow is a code, never
// a message search. kFailed: any other failure (the message says what).
// End of stream and "try again" are flow, not errors: they are not here.
enum class StatusCode : uint8_t {
  kOk = 0,
  kFailed,           // unclassified failure
  kInvalidArgument,  // the caller passed something out of range
  kInvalidData,      // damaged, truncated or non-conforming input
  kUnsupported,      // valid input this build or CPU cannot handle
  kOutOfMemory,
  kIo,               // the input cannot be opened or read
  kCancelled,        // the caller asked to stop
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // success
  static Status ok() { return {}; }
  static Status error(std::string message, StatusCode code = StatusCode::kFailed) {
    Status s;
    s.code_ = code == StatusCode::kOk ? StatusCode::kFailed : code;
    s.message_ = std::move(message);
    return s;
  }
  static Status cancelled() { return error("cancelled", StatusCode::kCancelled); }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  bool is_cancelled() const { return code_ == StatusCode::kCancelled; }
  const std::string& message() const { return message_; }
  // Prefixes context ("open input.mp4: ") to an error, keeps success as is
  // (and the code).
  Status with_context(const std::string& context) const {
    return is_ok() ? *this : error(context + ": " + message_, code_);
  }
  // An unclassified failure (kFailed) becomes `code`; success and classified
  // failures stay as they are (the innermost classification wins).
  Status or_code(StatusCode code) const {
    Status s = *this;
    if (s.code_ == StatusCode::kFailed) s.code_ = code;
    return s;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
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

// Declares `decl` from the value of an Expected<T>, or returns its Status
// from the enclosing function (which returns Status or some Expected<U>):
//   DYDCA_ASSIGN_OR_RETURN(auto reader, VideoReader::open(path));
//   reader.read(frame);  // the value itself: no * or ->
// A statement of its own (it declares `decl` in the enclosing scope, so it
// cannot be the body of an unbraced if or loop). The Expected is moved from.
#define DYDCA_ASSIGN_OR_RETURN(decl, ...) \
  DYDCA_ASSIGN_OR_RETURN_IMPL_(DYDCA_STATUS_CONCAT_(dydca_aor_, __COUNTER__), decl, __VA_ARGS__)
#define DYDCA_ASSIGN_OR_RETURN_IMPL_(tmp, decl, ...) \
  auto tmp = (__VA_ARGS__);                          \
  if (!tmp) return tmp.status();                     \
  decl = std::move(tmp).value()
#define DYDCA_STATUS_CONCAT_(a, b) DYDCA_STATUS_CONCAT_INNER_(a, b)
#define DYDCA_STATUS_CONCAT_INNER_(a, b) a##b
