#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <cerrno>
#include <chrono>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace codecell::store {
namespace {

// Schema history. Each step runs in its own transaction at open, together with the update of
// schema_version; steps are append-only (never edit a released one, add the next version).
// Only fixed DDL here: values always go through bound parameters.
struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE files (
  file_id           TEXT    NOT NULL PRIMARY KEY,
  user_id           TEXT    NOT NULL,
  filename          TEXT    NOT NULL,
  original_filename TEXT    NOT NULL,
  file_type         TEXT    NOT NULL,
  mime_type         TEXT    NOT NULL,
  file_size         INTEGER NOT NULL CHECK (file_size >= 0),
  sha256            TEXT    NOT NULL,
  storage_path      TEXT    NOT NULL,
  uploaded_at       INTEGER NOT NULL,
  expires_at        INTEGER,            -- NULL: never expires
  source            TEXT    NOT NULL DEFAULT 'upload'
);
CREATE INDEX files_user_expires ON files (user_id, expires_at);
-- file_id as the second column makes ListExpired's ORDER BY a plain index walk.
CREATE INDEX files_expires ON files (expires_at, file_id);

CREATE TABLE executions (
  execution_id      TEXT    NOT NULL PRIMARY KEY,
  user_id           TEXT    NOT NULL,
  started_at        INTEGER NOT NULL,
  finished_at       INTEGER NOT NULL,
  status            TEXT    NOT NULL,
  return_code       INTEGER NOT NULL,
  execution_time    REAL    NOT NULL,
  cpu_time          REAL,
  peak_memory_bytes INTEGER,
  generated_files   INTEGER NOT NULL
);
CREATE INDEX executions_user ON executions (user_id);

CREATE TABLE meta (
  key   TEXT NOT NULL PRIMARY KEY,
  value TEXT NOT NULL
);
)sql"},
    {2, R"sql(
CREATE TABLE packages (
  name            TEXT    NOT NULL PRIMARY KEY,
  version         TEXT    NOT NULL,
  installed_at    INTEGER NOT NULL,
  last_used       INTEGER,            -- NULL: never used since installed
  first_requester TEXT    NOT NULL,   -- '' for a dependency
  requested       INTEGER NOT NULL CHECK (requested IN (0, 1))
);
)sql"},
};

constexpr int kLatestVersion = kMigrations[std::size(kMigrations) - 1].version;

// Out of space: SQLITE_FULL, or an I/O error whose cause was ENOSPC/EDQUOT, or the WAL index
// (-shm) that could not grow.
bool IsDiskFull(int rc, int sys_errno) {
  const int primary = rc & 0xff;
  if (primary == SQLITE_FULL) return true;
  if (primary == SQLITE_IOERR) {
    return rc == SQLITE_IOERR_SHMSIZE || sys_errno == ENOSPC || sys_errno == EDQUOT;
  }
  return false;
}

[[noreturn]] void Fail(sqlite3* db, int rc, const std::string& what) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int sys_errno = db != nullptr ? sqlite3_system_errno(db) : 0;
  throw StoreError("sqlite: " + what + ": " + detail, IsDiskFull(rc, sys_errno));
}

int64_t ToInt64(uint64_t value, const char* what) {
  if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw StoreError(std::string("sqlite: ") + what + " out of range");
  }
  return static_cast<int64_t>(value);
}

