#include "exec/notebook_output.h"

#include <gtest/gtest.h>

#include <string>

namespace codecell::exec {
namespace {

using nlohmann::json;

std::string Line(const json& j) { return j.dump() + "\n"; }

TEST(ParseDisplayLine, AcceptsEachKindOfItem) {
  auto value = ParseDisplayLine(
      R"({"type":"execute_result","data":{"text/plain":"42","text/html":"<b>42</b>"},"echo":true})");
  ASSERT_TRUE(value);
  EXPECT_EQ(value->item.type, OutputItem::Type::kExecuteResult);
  EXPECT_TRUE(value->echoed);
  EXPECT_EQ(*value->item.Data("text/plain"), "42");
  EXPECT_EQ(*value->item.Data("text/html"), "<b>42</b>");

  auto figure = ParseDisplayLine(
      R"({"type":"display_data","data":{"text/plain":"<Figure>"},"file":"figure_1.png"})");
  ASSERT_TRUE(figure);
  EXPECT_EQ(figure->item.type, OutputItem::Type::kDisplayData);
  EXPECT_EQ(figure->item.filename, "figure_1.png");
  EXPECT_FALSE(figure->echoed);

  auto error = ParseDisplayLine(
      R"({"type":"error","ename":"ValueError","evalue":"boom","traceback":["a\n","b\n"]})");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->item.ename, "ValueError");
  EXPECT_EQ(error->item.traceback.size(), 2u);
}

TEST(ParseDisplayLine, RejectsMalformedAndHostileLines) {
  for (const char* line : {
           "", "not json", "[1,2]", "{}", "42", R"({"type":"stream","name":"stdout","text":"x"})",
           R"({"type":"execute_result"})",                              // nothing to show
           R"({"type":"execute_result","data":"x"})",                   // data not an object
           R"({"type":"execute_result","data":{"text/plain":1}})",      // not a string
           R"({"type":"execute_result","data":{"image/png":"AAAA"}})",  // unknown mime only
           R"({"type":"execute_result","data":{"text/plain":"x"},"file":"a.png"})",
           R"({"type":"display_data","file":""})", R"({"type":"display_data","file":7})",
           R"({"type":"error","ename":"E","evalue":"v"})",                      // no traceback
           R"({"type":"error","ename":"E","evalue":"v","traceback":[1]})",      // not strings
           R"({"type":"error","ename":"E","evalue":"v","traceback":"tb"})",     // not a list
           "{\"type\":\"execute_result\",\"data\":{\"text/plain\":\"\xff\"}}",  // not UTF-8
           R"({"type":"execute_result","data":{"text/plain":"x"})",             // cut short
       }) {
    EXPECT_FALSE(ParseDisplayLine(line)) << line;
  }
}

TEST(ParseDisplayLine, DropsDeepNestingWithoutBuildingIt) {
  // 200,000 levels: a recursive parser or destructor would overflow the stack.
  std::string deep = R"({"type":"execute_result","data":{"text/plain":"x","text/html":)";
  deep += std::string(200000, '[') + std::string(200000, ']') + "}}";
  auto r = ParseDisplayLine(deep);
  ASSERT_TRUE(r);  // the nested value is dropped, the rest stands
  EXPECT_EQ(*r->item.Data("text/plain"), "x");
  EXPECT_EQ(r->item.Data("text/html"), nullptr);
  std::string deep_top = std::string(100000, '{');
  EXPECT_FALSE(ParseDisplayLine(deep_top));
}

TEST(ParseDisplayLine, KeepsOnlyKnownMimeTypes) {
  auto r = ParseDisplayLine(
      R"({"type":"display_data","data":{"text/plain":"p","application/x-evil":"e","text/markdown":"m"}})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->item.data.size(), 2u);
  EXPECT_EQ(r->item.Data("application/x-evil"), nullptr);
}

TEST(DisplayChannel, RecordsWhereTheStreamsStoodAtAnItemsFirstByte) {
  DisplayChannel channel(1 << 20, 100);
  std::string line = Line({{"type", "execute_result"}, {"data", {{"text/plain", "1"}}}});
  channel.Append(line.substr(0, 5), 3, 1);
  channel.Append(line.substr(5), 9, 9);  // the rest of the same line: positions of its start
  channel.Append(line, 10, 2);
  channel.Finish();
  ASSERT_EQ(channel.records().size(), 2u);
  EXPECT_EQ(channel.records()[0].stdout_pos, 3u);
  EXPECT_EQ(channel.records()[0].stderr_pos, 1u);
  EXPECT_EQ(channel.records()[1].stdout_pos, 10u);
  EXPECT_FALSE(channel.truncated());
}

TEST(DisplayChannel, SkipsMalformedLinesAndKeepsGoodOnes) {
  DisplayChannel channel(1 << 20, 100);
  std::string good = Line({{"type", "display_data"}, {"data", {{"text/plain", "ok"}}}});
  channel.Append("garbage\n\n{\"type\":\n" + good + "\xff\xfe\n", 0, 0);
  channel.Append("{\"type\":\"execute_result\"", 0, 0);  // never ended: the runner was killed
  channel.Finish();
  ASSERT_EQ(channel.records().size(), 1u);
  EXPECT_EQ(*channel.records()[0].item.Data("text/plain"), "ok");
  EXPECT_EQ(channel.malformed(), 3u);
}

TEST(DisplayChannel, AFloodIsCutAtTheByteBound) {
  DisplayChannel channel(1000, 100);
  std::string good = Line({{"type", "display_data"}, {"data", {{"text/plain", "ok"}}}});
  channel.Append(good, 0, 0);
  channel.Append(std::string(1 << 20, 'x'), 0, 0);  // one endless line
  channel.Append(good, 0, 0);                       // after the bound: not read any more
  channel.Finish();
  EXPECT_TRUE(channel.truncated());
  EXPECT_EQ(channel.records().size(), 1u);
}

TEST(DisplayChannel, AFloodIsCutAtTheItemBound) {
  DisplayChannel channel(1 << 20, 3);
  std::string good = Line({{"type", "display_data"}, {"data", {{"text/plain", "ok"}}}});
  for (int i = 0; i < 10; ++i) channel.Append(good, 0, 0);
  EXPECT_TRUE(channel.truncated());
  EXPECT_EQ(channel.records().size(), 3u);
}

DisplayRecord Value(const std::string& text, size_t out, size_t err, bool echoed) {
  DisplayRecord r;
  r.item.type = OutputItem::Type::kExecuteResult;
  r.item.data = {{"text/plain", text}};
  r.echoed = echoed;
  r.stdout_pos = out;
  r.stderr_pos = err;
  return r;
}

TEST(BuildOutputs, InterleavesStreamsAndItemsInOrder) {
  const std::string out = "before\nmiddle\n42\n";
  const std::string err = "warn\n";
  std::vector<DisplayRecord> records;
  DisplayRecord figure;
  figure.item.type = OutputItem::Type::kDisplayData;
  figure.item.filename = "figure_1.png";
  figure.stdout_pos = 7;
  figure.stderr_pos = 5;
  records.push_back(figure);
  records.push_back(Value("42", out.size(), err.size(), true));
  auto outputs = BuildOutputs(out, err, records);
  ASSERT_EQ(outputs.size(), 5u);
  EXPECT_EQ(outputs[0].ToJson(),
            (json{{"type", "stream"}, {"name", "stdout"}, {"text", "before\n"}}));
  EXPECT_EQ(outputs[1].name, "stderr");
  EXPECT_EQ(outputs[2].type, OutputItem::Type::kDisplayData);
  // The echo of 42 for v1 clients is not shown twice.
  EXPECT_EQ(outputs[3].text, "middle\n");
  EXPECT_EQ(outputs[4].ToJson(),
            (json{{"type", "execute_result"}, {"data", {{"text/plain", "42"}}}}));
}

TEST(BuildOutputs, LeavesAnEchoThatIsNotThereAsPrinted) {
  // Truncated stdout: the echo is not at the end of the segment, so nothing is removed.
  auto outputs = BuildOutputs("x = 4", "", {Value("42", 5, 0, true)});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].text, "x = 4");
  // Not echoed: text that looks like the value stays.
  outputs = BuildOutputs("42\n", "", {Value("42", 3, 0, false)});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].text, "42\n");
}

