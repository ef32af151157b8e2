// Upload and generated-file names: whatever the bytes, the stored name (and its numbered variant
// for a second file of the same name) is one safe directory entry, and sanitizing is idempotent.
#include "exec/file_types.h"
#include "file_name_properties.h"
#include "fuzz_check.h"

using codecell::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string raw = codecell::fuzz::Bytes(data, size);
  const std::string safe = codecell::exec::SafeFileName(raw);
  const std::string broken = codecell::testing::FileNameViolation(safe);
  Check(broken.empty(), "SafeFileName gives a safe name:", broken);
  Check(codecell::exec::SafeFileName(safe) == safe, "SafeFileName is idempotent");
  for (int n : {2, 1000000}) {
    const std::string numbered = codecell::exec::NumberedFileName(safe, n);
    Check(codecell::testing::FileNameViolation(numbered).empty(),
          "NumberedFileName stays safe:", codecell::testing::FileNameViolation(numbered));
  }
  const auto type = codecell::exec::FileTypeForName(raw);
  Check(!type.kind.empty() && type.mime.find('/') != std::string::npos, "a type for every name");
  return 0;
}
