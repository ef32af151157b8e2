#pragma once

#include <string>

namespace codecell::exec {

struct FileType {
  std::string kind;  // image, data, text, structured, html, pdf, code, archive, other
  std::string mime;
};

// Kind and MIME type from the file name's extension (case-insensitive), as the old bot sorted
// generated files. Unknown extensions are {"other", "application/octet-stream"}.
FileType FileTypeForName(const std::string& filename);

// A display name safe to place in a directory: valid UTF-8 (invalid bytes become U+FFFD), no
// separators, no control characters, no leading dots (so never "." or ".."), no Windows device
// name ("con.csv" -> "_con.csv"), at most 255 bytes (cut on a UTF-8 boundary, an extension of up to
// 16 bytes kept). Empty input gives "file". Idempotent.
std::string SafeFileName(const std::string& name);

// "name.ext" -> "name (2).ext" for n = 2; still at most 255 bytes (the stem gives way). For a
// SafeFileName, the result is one too.
std::string NumberedFileName(const std::string& name, int n);

}  // namespace codecell::exec
