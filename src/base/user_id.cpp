#include "base/user_id.h"

#include <cctype>

namespace codecell {

bool ValidUserId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (unsigned char c : id) {
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == ':' || c == '-')) return false;
  }
  return true;
}

}  // namespace codecell
