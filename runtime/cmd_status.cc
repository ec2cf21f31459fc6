// `weir status`: not yet implemented (issue 9).
#include <cstdio>

#include "runtime/commands.h"

namespace weir {

int RunStatus(const StatusOptions&) {
  std::fprintf(stderr, "weir status: not implemented yet\n");
  return 1;
}

}  // namespace weir
