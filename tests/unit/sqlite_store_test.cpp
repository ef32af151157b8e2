#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace codecell::store {
namespace {

using codecell::testing::TempDir;

FileRecord MakeFile(const std::string& id, const std::string& user, Millis uploaded_at,
                    std::optional<Millis> expires_at, uint64_t size = 100) {
  FileRecord f;
  f.file_id = id;
  f.user_id = user;
  f.filename = "name-" + id + ".csv";
  f.original_filename = "Name " + id + ".csv";
  f.file_type = "data";
  f.mime_type = "text/csv";
  f.file_size = size;
  f.sha256 = std::string(64, 'a');
  f.storage_path = user + "/" + id;
  f.uploaded_at = uploaded_at;
  f.expires_at = expires_at;
  return f;
}

void ExpectSameFile(const FileRecord& a, const FileRecord& b) {
  EXPECT_EQ(a.file_id, b.file_id);
  EXPECT_EQ(a.user_id, b.user_id);
  EXPECT_EQ(a.filename, b.filename);
  EXPECT_EQ(a.original_filename, b.original_filename);
  EXPECT_EQ(a.file_type, b.file_type);
  EXPECT_EQ(a.mime_type, b.mime_type);
  EXPECT_EQ(a.file_size, b.file_size);
  EXPECT_EQ(a.sha256, b.sha256);
  EXPECT_EQ(a.storage_path, b.storage_path);
  EXPECT_EQ(a.uploaded_at, b.uploaded_at);
  EXPECT_EQ(a.expires_at, b.expires_at);
  EXPECT_EQ(a.source, b.source);
}

std::vector<std::string> Ids(const std::vector<FileRecord>& files) {
  std::vector<std::string> ids;
  for (const auto& f : files) ids.push_back(f.file_id);
  return ids;
}

// A second, raw connection to inspect or tamper with the file behind the store's back.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "raw open failed: " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  void Exec(const char* sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (error ? error : "?");
    }
    sqlite3_free(error);
  }
  // First column of the first row, as text ("" when there is none).
  std::string Text(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }
  // Inserts make(0..count-1) with one prepared statement and bound values.
  template <typename Make>
  void InsertFiles(int count, Make make) {
    sqlite3_stmt* stmt = nullptr;
    const char* sql =
        "INSERT INTO files (file_id, user_id, filename, original_filename, file_type, mime_type, "
        "file_size, sha256, storage_path, uploaded_at, expires_at, source) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sqlite3_errmsg(db_);
      return;
    }
    for (int i = 0; i < count; ++i) {
      const FileRecord f = make(i);
      int column = 0;
      for (const std::string* text : {&f.file_id, &f.user_id, &f.filename, &f.original_filename,
                                      &f.file_type, &f.mime_type}) {
        sqlite3_bind_text(stmt, ++column, text->c_str(), -1, SQLITE_TRANSIENT);
      }
      sqlite3_bind_int64(stmt, 7, static_cast<int64_t>(f.file_size));
      sqlite3_bind_text(stmt, 8, f.sha256.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(stmt, 9, f.storage_path.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(stmt, 10, f.uploaded_at);
      if (f.expires_at) {
        sqlite3_bind_int64(stmt, 11, *f.expires_at);
      } else {
        sqlite3_bind_null(stmt, 11);
      }
      sqlite3_bind_text(stmt, 12, f.source.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(stmt) != SQLITE_DONE) {
        ADD_FAILURE() << "raw insert: " << sqlite3_errmsg(db_);
        break;
      }
      sqlite3_reset(stmt);
    }
    sqlite3_finalize(stmt);
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/codecell.db";
    store_ = OpenSqliteStore(path_);
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

TEST_F(SqliteStoreTest, OpensAtLatestSchemaVersionInWalMode) {
  EXPECT_GE(SqliteLatestSchemaVersion(), 1);
  EXPECT_EQ(store_->schema_version(), SqliteLatestSchemaVersion());
  RawDb raw(path_);
  EXPECT_EQ(raw.Text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.Text("SELECT version FROM schema_version"),
            std::to_string(SqliteLatestSchemaVersion()));
  for (const char* index : {"files_user_expires", "files_expires", "executions_user"}) {
    const std::string sql =
        std::string("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = '") +
        index + "'";
    EXPECT_EQ(raw.Text(sql.c_str()), "1") << index;
  }
  EXPECT_EQ(raw.Text("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'"),
            "1");
}

TEST_F(SqliteStoreTest, InsertGetListUsageDelete) {
  FileRecord a = MakeFile("a", "alice", 3000, 100000, 10);
  a.original_filename = "résumé \"quoted\" 'x'; DROP TABLE files; --.csv";
  a.source = "generated";
  const FileRecord b = MakeFile("b", "alice", 1000, std::nullopt, 20);
  const FileRecord c = MakeFile("c", "alice", 2000, 100000, 40);
  const FileRecord c0 = MakeFile("c0", "alice", 2000, 100000, 80);  // same time as c: id order
  const FileRecord bob = MakeFile("z", "bob", 500, 100000, 1000);
  for (const auto& f : {a, b, c0, c, bob}) store_->InsertFile(f);

  auto got = store_->GetLiveFile("alice", "a", 5000);
  ASSERT_TRUE(got.has_value());
  ExpectSameFile(*got, a);
  EXPECT_FALSE(store_->GetLiveFile("alice", "nope", 5000).has_value());

  const auto listed = store_->ListLiveFiles("alice", 5000);
  EXPECT_EQ(Ids(listed), (std::vector<std::string>{"b", "c", "c0", "a"}));
  ASSERT_EQ(listed.size(), 4u);
  ExpectSameFile(listed[0], b);

  Usage usage = store_->LiveUsage("alice", 5000);
  EXPECT_EQ(usage.files, 4u);
  EXPECT_EQ(usage.bytes, 150u);
  usage = store_->TotalLiveUsage(5000);
  EXPECT_EQ(usage.files, 5u);
  EXPECT_EQ(usage.bytes, 1150u);
  usage = store_->LiveUsage("nobody", 5000);
  EXPECT_EQ(usage.files, 0u);
  EXPECT_EQ(usage.bytes, 0u);

  auto deleted = store_->DeleteFile("alice", "c");
  ASSERT_TRUE(deleted.has_value());
  ExpectSameFile(*deleted, c);
  EXPECT_FALSE(store_->GetLiveFile("alice", "c", 5000).has_value());
  EXPECT_FALSE(store_->DeleteFile("alice", "c").has_value());
  EXPECT_EQ(store_->LiveUsage("alice", 5000).files, 3u);

  const auto all = store_->DeleteAllFiles("alice");
  EXPECT_EQ(Ids(all), (std::vector<std::string>{"b", "c0", "a"}));
  EXPECT_TRUE(store_->ListLiveFiles("alice", 5000).empty());
  EXPECT_TRUE(store_->DeleteAllFiles("alice").empty());
  // Bob's file is untouched.
  ASSERT_TRUE(store_->GetLiveFile("bob", "z", 5000).has_value());
  EXPECT_EQ(store_->TotalLiveUsage(5000).files, 1u);
}

TEST_F(SqliteStoreTest, LargeAndUnusualValuesRoundTrip) {
  FileRecord f = MakeFile("big", "u:1.2_3-4", 1, std::nullopt,
                          static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  f.original_filename = std::string("a\x01\x7f\xff\xfe b", 7);  // not valid UTF-8: kept as is
  f.uploaded_at = -5;
  store_->InsertFile(f);
  const auto got = store_->GetLiveFile(f.user_id, f.file_id, 0);
  ASSERT_TRUE(got.has_value());
  ExpectSameFile(*got, f);

  FileRecord too_big = MakeFile("too-big", "u", 1, std::nullopt, ~uint64_t{0});
  EXPECT_THROW(store_->InsertFile(too_big), StoreError);
}

TEST_F(SqliteStoreTest, AnotherUsersFileIsNeverReturnedOrDeleted) {
  store_->InsertFile(MakeFile("secret", "alice", 1, std::nullopt, 7));
  EXPECT_FALSE(store_->GetLiveFile("mallory", "secret", 10).has_value());
  EXPECT_TRUE(store_->ListLiveFiles("mallory", 10).empty());
  EXPECT_EQ(store_->LiveUsage("mallory", 10).files, 0u);
  EXPECT_FALSE(store_->DeleteFile("mallory", "secret").has_value());
  EXPECT_TRUE(store_->DeleteAllFiles("mallory").empty());
  auto still = store_->GetLiveFile("alice", "secret", 10);
  ASSERT_TRUE(still.has_value());
  EXPECT_EQ(still->file_size, 7u);
}

TEST_F(SqliteStoreTest, ExpiredFilesVanishAtOnce) {
  store_->InsertFile(MakeFile("soon", "alice", 0, 1000, 5));
  store_->InsertFile(MakeFile("later", "alice", 1, 5000, 50));

  EXPECT_TRUE(store_->GetLiveFile("alice", "soon", 999).has_value());
  EXPECT_EQ(store_->LiveUsage("alice", 999).files, 2u);

  // expires_at == now is already expired.
  EXPECT_FALSE(store_->GetLiveFile("alice", "soon", 1000).has_value());
  EXPECT_EQ(Ids(store_->ListLiveFiles("alice", 1000)), std::vector<std::string>{"later"});
  Usage usage = store_->LiveUsage("alice", 1000);
  EXPECT_EQ(usage.files, 1u);
  EXPECT_EQ(usage.bytes, 50u);
  usage = store_->TotalLiveUsage(1000);
  EXPECT_EQ(usage.files, 1u);
  EXPECT_EQ(usage.bytes, 50u);

  EXPECT_TRUE(store_->ListLiveFiles("alice", 5000).empty());
  EXPECT_EQ(store_->TotalLiveUsage(5000).files, 0u);
  // Not live, but still the owner's to delete.
  EXPECT_TRUE(store_->DeleteFile("alice", "soon").has_value());
}

TEST_F(SqliteStoreTest, NeverExpiringFilesStayLive) {
  store_->InsertFile(MakeFile("forever", "alice", 0, std::nullopt));
  const Millis far = std::numeric_limits<Millis>::max();
  auto got = store_->GetLiveFile("alice", "forever", far);
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(got->expires_at.has_value());
  EXPECT_EQ(store_->ListLiveFiles("alice", far).size(), 1u);
  EXPECT_EQ(store_->LiveUsage("alice", far).files, 1u);
  EXPECT_TRUE(store_->ListExpired(far, 100).empty());
  EXPECT_EQ(store_->DeleteExpired({"forever"}, far), 0u);
  EXPECT_TRUE(store_->GetLiveFile("alice", "forever", far).has_value());
}

TEST_F(SqliteStoreTest, ListAndDeleteExpiredNeverTouchLiveRows) {
  store_->InsertFile(MakeFile("k300", "a", 0, 300));
  store_->InsertFile(MakeFile("z100", "b", 0, 100));
  store_->InsertFile(MakeFile("b200", "a", 0, 200));
  store_->InsertFile(MakeFile("a200", "c", 0, 200));
  store_->InsertFile(MakeFile("live", "a", 0, 1001));
  store_->InsertFile(MakeFile("forever", "a", 0, std::nullopt));

  // Oldest expiry first, then id; at most `limit`.
  EXPECT_EQ(Ids(store_->ListExpired(1000, 10)),
            (std::vector<std::string>{"z100", "a200", "b200", "k300"}));
  EXPECT_EQ(Ids(store_->ListExpired(1000, 2)), (std::vector<std::string>{"z100", "a200"}));
  EXPECT_TRUE(store_->ListExpired(1000, 0).empty());
  EXPECT_EQ(Ids(store_->ListExpired(200, 10)), (std::vector<std::string>{"z100", "a200", "b200"}));

  // Misuse: live ids (and unknown ones) in the list are left alone.
  EXPECT_EQ(store_->DeleteExpired({"z100", "live", "forever", "unknown", "k300"}, 1000), 2u);
  EXPECT_TRUE(store_->GetLiveFile("a", "live", 1000).has_value());
  EXPECT_TRUE(store_->GetLiveFile("a", "forever", 1000).has_value());
  // "a200" is expired at 1000 but not at 150.
  EXPECT_EQ(store_->DeleteExpired({"a200", "b200"}, 150), 0u);
  EXPECT_EQ(Ids(store_->ListExpired(1000, 10)), (std::vector<std::string>{"a200", "b200"}));
  EXPECT_EQ(store_->DeleteExpired({}, 1000), 0u);

  const auto paths = store_->AllStoragePaths();
  EXPECT_EQ(paths.size(), 4u);
}

TEST_F(SqliteStoreTest, DeletesHundredThousandExpiredQuicklyAndKeepsLiveRows) {
  const Millis now = 1'700'000'000'000;
  constexpr int kExpired = 100'000;
  constexpr int kLive = 1'000;
  const auto fill_start = std::chrono::steady_clock::now();
  {
    // The expired rows go in through a second connection in one transaction (101,000 InsertFile
    // calls, one commit each, would take ~15 s); the live ones through the store.
    RawDb raw(path_);
    raw.Exec("BEGIN");
    raw.InsertFiles(kExpired, [&](int i) {
      // Many users, expiry spread over the past day, a third expiring exactly now.
      return MakeFile("x" + std::to_string(i), "user" + std::to_string(i % 97), 0,
                      now - (i % 86'400'000) * (i % 3));
    });
    raw.Exec("COMMIT");
  }
  for (int i = 0; i < kLive; ++i) {
    const std::optional<Millis> expiry =
        i % 2 == 0 ? std::optional<Millis>(now + 1 + i) : std::nullopt;
    store_->InsertFile(
        MakeFile("live" + std::to_string(i), "user" + std::to_string(i % 97), 0, expiry));
  }
  const double fill_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - fill_start).count();
  ASSERT_EQ(store_->TotalLiveUsage(now).files, static_cast<uint64_t>(kLive));

  const auto start = std::chrono::steady_clock::now();
  size_t deleted = 0;
  int batches = 0;
  for (;;) {
    const auto batch = store_->ListExpired(now, 10'000);
    if (batch.empty()) break;
    const size_t n = store_->DeleteExpired(Ids(batch), now);
    ASSERT_EQ(n, batch.size());
    deleted += n;
    ASSERT_LT(++batches, 100) << "cleanup does not converge";
  }
  const double elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "[ measure  ] inserted %d rows in %.3f s; deleted %zu expired rows in %d batches "
      "in %.3f s\n",
      kExpired + kLive, fill_s, deleted, batches, elapsed_s);

  EXPECT_EQ(deleted, static_cast<size_t>(kExpired));
  EXPECT_LT(elapsed_s, 10.0);
  EXPECT_TRUE(store_->ListExpired(now, 10).empty());
  const auto paths = store_->AllStoragePaths();
  ASSERT_EQ(paths.size(), static_cast<size_t>(kLive));
  for (const auto& [id, path] : paths) EXPECT_EQ(id.rfind("live", 0), 0u) << id;
  EXPECT_EQ(store_->TotalLiveUsage(now).files, static_cast<uint64_t>(kLive));
}

TEST_F(SqliteStoreTest, DuplicateIdsThrowAndKeepTheOriginal) {
  store_->InsertFile(MakeFile("dup", "alice", 1, std::nullopt, 1));
  try {
    store_->InsertFile(MakeFile("dup", "bob", 2, std::nullopt, 2));
    FAIL() << "duplicate file_id accepted";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("duplicate"), std::string::npos) << e.what();
    EXPECT_FALSE(e.disk_full());
  }
  auto kept = store_->GetLiveFile("alice", "dup", 0);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->file_size, 1u);
  EXPECT_FALSE(store_->GetLiveFile("bob", "dup", 0).has_value());

  ExecutionRecord e;
  e.execution_id = "ex";
  e.user_id = "alice";
  store_->InsertExecution(e);
  EXPECT_THROW(store_->InsertExecution(e), StoreError);
}

