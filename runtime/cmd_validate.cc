// `weir validate`: placeholder until the config table lands.
#include <cstdio>

#include "runtime/commands.h"

namespace weir {

int RunValidate(const ValidateOptions&) {
  std::fprintf(stderr, "weir validate: not implemented yet\n");
  return 1;
}

}  // namespace weir
