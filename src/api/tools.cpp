#include "api/tools.h"

#include <cmath>
#include <cstdio>

namespace codecell::api {
namespace {

using json = nlohmann::json;

std::string Number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

std::string Size(uint64_t bytes) {
  char buffer[32];
  if (bytes < 1024) {
    std::snprintf(buffer, sizeof buffer, "%llu B", static_cast<unsigned long long>(bytes));
  } else if (bytes < (1u << 20)) {
    std::snprintf(buffer, sizeof buffer, "%.1f KB", static_cast<double>(bytes) / 1024);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f MB", static_cast<double>(bytes) / (1 << 20));
  }
  return buffer;
}

// Index of the character boundary at or before `at`.
size_t Utf8Boundary(const std::string& s, size_t at) {
  while (at > 0 && at < s.size() && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) --at;
  return at;
}

size_t Utf8Length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// Byte offset of the `chars`-th character.
size_t Utf8Offset(const std::string& s, size_t chars) {
  size_t seen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (seen == chars) return i;
      ++seen;
    }
  }
  return s.size();
}

std::string StatusSentence(const json& r) {
  const std::string status = r.value("status", "");
  const int code = r.value("return_code", 0);
  const std::string seconds = Number(std::round(r.value("execution_time", 0.0) * 1000) / 1000);
  if (status == "ok" && code == 0) return "Status: success (exit code 0, " + seconds + " s).";
  if (status == "ok" || status == "error") {
    return "Status: error: the code failed with exit code " + std::to_string(code) + " after " +
           seconds + " s; the traceback is in stderr below.";
  }
  if (status == "timeout") {
    return "Status: timeout: the code was stopped at the time limit; output printed before that "
           "is below.";
  }
  if (status == "oom") return "Status: out of memory: the code exceeded the memory limit.";
  return "Status: killed: the code's process was killed (" + std::to_string(code) + ").";
}

json Parameters(json properties, json required) {
  return {{"type", "object"},
          {"properties", std::move(properties)},
          {"required", std::move(required)},
          {"additionalProperties", false}};
}

json Function(const std::string& name, const std::string& description, json parameters) {
  return {{"type", "function"},
          {"function",
           {{"name", name}, {"description", description}, {"parameters", std::move(parameters)}}}};
}

// Values and display() text are in stdout already (where the code showed them); images are
// files, named here in the order they were shown, so the model knows what the user sees.
std::string ShownImages(const json& r) {
  std::string text;
  for (const auto& item : r.value("outputs", json::array())) {
    if (!item.is_object() || item.value("type", "") != "display_data" ||
        !item.contains("file_id")) {
      continue;
    }
    std::string name = item.value("file_id", "");
    for (const auto& f : r.value("generated_files", json::array())) {
      if (f.value("file_id", "") == name)
        name = f.value("filename", "") + " (file_id " + name + ")";
    }
    text += "\n- " + name;
  }
  return text.empty() ? text : "\n\nImages shown (sent to the user):" + text;
}

}  // namespace

json ToolDefinitions(const ToolLimits& l) {
  const std::string lifetime = l.file_lifetime_hours < 0
                                   ? "kept until deleted"
                                   : "kept for " + Number(l.file_lifetime_hours) + " hours";
  json tools = json::array();
  tools.push_back(Function(
      "execute_python_code",
      "Run Python 3 code in a secure sandbox and get back what it printed (stdout), its errors "
      "(stderr, with the traceback) and the files it saved. The user's uploaded files are in the "
      "working directory /mnt/data; load_file('<file_id or name>') (no import needed) returns a "
      "pandas DataFrame for CSV/TSV/Excel/JSON/Parquet, a dict for YAML/TOML/JSON objects, text "
      "for text files. As in a notebook, the value of the last line, if it is an expression, is "
      "shown (a DataFrame as a table; end the line with ; to hide it), display(obj) shows any "
      "object, and plt.show() (or a figure left open) returns the chart as a PNG image. numpy, "
      "pandas, matplotlib, scipy, seaborn and scikit-learn are installed; approved packages can "
      "be added with install_packages, or are installed when the code imports them. Every file "
      "the code writes under /mnt/data (e.g. plots as PNG, CSV exports) is returned to the user "
      "(" +
          lifetime + ", at most " + std::to_string(l.max_generated_files) +
          " per run). No network. Limits: " + Number(l.default_timeout_seconds) +
          " s by default (timeout, at most " + Number(l.max_timeout_seconds) + " s), " +
          std::to_string(l.memory_mb) + " MiB of memory. Print the results you need to see.",
      Parameters(
          {{"code", {{"type", "string"}, {"description", "The Python code to run."}}},
           {"timeout",
            {{"type", "number"},
             {"description", "Seconds before the code is stopped (default " +
                                 Number(l.default_timeout_seconds) + ", at most " +
                                 Number(l.max_timeout_seconds) + ")."}}},
           {"install_packages",
            {{"type", "array"},
             {"items", {{"type", "string"}}},
             {"description", "Approved packages to install before running (e.g. [\"plotly\"])."}}}},
          {"code"})));
  tools.push_back(Function(
      "analyze_data_file",
      "Analyze one of the user's data files (CSV, TSV, Excel, JSON, JSONL, Parquet) in the "
      "sandbox and get a text report; charts are saved as PNG files and returned to the user. "
      "summary: shape, columns and types, missing values, statistics, first rows. correlation: "
      "correlation matrix, heatmap, strongly correlated pairs. distribution: histograms and "
      "mean/median/std/skew per numeric column. comprehensive: all of it in one 2x2 figure plus "
      "value counts of categorical columns.",
      Parameters({{"file_id",
                   {{"type", "string"},
                    {"description", "The file's id (see list_files) or its file name."}}},
                  {"analysis_type",
                   {{"type", "string"},
                    {"enum", {"summary", "correlation", "distribution", "comprehensive"}},
                    {"description", "Which analysis (default summary)."}}}},
                 {"file_id"})));
  tools.push_back(Function(
      "list_files",
      "List the user's files (uploads and files saved by earlier code): name, file_id, type, "
      "size and when each expires. Use a file_id with load_file() or analyze_data_file.",
      Parameters(json::object(), json::array())));
  tools.push_back(Function(
      "delete_file",
      "Delete one of the user's files for good (an upload or a file saved by earlier code); "
      "only when the user asks for it.",
      Parameters({{"file_id", {{"type", "string"}, {"description", "The file's id."}}}},
                 {"file_id"})));
  return tools;
}