TEST(SqliteStoreOpen, ReopeningKeepsDataAndSchemaVersion) {
  TempDir dir;
  const std::string path = dir.path() + "/codecell.db";
  {
    auto store = OpenSqliteStore(path);
    store->InsertFile(MakeFile("keep", "alice", 1, std::nullopt, 9));
    store->SetMeta("last_cleanup", "123");
  }
  {
    auto store = OpenSqliteStore(path);
    EXPECT_EQ(store->schema_version(), SqliteLatestSchemaVersion());
    auto kept = store->GetLiveFile("alice", "keep", 0);
    ASSERT_TRUE(kept.has_value());
    EXPECT_EQ(kept->file_size, 9u);
    EXPECT_EQ(store->GetMeta("last_cleanup"), std::optional<std::string>("123"));
  }
  RawDb raw(path);
  EXPECT_EQ(raw.Text("SELECT COUNT(*) FROM schema_version"), "1");
  EXPECT_EQ(raw.Text("SELECT version FROM schema_version"),
            std::to_string(SqliteLatestSchemaVersion()));
}

TEST(SqliteStoreOpen, NewerSchemaIsRefusedClearly) {
  TempDir dir;
  const std::string path = dir.path() + "/codecell.db";
  { OpenSqliteStore(path)->InsertFile(MakeFile("f", "alice", 1, std::nullopt)); }
  { RawDb(path).Exec("UPDATE schema_version SET version = 999"); }
  try {
    OpenSqliteStore(path);
    FAIL() << "opened a database of schema version 999";
  } catch (const StoreError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("999"), std::string::npos) << message;
    EXPECT_NE(message.find("newer"), std::string::npos) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
  }
  RawDb raw(path);
  EXPECT_EQ(raw.Text("SELECT version FROM schema_version"), "999");
  EXPECT_EQ(raw.Text("SELECT COUNT(*) FROM files"), "1");
}

