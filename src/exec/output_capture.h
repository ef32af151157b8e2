#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace codecell::exec {

// Keeps the first `max_chars` characters (Unicode code points) of a byte stream, replacing invalid
// UTF-8 with U+FFFD, while the stream is still arriving: memory stays bounded however much the
// code prints. Sequences split across chunks are joined. Everything kept is also passed to `sink`
// (for live pass-through) as it is accepted.
class BoundedUtf8Capture {
 public:
  using Sink = std::function<void(std::string_view)>;
  explicit BoundedUtf8Capture(size_t max_chars, Sink sink = nullptr)
      : max_chars_(max_chars), sink_(std::move(sink)) {}

  void Append(std::string_view bytes);
  // Flushes an incomplete trailing sequence as U+FFFD.
  void Finish();

  const std::string& text() const { return text_; }
  size_t chars() const { return chars_; }
  bool truncated() const { return truncated_; }
  size_t bytes_seen() const { return bytes_seen_; }

 private:
  void Emit(std::string_view valid);
  void AcceptChar(std::string_view encoded);

  size_t max_chars_;
  Sink sink_;
  std::string text_;
  std::string pending_;  // an incomplete sequence from the end of the previous chunk (< 4 bytes)
  size_t chars_ = 0;
  size_t bytes_seen_ = 0;
  bool truncated_ = false;
};

// Length of the valid UTF-8 sequence at the start of `s`: 1-4, 0 if invalid, -1 if `s` is a valid
// but incomplete prefix.
int Utf8SequenceLength(std::string_view s);

}  // namespace codecell::exec
