// The plan the supervisor sends a warm child (spec_wire): the child parses it before it is
// confined, so any bytes must give a clean failure, never a crash or an exception; and whatever
// parses survives a round trip unchanged.
#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "sandbox/spec_wire.h"

using codecell::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto json = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  codecell::sandbox::SandboxSpec spec;
  if (!codecell::sandbox::SpecFromJson(json, spec)) return 0;
  const nlohmann::json wire = codecell::sandbox::SpecToJson(spec);
  codecell::sandbox::SandboxSpec again;
  Check(codecell::sandbox::SpecFromJson(wire, again).ok(), "a serialized spec parses");
  Check(codecell::sandbox::SpecToJson(again) == wire, "the round trip is exact", wire.dump());
  return 0;
}