Millis NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A cached prepared statement in use: bind, step, read; reset (and bindings cleared) when it
// goes out of scope, so that no statement keeps a read snapshot open.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt, const char* what)
      : db_(db), stmt_(stmt), what_(what) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  void BindText(int index, const std::string& value) {
    Check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8));
  }
  void BindInt(int index, int64_t value) { Check(sqlite3_bind_int64(stmt_, index, value)); }
  void BindReal(int index, double value) { Check(sqlite3_bind_double(stmt_, index, value)); }
  void BindNull(int index) { Check(sqlite3_bind_null(stmt_, index)); }

  // True: a row is ready; false: done.
  bool Step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    Fail(db_, rc, what_);
  }
  // Runs a statement that returns no rows.
  void Run() {
    while (Step()) {
    }
  }
  // Ready for the next execution, keeping the bindings.
  void Reset() { sqlite3_reset(stmt_); }

  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  double Real(int column) const { return sqlite3_column_double(stmt_, column); }
  std::string Text(int column) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    if (text == nullptr) return {};
    return std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK) Fail(db_, rc, std::string(what_) + " (bind)");
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  const char* what_;
};

#define CODECELL_FILE_COLUMNS                                                                \
  "file_id, user_id, filename, original_filename, file_type, mime_type, file_size, sha256, " \
  "storage_path, uploaded_at, expires_at, source"
#define CODECELL_LIVE "(expires_at IS NULL OR expires_at > ?)"

FileRecord ReadFile(const Statement& s) {
  FileRecord f;
  f.file_id = s.Text(0);
  f.user_id = s.Text(1);
  f.filename = s.Text(2);
  f.original_filename = s.Text(3);
  f.file_type = s.Text(4);
  f.mime_type = s.Text(5);
  f.file_size = static_cast<uint64_t>(s.Int(6));
  f.sha256 = s.Text(7);
  f.storage_path = s.Text(8);
  f.uploaded_at = s.Int(9);
  if (!s.IsNull(10)) f.expires_at = s.Int(10);
  f.source = s.Text(11);
  return f;
}

class SqliteStore final : public Store {
 public:
  // Takes ownership of `db` (closed by the destructor, also when the constructor's caller
  // throws afterwards).
  explicit SqliteStore(sqlite3* db) : db_(db) {}

  ~SqliteStore() override {
    std::lock_guard lock(mu_);
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    statements_.clear();
    sqlite3_exec(db_, "PRAGMA optimize", nullptr, nullptr, nullptr);
    sqlite3_close_v2(db_);
  }

  void Initialize(const std::string& path, const SqliteStoreOptions& options) {
    std::lock_guard lock(mu_);
    Configure(path, options);
    Migrate(path);
  }

  int schema_version() override {
    std::lock_guard lock(mu_);
    return version_;
  }

  void InsertFile(const FileRecord& file) override {
    std::lock_guard lock(mu_);
    Statement s = Prepare("INSERT INTO files (" CODECELL_FILE_COLUMNS
                          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                          "InsertFile");
    s.BindText(1, file.file_id);
    s.BindText(2, file.user_id);
    s.BindText(3, file.filename);
    s.BindText(4, file.original_filename);
    s.BindText(5, file.file_type);
    s.BindText(6, file.mime_type);
    s.BindInt(7, ToInt64(file.file_size, "file_size"));
    s.BindText(8, file.sha256);
    s.BindText(9, file.storage_path);
    s.BindInt(10, file.uploaded_at);
    if (file.expires_at) {
      s.BindInt(11, *file.expires_at);
    } else {
      s.BindNull(11);
    }
    s.BindText(12, file.source);
    RunInsert(s, "file_id", file.file_id);
  }

  std::optional<FileRecord> GetLiveFile(const std::string& user_id, const std::string& file_id,
                                        Millis now) override {
    std::lock_guard lock(mu_);
    Statement s = Prepare("SELECT " CODECELL_FILE_COLUMNS
                          " FROM files WHERE file_id = ? AND user_id = ? AND " CODECELL_LIVE,
                          "GetLiveFile");
    s.BindText(1, file_id);
    s.BindText(2, user_id);
    s.BindInt(3, now);
    if (!s.Step()) return std::nullopt;
    return ReadFile(s);
  }

