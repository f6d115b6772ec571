// Replays the libFuzzer corpus of the checkpoint loader (tests/fuzz/corpus/checkpoint, grown by
// scripts/fuzz_checkpoint.sh): every input loads with finite parameters or is rejected with a
// one-line CheckpointError that leaves the model untouched (tests/fuzz/checkpoint_fuzz_check.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/fuzz/checkpoint_fuzz_check.h"

TEST(ReliabilityCheckpointCorpus, EveryFuzzInputLoadsOrFailsCleanly) {
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TAPEGRAD_CHECKPOINT_CORPUS_DIR)) {
    std::ifstream f(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(f)), {});
    ++files;
    EXPECT_EQ(tapegrad::fuzzcheck::check(bytes), "") << entry.path();
  }
  EXPECT_GT(files, 5u);
  std::cout << "[checkpoint corpus] " << files << " inputs replayed\n";
}
