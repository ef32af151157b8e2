#include "exec/notebook_output.h"

#include <algorithm>

namespace codecell::exec {
namespace {

using nlohmann::json;

constexpr size_t kMaxNameBytes = 1024;  // a file name, an exception's name
constexpr size_t kMaxTracebackLines = 1000;

// Only textual representations travel on the pipe; images travel as generated files.
bool KnownMime(std::string_view mime) {
  return mime == "text/plain" || mime == "text/html" || mime == "text/markdown";
}

// The format nests at most an object or array inside the top-level object: anything deeper is
// dropped while parsing (the parser itself is iterative), so nothing deep is ever built.
json ParseShallow(std::string_view line) {
  json::parser_callback_t shallow = [](int depth, json::parse_event_t event, json&) {
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
      return depth < 2;
    }
    return true;
  };
  return json::parse(line.begin(), line.end(), shallow, /*allow_exceptions=*/false);
}

const std::string* StringField(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

bool ParseData(const json& j, OutputItem& item) {
  auto data = j.find("data");
  if (data == j.end()) return true;
  if (!data->is_object()) return false;
  for (const auto& [mime, value] : data->items()) {
    if (KnownMime(mime) && value.is_string())
      item.data.emplace_back(mime, value.get<std::string>());
  }
  return true;
}

bool ParseError(const json& j, OutputItem& item) {
  const std::string* ename = StringField(j, "ename");
  const std::string* evalue = StringField(j, "evalue");
  auto traceback = j.find("traceback");
  if (ename == nullptr || ename->size() > kMaxNameBytes || evalue == nullptr ||
      traceback == j.end() || !traceback->is_array() || traceback->size() > kMaxTracebackLines) {
    return false;
  }
  item.ename = *ename;
  item.evalue = *evalue;
  for (const auto& line : *traceback) {
    if (!line.is_string()) return false;
    item.traceback.push_back(line.get<std::string>());
  }
  return true;
}

void AppendStream(std::vector<OutputItem>& outputs, const char* name, std::string_view text) {
  if (text.empty()) return;
  if (!outputs.empty() && outputs.back().type == OutputItem::Type::kStream &&
      outputs.back().name == name) {
    outputs.back().text.append(text);
    return;
  }
  OutputItem item;
  item.name = name;
  item.text = text;
  outputs.push_back(std::move(item));
}

// What the runner echoed to a stream for v1 clients just before `record`, if anything.
std::pair<bool, std::string> Echo(const DisplayRecord& record) {
  if (!record.echoed) return {true, ""};
  const OutputItem& item = record.item;
  if (item.type == OutputItem::Type::kError) {
    std::string text;
    for (const auto& line : item.traceback) text += line;
    return {false, text};
  }
  const std::string* plain = item.Data("text/plain");
  return {true, plain != nullptr ? *plain + "\n" : std::string()};
}

}  // namespace

const std::string* OutputItem::Data(std::string_view mime) const {
  for (const auto& [m, text] : data) {
    if (m == mime) return &text;
  }
  return nullptr;
}

json OutputItem::ToJson() const {
  json data_json = json::object();
  for (const auto& [mime, text] : data) data_json[mime] = text;
  switch (type) {
    case Type::kStream:
      return {{"type", "stream"}, {"name", name}, {"text", text}};
    case Type::kExecuteResult:
      return {{"type", "execute_result"}, {"data", data_json}};
    case Type::kDisplayData: {
      json j = {{"type", "display_data"}, {"data", data_json}};
      if (!file_id.empty()) {
        j["file_id"] = file_id;
        j["mime_type"] = mime_type;
      }
      return j;
    }
    case Type::kError:
      return {{"type", "error"}, {"ename", ename}, {"evalue", evalue}, {"traceback", traceback}};
  }
  return json::object();
}

std::optional<DisplayRecord> ParseDisplayLine(std::string_view line) {
  json j = ParseShallow(line);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  const std::string* type = StringField(j, "type");
  if (type == nullptr) return std::nullopt;
  DisplayRecord record;
  OutputItem& item = record.item;
  if (*type == "execute_result") {
    item.type = OutputItem::Type::kExecuteResult;
  } else if (*type == "display_data") {
    item.type = OutputItem::Type::kDisplayData;
  } else if (*type == "error") {
    item.type = OutputItem::Type::kError;
  } else {
    return std::nullopt;
  }
  if (auto echo = j.find("echo"); echo != j.end() && echo->is_boolean()) {
    record.echoed = echo->get<bool>();
  }
  if (item.type == OutputItem::Type::kError) {
    if (!ParseError(j, item)) return std::nullopt;
    return record;
  }
  if (!ParseData(j, item)) return std::nullopt;
  if (const std::string* file = StringField(j, "file"); file != nullptr) {
    if (item.type != OutputItem::Type::kDisplayData || file->empty() ||
        file->size() > kMaxNameBytes) {
      return std::nullopt;
    }
    item.filename = *file;
  }
  // An execute_result is a value's text; a display_data shows text or a file.
  if (item.Data("text/plain") == nullptr && item.filename.empty()) return std::nullopt;
  return record;
}

void DisplayChannel::Append(std::string_view bytes, size_t stdout_pos, size_t stderr_pos) {
  if (truncated_ && bytes_seen_ >= max_bytes_) return;
  if (bytes.size() > max_bytes_ - bytes_seen_) {
    // Over the bound: the line in progress can never be complete, and the rest is not read.
    bytes = bytes.substr(0, max_bytes_ - bytes_seen_);
    truncated_ = true;
  }
  bytes_seen_ += bytes.size();
  while (!bytes.empty()) {
    if (line_.empty()) {
      line_stdout_pos_ = stdout_pos;
      line_stderr_pos_ = stderr_pos;
    }
    size_t newline = bytes.find('\n');
    line_.append(bytes.substr(0, newline));
    if (newline == std::string_view::npos) break;
    EndLine();
    bytes.remove_prefix(newline + 1);
  }
  if (truncated_) line_.clear();
}

void DisplayChannel::EndLine() {
  std::string line = std::move(line_);
  line_.clear();
  if (line.empty()) return;
  if (records_.size() >= max_items_) {
    truncated_ = true;
    return;
  }
  auto record = ParseDisplayLine(line);
  if (!record) {
    ++malformed_;
    return;
  }
  record->stdout_pos = line_stdout_pos_;
  record->stderr_pos = line_stderr_pos_;
  records_.push_back(std::move(*record));
}

std::vector<OutputItem> BuildOutputs(const std::string& stdout_text, const std::string& stderr_text,
                                     const std::vector<DisplayRecord>& records) {
  std::vector<OutputItem> outputs;
  size_t out_done = 0, err_done = 0;
  // The streams up to (out_to, err_to), stdout first: their order within a segment is unknown.
  auto flush = [&](size_t out_to, size_t err_to, const DisplayRecord* before) {
    out_to = std::clamp(out_to, out_done, stdout_text.size());
    err_to = std::clamp(err_to, err_done, stderr_text.size());
    std::string_view out(stdout_text.data() + out_done, out_to - out_done);
    std::string_view err(stderr_text.data() + err_done, err_to - err_done);
    out_done = out_to;
    err_done = err_to;
    if (before != nullptr) {
      auto [on_stdout, echo] = Echo(*before);
      std::string_view& stream = on_stdout ? out : err;
      // Only an exact copy is left out: a truncated or interleaved one stays, as printed.
      if (!echo.empty() && stream.ends_with(echo)) stream.remove_suffix(echo.size());
    }
    AppendStream(outputs, "stdout", out);
    AppendStream(outputs, "stderr", err);
  };
  for (const auto& record : records) {
    flush(record.stdout_pos, record.stderr_pos, &record);
    outputs.push_back(record.item);
  }
  flush(stdout_text.size(), stderr_text.size(), nullptr);
  return outputs;
}

void RelinkOutputFiles(std::vector<OutputItem>& outputs,
                       const std::map<std::string, std::string>& stored) {
  for (auto& item : outputs) {
    if (item.file_id.empty()) continue;
    auto it = stored.find(item.file_id);
    if (it != stored.end()) {
      item.file_id = it->second;
    } else {
      item.file_id.clear();
      item.mime_type.clear();
    }
  }
}

}  // namespace codecell::exec
