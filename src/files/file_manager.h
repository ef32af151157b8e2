#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/time.h"
#include "store/store.h"

namespace codecell::files {

// What a new file (upload or generated) does when it would pass a per-user cap.
enum class OverQuota {
  kReject,          // refuse it (429; a generated file is skipped)
  kEvictGenerated,  // evict the oldest generated files: already delivered to the chat
  kEvictOldest,     // evict the oldest files, uploads too (the operator's choice)
};
// "reject" | "evict_generated" | "evict_oldest"; nullopt for anything else.
std::optional<OverQuota> ParseOverQuota(const std::string& text);

struct FilePolicy {
  double lifetime_hours = 48;  // < 0: files never expire
  uint64_t max_upload_bytes = 50ull << 20;
  uint64_t max_files_per_user = 20;
  uint64_t max_bytes_per_user = 500ull << 20;
  OverQuota over_quota = OverQuota::kEvictGenerated;
};

// Why an operation failed: the one error type (base/error.h).
using Failure = codecell::Error;
using codecell::ErrorKind;

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
    // The files Commit() evicted to make room, oldest first.
    const std::vector<store::FileRecord>& evicted() const { return evicted_; }

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
    std::vector<store::FileRecord> evicted_;
  };
  // The user is named at Commit(): a multipart body may carry it after the file part.
  Outcome<std::unique_ptr<Upload>> BeginUpload(const std::string& original_filename);

  // The files one execution generated, stored one by one under the same quota rules as uploads.
  // They never evict each other, nor the files of another batch still open (an execution of the
  // same user running at once): what a result lists exists when it is answered. Inputs are
  // copies in /mnt/data, so the stored files they came from may be evicted.
  class GeneratedBatch {
   public:
    GeneratedBatch(FileManager& manager, std::string user_id);
    ~GeneratedBatch();
    GeneratedBatch(const GeneratedBatch&) = delete;
    GeneratedBatch& operator=(const GeneratedBatch&) = delete;
    // Moves the file at `host_path` (same filesystem) into storage.
    Outcome<store::FileRecord> Adopt(const std::string& host_path,
                                     const std::string& relative_name);
    // The files evicted to make room for this batch, oldest first.
    const std::vector<store::FileRecord>& evicted() const { return evicted_; }

   private:
    FileManager& manager_;
    std::string user_id_;
    std::vector<std::string> stored_ids_;
    std::vector<store::FileRecord> evicted_;
  };

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
  // Admits a new file of `size` bytes for `user_id`, evicting by the policy (never a pinned file)
  // and appending what it evicted to `evicted`; call with the user's lock held. Evicts nothing
  // when eviction could not make enough room.
  std::optional<Failure> MakeRoom(const std::string& user_id, uint64_t size,
                                  std::vector<store::FileRecord>& evicted);
  Outcome<store::FileRecord> Install(const std::string& user_id, const std::string& temp_path,
                                     const std::string& filename, const std::string& original_name,
                                     uint64_t size, const std::string& sha256,
                                     const unsigned char* head, size_t head_size,
                                     const std::string& source,
                                     std::vector<store::FileRecord>& evicted, bool pin = false);
  bool Pinned(const std::string& file_id);
  std::mutex& UserLock(const std::string& user_id);
  void RemoveBytes(const store::FileRecord& record);

  store::Store& store_;
  std::string data_dir_, files_dir_;
  FilePolicy policy_;
  std::array<std::mutex, 64> user_locks_;
  std::mutex pinned_mutex_;
  std::multiset<std::string> pinned_;  // file ids of open GeneratedBatches
};

using codecell::Rfc3339;  // base/time.h

}  // namespace codecell::files
