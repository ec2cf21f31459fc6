// The `weir` subcommands (DESIGN section 3). Each returns the process exit code.
#pragma once

#include <string>

namespace weir {

struct ValidateOptions {
  std::string config_path;
  std::string db_path;           // --db: also report what starting on it would do (6.5)
  int64_t memory_limit_bytes = 0;  // --memory: warn when the budget exceeds it
};
int RunValidate(const ValidateOptions& options);  // 0 valid, 2 invalid, 1 unusable

struct ReplayOptions {
  std::string config_path;
  std::string input_path;
  std::string output_path;  // empty: stdout
  std::string db_path;      // empty: in-memory storage
  bool drain = false;
};
int RunReplay(const ReplayOptions& options);  // 0 read all input, 1 unusable, 2 invalid config

struct RunOptions {
  std::string config_path;
  std::string log_level = "info";
};
int RunDaemon(const RunOptions& options);

struct StatusOptions {
  std::string db_path;
  std::string url;
  bool json = false;
  bool watch = false;
};
int RunStatus(const StatusOptions& options);

}  // namespace weir
