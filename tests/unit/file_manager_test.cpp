#include "files/file_manager.h"

#include <chrono>
#include <fstream>
#include <thread>

#include "exec/ids.h"
#include "store/store.h"
#include "test_support.h"

namespace codecell::files {
namespace {

namespace fs = std::filesystem;
using codecell::testing::TempDir;

struct Fixture {
  TempDir dir;
  std::unique_ptr<store::Store> store = store::OpenSqliteStore(dir.path() + "/codecell.db");
  FilePolicy policy;
  std::unique_ptr<FileManager> files;

  explicit Fixture(FilePolicy p = {}) : policy(p) {
    files = std::make_unique<FileManager>(*store, dir.path(), policy);
    EXPECT_TRUE(files->Init().ok());
  }

  Outcome<store::FileRecord> Upload(const std::string& user, const std::string& name,
                                    const std::string& bytes) {
    auto up = files->BeginUpload(name);
    EXPECT_TRUE(up.ok());
    auto& u = *up.value;
    for (size_t i = 0; i < bytes.size(); i += 1000) {
      if (!u->Write(bytes.data() + i, std::min<size_t>(1000, bytes.size() - i))) {
        return {std::nullopt, u->failure()};
      }
    }
    return u->Commit(user);
  }

  size_t FilesOnDisk() {
    size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir.path() + "/files")) {
      if (e.is_regular_file()) ++n;
    }
    return n;
  }
};

TEST(FileManager, UploadStoresBytesHashAndSanitizedName) {
  Fixture f;
  auto r = f.Upload("u1", "../../etc/passwd", "hello");
  ASSERT_TRUE(r.ok()) << r.failure.message;
  EXPECT_EQ(r.value->filename, "_.._etc_passwd");
  EXPECT_EQ(r.value->original_filename, "../../etc/passwd");
  EXPECT_EQ(r.value->sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  EXPECT_EQ(r.value->file_size, 5u);
  std::ifstream in(f.files->PathOf(*r.value));
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "hello");
  EXPECT_FALSE(fs::exists(f.dir.path() + "/etc/passwd"));
  ASSERT_TRUE(r.value->expires_at.has_value());
  EXPECT_EQ(*r.value->expires_at - r.value->uploaded_at, 48ll * 3600 * 1000);
}

TEST(FileManager, SniffsTypesThatTheNameHidesOrLies) {
  Fixture f;
  auto png = f.Upload("u", "chart.csv", std::string("\x89PNG\r\n\x1a\n", 8) + "rest");
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(png.value->mime_type, "image/png");
  auto pdf = f.Upload("u", "report", "%PDF-1.7 ...");
  ASSERT_TRUE(pdf.ok());
  EXPECT_EQ(pdf.value->mime_type, "application/pdf");
  auto xlsx = f.Upload("u", "book.xlsx", "PK\x03\x04zipdata");
  ASSERT_TRUE(xlsx.ok());
  EXPECT_EQ(xlsx.value->file_type, "data");
}

TEST(FileManager, OverTheUploadLimitStoresNothing) {
  FilePolicy p;
  p.max_upload_bytes = 4096;
  Fixture f(p);
  auto r = f.Upload("u1", "big.bin", std::string(5000, 'x'));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure.kind, Failure::kTooLarge);
  EXPECT_TRUE(f.files->List("u1").empty());
  EXPECT_EQ(f.FilesOnDisk(), 0u);
}

TEST(FileManager, QuotaRefusesOrEvictsTheOldest) {
  FilePolicy p;
  p.max_files_per_user = 2;
  Fixture refuse(p);
  ASSERT_TRUE(refuse.Upload("u", "a", "1").ok());
  ASSERT_TRUE(refuse.Upload("u", "b", "2").ok());
  auto third = refuse.Upload("u", "c", "3");
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.failure.kind, Failure::kOverQuota);
  EXPECT_NE(third.failure.message.find("2 live files"), std::string::npos) << third.failure.message;
  EXPECT_TRUE(refuse.Upload("other-user", "c", "3").ok());

  p.evict_oldest = true;
  Fixture evict(p);
  auto a = evict.Upload("u", "a", "1");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(evict.Upload("u", "b", "2").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(evict.Upload("u", "c", "3").ok());
  auto names = evict.files->List("u");
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0].filename, "b");
  EXPECT_EQ(names[1].filename, "c");
  EXPECT_FALSE(fs::exists(evict.files->PathOf(*a.value)));
}

