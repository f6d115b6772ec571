// The errors the programs of examples/ turn into exit statuses (main, or exercise::run_main):
// each prints one line "<program>: error: what" on stderr.
#pragma once

#include <stdexcept>

namespace tapegrad {

// Bad user input that is not about a file line (a flag value, the output directory): exit 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An external tool (gnuplot) failed: exit 1.
struct ToolError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace tapegrad
