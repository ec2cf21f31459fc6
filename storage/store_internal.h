// Internal to storage/: pieces the Store, its JournalWriter and StoreReader share.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "storage/sqlite_util.h"
#include "storage/store.h"

namespace weir {
namespace storage_internal {

inline constexpr int64_t kMinMaxBytes = 256 * 1024;

// Page budget from storage.max_bytes (all zero when unbounded).
struct StoreLimits {
  int64_t page_size = 4096;
  int64_t wal_reserve_bytes = 0;  // the WAL is truncated back to this after checkpoints
  int64_t hard_pages = 0;         // PRAGMA max_page_count: SQLITE_FULL beyond
  int64_t soft_pages = 0;         // on_full acts above this many pages in use
  int64_t target_pages = 0;       // drop_oldest frees down to this
};
Result<StoreLimits> ComputeLimits(int64_t max_bytes, int64_t page_size);

// WAL mode, synchronous, and the size limits, for one writing connection.
Status ConfigureWriter(Db* db, SyncMode sync, const StoreLimits& limits);

int64_t SystemNowMs();
int64_t FileSize(const std::string& path);  // 0 when missing

Result<std::unique_ptr<JournalWriter>> OpenJournalWriter(const StoreOptions& options,
                                                         const StoreLimits& limits);

}  // namespace storage_internal
}  // namespace weir
