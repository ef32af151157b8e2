// Base64 of MCP uploads (a model's upload_file): decoding any text never crashes, and what
// decodes encodes back to the same bytes.
#include "api/mcp.h"
#include "fuzz_check.h"

using codecell::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = codecell::fuzz::Bytes(data, size);
  if (auto decoded = codecell::api::Base64Decode(text)) {
    auto again = codecell::api::Base64Decode(codecell::api::Base64Encode(*decoded));
    Check(again && *again == *decoded, "decode(encode(x)) == x");
  }
  auto round = codecell::api::Base64Decode(codecell::api::Base64Encode(text));
  Check(round && *round == text, "every byte string round-trips");
  return 0;
}
