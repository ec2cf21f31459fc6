// Logging: one line per event with time, level and component, to stderr.
// Under systemd (JOURNAL_STREAM set) lines carry a <N> priority prefix instead
// of a timestamp, so journald records the level. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string_view>

namespace weir {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// "error", "warn", "info", "debug"; false for anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);
inline bool LogEnabled(LogLevel level) { return level <= GetLogLevel(); }

void Log(LogLevel level, const char* component, const char* format, ...)
    __attribute__((format(printf, 3, 4)));

#define WEIR_LOG(level, component, ...)                                \
  do {                                                                 \
    if (::weir::LogEnabled(level)) ::weir::Log(level, component, __VA_ARGS__); \
  } while (0)
#define LOG_ERROR(component, ...) WEIR_LOG(::weir::LogLevel::kError, component, __VA_ARGS__)
#define LOG_WARN(component, ...) WEIR_LOG(::weir::LogLevel::kWarn, component, __VA_ARGS__)
#define LOG_INFO(component, ...) WEIR_LOG(::weir::LogLevel::kInfo, component, __VA_ARGS__)
#define LOG_DEBUG(component, ...) WEIR_LOG(::weir::LogLevel::kDebug, component, __VA_ARGS__)

// RateLimiter: lets through at most `burst` events per `interval_ms`; counts
// what it held back so the next line can say "(N similar suppressed)".
// Time is an argument so tests drive it by hand.
class RateLimiter {
 public:
  RateLimiter(int burst, int64_t interval_ms) : burst_(burst), interval_ms_(interval_ms) {}
  // True when this event should be logged; *suppressed gets the number held
  // back since the last event that was let through.
  bool Allow(int64_t now_ms, int64_t* suppressed);

 private:
  std::mutex mu_;
  const int burst_;
  const int64_t interval_ms_;
  int64_t window_start_ms_ = INT64_MIN;
  int used_ = 0;
  int64_t suppressed_ = 0;
};

}  // namespace weir
