// Status and Result<T>: how errors travel between modules (no exceptions
// cross a module border). The code says whether retrying can help.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace weir {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad input or config: retrying the same thing will not help
  kNotFound,
  kAlreadyExists,
  kUnavailable,       // transient (broker down, database busy): retry later
  kResourceExhausted, // disk full, queue full, max_bytes reached
  kDataLoss,          // corruption
  kFailedPrecondition,
  kInternal,
  kCancelled,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message", for logs and error output.
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }

// Result<T>: a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace weir

#define WEIR_CONCAT_INNER(a, b) a##b
#define WEIR_CONCAT(a, b) WEIR_CONCAT_INNER(a, b)

// RETURN_IF_ERROR(expr): return the Status from the enclosing function when
// `expr` is not ok; keeps the happy path flat.
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    ::weir::Status WEIR_CONCAT(_st_, __LINE__) = (expr);        \
    if (!WEIR_CONCAT(_st_, __LINE__).ok()) return WEIR_CONCAT(_st_, __LINE__); \
  } while (0)
