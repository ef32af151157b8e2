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
  constexpr size_t kMaxBytes = 255;
  if (out.size() > kMaxBytes) {
    auto dot = out.rfind('.');
    std::string ext =
        (dot != std::string::npos && out.size() - dot <= 16) ? out.substr(dot) : std::string();
    size_t keep = kMaxBytes - ext.size();
    // Back up to a UTF-8 lead byte so no character is cut in half.
    while (keep > 0 && (static_cast<unsigned char>(out[keep]) & 0xC0) == 0x80) --keep;
    out = out.substr(0, keep) + ext;
  }
  return out;
}

std::string NumberedFileName(const std::string& name, int n) {
  auto dot = name.rfind('.');
  std::string suffix = " (" + std::to_string(n) + ")";
  if (dot == std::string::npos || dot == 0) return name + suffix;
  return name.substr(0, dot) + suffix + name.substr(dot);
}

}  // namespace codecell::exec