  std::vector<FileRecord> ListLiveFiles(const std::string& user_id, Millis now) override {
    std::lock_guard lock(mu_);
    Statement s =
        Prepare("SELECT " CODECELL_FILE_COLUMNS " FROM files WHERE user_id = ? AND " CODECELL_LIVE
                " ORDER BY uploaded_at, file_id",
                "ListLiveFiles");
    s.BindText(1, user_id);
    s.BindInt(2, now);
    std::vector<FileRecord> files;
    while (s.Step()) files.push_back(ReadFile(s));
    return files;
  }

  Usage LiveUsage(const std::string& user_id, Millis now) override {
    std::lock_guard lock(mu_);
    Statement s = Prepare(
        "SELECT COUNT(*), COALESCE(SUM(file_size), 0) FROM files "
        "WHERE user_id = ? AND " CODECELL_LIVE,
        "LiveUsage");
    s.BindText(1, user_id);
    s.BindInt(2, now);
    return ReadUsage(s);
  }

  Usage TotalLiveUsage(Millis now) override {
    std::lock_guard lock(mu_);
    Statement s =
        Prepare("SELECT COUNT(*), COALESCE(SUM(file_size), 0) FROM files WHERE " CODECELL_LIVE,
                "TotalLiveUsage");
    s.BindInt(1, now);
    return ReadUsage(s);
  }

  std::optional<FileRecord> DeleteFile(const std::string& user_id,
                                       const std::string& file_id) override {
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    std::optional<FileRecord> found;
    {
      Statement s =
          Prepare("SELECT " CODECELL_FILE_COLUMNS " FROM files WHERE file_id = ?1 AND user_id = ?2",
                  "DeleteFile (select)");
      s.BindText(1, file_id);
      s.BindText(2, user_id);
      if (s.Step()) found = ReadFile(s);
    }
    if (found) {
      Statement s = Prepare("DELETE FROM files WHERE file_id = ?1 AND user_id = ?2", "DeleteFile");
      s.BindText(1, file_id);
      s.BindText(2, user_id);
      s.Run();
    }
    tx.Commit();
    return found;
  }

  std::vector<FileRecord> DeleteAllFiles(const std::string& user_id) override {
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    std::vector<FileRecord> files;
    {
      Statement s = Prepare("SELECT " CODECELL_FILE_COLUMNS
                            " FROM files WHERE user_id = ?1 ORDER BY uploaded_at, file_id",
                            "DeleteAllFiles (select)");
      s.BindText(1, user_id);
      while (s.Step()) files.push_back(ReadFile(s));
    }
    if (!files.empty()) {
      Statement s = Prepare("DELETE FROM files WHERE user_id = ?1", "DeleteAllFiles");
      s.BindText(1, user_id);
      s.Run();
    }
    tx.Commit();
    return files;
  }

  std::vector<FileRecord> ListExpired(Millis now, size_t limit) override {
    std::vector<FileRecord> files;
    if (limit == 0) return files;
    std::lock_guard lock(mu_);
    // NULL never compares <= now, so never-expiring files are excluded; files_expires serves
    // both the range and the order.
    Statement s = Prepare("SELECT " CODECELL_FILE_COLUMNS
                          " FROM files WHERE expires_at <= ?1 ORDER BY expires_at, file_id "
                          "LIMIT ?2",
                          "ListExpired");
    s.BindInt(1, now);
    s.BindInt(2, limit > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                     ? std::numeric_limits<int64_t>::max()
                     : static_cast<int64_t>(limit));
    while (s.Step()) files.push_back(ReadFile(s));
    return files;
  }

  size_t DeleteExpired(const std::vector<std::string>& file_ids, Millis now) override {
    if (file_ids.empty()) return 0;
    std::lock_guard lock(mu_);
    // One write transaction for the whole batch; one prepared statement stepped per id (the
    // cost is the index updates, not the statement).
    Transaction tx(*this);
    size_t deleted = 0;
    {
      Statement s =
          Prepare("DELETE FROM files WHERE file_id = ?1 AND expires_at <= ?2", "DeleteExpired");
      s.BindInt(2, now);
      for (const std::string& id : file_ids) {
        s.BindText(1, id);
        s.Run();
        deleted += static_cast<size_t>(sqlite3_changes(db_));
        s.Reset();
      }
    }
    tx.Commit();
    return deleted;
  }

