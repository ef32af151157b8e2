#include "api/render.h"

#include <algorithm>
#include <cmath>

namespace codecell::api {

using nlohmann::json;
using store::FileRecord;

namespace {

bool IsListOfStrings(const json& v) {
  return v.is_array() &&
         std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); });
}

bool Given(const json& body, const char* key) { return body.contains(key) && !body[key].is_null(); }

json ExpiresAt(const FileRecord& r) {
  return r.expires_at ? json(files::Rfc3339(*r.expires_at)) : json(nullptr);
}

}  // namespace

json FileObject(const FileRecord& r) {
  return {{"file_id", r.file_id},      {"user_id", r.user_id},
          {"filename", r.filename},    {"original_filename", r.original_filename},
          {"file_type", r.file_type},  {"mime_type", r.mime_type},
          {"file_size", r.file_size},  {"sha256", r.sha256},
          {"source", r.source},        {"uploaded_at", files::Rfc3339(r.uploaded_at)},
          {"expires_at", ExpiresAt(r)}};
}

json FileObjects(const std::vector<FileRecord>& records) {
  json list = json::array();
  for (const auto& r : records) list.push_back(FileObject(r));
  return list;
}

json EvictedFiles(const std::vector<FileRecord>& evicted) {
  json list = json::array();
  for (const auto& r : evicted) {
    list.push_back({{"file_id", r.file_id}, {"filename", r.filename}, {"source", r.source}});
  }
  return list;
}

json UploadAnswer(const FileRecord& stored, const files::FileManager::Upload& upload) {
  json answer = FileObject(stored);
  answer["evicted_files"] = EvictedFiles(upload.evicted());
  return answer;
}

Expected<exec::ExecutionSpec> ParseExecutionSpec(const json& j) {
  if (j.is_discarded() || !j.is_object()) return Error::BadInput("the body must be a JSON object");
  if (!j.contains("code") || !j["code"].is_string()) {
    return Error::BadInput("code is required and must be a string");
  }
  exec::ExecutionSpec spec;
  spec.code = j["code"];
  if (Given(j, "timeout")) {
    if (!j["timeout"].is_number()) {
      return Error::BadInput("timeout must be a number of seconds");
    }
    spec.timeout_seconds = j["timeout"].get<double>();
  }
  if (Given(j, "memory_mb")) {
    if (!j["memory_mb"].is_number_integer() || j["memory_mb"].get<int64_t>() <= 0) {
      return Error::BadInput("memory_mb must be a positive integer");
    }
    spec.memory_mb = j["memory_mb"].get<uint64_t>();
  }
  if (Given(j, "install_packages")) {
    if (!IsListOfStrings(j["install_packages"])) {
      return Error::BadInput(exec::InstallPackagesRule());
    }
    spec.install_packages = j["install_packages"].get<std::vector<std::string>>();
  }
  if (Given(j, "file_ids")) {
    if (!IsListOfStrings(j["file_ids"])) {
      return Error::BadInput("file_ids must be a list of file ids");
    }
    spec.file_ids = j["file_ids"].get<std::vector<std::string>>();
  }
  return spec;
}

json ExecutionAnswer(const exec::ExecutionOutcome& outcome) {
  json answer = outcome.result;
  json stored = json::array();
  for (const auto& r : outcome.stored) {
    stored.push_back({{"file_id", r.file_id},
                      {"filename", r.filename},
                      {"file_type", r.file_type},
                      {"mime_type", r.mime_type},
                      {"size", r.file_size},
                      {"expires_at", ExpiresAt(r)}});
  }
  json skipped = json::array();
  for (const auto& s : outcome.skipped) {
    skipped.push_back({{"filename", s.filename}, {"size", s.size}, {"reason", s.reason}});
  }
  const packages::InstallReport& installs = outcome.installs;
  json details = json::array();
  for (const auto& p : installs.packages) details.push_back(p.ToJson());
  answer["generated_files"] = stored;
  answer["skipped_files"] = skipped;
  answer["evicted_files"] = EvictedFiles(outcome.evicted);
  answer["installed_packages"] = installs.InstalledNames();
  answer["failed_packages"] = installs.Failed();
  answer["package_installs"] = details;
  answer["package_install_seconds"] = std::round(installs.seconds * 1000) / 1000;
  if (outcome.rerun_after_install) answer["rerun_after_install"] = true;
  return answer;
}

}  // namespace codecell::api
