// What the exercise programs (poolings, kernel_to_attention, bandwidth) share with nadaraya_watson:
// the bad-input contract, and outputs as one transaction (examples/outputs.h).
//
//   bad input      -> exit 2, one line on stderr naming the flag or file, nothing written
//   gnuplot failed -> exit 1, one line, --out as it was
//   internal fault -> exit 1
//   outputs        -> OutputTransaction with the program's own file names: staged inside --out,
//                     drawn there by gnuplot (run_gnuplot_script), and moved into place only when
//                     everything succeeded, so --out never holds half a run.
#pragma once

#include <functional>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "examples/outputs.h"

namespace tapegrad::exercise {

// Throws UsageError("--flag must ...") unless ok.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw UsageError(message);
}

// Parses the command line and runs `body`, mapping errors to the exit statuses above.
inline int run_main(CLI::App& app, const std::string& program, int argc, char** argv,
                    const std::function<int()>& body) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << program << ": error: " << e.what() << " (see --help)\n";
    return 2;
  }
  try {
    return body();
  } catch (const UsageError& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 2;
  } catch (const ToolError& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << program << ": internal error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace tapegrad::exercise
