#include "exec/output_capture.h"

#include <gtest/gtest.h>

namespace codecell::exec {
namespace {

TEST(BoundedUtf8Capture, KeepsShortValidText) {
  BoundedUtf8Capture c(100);
  c.Append("hello ");
  c.Append("w\xC3\xB6rld\n");
  c.Finish();
  EXPECT_EQ(c.text(), "hello w\xC3\xB6rld\n");
  EXPECT_EQ(c.chars(), 12u);
  EXPECT_FALSE(c.truncated());
}

TEST(BoundedUtf8Capture, CutsAtCharactersNotBytes) {
  BoundedUtf8Capture c(3);
  c.Append("\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC");  // four euro signs
  c.Finish();
  EXPECT_EQ(c.text(), "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC");
  EXPECT_TRUE(c.truncated());
}

TEST(BoundedUtf8Capture, ExactlyAtTheLimitIsNotTruncated) {
  BoundedUtf8Capture c(5);
  c.Append("abcde");
  c.Finish();
  EXPECT_EQ(c.text(), "abcde");
  EXPECT_FALSE(c.truncated());
  c.Append("f");
  EXPECT_TRUE(c.truncated());
}

TEST(BoundedUtf8Capture, JoinsASequenceSplitAcrossChunks) {
  BoundedUtf8Capture c(100);
  c.Append("a\xF0\x9F");
  c.Append("\x98");
  c.Append("\x80z");  // U+1F600 split three ways
  c.Finish();
  EXPECT_EQ(c.text(), "a\xF0\x9F\x98\x80z");
  EXPECT_EQ(c.chars(), 3u);
}

TEST(BoundedUtf8Capture, ReplacesInvalidBytes) {
  BoundedUtf8Capture c(100);
  c.Append(
      "a\xFF"
      "b\xC0\xAF"
      "c\xED\xA0\x80"
      "d");  // stray byte, overlong, surrogate
  c.Finish();
  EXPECT_EQ(c.text().find('\xFF'), std::string::npos);
  EXPECT_EQ(c.text().substr(0, 5),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_NE(c.text().find("c\xEF\xBF\xBD"), std::string::npos);
  EXPECT_EQ(c.text().back(), 'd');
}

TEST(BoundedUtf8Capture, IncompleteTailBecomesReplacement) {
  BoundedUtf8Capture c(100);
  c.Append("x\xE2\x82");
  c.Finish();
  EXPECT_EQ(c.text(), "x\xEF\xBF\xBD");
}

TEST(BoundedUtf8Capture, MemoryStaysBoundedForHugeInput) {
  BoundedUtf8Capture c(1000);
  std::string chunk(65536, 'x');
  for (int i = 0; i < 2000; ++i) c.Append(chunk);  // 128 MiB in
  c.Finish();
  EXPECT_EQ(c.text().size(), 1000u);
  EXPECT_TRUE(c.truncated());
  EXPECT_EQ(c.bytes_seen(), 2000u * 65536u);
  EXPECT_LT(c.text().capacity(), 64u * 1024u);
}

TEST(BoundedUtf8Capture, SinkSeesExactlyWhatIsKept) {
  std::string seen;
  BoundedUtf8Capture c(4, [&](std::string_view s) { seen.append(s); });
  c.Append("ab\xFF");
  c.Append("cdef");
  c.Finish();
  EXPECT_EQ(seen, c.text());
  EXPECT_EQ(c.chars(), 4u);
}

TEST(Utf8SequenceLength, ClassifiesLeadBytes) {
  EXPECT_EQ(Utf8SequenceLength("a"), 1);
  EXPECT_EQ(Utf8SequenceLength("\xC3\xA9"), 2);
  EXPECT_EQ(Utf8SequenceLength("\xC3"), -1);
  EXPECT_EQ(Utf8SequenceLength("\x80"), 0);
  EXPECT_EQ(Utf8SequenceLength("\xF4\x90\x80\x80"), 0);  // above U+10FFFF
  EXPECT_EQ(Utf8SequenceLength("\xF4\x8F\xBF\xBF"), 4);
}

}  // namespace
}  // namespace codecell::exec
