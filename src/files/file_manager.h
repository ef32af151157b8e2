#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/store.h"

namespace codecell::files {

struct FilePolicy {
  double lifetime_hours = 48;  // < 0: files never expire
  uint64_t max_upload_bytes = 50ull << 20;
  uint64_t max_files_per_user = 20;
  uint64_t max_bytes_per_user = 500ull << 20;
  bool evict_oldest = false;  // over the cap: evict the user's oldest files instead of refusing
};

// Why an operation failed, in terms the API maps to status codes.
struct Failure {
  enum Kind { kBadRequest, kNotFound, kTooLarge, kOverQuota, kStorageFull, kInternal };
  Kind kind = kInternal;
  std::string message;
};

template <typename T>
struct Outcome {
  std::optional<T> value;
  Failure failure;
  bool ok() const { return value.has_value(); }
};

store::Millis NowMillis();

// Bytes on disk under <data_dir>/files/<2 chars>/<file_id>, metadata in the store. A file's bytes
// are written to files/tmp/, fsynced and renamed into place before its record is committed, so a
// crash leaves at worst a file without a record, which the start-up sweep removes.
class FileManager {
 public:
  FileManager(store::Store& store, std::string data_dir, FilePolicy policy);

  // Creates the directories and runs the start-up sweep: removes temporary files, records whose
  // bytes are missing, and files that have no record.
  Outcome<bool> Init();

  // One upload in progress: Write() the bytes as they arrive (false once over the limit or on an
  // I/O error: see failure()), then Commit(). Destroying it without a commit removes the bytes.
  class Upload {
   public:
    ~Upload();
    bool Write(const char* data, size_t size);
    Outcome<store::FileRecord> Commit(const std::string& user_id);
    const Failure& failure() const { return failure_; }

   private:
    friend class FileManager;
    Upload() = default;
    FileManager* manager_ = nullptr;
    std::string original_name_, temp_path_;
    int fd_ = -1;
    uint64_t size_ = 0;
    void* sha_ = nullptr;  // EVP_MD_CTX
    unsigned char head_[16] = {};
    size_t head_size_ = 0;
    Failure failure_;
    bool failed_ = false;
  };
  // The user is named at Commit(): a multipart body may carry it after the file part.
  Outcome<std::unique_ptr<Upload>> BeginUpload(const std::string& original_filename);

  // Stores a file the sandbox generated (moved from `host_path`, same filesystem) as a new file
  // of `user_id`, under the same quota rules as uploads.
  Outcome<store::FileRecord> AdoptGenerated(const std::string& user_id,
                                            const std::string& host_path,
                                            const std::string& relative_name);

  std::optional<store::FileRecord> Get(const std::string& user_id, const std::string& file_id);
  std::vector<store::FileRecord> List(const std::string& user_id);
  bool Delete(const std::string& user_id, const std::string& file_id);
  size_t DeleteAll(const std::string& user_id);
  // Deletes every expired file and its record, in batches; returns how many.
  size_t CleanupExpired();

  std::string PathOf(const store::FileRecord& record) const;
  std::string temp_dir() const { return files_dir_ + "/tmp"; }
  const FilePolicy& policy() const { return policy_; }
  store::Store& store() { return store_; }

 private:
  // Admits a new file of `size` bytes for `user_id` (evicting if configured); call with the
  // user's lock held.
  std::optional<Failure> MakeRoom(const std::string& user_id, uint64_t size);
  Outcome<store::FileRecord> Install(const std::string& user_id, const std::string& temp_path,
                                     const std::string& filename, const std::string& original_name,
                                     uint64_t size, const std::string& sha256,
                                     const unsigned char* head, size_t head_size,
                                     const std::string& source);
  std::mutex& UserLock(const std::string& user_id);
  void RemoveBytes(const store::FileRecord& record);

  store::Store& store_;
  std::string data_dir_, files_dir_;
  FilePolicy policy_;
  std::array<std::mutex, 64> user_locks_;
};

// RFC 3339 UTC with milliseconds, e.g. 2026-11-28T01:02:03.456Z.
std::string Rfc3339(store::Millis millis);

}  // namespace codecell::files