TEST(SqliteStoreOpen, MissingDirectoryThrows) {
  TempDir dir;
  const std::string path = dir.path() + "/no/such/dir/codecell.db";
  try {
    OpenSqliteStore(path);
    FAIL() << "opened " << path;
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/no"));
}

TEST(SqliteStoreOpen, NotADatabaseThrows) {
  TempDir dir;
  const std::string path = dir.path() + "/garbage.db";
  {
    std::ofstream out(path, std::ios::binary);
    out << std::string(8192, 'x');
  }
  EXPECT_THROW(OpenSqliteStore(path), StoreError);
}

TEST(SqliteStoreOpen, FullDatabaseIsReportedAsDiskFull) {
  TempDir dir;
  const std::string path = dir.path() + "/codecell.db";
  { OpenSqliteStore(path)->InsertFile(MakeFile("first", "alice", 1, std::nullopt)); }
  const int pages = std::stoi(RawDb(path).Text("PRAGMA page_count"));
  SqliteStoreOptions options;
  options.max_page_count = pages + 2;
  auto store = OpenSqliteStore(path, options);
  bool saw_full = false;
  for (int i = 0; i < 1000 && !saw_full; ++i) {
    FileRecord f = MakeFile("f" + std::to_string(i), "alice", 2, std::nullopt);
    f.original_filename = std::string(2000, 'n');
    try {
      store->InsertFile(f);
    } catch (const StoreError& e) {
      EXPECT_TRUE(e.disk_full()) << e.what();
      saw_full = true;
    }
  }
  EXPECT_TRUE(saw_full);
  // Still usable for reads and deletes after the failure.
  EXPECT_TRUE(store->GetLiveFile("alice", "first", 0).has_value());
  EXPECT_TRUE(store->DeleteFile("alice", "first").has_value());
}

TEST_F(SqliteStoreTest, ConcurrentInsertsAllLandExactlyOnce) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        try {
          const std::string user = "user" + std::to_string(t % 3);
          store_->InsertFile(MakeFile("t" + std::to_string(t) + "-" + std::to_string(i), user, i,
                                      std::nullopt, 1));
          // Mix reads and other writes in.
          if (i % 10 == 0) {
            store_->ListLiveFiles(user, 0);
            store_->LiveUsage(user, 0);
            store_->SetMeta("thread" + std::to_string(t), std::to_string(i));
          }
        } catch (const std::exception& e) {
          ++errors;
          std::fprintf(stderr, "thread %d: %s\n", t, e.what());
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);

  const auto paths = store_->AllStoragePaths();
  EXPECT_EQ(paths.size(), static_cast<size_t>(kThreads * kPerThread));
  std::set<std::string> ids;
  for (const auto& [id, path] : paths) ids.insert(id);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      EXPECT_TRUE(ids.count("t" + std::to_string(t) + "-" + std::to_string(i)));
    }
  }
  EXPECT_EQ(store_->TotalLiveUsage(0).files, static_cast<uint64_t>(kThreads * kPerThread));
}

