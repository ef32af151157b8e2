// The MCP server's protocol side against a fake backend: JSON-RPC framing and error codes, tool
// results with image content and resource links, resources, sessions, base64.
#include "api/mcp.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace codecell::api {
namespace {

using json = nlohmann::json;

const std::string kPng = std::string("\x89PNG\r\n\x1a\n", 8) + std::string("\0\x01\xff", 3);

class FakeBackend : public McpBackend {
 public:
  json ToolDefinitionsNow() override { return ToolDefinitions(ToolLimits{}); }
  json CallTool(const std::string& user, const ParsedToolCall& call) override {
    calls.push_back(user + ":" + call.name + ":" + call.arguments.dump());
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    if (call.name == "execute_python_code") {
      bool ok = call.arguments.value("code", "") != "raise";
      return {{"message", {{"content", ok ? "Status: success" : "Status: error"}}},
              {"attachments", json::array({{{"file_id", "f_png"},
                                            {"filename", "plot.png"},
                                            {"mime_type", "image/png"},
                                            {"size", kPng.size()}},
                                           {{"file_id", "f_csv"},
                                            {"filename", "out.csv"},
                                            {"mime_type", "text/csv"},
                                            {"size", 4}}})},
              {"result", {{"success", ok}}}};
    }
    return {{"message", {{"content", "Error: no"}}},
            {"attachments", json::array()},
            {"result", nullptr}};
  }
  sandbox::Result<json> UploadFile(const std::string& user, const std::string& filename,
                                   const std::string& bytes) override {
    uploads.push_back(user + ":" + filename + ":" + bytes);
    return json{{"file_id", "f_new"},
                {"filename", filename},
                {"file_type", "csv"},
                {"mime_type", "text/csv"},
                {"file_size", bytes.size()}};
  }
  json ListFiles(const std::string& user) override {
    if (user != "alice") return json::array();
    return json::array({File("f_png", "plot.png", "image/png", kPng.size()),
                        File("f_csv", "out.csv", "text/csv", 4)});
  }
  std::optional<json> FindFile(const std::string& user, const std::string& id) override {
    for (auto& f : ListFiles(user)) {
      if (f["file_id"] == id) return f;
    }
    return std::nullopt;
  }
  sandbox::Result<std::string> ReadFileBytes(const std::string& user,
                                             const std::string& id) override {
    if (!FindFile(user, id)) return sandbox::Result<std::string>::Fail("no such file");
    return id == "f_png" ? kPng : std::string("a,b\n");
  }
  uint64_t MaxUploadBytes() override { return 50u << 20; }

  static json File(const std::string& id, const std::string& name, const std::string& mime,
                   size_t size) {
    return {{"file_id", id},     {"filename", name},   {"mime_type", mime},
            {"file_size", size}, {"source", "upload"}, {"expires_at", nullptr}};
  }
  std::vector<std::string> calls, uploads;
  std::chrono::milliseconds delay{0};
};

json Request(int id, const std::string& method, json params = json::object()) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
}

struct McpTest : ::testing::Test {
  FakeBackend backend;
  McpServer server{backend, "9.9.9"};
  McpSession session{"alice", ""};

  json Call(const json& message) {
    auto response = server.Handle(message, session);
    EXPECT_TRUE(response.has_value()) << message.dump();
    return response.value_or(json());
  }
  void Initialize(const std::string& version = kMcpLatestProtocol) {
    json r = Call(Request(0, "initialize", {{"protocolVersion", version}}));
    ASSERT_TRUE(r.contains("result")) << r.dump();
  }
};

