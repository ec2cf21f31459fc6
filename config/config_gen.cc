// weir-config-gen: prints what the key table generates, so the checked-in
// configs/weir.schema.json and docs/config.md can be regenerated and checked.
//   weir-config-gen schema     -> configs/weir.schema.json
//   weir-config-gen reference  -> docs/config.md
#include <cstdio>
#include <cstring>
#include <string>

#include "config/config_keys.h"

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "schema") == 0) {
    std::fputs(weir::GenerateConfigSchema().c_str(), stdout);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "reference") == 0) {
    std::fputs(weir::GenerateConfigReference().c_str(), stdout);
    return 0;
  }
  std::fprintf(stderr, "usage: weir-config-gen schema|reference\n");
  return 2;
}
