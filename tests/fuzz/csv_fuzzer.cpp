// libFuzzer target for the example program's CSV reader (examples/csv.cpp).
// Any input must either parse or throw InputError; anything else (another exception, a crash, a
// sanitizer report, a hang) is a bug. Run with scripts/fuzz_csv.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "examples/csv.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const auto& header : {std::vector<std::string>{"x", "y"}, std::vector<std::string>{"x"}}) {
    std::istringstream in(text);
    try {
      const tapegrad::Columns cols = tapegrad::parse_csv(in, header, "fuzz.csv");
      if (cols.size() != header.size()) std::abort();
      for (const auto& c : cols)
        if (c.size() != cols[0].size()) std::abort();  // ragged columns would break the program
    } catch (const tapegrad::InputError& e) {
      if (e.message().find('\n') != std::string::npos) std::abort();  // errors are one line
    }
  }
  return 0;
}
