#pragma once

#include <array>
#include <map>
#include <string>

#include "base/mutex.h"
#include "packages/installer.h"

namespace codecell::api {

// Counters and a duration histogram in memory, rendered in Prometheus text format.
class Metrics {
 public:
  void CountExecution(const std::string& status, double seconds);
  void CountUpload(bool stored);
  void CountCleanup(size_t deleted);
  void CountRequest(int status);
  // A model's tool call (POST /v1/tool-calls or MCP tools/call); unknown names count as "other".
  void CountToolCall(const std::string& tool);

  struct Gauges {
    size_t queue_depth = 0, running = 0, workers = 0;
    uint64_t files = 0, bytes = 0;
    packages::PackageStats packages;
    size_t mcp_sessions = 0;
  };
  std::string Render(const Gauges& gauges) const;

 private:
  static constexpr std::array<double, 10> kBuckets = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  mutable Mutex mutex_;
  std::map<std::string, uint64_t> executions_by_status_ CODECELL_GUARDED_BY(mutex_);
  std::array<uint64_t, kBuckets.size()> duration_buckets_ CODECELL_GUARDED_BY(mutex_){};
  uint64_t duration_count_ CODECELL_GUARDED_BY(mutex_) = 0;
  double duration_sum_ CODECELL_GUARDED_BY(mutex_) = 0;
  uint64_t uploads_stored_ CODECELL_GUARDED_BY(mutex_) = 0;
  uint64_t uploads_refused_ CODECELL_GUARDED_BY(mutex_) = 0;
  uint64_t cleanup_runs_ CODECELL_GUARDED_BY(mutex_) = 0;
  uint64_t cleanup_deleted_ CODECELL_GUARDED_BY(mutex_) = 0;
  std::map<int, uint64_t> requests_by_status_ CODECELL_GUARDED_BY(mutex_);
  std::map<std::string, uint64_t> tool_calls_ CODECELL_GUARDED_BY(mutex_);
};

}  // namespace codecell::api
