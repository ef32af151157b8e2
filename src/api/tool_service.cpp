#include "api/tool_service.h"

#include <fstream>
#include <iterator>
#include <set>

#include "api/errors.h"
#include "api/render.h"
#include "base/log.h"
#include "runner/runner_files.h"

namespace codecell::api {

using nlohmann::json;
using store::FileRecord;

namespace {

std::optional<std::string> TextArgument(const json& args, const char* key) {
  if (!args.contains(key) || !args[key].is_string()) return std::nullopt;
  return args[key].get<std::string>();
}

}  // namespace

ToolService::ToolAnswer ToolService::Execute(const std::string& user, const json& body) {
  ToolAnswer answer;
  auto spec = ParseExecutionSpec(body);
  auto outcome =
      spec ? executions_.Run(user, spec.value()) : Expected<exec::ExecutionOutcome>(spec.error());
  if (!outcome) {
    answer.content = ToolErrorContent(outcome.error());
    return answer;
  }
  answer.result = ExecutionAnswer(outcome.value());
  answer.content = ExecutionContent(answer.result, limits_.budget_chars);
  for (const auto& r : outcome->stored) {
    answer.attachments.push_back(
        {{"file_id", r.file_id},
         {"filename", r.filename},
         {"mime_type", r.mime_type},
         {"size", r.file_size},
         {"download_path", "/v1/files/" + r.file_id + "/content?user_id=" + user}});
  }
  return answer;
}

ToolService::ToolAnswer ToolService::ExecutePythonCode(const std::string& user, const json& args) {
  auto code = TextArgument(args, "code");
  if (!code) {
    return {"Error: execute_python_code needs a \"code\" argument: a string of Python code."};
  }
  if (args.contains("timeout") && !args["timeout"].is_null() && !args["timeout"].is_number()) {
    return {"Error: \"timeout\" must be a number of seconds."};
  }
  json body = {{"code", *code}};
  if (args.contains("timeout") && args["timeout"].is_number()) body["timeout"] = args["timeout"];
  if (args.contains("install_packages") && args["install_packages"].is_array()) {
    body["install_packages"] = args["install_packages"];
  }
  return Execute(user, body);
}

std::optional<FileRecord> ToolService::FindByIdOrName(const std::string& user,
                                                      const std::string& ref) {
  if (auto r = files_.Get(user, ref)) return r;
  for (auto& r : files_.List(user)) {
    if (r.filename == ref) return r;
  }
  return std::nullopt;
}

ToolService::ToolAnswer ToolService::AnalyzeDataFile(const std::string& user, const json& args) {
  static const std::set<std::string> kKinds = {"summary", "correlation", "distribution",
                                               "comprehensive"};
  auto ref = TextArgument(args, "file_id");
  const std::string kind = TextArgument(args, "analysis_type").value_or("summary");
  if (!ref) return {"Error: analyze_data_file needs a \"file_id\" argument (see list_files)."};
  if (kKinds.count(kind) == 0) {
    return {
        "Error: analysis_type must be one of summary, correlation, distribution, "
        "comprehensive."};
  }
  std::optional<FileRecord> file = FindByIdOrName(user, *ref);
  if (!file) return {"Error: the user has no file '" + *ref + "'; list_files shows their files."};
  return Execute(user, {{"code", std::string(runner::kAnalyzeSource) + "\nanalyze(" +
                                     json(file->file_id).dump() + ", " + json(kind).dump() + ")\n"},
                        {"file_ids", json::array({file->file_id})}});
}

ToolService::ToolAnswer ToolService::ListFilesTool(const std::string& user) {
  auto list = files_.List(user);
  ToolAnswer answer;
  answer.content = list.empty() ? "The user has no files." : "The user's files:";
  for (const auto& r : list) {
    answer.content += "\n- " + r.filename + " (file_id " + r.file_id + ", " + r.file_type + ", " +
                      std::to_string(r.file_size) + " bytes, expires " +
                      (r.expires_at ? files::Rfc3339(*r.expires_at) : std::string("never")) + ")";
  }
  answer.result = {{"files", FileObjects(list)}};
  return answer;
}

ToolService::ToolAnswer ToolService::DeleteFileTool(const std::string& user, const json& args) {
  auto ref = TextArgument(args, "file_id");
  if (!ref) return {"Error: delete_file needs a \"file_id\" argument (see list_files)."};
  auto file = files_.Get(user, *ref);
  if (!file || !files_.Delete(user, file->file_id)) {
    return {"Error: the user has no file with id '" + *ref + "'; list_files shows their files."};
  }
  return {"Deleted " + file->filename + " (file_id " + file->file_id + ")."};
}

json ToolService::CallTool(const std::string& user, const ParsedToolCall& call) {
  // Both ways in (POST /v1/tool-calls, MCP's tools/call) come through here. The user is the
  // caller's (authenticated) statement: a user_id in the model's arguments is never read.
  metrics_.CountToolCall(call.name);
  LogJson({{"level", "info"},
           {"event", "tool_call"},
           {"user_id", user},
           {"tool", call.name},
           {"malformed", !call.error.empty()}});
  ToolAnswer answer;
  if (!call.error.empty()) {
    answer.content = "Error: " + call.error + ".";
  } else if (call.name == "execute_python_code") {
    answer = ExecutePythonCode(user, call.arguments);
  } else if (call.name == "analyze_data_file") {
    answer = AnalyzeDataFile(user, call.arguments);
  } else if (call.name == "list_files") {
    answer = ListFilesTool(user);
  } else if (call.name == "delete_file") {
    answer = DeleteFileTool(user, call.arguments);
  } else {
    answer.content = "Error: there is no tool named '" + call.name +
                     "'. The tools are execute_python_code, analyze_data_file, list_files and "
                     "delete_file.";
  }
  return {{"message", {{"role", "tool"}, {"tool_call_id", call.id}, {"content", answer.content}}},
          {"attachments", answer.attachments},
          {"result", answer.result}};
}

sandbox::Result<json> ToolService::UploadFile(const std::string& user, const std::string& filename,
                                              const std::string& bytes) {
  using R = sandbox::Result<json>;
  metrics_.CountToolCall("upload_file");  // MCP's tool: the only caller
  auto begun = files_.BeginUpload(filename);
  if (!begun.ok()) return R::Fail(begun.failure.message);
  auto& upload = *begun.value;
  if (!upload->Write(bytes.data(), bytes.size())) return R::Fail(upload->failure().message);
  auto stored = upload->Commit(user);
  metrics_.CountUpload(stored.ok());
  if (!stored.ok()) return R::Fail(stored.failure.message);
  return UploadAnswer(*stored.value, *upload);
}

json ToolService::ListFiles(const std::string& user) { return FileObjects(files_.List(user)); }

std::optional<json> ToolService::FindFile(const std::string& user, const std::string& file_id) {
  auto r = files_.Get(user, file_id);
  if (!r) return std::nullopt;
  return FileObject(*r);
}

sandbox::Result<std::string> ToolService::ReadFileBytes(const std::string& user,
                                                        const std::string& file_id) {
  using R = sandbox::Result<std::string>;
  auto r = files_.Get(user, file_id);
  if (!r) return R::Fail("no such file");
  std::ifstream in(files_.PathOf(*r), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return R::Fail("cannot read " + r->filename);
  return bytes;
}

}  // namespace codecell::api
