#include "exec/output_capture.h"

namespace codecell::exec {
namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
}

int Utf8SequenceLength(std::string_view s) {
  if (s.empty()) return -1;
  auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char c = b(0);
  if (c < 0x80) return 1;
  int len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (RFC 3629 table)
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  for (int i = 1; i < len; ++i) {
    if (static_cast<size_t>(i) >= s.size()) return -1;
    unsigned char x = b(static_cast<size_t>(i));
    if (i == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF)) return 0;
  }
  return len;
}

void BoundedUtf8Capture::AcceptChar(std::string_view encoded) {
  if (chars_ >= max_chars_) {
    truncated_ = true;
    return;
  }
  text_.append(encoded);
  ++chars_;
  if (sink_) sink_(encoded);
}

void BoundedUtf8Capture::Emit(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (chars_ >= max_chars_) {
      truncated_ = true;
      return;
    }
    // Fast path for runs of ASCII, the common case.
    size_t run = i;
    while (run < s.size() && static_cast<unsigned char>(s[run]) < 0x80 &&
           chars_ + (run - i) < max_chars_) {
      ++run;
    }
    if (run > i) {
      text_.append(s.substr(i, run - i));
      if (sink_) sink_(s.substr(i, run - i));
      chars_ += run - i;
      i = run;
      continue;
    }
    int len = Utf8SequenceLength(s.substr(i));
    if (len > 0) {
      AcceptChar(s.substr(i, static_cast<size_t>(len)));
      i += static_cast<size_t>(len);
    } else if (len == 0) {
      AcceptChar(kReplacement);
      ++i;
    } else {
      pending_.assign(s.substr(i));
      return;
    }
  }
}

void BoundedUtf8Capture::Append(std::string_view bytes) {
  bytes_seen_ += bytes.size();
  if (truncated_) return;  // nothing more is kept; the caller keeps draining the pipe
  if (pending_.empty()) {
    Emit(bytes);
    return;
  }
  // A sequence split across reads: join it with this chunk (a pipe read, so bounded in size).
  std::string joined = std::move(pending_);
  pending_.clear();
  joined.append(bytes);
  Emit(joined);
}

void BoundedUtf8Capture::Finish() {
  if (!pending_.empty()) {
    pending_.clear();
    AcceptChar(kReplacement);
  }
}

}  // namespace codecell::exec
