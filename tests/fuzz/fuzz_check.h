#pragma once

// What the harnesses share: a property violation aborts with a message (libFuzzer saves the input
// as a crash), and the bytes as a string.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "exec/output_capture.h"

namespace codecell::fuzz {

inline void Check(bool holds, const char* property, const std::string& detail = "") {
  if (holds) return;
  std::fprintf(stderr, "property violated: %s %s\n", property, detail.c_str());
  std::abort();
}

inline std::string Bytes(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

inline bool ValidUtf8(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    const int len = exec::Utf8SequenceLength(std::string_view(text).substr(i));
    if (len <= 0) return false;
    i += static_cast<size_t>(len);
  }
  return true;
}

}  // namespace codecell::fuzz