TEST(FileManager, ForeignUsersSeeNothing) {
  Fixture f;
  auto r = f.Upload("alice", "a.txt", "secret");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(f.files->Get("bob", r.value->file_id));
  EXPECT_FALSE(f.files->Delete("bob", r.value->file_id));
  EXPECT_TRUE(f.files->Get("alice", r.value->file_id));
}

TEST(FileManager, StartupSweepRemovesOrphansBothWays) {
  TempDir dir;
  std::string kept_id, lost_id;
  {
    auto store = store::OpenSqliteStore(dir.path() + "/codecell.db");
    FileManager files(*store, dir.path(), {});
    ASSERT_TRUE(files.Init().ok());
    auto kept = [&] {
      auto up = files.BeginUpload("kept.txt");
      up.value->get()->Write("k", 1);
      return up.value->get()->Commit("u");
    }();
    auto lost = [&] {
      auto up = files.BeginUpload("lost.txt");
      up.value->get()->Write("l", 1);
      return up.value->get()->Commit("u");
    }();
    ASSERT_TRUE(kept.ok() && lost.ok());
    kept_id = kept.value->file_id;
    lost_id = lost.value->file_id;
    fs::remove(files.PathOf(*lost.value));  // a record without its bytes
    std::ofstream(files.temp_dir() + "/upload-x.part") << "interrupted";
  }
  fs::create_directories(dir.path() + "/files/zz");
  std::ofstream(dir.path() + "/files/zz/file_orphan") << "no record";  // bytes without a record
  auto store = store::OpenSqliteStore(dir.path() + "/codecell.db");
  FileManager files(*store, dir.path(), {});
  ASSERT_TRUE(files.Init().ok());
  EXPECT_TRUE(files.Get("u", kept_id));
  EXPECT_FALSE(files.Get("u", lost_id));
  EXPECT_FALSE(fs::exists(dir.path() + "/files/zz/file_orphan"));
  EXPECT_TRUE(fs::is_empty(files.temp_dir()));
}

TEST(FileManager, CleanupOf100kExpiredFilesKeepsEveryLiveOne) {
  Fixture f;
  const store::Millis now = NowMillis();
  fs::create_directories(f.dir.path() + "/files/ex");
  auto add = [&](const std::string& id, std::optional<store::Millis> expires) {
    store::FileRecord r;
    r.file_id = id;
    r.user_id = "u" + std::to_string(id.size() % 7);
    r.filename = id;
    r.storage_path = "ex/" + id;
    r.uploaded_at = now - 1000;
    r.expires_at = expires;
    r.file_size = 1;
    f.store->InsertFile(r);
    std::ofstream(f.dir.path() + "/files/" + r.storage_path) << "x";
  };
  constexpr int kExpired = 100000, kLive = 500;
  for (int i = 0; i < kExpired; ++i) add("file_e" + std::to_string(i), now - 1);
  for (int i = 0; i < kLive; ++i) add("file_l" + std::to_string(i), now + 3600000);
  for (int i = 0; i < 10; ++i) add("file_n" + std::to_string(i), std::nullopt);
  auto start = std::chrono::steady_clock::now();
  size_t deleted = f.files->CleanupExpired();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("cleanup of %d expired files took %.2f s\n", kExpired, seconds);
  EXPECT_EQ(deleted, static_cast<size_t>(kExpired));
  EXPECT_EQ(f.FilesOnDisk(), static_cast<size_t>(kLive + 10));
  EXPECT_EQ(f.store->TotalLiveUsage(NowMillis()).files, static_cast<uint64_t>(kLive + 10));
  EXPECT_EQ(f.files->CleanupExpired(), 0u);
}

}  // namespace
}  // namespace codecell::files
