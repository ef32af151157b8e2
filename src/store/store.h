#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace codecell::store {

// Times are Unix milliseconds, UTC.
using Millis = int64_t;

// A stored file (SPEC "File object", plus where its bytes live).
struct FileRecord {
  std::string file_id;  // opaque, URL-safe, >= 96 random bits; unique
  std::string user_id;
  std::string filename;           // sanitized display name (no separators, no control chars)
  std::string original_filename;  // as uploaded (for display only), may be any UTF-8
  std::string file_type;          // image, data, text, structured, html, pdf, code, archive, other
  std::string mime_type;
  uint64_t file_size = 0;
  std::string sha256;        // lowercase hex
  std::string storage_path;  // relative to the data dir's files/ directory
  Millis uploaded_at = 0;
  std::optional<Millis> expires_at;  // nullopt: never expires
  std::string source = "upload";     // upload | generated
};

struct ExecutionRecord {
  std::string execution_id;
  std::string user_id;
  Millis started_at = 0;
  Millis finished_at = 0;
  std::string status;  // ok | error | timeout | oom | killed | failed (codecell could not run it)
  int return_code = 0;
  double execution_time = 0;
  std::optional<double> cpu_time;
  std::optional<uint64_t> peak_memory_bytes;
  size_t generated_files = 0;
};

// A distribution in the shared package environment.
struct PackageRecord {
  std::string name;  // normalized distribution name (PEP 503: lowercase, runs of -_. as -)
  std::string version;
  Millis installed_at = 0;
  std::optional<Millis> last_used;  // an execution's code mentioned one of its import names
  std::string first_requester;      // a user id, "cli", or "" (pulled in as a dependency)
  bool requested = false;           // asked for, not only a dependency of what was asked
};

struct Usage {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Any database failure (I/O, corruption, full disk). `disk_full` tells the API to answer 507.
class StoreError : public std::runtime_error {
 public:
  StoreError(const std::string& message, bool disk_full = false)
      : std::runtime_error(message), disk_full_(disk_full) {}
  bool disk_full() const { return disk_full_; }

 private:
  bool disk_full_;
};

// Metadata storage. Every method is safe to call from several threads at once. "Live" means not
// expired at `now` (expires_at is null or > now): expired files vanish from every answer at once,
// before any cleanup deletes them.
class Store {
 public:
  virtual ~Store() = default;

  virtual int schema_version() = 0;

  virtual void InsertFile(const FileRecord& file) = 0;  // throws StoreError on duplicate id
  virtual std::optional<FileRecord> GetLiveFile(const std::string& user_id,
                                                const std::string& file_id, Millis now) = 0;
  // Oldest first (uploaded_at, then file_id).
  virtual std::vector<FileRecord> ListLiveFiles(const std::string& user_id, Millis now) = 0;
  virtual Usage LiveUsage(const std::string& user_id, Millis now) = 0;
  virtual Usage TotalLiveUsage(Millis now) = 0;
  // Deletes the record if it belongs to user_id (live or not); returns it so the caller can
  // remove its bytes.
  virtual std::optional<FileRecord> DeleteFile(const std::string& user_id,
                                               const std::string& file_id) = 0;
  virtual std::vector<FileRecord> DeleteAllFiles(const std::string& user_id) = 0;

  // Expired records (expires_at <= now), at most `limit`, oldest expiry first.
  virtual std::vector<FileRecord> ListExpired(Millis now, size_t limit) = 0;
  // Deletes these records in one transaction, but only those still expired at `now` (a record
  // can never be live again, so this is a guard against misuse); returns how many went.
  virtual size_t DeleteExpired(const std::vector<std::string>& file_ids, Millis now) = 0;

  // Every record's storage_path, for the start-up sweep (files without records and records
  // without files).
  virtual std::vector<std::pair<std::string, std::string>> AllStoragePaths() = 0;  // id, path
  virtual void DeleteFileRecord(const std::string& file_id) = 0;

  virtual void InsertExecution(const ExecutionRecord& execution) = 0;
  virtual std::optional<ExecutionRecord> GetExecution(const std::string& execution_id) = 0;

  // The package environment's contents: replaced as a whole when a new environment goes live (in
  // one transaction), listed by name.
  virtual void ReplacePackages(const std::vector<PackageRecord>& packages) = 0;
  virtual std::vector<PackageRecord> ListPackages() = 0;
  virtual void TouchPackages(const std::vector<std::string>& names, Millis now) = 0;

  // Small key/value settings (e.g. "last_cleanup").
  virtual void SetMeta(const std::string& key, const std::string& value) = 0;
  virtual std::optional<std::string> GetMeta(const std::string& key) = 0;
};

// Opens (creating if needed) the SQLite database at `path`: WAL, foreign keys on, busy timeout,
// migrations to the newest schema version run before it returns. Throws StoreError.
std::unique_ptr<Store> OpenSqliteStore(const std::string& path);

}  // namespace codecell::store
