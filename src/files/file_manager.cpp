#include "files/file_manager.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <set>

#include "exec/file_types.h"
#include "exec/ids.h"

namespace codecell::files {
namespace fs = std::filesystem;
using store::FileRecord;
using store::Millis;

namespace {

constexpr size_t kCleanupBatch = 10000;

std::string Hex(const unsigned char* bytes, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 15]);
  }
  return out;
}

Failure IoFailure(const std::string& what, int err) {
  return {err == ENOSPC || err == EDQUOT ? ErrorKind::kStorageFull : ErrorKind::kInternal,
          what + ": " + std::strerror(err)};
}

// Content sniffing for the common cases: an extension that lies about an image or a PDF, or a file
// with no known extension.
std::optional<exec::FileType> Sniff(const unsigned char* head, size_t n) {
  auto starts = [&](const char* magic, size_t len) {
    return n >= len && std::memcmp(head, magic, len) == 0;
  };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return exec::FileType{"image", "image/png"};
  if (starts("\xFF\xD8\xFF", 3)) return exec::FileType{"image", "image/jpeg"};
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return exec::FileType{"image", "image/gif"};
  if (starts("%PDF-", 5)) return exec::FileType{"pdf", "application/pdf"};
  if (n >= 12 && starts("RIFF", 4) && std::memcmp(head + 8, "WEBP", 4) == 0) {
    return exec::FileType{"image", "image/webp"};
  }
  if (starts("PK\x03\x04", 4)) return exec::FileType{"archive", "application/zip"};
  if (starts("\x1F\x8B", 2)) return exec::FileType{"archive", "application/gzip"};
  return std::nullopt;
}

exec::FileType TypeOf(const std::string& filename, const unsigned char* head, size_t n) {
  exec::FileType by_name = exec::FileTypeForName(filename);
  auto sniffed = Sniff(head, n);
  if (!sniffed) return by_name;
  if (by_name.kind == "other") return *sniffed;
  // A zip is what .xlsx/.docx are: keep the name's type. An image or PDF behind a text-ish name
  // is the sniffed type.
  bool sniffed_is_document = sniffed->kind == "image" || sniffed->kind == "pdf";
  if (sniffed_is_document && by_name.mime != sniffed->mime &&
      (by_name.kind == "text" || by_name.kind == "data" || by_name.kind == "structured" ||
       by_name.kind == "code" || by_name.kind == "html")) {
    return *sniffed;
  }
  return by_name;
}

bool FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

struct Hasher {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Hasher() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
  ~Hasher() { EVP_MD_CTX_free(ctx); }
};

std::optional<std::string> Sha256OfFile(const std::string& path, uint64_t& size,
                                        unsigned char* head, size_t& head_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  Hasher h;
  char buffer[65536];
  size = 0;
  head_size = 0;
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    if (size == 0) {
      head_size = std::min<size_t>(16, static_cast<size_t>(n));
      std::memcpy(head, buffer, head_size);
    }
    EVP_DigestUpdate(h.ctx, buffer, static_cast<size_t>(n));
    size += static_cast<uint64_t>(n);
  }
  ::close(fd);
  unsigned char digest[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(h.ctx, digest, &len);
  return Hex(digest, len);
}

}  // namespace

Millis NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

FileManager::FileManager(store::Store& store, std::string data_dir, FilePolicy policy)
    : store_(store),
      data_dir_(std::move(data_dir)),
      files_dir_(data_dir_ + "/files"),
      policy_(policy) {}

std::mutex& FileManager::UserLock(const std::string& user_id) {
  return user_locks_[std::hash<std::string>{}(user_id) % user_locks_.size()];
}

std::string FileManager::PathOf(const FileRecord& record) const {
  return files_dir_ + "/" + record.storage_path;
}