  std::vector<std::pair<std::string, std::string>> AllStoragePaths() override {
    std::lock_guard lock(mu_);
    Statement s =
        Prepare("SELECT file_id, storage_path FROM files ORDER BY file_id", "AllStoragePaths");
    std::vector<std::pair<std::string, std::string>> paths;
    while (s.Step()) paths.emplace_back(s.Text(0), s.Text(1));
    return paths;
  }

  void DeleteFileRecord(const std::string& file_id) override {
    std::lock_guard lock(mu_);
    Statement s = Prepare("DELETE FROM files WHERE file_id = ?1", "DeleteFileRecord");
    s.BindText(1, file_id);
    s.Run();
  }

  void InsertExecution(const ExecutionRecord& e) override {
    std::lock_guard lock(mu_);
    Statement s = Prepare(
        "INSERT INTO executions (execution_id, user_id, started_at, finished_at, status, "
        "return_code, execution_time, cpu_time, peak_memory_bytes, generated_files) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        "InsertExecution");
    s.BindText(1, e.execution_id);
    s.BindText(2, e.user_id);
    s.BindInt(3, e.started_at);
    s.BindInt(4, e.finished_at);
    s.BindText(5, e.status);
    s.BindInt(6, e.return_code);
    s.BindReal(7, e.execution_time);
    if (e.cpu_time) {
      s.BindReal(8, *e.cpu_time);
    } else {
      s.BindNull(8);
    }
    if (e.peak_memory_bytes) {
      s.BindInt(9, ToInt64(*e.peak_memory_bytes, "peak_memory_bytes"));
    } else {
      s.BindNull(9);
    }
    s.BindInt(10, ToInt64(e.generated_files, "generated_files"));
    RunInsert(s, "execution_id", e.execution_id);
  }

  std::optional<ExecutionRecord> GetExecution(const std::string& execution_id) override {
    std::lock_guard lock(mu_);
    Statement s = Prepare(
        "SELECT execution_id, user_id, started_at, finished_at, status, return_code, "
        "execution_time, cpu_time, peak_memory_bytes, generated_files "
        "FROM executions WHERE execution_id = ?1",
        "GetExecution");
    s.BindText(1, execution_id);
    if (!s.Step()) return std::nullopt;
    ExecutionRecord e;
    e.execution_id = s.Text(0);
    e.user_id = s.Text(1);
    e.started_at = s.Int(2);
    e.finished_at = s.Int(3);
    e.status = s.Text(4);
    e.return_code = static_cast<int>(s.Int(5));
    e.execution_time = s.Real(6);
    if (!s.IsNull(7)) e.cpu_time = s.Real(7);
    if (!s.IsNull(8)) e.peak_memory_bytes = static_cast<uint64_t>(s.Int(8));
    e.generated_files = static_cast<size_t>(s.Int(9));
    return e;
  }

  void SetMeta(const std::string& key, const std::string& value) override {
    std::lock_guard lock(mu_);
    Statement s = Prepare(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        "SetMeta");
    s.BindText(1, key);
    s.BindText(2, value);
    s.Run();
  }

  void ReplacePackages(const std::vector<PackageRecord>& packages) override {
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    Prepare("DELETE FROM packages", "ReplacePackages").Run();
    for (const auto& p : packages) {
      Statement s = Prepare(
          "INSERT INTO packages (name, version, installed_at, last_used, first_requester, "
          "requested) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
          "ReplacePackages");
      s.BindText(1, p.name);
      s.BindText(2, p.version);
      s.BindInt(3, p.installed_at);
      if (p.last_used) {
        s.BindInt(4, *p.last_used);
      } else {
        s.BindNull(4);
      }
      s.BindText(5, p.first_requester);
      s.BindInt(6, p.requested ? 1 : 0);
      s.Run();
    }
    tx.Commit();
  }

  std::vector<PackageRecord> ListPackages() override {
    std::lock_guard lock(mu_);
    Statement s = Prepare(
        "SELECT name, version, installed_at, last_used, first_requester, requested "
        "FROM packages ORDER BY name",
        "ListPackages");
    std::vector<PackageRecord> out;
    while (s.Step()) {
      PackageRecord p;
      p.name = s.Text(0);
      p.version = s.Text(1);
      p.installed_at = s.Int(2);
      if (!s.IsNull(3)) p.last_used = s.Int(3);
      p.first_requester = s.Text(4);
      p.requested = s.Int(5) != 0;
      out.push_back(std::move(p));
    }
    return out;
  }

  void TouchPackages(const std::vector<std::string>& names, Millis now) override {
    if (names.empty()) return;
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    for (const auto& name : names) {
      Statement s = Prepare("UPDATE packages SET last_used = ?2 WHERE name = ?1", "TouchPackages");
      s.BindText(1, name);
      s.BindInt(2, now);
      s.Run();
    }
    tx.Commit();
  }

  std::optional<std::string> GetMeta(const std::string& key) override {
    std::lock_guard lock(mu_);
    Statement s = Prepare("SELECT value FROM meta WHERE key = ?1", "GetMeta");
    s.BindText(1, key);
    if (!s.Step()) return std::nullopt;
    return s.Text(0);
  }

 private:
  // BEGIN IMMEDIATE: takes the write lock up front, so that a concurrent writer in another
  // process waits in the busy handler instead of failing on lock upgrade. Rolls back unless
  // committed. Callers hold mu_.
  class Transaction {
   public:
    explicit Transaction(SqliteStore& store) : store_(store) {
      store_.Prepare("BEGIN IMMEDIATE", "begin transaction").Run();
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
      if (!committed_ && sqlite3_get_autocommit(store_.db_) == 0) {
        sqlite3_exec(store_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
      }
    }
    void Commit() {
      store_.Prepare("COMMIT", "commit").Run();
      committed_ = true;
    }

   private:
    SqliteStore& store_;
    bool committed_ = false;
  };

  // A cached statement (prepared once per connection). Callers hold mu_.
  Statement Prepare(const char* sql, const char* what) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      sqlite3_stmt* stmt = nullptr;
      const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) Fail(db_, rc, std::string(what) + " (prepare)");
      it = statements_.emplace(sql, stmt).first;
    }
    return Statement(db_, it->second, what);
  }

  void Exec(const char* sql, const std::string& what) {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) Fail(db_, rc, what);
  }

  // Runs an INSERT whose only constraint that callers can break is the unique id.
  void RunInsert(Statement& s, const char* id_name, const std::string& id) {
    try {
      s.Run();
    } catch (const StoreError&) {
      const int rc = sqlite3_extended_errcode(db_);
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        throw StoreError(std::string("duplicate ") + id_name + " '" + id + "'");
      }
      throw;
    }
  }

  static Usage ReadUsage(Statement& s) {
    Usage usage;
    if (s.Step()) {
      usage.files = static_cast<uint64_t>(s.Int(0));
      usage.bytes = static_cast<uint64_t>(s.Int(1));
    }
    return usage;
  }

  std::string PragmaText(const char* sql) {
    Statement s = Prepare(sql, sql);
    return s.Step() ? s.Text(0) : std::string();
  }

  void Configure(const std::string& path, const SqliteStoreOptions& options) {
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, options.busy_timeout_ms);
    const bool in_memory = path.empty() || path == ":memory:";
    const std::string mode = PragmaText("PRAGMA journal_mode = WAL");
    if (!in_memory && mode != "wal") {
      throw StoreError("sqlite: cannot switch " + path + " to WAL (journal_mode is '" + mode +
                       "')");
    }
    Exec("PRAGMA synchronous = NORMAL", "PRAGMA synchronous");
    Exec("PRAGMA foreign_keys = ON", "PRAGMA foreign_keys");
    if (PragmaText("PRAGMA foreign_keys") != "1") {
      throw StoreError("sqlite: this SQLite build cannot enforce foreign keys");
    }
    // After a checkpoint, a WAL grown by a large cleanup is cut back to this size.
    Exec("PRAGMA journal_size_limit = 67108864", "PRAGMA journal_size_limit");
    // Up to 16 MiB of page cache (SQLite's default is 2 MiB): a cleanup batch touches pages all
    // over the file_id and user indexes; measured ~40% off deleting 100,000 expired rows.
    Exec("PRAGMA cache_size = -16384", "PRAGMA cache_size");
    if (options.max_page_count > 0) {
      // PRAGMA takes no bound parameters; the value is an integer, formatted here.
      const std::string sql = "PRAGMA max_page_count = " + std::to_string(options.max_page_count);
      Exec(sql.c_str(), "PRAGMA max_page_count");
    }
  }

  int ReadVersion() {
    Statement s = Prepare("SELECT MAX(version) FROM schema_version", "read schema_version");
    if (!s.Step() || s.IsNull(0)) return 0;
    return static_cast<int>(s.Int(0));
  }

  void Migrate(const std::string& path) {
    int version = 0;
    {
      Transaction tx(*this);
      Exec(
          "CREATE TABLE IF NOT EXISTS schema_version ("
          "id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), "
          "version INTEGER NOT NULL, "
          "applied_at INTEGER NOT NULL)",
          "create schema_version");
      version = ReadVersion();
      tx.Commit();
    }
    if (version > kLatestVersion) {
      throw StoreError("database " + path + " has schema version " + std::to_string(version) +
                       ", newer than this codecell supports (" + std::to_string(kLatestVersion) +
                       "); upgrade codecell or use another data directory");
    }
    for (const Migration& migration : kMigrations) {
      if (migration.version <= version) continue;
      Transaction tx(*this);
      // Another process may have migrated between our transactions.
      version = ReadVersion();
      if (migration.version > version) {
        Exec(migration.sql, "migration to schema version " + std::to_string(migration.version));
        Statement s = Prepare(
            "INSERT INTO schema_version (id, version, applied_at) VALUES (1, ?1, ?2) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version, "
            "applied_at = excluded.applied_at",
            "record schema_version");
        s.BindInt(1, migration.version);
        s.BindInt(2, NowMillis());
        s.Run();
        version = migration.version;
      }
      tx.Commit();
    }
    version_ = version;
  }

  sqlite3* db_;
  std::mutex mu_;
  // Keyed by SQL text: every statement is a fixed string.
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
  int version_ = 0;
};

#undef CODECELL_FILE_COLUMNS
#undef CODECELL_LIVE

}  // namespace

std::unique_ptr<Store> OpenSqliteStore(const std::string& path, const SqliteStoreOptions& options) {
  sqlite3* db = nullptr;
  // One connection, serialized by SqliteStore's own mutex: SQLite's per-connection mutex would be
  // redundant. No SQLITE_OPEN_URI: the path is a plain file name.
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    const int sys_errno = db != nullptr ? sqlite3_system_errno(db) : 0;
    sqlite3_close_v2(db);
    throw StoreError("cannot open database " + path + ": " + detail, IsDiskFull(rc, sys_errno));
  }
  auto store = std::make_unique<SqliteStore>(db);
  store->Initialize(path, options);
  return store;
}

std::unique_ptr<Store> OpenSqliteStore(const std::string& path) {
  return OpenSqliteStore(path, SqliteStoreOptions{});
}

int SqliteLatestSchemaVersion() { return kLatestVersion; }

}  // namespace codecell::store
