// libFuzzer target for the checkpoint loader (io/checkpoint.cpp): every input loads into a
// model with finite parameters or is rejected with a one-line CheckpointError that leaves the
// model untouched (tests/fuzz/checkpoint_fuzz_check.h). Run with scripts/fuzz_checkpoint.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/fuzz/checkpoint_fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string problem =
      tapegrad::fuzzcheck::check(std::string(reinterpret_cast<const char*>(data), size));
  if (!problem.empty()) {
    std::fprintf(stderr, "checkpoint fuzzer: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
