#pragma once

#include <string>

namespace codecell {

// SPEC's user_id: 1-128 characters of A-Z a-z 0-9 _ . : - (it names a directory and a store key;
// nothing else is accepted from any door).
bool ValidUserId(const std::string& id);

// What a client is told when its user_id breaks the rule.
inline constexpr const char* kUserIdRule =
    "user_id is required: 1-128 characters of A-Z a-z 0-9 _ . : -";

}  // namespace codecell
