// `weir replay`: placeholder until the replay driver lands.
#include <cstdio>

#include "runtime/commands.h"

namespace weir {

int RunReplay(const ReplayOptions&) {
  std::fprintf(stderr, "weir replay: not implemented yet\n");
  return 1;
}

}  // namespace weir
