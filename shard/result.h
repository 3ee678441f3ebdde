// Errors as values at module boundaries: a function that can fail on bad input returns Result<T>.
#pragma once
#include <fmt/format.h>

#include <string>
#include <utility>
#include <variant>

namespace tandem {

// What kind of failure, where a caller must react differently (the gRPC status it maps to).
enum class ErrorCode { Internal, InvalidArgument, ResourceExhausted, Unavailable };

struct Error {
  std::string message;
  ErrorCode code = ErrorCode::Internal;
};

template <class... Args>
Error make_error(fmt::format_string<Args...> f, Args&&... args) {
  return Error{fmt::format(f, std::forward<Args>(args)...)};
}

template <class... Args>
Error make_error(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  return Error{fmt::format(f, std::forward<Args>(args)...), code};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() { return Ok{}; }

}  // namespace tandem

// Propagate an error from an expression returning Result<...> or Status.
#define TANDEM_TRY(expr)                       \
  do {                                         \
    auto _r = (expr);                          \
    if (!_r.ok()) return _r.error();           \
  } while (0)
