#pragma once

// The properties every stored or placed file name has, checked by the property test
// (file_types_test.cpp) and the fuzz harness (tests/fuzz/fuzz_filename.cpp) alike.

#include <cctype>
#include <filesystem>
#include <string>
#include <string_view>

#include "exec/output_capture.h"

namespace codecell::testing {

// "" when `name` is a safe single directory entry; else the property it breaks.
inline std::string FileNameViolation(const std::string& name) {
  if (name.empty()) return "empty";
  if (name.size() > 255) return "longer than 255 bytes";
  if (name[0] == '.') return "hidden, '.' or '..'";
  for (size_t i = 0; i < name.size();) {
    const int len = exec::Utf8SequenceLength(std::string_view(name).substr(i));
    if (len <= 0) return "invalid UTF-8 at byte " + std::to_string(i);
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (len == 1 && (c < 0x20 || c == 0x7F)) return "a control character";
    if (c == '/' || c == '\\') return "a path separator";
    i += static_cast<size_t>(len);
  }
  std::string stem = name.substr(0, name.find('.'));
  while (!stem.empty() && stem.back() == ' ') stem.pop_back();
  for (char& c : stem) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (stem == "CON" || stem == "PRN" || stem == "AUX" || stem == "NUL" ||
      (stem.size() == 4 && (stem.rfind("COM", 0) == 0 || stem.rfind("LPT", 0) == 0) &&
       stem[3] >= '1' && stem[3] <= '9')) {
    return "a Windows device name";
  }
  // Placed in a user's directory, it names an entry of that directory and nothing else.
  const std::filesystem::path dir = "/data/files/user";
  const std::filesystem::path placed = (dir / name).lexically_normal();
  if (placed.parent_path() != dir || placed.filename() != name) return "leaves the directory";
  return "";
}

}  // namespace codecell::testing
