// Replays the libFuzzer corpus of the CSV reader (tests/fuzz/corpus/csv, grown by
// scripts/fuzz_csv.sh): every input parses or throws a one-line InputError, never anything else.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "examples/csv.h"

using namespace tapegrad;

TEST(ReliabilityCsvCorpus, EveryFuzzInputParsesOrFailsCleanly) {
  std::size_t files = 0, rejected = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TAPEGRAD_CSV_CORPUS_DIR)) {
    std::ifstream f(entry.path(), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(f)), {});
    ++files;
    for (const auto& header : {std::vector<std::string>{"x", "y"}, std::vector<std::string>{"x"}}) {
      std::istringstream in(text);
      try {
        const Columns c = parse_csv(in, header, entry.path().filename().string());
        ASSERT_EQ(c.size(), header.size());
        for (const auto& col : c) ASSERT_EQ(col.size(), c[0].size()) << entry.path();
      } catch (const InputError& e) {
        ++rejected;
        EXPECT_EQ(e.message().find('\n'), std::string::npos) << entry.path();
      } catch (const std::exception& e) {
        ADD_FAILURE() << entry.path() << ": unexpected exception " << e.what();
      }
    }
  }
  EXPECT_GT(files, 5u);
  std::cout << "[csv corpus] " << files << " inputs, " << rejected << " rejections (x2 headers)\n";
}
