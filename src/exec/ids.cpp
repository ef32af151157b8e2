#include "exec/ids.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace codecell::exec {

std::string NewRandomId(const std::string& prefix) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char bytes[17];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::fprintf(stderr, "codecell: getrandom failed; the kernel's entropy source is missing\n");
      std::abort();
    }
    got += static_cast<size_t>(n);
  }
  std::string id = prefix;
  // 22 characters x 6 bits = 132 bits drawn from 136 random bits.
  unsigned bits = 0, value = 0;
  size_t used = 0;
  while (id.size() < prefix.size() + 22) {
    if (bits < 6) {
      value = (value << 8) | bytes[used++];
      bits += 8;
    }
    id.push_back(kAlphabet[(value >> (bits - 6)) & 63]);
    bits -= 6;
  }
  return id;
}

}  // namespace codecell::exec
