#include "files/file_manager.h"

#include <atomic>
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

  // A file the sandbox generated, stored through `batch`.
  Outcome<store::FileRecord> Generate(FileManager::GeneratedBatch& batch, const std::string& name,
                                      const std::string& bytes) {
    std::string path = files->temp_dir() + "/" + exec::NewRandomId("gen-");
    std::ofstream(path) << bytes;
    auto out = batch.Adopt(path, name);
    fs::remove(path);
    return out;
  }

  std::vector<std::string> Names(const std::string& user) {
    std::vector<std::string> names;
    for (const auto& r : files->List(user)) names.push_back(r.filename);
    return names;
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
  EXPECT_EQ(r.failure.kind, ErrorKind::kTooLarge);
  EXPECT_TRUE(f.files->List("u1").empty());
  EXPECT_EQ(f.FilesOnDisk(), 0u);
}

// Distinct uploaded_at stamps (milliseconds) keep "oldest" well defined.
void Tick() { std::this_thread::sleep_for(std::chrono::milliseconds(3)); }

TEST(FileManager, RejectRefusesOverTheCap) {
  FilePolicy p;
  p.max_files_per_user = 2;
  p.over_quota = OverQuota::kReject;
  Fixture refuse(p);
  ASSERT_TRUE(refuse.Upload("u", "a", "1").ok());
  FileManager::GeneratedBatch batch(*refuse.files, "u");
  ASSERT_TRUE(refuse.Generate(batch, "b", "2").ok());
  auto third = refuse.Upload("u", "c", "3");
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.failure.kind, ErrorKind::kOverQuota);
  EXPECT_NE(third.failure.message.find("2 live files"), std::string::npos) << third.failure.message;
  EXPECT_TRUE(refuse.Upload("other-user", "c", "3").ok());
}

TEST(FileManager, EvictOldestEvictsUploadsToo) {
  FilePolicy p;
  p.max_files_per_user = 2;
  p.over_quota = OverQuota::kEvictOldest;
  Fixture evict(p);
  auto a = evict.Upload("u", "a", "1");
  Tick();
  ASSERT_TRUE(evict.Upload("u", "b", "2").ok());
  Tick();
  auto c = evict.Upload("u", "c", "3");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(evict.Names("u"), (std::vector<std::string>{"b", "c"}));
  EXPECT_FALSE(fs::exists(evict.files->PathOf(*a.value)));
  EXPECT_EQ(evict.FilesOnDisk(), 2u);
}

TEST(FileManager, DefaultEvictsTheOldestGeneratedFilesNeverAnUpload) {
  FilePolicy p;
  p.max_files_per_user = 3;
  Fixture f(p);
  ASSERT_EQ(f.policy.over_quota, OverQuota::kEvictGenerated);
  ASSERT_TRUE(f.Upload("u", "sales.csv", "x").ok());
  Tick();
  std::string first_plot_path;
  {
    FileManager::GeneratedBatch run(*f.files, "u");
    auto p1 = f.Generate(run, "plot_1.png", "1");
    ASSERT_TRUE(p1.ok());
    first_plot_path = f.files->PathOf(*p1.value);
    Tick();
    ASSERT_TRUE(f.Generate(run, "plot_2.png", "2").ok());
    EXPECT_TRUE(run.evicted().empty());
  }
  Tick();
  // An upload evicts the oldest generated file, and says so.
  auto up = f.files->BeginUpload("notes.txt");
  ASSERT_TRUE(up.ok());
  ASSERT_TRUE((*up.value)->Write("n", 1));
  auto notes = (*up.value)->Commit("u");
  ASSERT_TRUE(notes.ok()) << notes.failure.message;
  ASSERT_EQ((*up.value)->evicted().size(), 1u);
  EXPECT_EQ((*up.value)->evicted()[0].filename, "plot_1.png");
  EXPECT_EQ((*up.value)->evicted()[0].source, "generated");
  EXPECT_FALSE(fs::exists(first_plot_path));
  EXPECT_EQ(f.Names("u"), (std::vector<std::string>{"sales.csv", "plot_2.png", "notes.txt"}));
  Tick();
  {
    FileManager::GeneratedBatch run(*f.files, "u");
    auto p3 = f.Generate(run, "plot_3.png", "3");
    ASSERT_TRUE(p3.ok()) << p3.failure.message;
    ASSERT_EQ(run.evicted().size(), 1u);
    EXPECT_EQ(run.evicted()[0].filename, "plot_2.png");
    // Only uploads and this run's own output are left: the next output is refused, nothing goes.
    auto p4 = f.Generate(run, "plot_4.png", "4");
    ASSERT_FALSE(p4.ok());
    EXPECT_EQ(p4.failure.kind, ErrorKind::kOverQuota);
    EXPECT_NE(p4.failure.message.find("uploads are never evicted"), std::string::npos)
        << p4.failure.message;
    EXPECT_EQ(run.evicted().size(), 1u);
  }
  EXPECT_EQ(f.Names("u"), (std::vector<std::string>{"sales.csv", "notes.txt", "plot_3.png"}));
  // With only uploads stored, an upload over the cap is refused by default.
  Tick();
  ASSERT_TRUE(f.Upload("u", "more.txt", "m").ok());  // evicts plot_3.png
  auto refused = f.Upload("u", "too_many.txt", "t");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.failure.kind, ErrorKind::kOverQuota);
  EXPECT_EQ(f.Names("u"), (std::vector<std::string>{"sales.csv", "notes.txt", "more.txt"}));
  EXPECT_EQ(f.FilesOnDisk(), 3u);
}

