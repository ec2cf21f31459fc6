// `weir run`: parses the flags and hands over to the Daemon.
#include <cstdio>

#include "core/log.h"
#include "runtime/commands.h"
#include "runtime/daemon.h"

namespace weir {

int RunDaemon(const RunOptions& options) {
  LogLevel level;
  if (!ParseLogLevel(options.log_level, &level)) {
    std::fprintf(stderr, "weir run: --log-level %s: use error, warn, info or debug\n",
                 options.log_level.c_str());
    return 2;
  }
  SetLogLevel(level);
  Daemon daemon(DaemonOptions{options.config_path});
  return daemon.Run();
}

}  // namespace weir