TEST(BuildOutputs, ErrorTracebackIsNotAlsoAStderrStream) {
  DisplayRecord error;
  error.item.type = OutputItem::Type::kError;
  error.item.ename = "ValueError";
  error.item.evalue = "boom";
  error.item.traceback = {"Traceback (most recent call last):\n", "ValueError: boom\n"};
  error.echoed = true;
  const std::string err = "careful\nTraceback (most recent call last):\nValueError: boom\n";
  error.stderr_pos = err.size();
  auto outputs = BuildOutputs("", err, {error});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].text, "careful\n");
  EXPECT_EQ(outputs[1].ToJson()["ename"], "ValueError");
}

TEST(BuildOutputs, PositionsOutOfRangeAreClamped) {
  // Positions are the host's, but the function must not trust them to be ordered or in range.
  auto outputs = BuildOutputs("abc", "de", {Value("1", 99, 99, false), Value("2", 1, 0, false)});
  ASSERT_EQ(outputs.size(), 4u);
  EXPECT_EQ(outputs[0].text, "abc");
  EXPECT_EQ(outputs[1].text, "de");
  EXPECT_EQ(*outputs[2].Data("text/plain"), "1");
  EXPECT_EQ(*outputs[3].Data("text/plain"), "2");
}

TEST(OutputItem, DisplayDataShowsAFileOnlyWhenLinked) {
  OutputItem item;
  item.type = OutputItem::Type::kDisplayData;
  item.filename = "figure_1.png";
  item.data = {{"text/plain", "<Figure>"}};
  EXPECT_FALSE(item.ToJson().contains("file_id"));
  item.file_id = "file_x";
  item.mime_type = "image/png";
  EXPECT_EQ(item.ToJson()["file_id"], "file_x");
  EXPECT_EQ(item.ToJson()["mime_type"], "image/png");
  EXPECT_FALSE(item.ToJson().contains("filename"));
}

}  // namespace
}  // namespace codecell::exec