TEST_F(McpTest, InitializeNegotiatesTheProtocolAndDescribesTheServer) {
  json r = Call(Request(1, "initialize", {{"protocolVersion", "2025-06-18"}}));
  EXPECT_EQ(r["id"], 1);
  EXPECT_EQ(r["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "codecell");
  EXPECT_EQ(r["result"]["serverInfo"]["version"], "9.9.9");
  EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
  EXPECT_TRUE(r["result"]["capabilities"].contains("resources"));
  EXPECT_EQ(session.protocol_version, "2025-06-18");
  // A version this server does not know: it answers with its latest, the client decides.
  McpSession other{"bob", ""};
  json r2 = *server.Handle(Request(2, "initialize", {{"protocolVersion", "1999-01-01"}}), other);
  EXPECT_EQ(r2["result"]["protocolVersion"], kMcpLatestProtocol);
}

TEST_F(McpTest, FramingErrorsGetJsonRpcCodes) {
  EXPECT_EQ(Call(json::array({Request(1, "ping")}))["error"]["code"], -32600);
  EXPECT_EQ(Call(json("text"))["error"]["code"], -32600);
  EXPECT_EQ(Call({{"jsonrpc", "1.0"}, {"id", 1}, {"method", "ping"}})["error"]["code"], -32600);
  // Wrong types anywhere are answered, never thrown (a throw would end `codecell mcp`).
  EXPECT_EQ(Call({{"jsonrpc", 2}, {"id", 1}, {"method", "ping"}})["error"]["code"], -32600);
  EXPECT_EQ(Call({{"jsonrpc", "2.0"}, {"id", 1}, {"method", 7}})["error"]["code"], -32600);
  EXPECT_EQ(Call(Request(1, "initialize", {{"protocolVersion", 5}}))["result"]["protocolVersion"],
            kMcpLatestProtocol);
  session.protocol_version.clear();
  EXPECT_EQ(Call({{"jsonrpc", "2.0"}, {"id", json::array()}, {"method", "ping"}})["error"]["code"],
            -32600);
  EXPECT_EQ(
      Call({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "ping"}, {"params", 5}})["error"]["code"],
      -32602);
  // Before initialize only ping is answered.
  EXPECT_EQ(Call(Request(4, "ping"))["result"], json::object());
  EXPECT_EQ(Call(Request(5, "tools/list"))["error"]["code"], -32600);
  Initialize();
  EXPECT_EQ(Call(Request(6, "prompts/list"))["error"]["code"], -32601);
  EXPECT_EQ(Call(Request(7, "tools/call", {{"name", "rm_rf"}}))["error"]["code"], -32602);
  EXPECT_EQ(Call(Request(8, "tools/call", {{"arguments", json::object()}}))["error"]["code"],
            -32602);
  // Notifications and responses are not answered.
  EXPECT_FALSE(
      server.Handle({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, session));
  EXPECT_FALSE(server.Handle({{"jsonrpc", "2.0"}, {"id", 9}, {"result", json::object()}}, session));
}

TEST_F(McpTest, ToolsHaveInputSchemasAndUploadIsAdded) {
  Initialize();
  json tools = Call(Request(1, "tools/list"))["result"]["tools"];
  std::vector<std::string> names;
  for (auto& t : tools) {
    names.push_back(t["name"]);
    EXPECT_EQ(t["inputSchema"]["type"], "object") << t.dump();
    EXPECT_FALSE(t["inputSchema"]["properties"].contains("user_id")) << t.dump();
    EXPECT_TRUE(t["annotations"].is_object());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"execute_python_code", "analyze_data_file",
                                             "list_files", "delete_file", "upload_file"}));
}

TEST_F(McpTest, ExecutionResultCarriesTextImageAndResourceLinks) {
  Initialize();
  json r = Call(Request(1, "tools/call",
                        {{"name", "execute_python_code"},
                         {"arguments", {{"code", "plot"}, {"user_id", "mallory"}}}}))["result"];
  ASSERT_EQ(backend.calls.size(), 1u);
  EXPECT_EQ(backend.calls[0].rfind("alice:execute_python_code:", 0), 0u);  // the session's user
  EXPECT_EQ(r["isError"], false);
  ASSERT_EQ(r["content"].size(), 4u) << r.dump();
  EXPECT_EQ(r["content"][0]["type"], "text");
  EXPECT_EQ(r["content"][1]["type"], "image");
  EXPECT_EQ(r["content"][1]["mimeType"], "image/png");
  EXPECT_EQ(Base64Decode(r["content"][1]["data"]).value(), kPng);
  EXPECT_EQ(r["content"][2]["type"], "resource_link");
  EXPECT_EQ(r["content"][2]["uri"], "codecell://files/f_png");
  EXPECT_EQ(r["content"][3]["uri"], "codecell://files/f_csv");

  json failed = Call(Request(
      2, "tools/call", {{"name", "execute_python_code"}, {"arguments", {{"code", "raise"}}}}));
  EXPECT_EQ(failed["result"]["isError"], true);
}

TEST_F(McpTest, OlderProtocolsGetNoResourceLinks) {
  Initialize("2025-03-26");
  json r = Call(
      Request(1, "tools/call", {{"name", "execute_python_code"}, {"arguments", {{"code", "x"}}}}));
  ASSERT_EQ(r["result"]["content"].size(), 2u) << r.dump();
  EXPECT_EQ(r["result"]["content"][1]["type"], "image");
}

