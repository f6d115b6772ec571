// Builds checkpoint files byte by byte, with a correct FNV-1a trailer, so tests can hand the
// loader files that are well formed but wrong in meaning (a wrongly typed field, a NaN parameter,
// a duplicated name, an absurd counter): the checksum passes and the loader's checks of meaning
// must catch them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace tapegrad::testutil {

inline std::string checkpoint_trailer(const std::string& body) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return "\nfnv1a64 " + std::string(hex) + "\n";
}

// Magic, header length, header, payload, and the checksum trailer of all of it.
inline std::string craft_checkpoint(const std::string& header_json, const std::string& payload) {
  const std::string body =
      "tapegrad-checkpoint 1\n" + std::to_string(header_json.size()) + "\n" + header_json + payload;
  return body + checkpoint_trailer(body);
}

// The raw little-endian bytes of some doubles.
inline std::string doubles(const std::vector<double>& values) {
  std::string out(values.size() * sizeof(double), '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

}  // namespace tapegrad::testutil