// Two connections to one file (the daemon and `codecell cleanup`): the busy timeout makes them
// wait for each other instead of failing.
TEST_F(SqliteStoreTest, TwoConnectionsWriteConcurrently) {
  auto other = OpenSqliteStore(path_);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    Store* store = t % 2 == 0 ? store_.get() : other.get();
    threads.emplace_back([&, t, store] {
      for (int i = 0; i < 150; ++i) {
        try {
          const std::string id = "c" + std::to_string(t) + "-" + std::to_string(i);
          store->InsertFile(
              MakeFile(id, "u", i, i % 2 == 0 ? std::optional<Millis>(10) : std::nullopt));
          if (i % 25 == 0) {
            const auto expired = store->ListExpired(100, 10);
            store->DeleteExpired(Ids(expired), 100);
          }
        } catch (const std::exception& e) {
          ++errors;
          std::fprintf(stderr, "thread %d: %s\n", t, e.what());
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  // Every never-expiring row survived the concurrent cleanups, on both connections.
  EXPECT_EQ(store_->LiveUsage("u", 100).files, 4u * 75u);
  EXPECT_EQ(other->LiveUsage("u", 100).files, 4u * 75u);
}

TEST_F(SqliteStoreTest, AllStoragePathsAndDeleteFileRecord) {
  store_->InsertFile(MakeFile("p2", "bob", 1, 5));
  store_->InsertFile(MakeFile("p1", "alice", 1, std::nullopt));
  const auto paths = store_->AllStoragePaths();
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths[0], (std::pair<std::string, std::string>{"p1", "alice/p1"}));
  EXPECT_EQ(paths[1], (std::pair<std::string, std::string>{"p2", "bob/p2"}));  // expired too
  store_->DeleteFileRecord("p2");
  store_->DeleteFileRecord("unknown");
  EXPECT_EQ(store_->AllStoragePaths().size(), 1u);
  EXPECT_EQ(store_->ListExpired(100, 10).size(), 0u);
}

TEST_F(SqliteStoreTest, ExecutionsInsertAndGet) {
  ExecutionRecord full;
  full.execution_id = "exec-1";
  full.user_id = "alice";
  full.started_at = 1000;
  full.finished_at = 2500;
  full.status = "timeout";
  full.return_code = -9;
  full.execution_time = 1.5;
  full.cpu_time = 0.25;
  full.peak_memory_bytes = 123456789012ULL;
  full.generated_files = 3;
  store_->InsertExecution(full);

  ExecutionRecord bare;
  bare.execution_id = "exec-2";
  bare.user_id = "bob";
  bare.status = "failed";
  store_->InsertExecution(bare);

  auto got = store_->GetExecution("exec-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->execution_id, "exec-1");
  EXPECT_EQ(got->user_id, "alice");
  EXPECT_EQ(got->started_at, 1000);
  EXPECT_EQ(got->finished_at, 2500);
  EXPECT_EQ(got->status, "timeout");
  EXPECT_EQ(got->return_code, -9);
  EXPECT_DOUBLE_EQ(got->execution_time, 1.5);
  EXPECT_EQ(got->cpu_time, std::optional<double>(0.25));
  EXPECT_EQ(got->peak_memory_bytes, std::optional<uint64_t>(123456789012ULL));
  EXPECT_EQ(got->generated_files, 3u);

  got = store_->GetExecution("exec-2");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->user_id, "bob");
  EXPECT_EQ(got->status, "failed");
  EXPECT_FALSE(got->cpu_time.has_value());
  EXPECT_FALSE(got->peak_memory_bytes.has_value());

  EXPECT_FALSE(store_->GetExecution("exec-3").has_value());
}

TEST_F(SqliteStoreTest, MetaSetGetOverwrite) {
  EXPECT_FALSE(store_->GetMeta("last_cleanup").has_value());
  store_->SetMeta("last_cleanup", "2024-01-01T00:00:00Z");
  store_->SetMeta("other", "");
  EXPECT_EQ(store_->GetMeta("last_cleanup"), std::optional<std::string>("2024-01-01T00:00:00Z"));
  store_->SetMeta("last_cleanup", "2024-01-02T00:00:00Z");
  EXPECT_EQ(store_->GetMeta("last_cleanup"), std::optional<std::string>("2024-01-02T00:00:00Z"));
  EXPECT_EQ(store_->GetMeta("other"), std::optional<std::string>(""));
  RawDb raw(path_);
  EXPECT_EQ(raw.Text("SELECT COUNT(*) FROM meta"), "2");
}

}  // namespace
}  // namespace codecell::store