TEST_F(McpTest, UploadDecodesBase64AndRefusesBadInput) {
  Initialize();
  json ok = Call(Request(1, "tools/call",
                         {{"name", "upload_file"},
                          {"arguments", {{"filename", "a.csv"}, {"content_base64", "YSxiCg=="}}}}));
  EXPECT_EQ(ok["result"]["isError"], false) << ok.dump();
  ASSERT_EQ(backend.uploads.size(), 1u);
  EXPECT_EQ(backend.uploads[0], "alice:a.csv:a,b\n");
  for (json args :
       {json{{"filename", "a.csv"}, {"content_base64", "***"}}, json{{"filename", "a.csv"}},
        json{{"filename", "a.csv"}, {"content", "x"}, {"content_base64", "eA=="}},
        json{{"content", "x"}}}) {
    json bad = Call(Request(2, "tools/call", {{"name", "upload_file"}, {"arguments", args}}));
    EXPECT_EQ(bad["result"]["isError"], true) << args.dump();
  }
  EXPECT_EQ(backend.uploads.size(), 1u);
}

TEST_F(McpTest, ResourcesAreTheSessionUsersFilesOnly) {
  Initialize();
  json list = Call(Request(1, "resources/list"))["result"]["resources"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["uri"], "codecell://files/f_png");
  json png = Call(Request(2, "resources/read", {{"uri", "codecell://files/f_png"}}));
  EXPECT_EQ(Base64Decode(png["result"]["contents"][0]["blob"]).value(), kPng);
  json csv = Call(Request(3, "resources/read", {{"uri", "codecell://files/f_csv"}}));
  EXPECT_EQ(csv["result"]["contents"][0]["text"], "a,b\n");
  for (std::string uri : {"codecell://files/nope", "codecell://files/../f_png",
                          "file:///etc/passwd", "codecell://files/"}) {
    EXPECT_EQ(Call(Request(4, "resources/read", {{"uri", uri}}))["error"]["code"], -32002) << uri;
  }
  McpSession bob{"bob", kMcpLatestProtocol};
  json foreign =
      *server.Handle(Request(5, "resources/read", {{"uri", "codecell://files/f_png"}}), bob);
  EXPECT_EQ(foreign["error"]["code"], -32002);
}

TEST_F(McpTest, ProgressIsNotifiedWhileAToolRuns) {
  Initialize();
  backend.delay = std::chrono::milliseconds(350);
  server.progress_interval = std::chrono::milliseconds(100);
  std::vector<json> notes;
  auto response = server.Handle(Request(1, "tools/call",
                                        {{"name", "execute_python_code"},
                                         {"arguments", {{"code", "x"}}},
                                         {"_meta", {{"progressToken", "tok"}}}}),
                                session, [&](const json& n) { notes.push_back(n); });
  ASSERT_TRUE(response && response->contains("result"));
  ASSERT_GE(notes.size(), 2u);
  double last = -1;
  for (auto& n : notes) {
    EXPECT_EQ(n["method"], "notifications/progress");
    EXPECT_EQ(n["params"]["progressToken"], "tok");
    EXPECT_GT(n["params"]["progress"].get<double>(), last);
    last = n["params"]["progress"];
  }
}

TEST(McpSessionsTest, IdsAreRandomAndSessionsExpireOrAreEvicted) {
  McpSessions sessions(std::chrono::seconds(3600), 2);
  std::string a = sessions.Create({"alice", "2025-11-25"});
  std::string b = sessions.Create({"bob", "2025-11-25"});
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(sessions.Find(a)->user, "alice");
  std::string c = sessions.Create({"carol", "2025-11-25"});  // evicts the longest idle: bob
  EXPECT_FALSE(sessions.Find(b));
  EXPECT_TRUE(sessions.Find(a));
  EXPECT_TRUE(sessions.Erase(c));
  EXPECT_FALSE(sessions.Find(c));
  McpSessions short_lived(std::chrono::seconds(0), 10);
  std::string d = short_lived.Create({"dave", ""});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(short_lived.Find(d));
}

TEST(Base64Test, RoundTripsAndRejectsMalformedText) {
  for (std::string s : {std::string(), std::string("a"), std::string("ab"), std::string("abc"),
                        kPng, std::string(1000, '\xff')}) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)).value(), s);
  }
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
  EXPECT_EQ(Base64Decode("aGVs\nbG8=").value(), "hello");
  EXPECT_FALSE(Base64Decode("aGVsbG8"));
  EXPECT_FALSE(Base64Decode("aG=sbG8="));
  EXPECT_FALSE(Base64Decode("aGVsbG8!"));
}

}  // namespace
}  // namespace codecell::api
