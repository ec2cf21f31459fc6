// Internal to storage/: creating, migrating and checking the schema.
#pragma once

#include "core/status.h"
#include "storage/sqlite_util.h"

namespace weir {
namespace storage_internal {

// PRAGMA application_id of a weir database ("weir" in ASCII).
inline constexpr int kApplicationId = 0x77656972;

// Creates the schema in a new file or migrates an older one, in one
// transaction. Refuses a file written by a newer weir or by another program.
Status PrepareSchema(Db* db);

// For readers: the file is a weir database this build can read; returns
// its user_version.
Result<int> CheckSchema(Db* db);

}  // namespace storage_internal
}  // namespace weir
