#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "store/store.h"

namespace codecell::store {

struct SqliteStoreOptions {
  // How long a statement waits for another process's lock (e.g. `codecell cleanup` while the
  // daemon runs) before failing with "database is locked".
  int busy_timeout_ms = 5000;
  // Caps the database at this many pages (0: SQLite's default cap). Lets tests provoke a full
  // database without a full disk.
  int64_t max_page_count = 0;
};

// OpenSqliteStore(path) with explicit options.
std::unique_ptr<Store> OpenSqliteStore(const std::string& path, const SqliteStoreOptions& options);

// The newest schema version this code can migrate to (what schema_version() answers after a
// successful open).
int SqliteLatestSchemaVersion();

}  // namespace codecell::store