ParsedToolCall ParseToolCall(const json& call) {
  ParsedToolCall parsed;
  if (!call.is_object()) {
    parsed.error = "the tool call is not an object";
    return parsed;
  }
  if (call.contains("id") && call["id"].is_string()) parsed.id = call["id"];
  const json* function = call.contains("function") ? &call["function"] : nullptr;
  if (function == nullptr || !function->is_object() || !function->contains("name") ||
      !(*function)["name"].is_string()) {
    parsed.error = "the tool call has no function name";
    return parsed;
  }
  parsed.name = (*function)["name"];
  if (!function->contains("arguments") || (*function)["arguments"].is_null()) return parsed;
  const json& arguments = (*function)["arguments"];
  if (arguments.is_object()) {
    parsed.arguments = arguments;
    return parsed;
  }
  if (!arguments.is_string()) {
    parsed.error = "the arguments of " + parsed.name + " must be a JSON object";
    return parsed;
  }
  const std::string& text = arguments.get_ref<const std::string&>();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return parsed;  // "" = no arguments
  try {
    json value = json::parse(text);
    if (!value.is_object()) {
      parsed.error = "the arguments of " + parsed.name + " must be a JSON object, not " +
                     std::string(value.type_name());
      return parsed;
    }
    parsed.arguments = std::move(value);
  } catch (const json::parse_error& e) {
    parsed.error = "the arguments of " + parsed.name + " are not valid JSON (" + e.what() +
                   "); send a JSON object such as {\"code\": \"print(1)\"}";
  }
  return parsed;
}

std::string WithinBudget(const std::string& text, size_t budget) {
  const size_t length = Utf8Length(text);
  if (length <= budget) return text;
  const size_t head_chars = budget * 2 / 3, tail_chars = budget - head_chars;
  const size_t head_end = Utf8Boundary(text, Utf8Offset(text, head_chars));
  const size_t tail_start = Utf8Boundary(text, Utf8Offset(text, length - tail_chars));
  return text.substr(0, head_end) + "\n[... " + std::to_string(length - budget) +
         " characters cut here: the output is over the budget of " + std::to_string(budget) +
         " characters; print less, or write it to a file ...]\n" + text.substr(tail_start);
}

std::string EvictedSentence(const json& evicted) {
  if (!evicted.is_array() || evicted.empty()) return "";
  std::string text = "\n\nRemoved to make room (the user's per-user file cap; they are gone):";
  for (const auto& f : evicted) {
    text += "\n- " + f.value("filename", "") + " (file_id " + f.value("file_id", "") + ", " +
            (f.value("source", "") == "upload" ? "an upload" : "a generated file") + ")";
  }
  return text;
}

std::string ExecutionContent(const json& r, size_t budget) {
  std::string content = StatusSentence(r);
  const std::string out = r.value("output", ""), err = r.value("error", "");
  const json truncated = r.value("truncated", json::object());
  auto stream = [&](const char* name, const std::string& text, bool cut_by_service) {
    content += std::string("\n\n") + name + ":\n";
    if (text.empty()) {
      content += "(empty)";
      return;
    }
    content += WithinBudget(text, budget);
    if (cut_by_service) content += "\n[the service also cut this stream at its own limit]";
  };
  stream("stdout", out, truncated.value("output", false));
  stream("stderr", err, truncated.value("error", false));
  content += ShownImages(r);
  const json files = r.value("generated_files", json::array());
  if (!files.empty()) {
    content += "\n\nFiles saved and returned to the user:";
    for (const auto& f : files) {
      content += "\n- " + f.value("filename", "") + " (" + f.value("mime_type", "") + ", " +
                 Size(f.value("size", uint64_t{0})) + ", file_id " + f.value("file_id", "") + ")";
    }
  }
  for (const auto& s : r.value("skipped_files", json::array())) {
    content += "\n- not saved: " + s.value("filename", "") + ": " + s.value("reason", "");
  }
  content += EvictedSentence(r.value("evicted_files", json::array()));
  if (const json installed = r.value("installed_packages", json::array()); !installed.empty()) {
    content += "\n\nPackages installed or available: ";
    for (size_t i = 0; i < installed.size(); ++i) {
      content += (i ? ", " : "") + installed[i].get<std::string>();
    }
  }
  for (const auto& f : r.value("failed_packages", json::array())) {
    content += "\nPackage not installed: " + f.value("name", "") + ": " + f.value("reason", "");
  }
  if (r.value("rerun_after_install", false)) {
    content += "\n(The code was run again after installing a package it imported.)";
  }
  return content;
}

}  // namespace codecell::api
