#include "core/log.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace weir {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_write_mu;

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError: return "ERROR";
    case LogLevel::kWarn: return "WARN";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kDebug: return "DEBUG";
  }
  return "?";
}

int SyslogPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kError: return 3;
    case LogLevel::kWarn: return 4;
    case LogLevel::kInfo: return 6;
    case LogLevel::kDebug: return 7;
  }
  return 6;
}

bool UnderJournald() {
  static const bool journald = std::getenv("JOURNAL_STREAM") != nullptr;
  return journald;
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "error") *level = LogLevel::kError;
  else if (text == "warn" || text == "warning") *level = LogLevel::kWarn;
  else if (text == "info") *level = LogLevel::kInfo;
  else if (text == "debug") *level = LogLevel::kDebug;
  else return false;
  return true;
}

void Log(LogLevel level, const char* component, const char* format, ...) {
  char message[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof message, format, args);
  va_end(args);
  // One line per event, whatever the message holds (a list of config errors,
  // say): journald and line-based collectors split on newlines.
  size_t len = std::strlen(message);
  while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == '\r')) message[--len] = '\0';
  std::string one_line;
  if (std::memchr(message, '\n', len) != nullptr) {
    for (size_t i = 0; i < len; ++i) {
      if (message[i] == '\n')
        one_line += " | ";
      else if (message[i] != '\r')
        one_line += message[i];
    }
  }
  const char* text = one_line.empty() ? message : one_line.c_str();

  char prefix[64];
  if (UnderJournald()) {
    std::snprintf(prefix, sizeof prefix, "<%d>", SyslogPriority(level));
  } else {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tm utc;
    gmtime_r(&ts.tv_sec, &utc);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(prefix, sizeof prefix, "%s.%03ldZ ", when, ts.tv_nsec / 1000000);
  }
  std::lock_guard<std::mutex> lock(g_write_mu);
  std::fprintf(stderr, "%s%-5s %s: %s\n", prefix, LevelName(level), component, text);
}

bool RateLimiter::Allow(int64_t now_ms, int64_t* suppressed) {
  std::lock_guard<std::mutex> lock(mu_);
  if (window_start_ms_ == INT64_MIN || now_ms - window_start_ms_ >= interval_ms_) {
    window_start_ms_ = now_ms;
    used_ = 0;
  }
  if (used_ < burst_) {
    ++used_;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }
  ++suppressed_;
  return false;
}

}  // namespace weir