Outcome<bool> FileManager::Init() {
  std::error_code ec;
  fs::create_directories(temp_dir(), ec);
  if (ec)
    return {std::nullopt,
            {ErrorKind::kInternal, "cannot create " + temp_dir() + ": " + ec.message()}};
  ::chmod(files_dir_.c_str(), 0700);
  // Interrupted uploads and executions' leftovers.
  for (const auto& e : fs::directory_iterator(temp_dir(), ec)) fs::remove_all(e.path(), ec);
  // Records whose bytes are gone, and bytes that have no record.
  std::set<std::string> known;
  for (const auto& [id, path] : store_.AllStoragePaths()) {
    struct stat st {};
    if (::stat((files_dir_ + "/" + path).c_str(), &st) != 0) {
      store_.DeleteFileRecord(id);
    } else {
      known.insert(path);
    }
  }
  for (const auto& shard : fs::directory_iterator(files_dir_, ec)) {
    if (!shard.is_directory() || shard.path() == fs::path(temp_dir())) continue;
    for (const auto& f : fs::directory_iterator(shard.path(), ec)) {
      std::string rel = shard.path().filename().string() + "/" + f.path().filename().string();
      if (known.count(rel) == 0) fs::remove_all(f.path(), ec);
    }
  }
  return {true, {}};
}

Outcome<std::unique_ptr<FileManager::Upload>> FileManager::BeginUpload(
    const std::string& original_filename) {
  std::unique_ptr<Upload> u(new Upload());
  u->manager_ = this;
  u->original_name_ = original_filename;
  u->temp_path_ = temp_dir() + "/" + exec::NewRandomId("upload-") + ".part";
  u->fd_ = ::open(u->temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (u->fd_ < 0)
    return {std::nullopt, IoFailure("cannot create the upload's temporary file", errno)};
  Hasher* h = new Hasher();
  u->sha_ = h;
  return {std::move(u), {}};
}

FileManager::Upload::~Upload() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  delete static_cast<Hasher*>(sha_);
}

