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
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>

#include "examples/csv.h"
#include "examples/outputs.h"
#include "io/checkpoint.h"

namespace tapegrad::exercise {

// Throws UsageError("--flag must ...") unless ok.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw UsageError(message);
}

// Parses the command line and runs `body`, mapping errors to the exit statuses above: bad input
// (a flag, a file and line, a checkpoint) exits 2; a tool or a write that failed, 1.
inline int run_main(CLI::App& app, const std::string& program, int argc, char** argv,
                    const std::function<int()>& body) {
  const auto fail = [&program](const char* kind, const std::string& what, int status) {
    std::cerr << program << ": " << kind << what << "\n";
    return status;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail("error: ", std::string(e.what()) + " (see --help)", 2);
  }
  try {
    return body();
  } catch (const InputError& e) {
    return fail("error: ", e.message(), 2);
  } catch (const CheckpointWriteError& e) {  // a full disk or ulimit -f: nothing written
    return fail("error: ", e.what(), 1);
  } catch (const CheckpointError& e) {
    return fail("error: ", e.what(), 2);
  } catch (const UsageError& e) {
    return fail("error: ", e.what(), 2);
  } catch (const std::invalid_argument& e) {
    return fail("error: ", e.what(), 2);
  } catch (const ToolError& e) {
    return fail("error: ", e.what(), 1);
  } catch (const std::exception& e) {
    return fail("internal error: ", e.what(), 1);
  }
}

}  // namespace tapegrad::exercise