TEST(FileManager, ByteCapEvictsEnoughGeneratedBytesOrNothing) {
  FilePolicy p;
  p.max_bytes_per_user = 1 << 20;
  Fixture f(p);
  ASSERT_TRUE(f.Upload("u", "upload.bin", std::string(400 << 10, 'u')).ok());
  {
    FileManager::GeneratedBatch run(*f.files, "u");
    ASSERT_TRUE(f.Generate(run, "small.bin", std::string(100 << 10, 's')).ok());
    Tick();
    ASSERT_TRUE(f.Generate(run, "mid.bin", std::string(300 << 10, 'm')).ok());
  }
  // 700 KiB more needs 100 + 300 KiB of outputs gone; 900 KiB would need the upload: refused,
  // and nothing is evicted for it.
  {
    FileManager::GeneratedBatch run(*f.files, "u");
    auto huge = f.Generate(run, "huge.bin", std::string(900 << 10, 'h'));
    ASSERT_FALSE(huge.ok());
    EXPECT_TRUE(run.evicted().empty());
    EXPECT_EQ(f.files->List("u").size(), 3u);
    auto big = f.Generate(run, "big.bin", std::string(600 << 10, 'b'));
    ASSERT_TRUE(big.ok()) << big.failure.message;
    EXPECT_EQ(run.evicted().size(), 2u);
  }
  EXPECT_EQ(f.Names("u"), (std::vector<std::string>{"upload.bin", "big.bin"}));
}

TEST(FileManager, ConcurrentBatchesKeepTheCapsExactAndTheirOwnOutputs) {
  FilePolicy p;
  p.max_files_per_user = 20;
  Fixture f(p);
  ASSERT_TRUE(f.Upload("u", "sales.csv", "x").ok());
  // At most 4 open batches × 4 pinned outputs + the upload: 17 files, under the cap, so no output
  // is ever refused, and 80 outputs go through 20 places.
  constexpr int kThreads = 4, kRuns = 5, kPerRun = 4;
  std::atomic<int> lost{0}, refused{0}, over{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int run = 0; run < kRuns; ++run) {
        FileManager::GeneratedBatch batch(*f.files, "u");
        std::vector<store::FileRecord> mine;
        for (int i = 0; i < kPerRun; ++i) {
          auto r = f.Generate(batch, "p" + std::to_string(t) + "_" + std::to_string(i), "x");
          if (r.ok()) {
            mine.push_back(*r.value);
          } else {
            ++refused;
          }
          if (f.store->LiveUsage("u", NowMillis()).files > p.max_files_per_user) ++over;
        }
        // While its batch is open, none of its outputs has been evicted by the others.
        for (const auto& r : mine) {
          if (!f.files->Get("u", r.file_id) || !fs::exists(f.files->PathOf(r))) ++lost;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(over.load(), 0);
  EXPECT_EQ(lost.load(), 0);
  EXPECT_EQ(refused.load(), 0);
  auto names = f.Names("u");
  EXPECT_EQ(names.size(), 20u);
  EXPECT_EQ(names[0], "sales.csv");
  EXPECT_EQ(f.FilesOnDisk(), 20u);
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
