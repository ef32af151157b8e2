// The display pipe (notebook output): the sandboxed code writes anything on fd 4, in any chunks,
// beside any stdout and stderr. The host keeps within its bounds, never throws, and builds
// outputs whose stream texts are cut from what was captured (never invented) and which
// serialize as valid UTF-8.
#include <nlohmann/json.hpp>

#include "exec/notebook_output.h"
#include "fuzz_check.h"

using codecell::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first bytes choose the split: the captured stdout and stderr (valid UTF-8, as the capture
  // makes them), then the pipe's bytes in chunks of the given sizes.
  if (size < 4) return 0;
  const size_t out_len = data[0] % 64, err_len = data[1] % 32, chunk = 1 + data[2] % 61;
  std::string rest = codecell::fuzz::Bytes(data + 4, size - 4);
  std::string out = rest.substr(0, std::min(out_len, rest.size()));
  std::string err = rest.substr(out.size(), std::min(err_len, rest.size() - out.size()));
  if (!codecell::fuzz::ValidUtf8(out) || !codecell::fuzz::ValidUtf8(err)) out = err = "";
  const std::string pipe = rest.substr(std::min(rest.size(), out_len + err_len));
  constexpr size_t kMaxBytes = 4096, kMaxItems = 8;
  codecell::exec::DisplayChannel channel(kMaxBytes, kMaxItems);
  for (size_t at = 0; at < pipe.size(); at += chunk) {
    // Positions as the host measures them: never past what was captured, moving forward.
    const size_t pos = at * out.size() / std::max<size_t>(pipe.size(), 1);
    channel.Append(std::string_view(pipe).substr(at, chunk), pos,
                   pos * err.size() / 64 % (err.size() + 1));
  }
  channel.Finish();
  Check(channel.records().size() <= kMaxItems, "at most max_items records");
  const auto outputs = codecell::exec::BuildOutputs(out, err, channel.records());
  nlohmann::json all = nlohmann::json::array();
  size_t stream_bytes = 0;
  for (const auto& item : outputs) {
    if (item.type == codecell::exec::OutputItem::Type::kStream) stream_bytes += item.text.size();
    all.push_back(item.ToJson());
  }
  Check(stream_bytes <= out.size() + err.size(), "stream items only cut what was captured");
  const std::string wire = all.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  Check(codecell::fuzz::ValidUtf8(wire), "outputs serialize as valid UTF-8");
  return 0;
}
