#pragma once

// Notebook output (SPEC v2): the Jupyter-style `outputs` list of an execution.
//
// The runner reports what it displays (the final expression's value, display(), figures, the
// uncaught exception) as JSON lines on the display pipe, a write-only descriptor of the sandbox
// (sandbox::kDisplayFd). Its stdout and stderr stay the plain pipes they were. The host reads the
// three in one poll loop and, before it reads display bytes, drains stdout and stderr: the runner
// flushes both before it writes an item, and a pipe write is complete when it returns, so whatever
// was printed before the item is captured by then. The host notes where each stream stood when an
// item's first byte arrived, and cuts the captured text there into `stream` items. The positions
// are the host's own measurement, never a claim of the tenant's.
//
// Rejected: a metadata file read after the run (the runner cannot know its offsets in a pipe
// that subprocesses and os.write also fill, so the interleaving would be guessed), and framing
// inside stdout (a marker forged or split by another writer corrupts `output`, and the live
// pass-through would have to filter it).
//
// Everything on the pipe is hostile input: the host keeps at most Limits::max_display_bytes and
// max_display_items of it, parses it without exceptions and with a depth bound, keeps only known
// fields of the expected types, and never opens a path named there: a `file` only selects among
// the execution's own generated files. A forged item can only change that execution's own result.

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace codecell::exec {

struct OutputItem {
  enum class Type { kStream, kExecuteResult, kDisplayData, kError };
  Type type = Type::kStream;
  std::string name, text;                                 // stream: "stdout" | "stderr"
  std::vector<std::pair<std::string, std::string>> data;  // mime type → text, in order
  std::string filename;            // display_data: a file the runner wrote, relative to /mnt/data
  std::string file_id, mime_type;  // display_data: set when `filename` is a generated file
  std::string ename, evalue;       // error
  std::vector<std::string> traceback;

  const std::string* Data(std::string_view mime) const;
  nlohmann::json ToJson() const;
};

// One item read from the display pipe, with the sizes (bytes) of the captured stdout and stderr
// when its first byte was read. `echoed`: the runner also wrote the item's text/plain and a
// newline to stdout (an error: its traceback to stderr) just before it, for v1 clients; that copy
// is left out of the `stream` items when it is found there.
struct DisplayRecord {
  OutputItem item;
  bool echoed = false;
  size_t stdout_pos = 0, stderr_pos = 0;
};

// One line of the pipe as an item; nullopt when it is not a well-formed one.
std::optional<DisplayRecord> ParseDisplayLine(std::string_view line);

// Splits the display pipe's bytes into lines and items, within the bounds.
class DisplayChannel {
 public:
  DisplayChannel(size_t max_bytes, size_t max_items)
      : max_bytes_(max_bytes), max_items_(max_items) {}

  // `stdout_pos`, `stderr_pos`: the captured sizes when these bytes were read.
  void Append(std::string_view bytes, size_t stdout_pos, size_t stderr_pos);
  // An unterminated last line is dropped (the runner was killed while writing it).
  void Finish() { line_.clear(); }

  const std::vector<DisplayRecord>& records() const { return records_; }
  std::vector<DisplayRecord>& records() { return records_; }
  // Something was dropped: over a bound, or not a well-formed item.
  bool truncated() const { return truncated_; }
  size_t malformed() const { return malformed_; }

 private:
  void EndLine();

  size_t max_bytes_, max_items_;
  size_t bytes_seen_ = 0;
  std::string line_;
  size_t line_stdout_pos_ = 0, line_stderr_pos_ = 0;
  std::vector<DisplayRecord> records_;
  bool truncated_ = false;
  size_t malformed_ = 0;
};

// The ordered outputs: the captured streams, cut at each record's position, around the records.
// Consecutive text of one stream is one item, as in Jupyter.
std::vector<OutputItem> BuildOutputs(const std::string& stdout_text, const std::string& stderr_text,
                                     const std::vector<DisplayRecord>& records);

// The store gives generated files new ids when it adopts them: `stored` maps an execution's
// file_id to the stored one. A displayed file that was not stored (over a quota) shows no file.
void RelinkOutputFiles(std::vector<OutputItem>& outputs,
                       const std::map<std::string, std::string>& stored);

}  // namespace codecell::exec
