#include "exec/execution_json.h"

namespace codecell::exec {

using nlohmann::json;

void to_json(json& j, const Limits& l) {
  j = {{"timeout_seconds", l.timeout_seconds},
       {"memory_mb", l.memory_mb},
       {"max_processes", l.max_processes},
       {"cpus", l.cpus},
       {"tmp_mb", l.tmp_mb},
       {"workspace_mb", l.workspace_mb},
       {"max_output_chars", l.max_output_chars},
       {"max_generated_files", l.max_generated_files},
       {"max_generated_file_bytes", l.max_generated_file_bytes},
       {"max_display_bytes", l.max_display_bytes},
       {"max_display_items", l.max_display_items}};
}

void from_json(const json& j, Limits& l) {
  j.at("timeout_seconds").get_to(l.timeout_seconds);
  j.at("memory_mb").get_to(l.memory_mb);
  j.at("max_processes").get_to(l.max_processes);
  j.at("cpus").get_to(l.cpus);
  j.at("tmp_mb").get_to(l.tmp_mb);
  j.at("workspace_mb").get_to(l.workspace_mb);
  j.at("max_output_chars").get_to(l.max_output_chars);
  j.at("max_generated_files").get_to(l.max_generated_files);
  j.at("max_generated_file_bytes").get_to(l.max_generated_file_bytes);
  j.at("max_display_bytes").get_to(l.max_display_bytes);
  j.at("max_display_items").get_to(l.max_display_items);
}

void to_json(json& j, const InputFile& in) {
  j = {{"file_id", in.file_id}, {"filename", in.filename}, {"host_path", in.host_path}};
}

void from_json(const json& j, InputFile& in) {
  j.at("file_id").get_to(in.file_id);
  j.at("filename").get_to(in.filename);
  j.at("host_path").get_to(in.host_path);
}

void to_json(json& j, const OutputItem& item) { j = item.ToJson(); }

void from_json(const json& j, OutputItem& item) {
  const std::string type = j.at("type").get<std::string>();
  item = OutputItem{};
  // Bound first: a range-for over a temporary's items() would read a destroyed json.
  const json data = j.value("data", json::object());
  for (const auto& [mime, text] : data.items())
    item.data.emplace_back(mime, text.get<std::string>());
  if (type == "stream") {
    item.type = OutputItem::Type::kStream;
    j.at("name").get_to(item.name);
    j.at("text").get_to(item.text);
  } else if (type == "execute_result") {
    item.type = OutputItem::Type::kExecuteResult;
  } else if (type == "display_data") {
    item.type = OutputItem::Type::kDisplayData;
    item.file_id = j.value("file_id", "");
    item.mime_type = j.value("mime_type", "");
  } else if (type == "error") {
    item.type = OutputItem::Type::kError;
    j.at("ename").get_to(item.ename);
    j.at("evalue").get_to(item.evalue);
    j.at("traceback").get_to(item.traceback);
  } else {
    throw json::other_error::create(501, "unknown output item type " + type, &j);
  }
}

void to_json(json& j, const ExecutionResult& result) { j = result.ToJson(); }

void from_json(const json& j, ExecutionResult& r) {
  r = ExecutionResult{};
  j.at("execution_id").get_to(r.execution_id);
  j.at("status").get_to(r.status);
  j.at("output").get_to(r.output);
  j.at("error").get_to(r.error);
  j.at("return_code").get_to(r.return_code);
  j.at("execution_time").get_to(r.execution_time);
  const json& truncated = j.at("truncated");
  truncated.at("output").get_to(r.output_truncated);
  truncated.at("error").get_to(r.error_truncated);
  truncated.at("outputs").get_to(r.outputs_truncated);
  j.at("outputs").get_to(r.outputs);
  for (const auto& g : j.at("generated_files")) {
    GeneratedFile f;
    g.at("file_id").get_to(f.file_id);
    g.at("filename").get_to(f.filename);
    g.at("file_type").get_to(f.file_type);
    g.at("mime_type").get_to(f.mime_type);
    g.at("size").get_to(f.size);
    g.at("path").get_to(f.host_path);
    r.generated_files.push_back(std::move(f));
  }
  for (const auto& s : j.at("skipped_files")) {
    r.skipped_files.push_back({s.at("filename").get<std::string>(),
                               s.at("reason").get<std::string>(), s.at("size").get<uint64_t>()});
  }
  j.at("interpreter").get_to(r.interpreter);
  const json& resources = j.at("resources");
  if (resources.at("cpu_time").is_number()) r.cpu_time = resources["cpu_time"].get<double>();
  if (resources.at("peak_memory_bytes").is_number()) {
    r.peak_memory_bytes = resources["peak_memory_bytes"].get<uint64_t>();
  }
}

void to_json(json& j, const HelperRequest& h) {
  const ExecutionRequest& r = h.request;
  j = {{"code", r.code},
       {"inputs", r.inputs},
       {"limits", r.limits},
       {"generated_dir", r.generated_dir},
       {"packages_dir", r.packages_dir},
       {"installer", r.installer},
       {"wheel_dir", r.wheel_dir},
       {"data_dir", h.data_dir},
       {"installer_uid", h.installer_uid}};
}

void from_json(const json& j, HelperRequest& h) {
  ExecutionRequest& r = h.request;
  j.at("code").get_to(r.code);
  j.at("inputs").get_to(r.inputs);
  j.at("limits").get_to(r.limits);
  j.at("generated_dir").get_to(r.generated_dir);
  j.at("packages_dir").get_to(r.packages_dir);
  j.at("installer").get_to(r.installer);
  j.at("wheel_dir").get_to(r.wheel_dir);
  j.at("data_dir").get_to(h.data_dir);
  j.at("installer_uid").get_to(h.installer_uid);
}

}  // namespace codecell::exec
