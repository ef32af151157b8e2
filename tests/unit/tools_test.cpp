#include "api/tools.h"

#include <gtest/gtest.h>

namespace codecell::api {
namespace {

using nlohmann::json;

json Call(const json& arguments) {
  return {{"id", "call_1"},
          {"type", "function"},
          {"function", {{"name", "execute_python_code"}, {"arguments", arguments}}}};
}

TEST(ToolCalls, ParsesOpenAisShapeWithArgumentsAsAString) {
  auto p = ParseToolCall(Call("{\"code\": \"print(1)\", \"user_id\": \"someone\"}"));
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.id, "call_1");
  EXPECT_EQ(p.name, "execute_python_code");
  EXPECT_EQ(p.arguments["code"], "print(1)");
  // Objects (other providers) and empty strings are accepted too.
  EXPECT_EQ(ParseToolCall(Call(json{{"code", "x"}})).arguments["code"], "x");
  EXPECT_TRUE(ParseToolCall(Call("")).arguments.empty());
  EXPECT_EQ(ParseToolCall(Call(nullptr)).error, "");
}

TEST(ToolCalls, SaysWhatIsWrongInsteadOfThrowing) {
  EXPECT_NE(ParseToolCall(Call("{\"code\": ")).error.find("not valid JSON"), std::string::npos);
  EXPECT_NE(ParseToolCall(Call("[1]")).error.find("JSON object"), std::string::npos);
  EXPECT_NE(ParseToolCall(Call(42)).error.find("JSON object"), std::string::npos);
  EXPECT_NE(ParseToolCall(json{{"id", "x"}}).error.find("no function name"), std::string::npos);
  EXPECT_NE(ParseToolCall(json::array()).error, "");
}

TEST(ToolCalls, BudgetKeepsHeadAndTailOnCharacterBoundaries) {
  EXPECT_EQ(WithinBudget("short", 10), "short");
  std::string text = "HEAD" + std::string(1000, 'x') + "TAIL";
  std::string cut = WithinBudget(text, 90);
  EXPECT_EQ(cut.rfind("HEAD", 0), 0u);
  EXPECT_EQ(cut.substr(cut.size() - 4), "TAIL");
  EXPECT_NE(cut.find("918 characters cut"), std::string::npos) << cut;
  // Two-byte characters are never split.
  std::string accents;
  for (int i = 0; i < 500; ++i) accents += "\xc3\xa9";
  std::string cut_accents = WithinBudget(accents, 100);
  EXPECT_TRUE(json(cut_accents).dump().find("\\ufffd") == std::string::npos);
  EXPECT_NO_THROW(json(cut_accents).dump());
}

TEST(ToolCalls, ContentSaysTheStatusInWords) {
  json result = {{"status", "timeout"},
                 {"return_code", -1},
                 {"execution_time", 60.0},
                 {"output", "partial"},
                 {"error", "Execution timeout after 60 seconds"}};
  std::string content = ExecutionContent(result, 1000);
  EXPECT_NE(content.find("Status: timeout"), std::string::npos) << content;
  EXPECT_NE(content.find("partial"), std::string::npos);
  EXPECT_NE(content.find("stderr:\nExecution timeout"), std::string::npos);
}

TEST(ToolCalls, ContentSaysWhatWasRemovedToMakeRoom) {
  json result = {{"status", "ok"},
                 {"return_code", 0},
                 {"execution_time", 0.1},
                 {"output", ""},
                 {"error", ""},
                 {"evicted_files",
                  {{{"file_id", "file_a"}, {"filename", "plot_3.png"}, {"source", "generated"}}}}};
  std::string content = ExecutionContent(result, 1000);
  auto at = content.find("Removed to make room");
  ASSERT_NE(at, std::string::npos) << content;
  EXPECT_NE(content.find("plot_3.png (file_id file_a, a generated file)", at), std::string::npos)
      << content;
  result["evicted_files"] = json::array();
  EXPECT_EQ(ExecutionContent(result, 1000).find("Removed"), std::string::npos);
  EXPECT_EQ(EvictedSentence(json::array()), "");
}

TEST(ToolDefinitions, NameTheLimitsAndNoUserId) {
  ToolLimits limits;
  limits.max_timeout_seconds = 120;
  json tools = ToolDefinitions(limits);
  ASSERT_EQ(tools.size(), 4u);
  EXPECT_NE(tools[0]["function"]["description"].get<std::string>().find("120 s"),
            std::string::npos);
  EXPECT_EQ(tools.dump().find("user_id"), std::string::npos);
}

}  // namespace
}  // namespace codecell::api
