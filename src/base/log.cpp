#include "base/log.h"

#include <chrono>
#include <iostream>
#include <mutex>

#include "base/time.h"

namespace codecell {

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void LogJson(nlohmann::json line) {
  line["ts"] = Rfc3339(std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count());
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::cerr << DumpJson(line) << std::endl;
}

}  // namespace codecell
