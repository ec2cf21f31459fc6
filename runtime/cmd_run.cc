// `weir run`: the daemon (being wired; see runtime/README).
#include <cstdio>

#include "runtime/commands.h"

namespace weir {

int RunDaemon(const RunOptions&) {
  std::fprintf(stderr, "weir run: not implemented yet\n");
  return 1;
}

}  // namespace weir