bool FileManager::Upload::Write(const char* data, size_t size) {
  if (failed_) return false;
  if (size_ + size > manager_->policy_.max_upload_bytes) {
    failed_ = true;
    failure_ = {ErrorKind::kTooLarge, "the file is larger than the upload limit of " +
                                          std::to_string(manager_->policy_.max_upload_bytes >> 20) +
                                          " MiB"};
    return false;
  }
  if (head_size_ < sizeof head_) {
    size_t take = std::min(sizeof head_ - head_size_, size);
    std::memcpy(head_ + head_size_, data, take);
    head_size_ += take;
  }
  EVP_DigestUpdate(static_cast<Hasher*>(sha_)->ctx, data, size);
  size_ += size;
  while (size > 0) {
    ssize_t n = ::write(fd_, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      failed_ = true;
      failure_ = IoFailure("cannot write the upload", errno);
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

Outcome<FileRecord> FileManager::Upload::Commit(const std::string& user_id) {
  if (failed_) return {std::nullopt, failure_};
  if (::fsync(fd_) != 0) return {std::nullopt, IoFailure("fsync of the upload", errno)};
  ::close(fd_);
  fd_ = -1;
  unsigned char digest[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<Hasher*>(sha_)->ctx, digest, &len);
  auto out =
      manager_->Install(user_id, temp_path_, exec::SafeFileName(original_name_), original_name_,
                        size_, Hex(digest, len), head_, head_size_, "upload", evicted_);
  if (out.ok()) temp_path_.clear();  // now owned by the store
  return out;
}

std::optional<OverQuota> ParseOverQuota(const std::string& text) {
  if (text == "reject") return OverQuota::kReject;
  if (text == "evict_generated") return OverQuota::kEvictGenerated;
  if (text == "evict_oldest") return OverQuota::kEvictOldest;
  return std::nullopt;
}

bool FileManager::Pinned(const std::string& file_id) {
  std::lock_guard<std::mutex> lock(pinned_mutex_);
  return pinned_.count(file_id) != 0;
}

std::optional<Failure> FileManager::MakeRoom(const std::string& user_id, uint64_t size,
                                             std::vector<FileRecord>& evicted) {
  const Millis now = NowMillis();
  if (size > policy_.max_bytes_per_user) {
    return Failure{ErrorKind::kOverQuota,
                   "the file (" + std::to_string(size) +
                       " bytes) is larger than the per-user storage cap of " +
                       std::to_string(policy_.max_bytes_per_user >> 20) + " MiB"};
  }
  store::Usage usage = store_.LiveUsage(user_id, now);
  auto fits = [&](const store::Usage& u) {
    return u.files + 1 <= policy_.max_files_per_user &&
           u.bytes + size <= policy_.max_bytes_per_user;
  };
  if (fits(usage)) return std::nullopt;
  const std::string state = "user " + user_id + " has " + std::to_string(usage.files) +
                            " live files (" + std::to_string(usage.bytes >> 20) +
                            " MiB); the caps are " + std::to_string(policy_.max_files_per_user) +
                            " files and " + std::to_string(policy_.max_bytes_per_user >> 20) +
                            " MiB";
  if (policy_.over_quota == OverQuota::kReject) {
    return Failure{ErrorKind::kOverQuota, state + ". Delete files or wait for them to expire"};
  }
  // Plan first: when even every candidate would not make room, nothing is evicted for nothing.
  std::vector<FileRecord> victims;
  store::Usage after = usage;
  for (const auto& oldest : store_.ListLiveFiles(user_id, now)) {
    if (fits(after)) break;
    if (policy_.over_quota == OverQuota::kEvictGenerated && oldest.source != "generated") continue;
    if (Pinned(oldest.file_id)) continue;
    victims.push_back(oldest);
    after.files -= 1;
    after.bytes -= std::min(after.bytes, oldest.file_size);
  }
  if (!fits(after)) {
    const std::string why = policy_.over_quota == OverQuota::kEvictGenerated
                                ? ", and uploads are never evicted to make room (nor the files an "
                                  "execution is storing now)"
                                : ", and the files an execution is storing now are not evicted";
    return Failure{ErrorKind::kOverQuota,
                   state + why + ". Delete files or wait for them to expire"};
  }
  for (const auto& victim : victims) {
    if (auto gone = store_.DeleteFile(user_id, victim.file_id)) {
      RemoveBytes(*gone);
      evicted.push_back(*gone);
    }
  }
  return std::nullopt;
}

Outcome<FileRecord> FileManager::Install(const std::string& user_id, const std::string& temp_path,
                                         const std::string& filename,
                                         const std::string& original_name, uint64_t size,
                                         const std::string& sha256, const unsigned char* head,
                                         size_t head_size, const std::string& source,
                                         std::vector<FileRecord>& evicted, bool pin) {
  FileRecord r;
  r.file_id = exec::NewRandomId("file_");
  r.user_id = user_id;
  r.filename = filename;
  r.original_filename = original_name;
  exec::FileType type = TypeOf(filename, head, head_size);
  r.file_type = type.kind;
  r.mime_type = type.mime;
  r.file_size = size;
  r.sha256 = sha256;
  r.source = source;
  std::string shard = r.file_id.substr(r.file_id.size() - 2);
  r.storage_path = shard + "/" + r.file_id;
  std::string final_path = files_dir_ + "/" + r.storage_path;
  if (::mkdir((files_dir_ + "/" + shard).c_str(), 0700) != 0 && errno != EEXIST) {
    return {std::nullopt, IoFailure("cannot create a storage directory", errno)};
  }
  std::lock_guard<std::mutex> lock(UserLock(user_id));
  try {
    if (auto refused = MakeRoom(user_id, size, evicted)) return {std::nullopt, *refused};
    if (::rename(temp_path.c_str(), final_path.c_str()) != 0) {
      return {std::nullopt, IoFailure("cannot move the file into storage", errno)};
    }
    FsyncDir(files_dir_ + "/" + shard);
    r.uploaded_at = NowMillis();
    if (policy_.lifetime_hours >= 0) {
      r.expires_at = r.uploaded_at + static_cast<Millis>(policy_.lifetime_hours * 3600.0 * 1000.0);
    }
    store_.InsertFile(r);
    if (pin) {
      // Under the user's lock: no other batch can evict it between its insert and its pin.
      std::lock_guard<std::mutex> pinned(pinned_mutex_);
      pinned_.insert(r.file_id);
    }
  } catch (const store::StoreError& e) {
    ::unlink(final_path.c_str());
    return {std::nullopt,
            {e.disk_full() ? ErrorKind::kStorageFull : ErrorKind::kInternal, e.what()}};
  }
  return {r, {}};
}

FileManager::GeneratedBatch::GeneratedBatch(FileManager& manager, std::string user_id)
    : manager_(manager), user_id_(std::move(user_id)) {}

FileManager::GeneratedBatch::~GeneratedBatch() {
  std::lock_guard<std::mutex> lock(manager_.pinned_mutex_);
  for (const auto& id : stored_ids_) {
    auto it = manager_.pinned_.find(id);
    if (it != manager_.pinned_.end()) manager_.pinned_.erase(it);
  }
}

Outcome<FileRecord> FileManager::GeneratedBatch::Adopt(const std::string& host_path,
                                                       const std::string& relative_name) {
  uint64_t size = 0;
  unsigned char head[16];
  size_t head_size = 0;
  auto sha = Sha256OfFile(host_path, size, head, head_size);
  if (!sha) return {std::nullopt, IoFailure("cannot read the generated file", errno)};
  auto out = manager_.Install(user_id_, host_path, exec::SafeFileName(relative_name), relative_name,
                              size, *sha, head, head_size, "generated", evicted_,
                              /*pin=*/true);
  if (out.ok()) stored_ids_.push_back(out.value->file_id);
  return out;
}

std::optional<FileRecord> FileManager::Get(const std::string& user_id, const std::string& file_id) {
  return store_.GetLiveFile(user_id, file_id, NowMillis());
}

std::vector<FileRecord> FileManager::List(const std::string& user_id) {
  return store_.ListLiveFiles(user_id, NowMillis());
}

void FileManager::RemoveBytes(const FileRecord& record) { ::unlink(PathOf(record).c_str()); }

bool FileManager::Delete(const std::string& user_id, const std::string& file_id) {
  std::lock_guard<std::mutex> lock(UserLock(user_id));
  // An expired file is already gone for the user: deleting it is a 404 like any unknown id.
  if (!store_.GetLiveFile(user_id, file_id, NowMillis())) return false;
  auto gone = store_.DeleteFile(user_id, file_id);
  if (gone) RemoveBytes(*gone);
  return gone.has_value();
}

size_t FileManager::DeleteAll(const std::string& user_id) {
  std::lock_guard<std::mutex> lock(UserLock(user_id));
  const Millis now = NowMillis();
  size_t live = 0;
  for (const auto& r : store_.DeleteAllFiles(user_id)) {
    RemoveBytes(r);
    if (!r.expires_at || *r.expires_at > now) ++live;
  }
  return live;
}

size_t FileManager::CleanupExpired() {
  size_t deleted = 0;
  const Millis now = NowMillis();
  for (;;) {
    auto batch = store_.ListExpired(now, kCleanupBatch);
    if (batch.empty()) break;
    std::vector<std::string> ids;
    ids.reserve(batch.size());
    for (const auto& r : batch) ids.push_back(r.file_id);
    // Records first: once they are gone nothing can hand out these files, then the bytes.
    size_t n = store_.DeleteExpired(ids, now);
    for (const auto& r : batch) RemoveBytes(r);
    deleted += n;
    if (batch.size() < kCleanupBatch) break;
  }
  return deleted;
}

}  // namespace codecell::files
