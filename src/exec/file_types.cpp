#include "exec/file_types.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "exec/output_capture.h"

namespace codecell::exec {
namespace {

struct Entry {
  const char* kind;
  const char* mime;
};

const std::map<std::string, Entry>& Table() {
  static const std::map<std::string, Entry> table = {
      {"png", {"image", "image/png"}},
      {"jpg", {"image", "image/jpeg"}},
      {"jpeg", {"image", "image/jpeg"}},
      {"gif", {"image", "image/gif"}},
      {"svg", {"image", "image/svg+xml"}},
      {"bmp", {"image", "image/bmp"}},
      {"webp", {"image", "image/webp"}},
      {"tif", {"image", "image/tiff"}},
      {"tiff", {"image", "image/tiff"}},
      {"csv", {"data", "text/csv"}},
      {"tsv", {"data", "text/tab-separated-values"}},
      {"xlsx", {"data", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}},
      {"xls", {"data", "application/vnd.ms-excel"}},
      {"parquet", {"data", "application/vnd.apache.parquet"}},
      {"txt", {"text", "text/plain"}},
      {"md", {"text", "text/markdown"}},
      {"log", {"text", "text/plain"}},
      {"json", {"structured", "application/json"}},
      {"jsonl", {"structured", "application/jsonl"}},
      {"xml", {"structured", "application/xml"}},
      {"yaml", {"structured", "application/yaml"}},
      {"yml", {"structured", "application/yaml"}},
      {"toml", {"structured", "application/toml"}},
      {"html", {"html", "text/html"}},
      {"htm", {"html", "text/html"}},
      {"pdf", {"pdf", "application/pdf"}},
      {"py", {"code", "text/x-python"}},
      {"js", {"code", "text/javascript"}},
      {"ts", {"code", "text/plain"}},
      {"css", {"code", "text/css"}},
      {"sql", {"code", "application/sql"}},
      {"sh", {"code", "text/x-shellscript"}},
      {"c", {"code", "text/x-c"}},
      {"cpp", {"code", "text/x-c++"}},
      {"h", {"code", "text/x-c"}},
      {"java", {"code", "text/x-java"}},
      {"r", {"code", "text/plain"}},
      {"zip", {"archive", "application/zip"}},
      {"tar", {"archive", "application/x-tar"}},
      {"gz", {"archive", "application/gzip"}},
      {"tgz", {"archive", "application/gzip"}},
      {"bz2", {"archive", "application/x-bzip2"}},
      {"xz", {"archive", "application/x-xz"}},
      {"7z", {"archive", "application/x-7z-compressed"}},
  };
  return table;
}

}  // namespace

FileType FileTypeForName(const std::string& filename) {
  auto slash = filename.rfind('/');
  std::string base = slash == std::string::npos ? filename : filename.substr(slash + 1);
  auto dot = base.rfind('.');
  if (dot == std::string::npos || dot == 0) return {"other", "application/octet-stream"};
  std::string ext = base.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto it = Table().find(ext);
  if (it == Table().end()) return {"other", "application/octet-stream"};
  return {it->second.kind, it->second.mime};
}

namespace {

constexpr size_t kMaxNameBytes = 255;  // NAME_MAX

// At most `max` bytes of `text`, cut before a UTF-8 lead byte so that no character is halved.
std::string CutUtf8(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  size_t keep = max;
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
  return text.substr(0, keep);
}

// A name Windows reserves for a device whatever its extension ("con.csv", "LPT1.txt"): a user who
// downloads it from the chat there could not save it.
bool WindowsDeviceName(const std::string& name) {
  std::string stem = name.substr(0, name.find('.'));
  while (!stem.empty() && stem.back() == ' ') stem.pop_back();
  for (char& c : stem) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (stem == "CON" || stem == "PRN" || stem == "AUX" || stem == "NUL") return true;
  return stem.size() == 4 && (stem.compare(0, 3, "COM") == 0 || stem.compare(0, 3, "LPT") == 0) &&
         stem[3] >= '1' && stem[3] <= '9';
}

// "stem" + `suffix` + ".ext" within kMaxNameBytes: the stem gives way, the extension (up to 16
// bytes) is kept.
std::string WithinNameMax(const std::string& name, const std::string& suffix) {
  auto dot = name.rfind('.');
  const bool has_ext = dot != std::string::npos && dot != 0 && name.size() - dot <= 16;
  std::string stem = has_ext ? name.substr(0, dot) : name;
  std::string ext = has_ext ? name.substr(dot) : std::string();
  return CutUtf8(stem, kMaxNameBytes - suffix.size() - ext.size()) + suffix + ext;
}

}  // namespace

std::string SafeFileName(const std::string& name) {
  std::string out;
  for (size_t i = 0; i < name.size();) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    int len = Utf8SequenceLength(std::string_view(name).substr(i));
    if (len <= 0) {
      out += "\xEF\xBF\xBD";  // invalid UTF-8: the name must read the same everywhere
      ++i;
    } else if (len > 1) {
      out.append(name, i, static_cast<size_t>(len));
      i += static_cast<size_t>(len);
    } else {
      out.push_back(c == '/' || c == '\\' || c < 0x20 || c == 0x7F ? '_' : static_cast<char>(c));
      ++i;
    }
  }
  // Leading dots would make hidden files or "." / ".."; strip them.
  size_t first = out.find_first_not_of('.');
  out = first == std::string::npos ? "" : out.substr(first);
  if (out.empty()) return "file";
  if (WindowsDeviceName(out)) out.insert(0, "_");
  return WithinNameMax(out, "");
}

std::string NumberedFileName(const std::string& name, int n) {
  return WithinNameMax(name, " (" + std::to_string(n) + ")");
}

}  // namespace codecell::exec
