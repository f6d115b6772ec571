// docs/chapter.md shows the code that runs. Every C++ block it marks as a quote,
//   <!-- from models/nadaraya_watson.cpp: NWKernelRegression<T>::forward -->
//   ```cpp
//   ...
//   ```
// must be, up to whitespace, that function as it stands in that source file, from the line that
// names it (its signature) to the brace that closes its body. A line "// ..." in the block stands
// for lines left out (argument checks, say): the pieces around it must appear in that order, the
// first at the start of the function and the last at its end.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// The repository's root: tests/reference/chapter is three levels below it.
std::string root() {
  return std::string(TAPEGRAD_CHAPTER_REF_DIR) + "/../../../";
}

std::string read_file(const std::string& relative) {
  std::ifstream in(root() + relative);
  if (!in) throw std::runtime_error("cannot open " + root() + relative);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// Whitespace runs as one space, none at either end: layout is not content.
std::string squeeze(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool space = std::isspace(static_cast<unsigned char>(c));
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

struct Quote {
  std::string file, function, block;
  std::size_t line;  // of the marker, 1-based
};

// The marked blocks of a markdown text, in order. A marker not followed by a ```cpp block throws.
std::vector<Quote> quotes(const std::string& markdown) {
  const std::regex marker(R"(^<!-- from (\S+): (.+?) -->\s*$)");
  std::istringstream in(markdown);
  std::vector<Quote> found;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    std::smatch m;
    if (!std::regex_match(line, m, marker)) continue;
    Quote q{m[1], m[2], "", number};
    if (!std::getline(in, line) || line != "```cpp")
      throw std::runtime_error("docs/chapter.md:" + std::to_string(number) +
                               ": a quote marker must be followed by a ```cpp block");
    for (++number; std::getline(in, line) && line != "```"; ++number) q.block += line + "\n";
    found.push_back(q);
  }
  return found;
}

// The definition of `function` in `source`: the first line that starts (at column 0, so not a
// call, not a comment) with text naming `function(` and whose next brace comes before any `;`,
// through the brace that closes that body. Empty when there is none.
std::string definition(const std::string& source, const std::string& function) {
  for (std::size_t pos = source.find(function + "("); pos != std::string::npos;
       pos = source.find(function + "(", pos + 1)) {
    const std::size_t start = pos == 0 ? 0 : source.rfind('\n', pos - 1) + 1;
    const char first = source[start];
    if (std::isspace(static_cast<unsigned char>(first)) || source.compare(start, 2, "//") == 0)
      continue;
    const std::size_t open = source.find('{', pos);
    if (open == std::string::npos || source.find(';', pos) < open) continue;
    int depth = 0;
    for (std::size_t i = open; i < source.size(); ++i) {
      depth += source[i] == '{' ? 1 : source[i] == '}' ? -1 : 0;
      if (depth == 0) return source.substr(start, i + 1 - start);
    }
  }
  return "";
}

// Whether squeezed text t holds piece at pos, as whole tokens (a space or an end on either side).
bool piece_at(const std::string& t, const std::string& piece, std::size_t pos) {
  return pos != std::string::npos && t.compare(pos, piece.size(), piece) == 0 &&
         (pos == 0 || t[pos - 1] == ' ') &&
         (pos + piece.size() == t.size() || t[pos + piece.size()] == ' ');
}

// Whether block is source with runs of lines left out, each shown as a line "// ...".
bool is_quote_of(const std::string& block, const std::string& source) {
  std::vector<std::string> pieces(1);
  std::istringstream in(block);
  for (std::string line; std::getline(in, line);) {
    if (squeeze(line) == "// ...")
      pieces.emplace_back();
    else
      pieces.back() += line + "\n";
  }
  const std::string text = squeeze(source);
  if (pieces.size() == 1) return squeeze(pieces[0]) == text;
  const std::string first = squeeze(pieces.front()), last = squeeze(pieces.back());
  if (!piece_at(text, first, 0) || last.size() > text.size()) return false;
  std::size_t pos = first.size();
  for (std::size_t p = 1; p + 1 < pieces.size(); ++p) {
    const std::string piece = squeeze(pieces[p]);
    std::size_t at = text.find(piece, pos);
    while (at != std::string::npos && !piece_at(text, piece, at)) at = text.find(piece, at + 1);
    if (at == std::string::npos) return false;
    pos = at + piece.size();
  }
  return text.size() - last.size() >= pos && piece_at(text, last, text.size() - last.size());
}

TEST(ChapterDocs, QuotedFunctionsAreTheSources) {
  const std::vector<Quote> qs = quotes(read_file("docs/chapter.md"));
  std::set<std::string> quoted;
  for (const Quote& q : qs) {
    SCOPED_TRACE("docs/chapter.md:" + std::to_string(q.line) + ": " + q.file + ", " + q.function);
    const std::string source = definition(read_file(q.file), q.function);
    ASSERT_FALSE(source.empty()) << "no definition of " << q.function << " in " << q.file;
    EXPECT_TRUE(is_quote_of(q.block, source)) << "the docs show:\n"
                                              << q.block << "the source is:\n"
                                              << source;
    quoted.insert(q.function);
  }
  // The chapter's model and its formula are shown as they run.
  for (const char* f : {"NWKernelRegression<T>::forward", "nw_logits", "nadaraya_watson"})
    EXPECT_EQ(quoted.count(f), 1u) << f << " is not quoted in docs/chapter.md";
}

// The extraction itself: a whole definition, not a declaration, a call or a comment that names it.
TEST(ChapterDocs, DefinitionIsTheWholeFunction) {
  const std::string source =
      "// f(x) is documented here\nint f(int x);\nint g() {\n  return f(1);\n}\n"
      "int f(int x) {\n  if (x) {\n    return 1;\n  }\n  return 0;\n}\nint h() { return 2; }\n";
  EXPECT_EQ(definition(source, "f"),
            "int f(int x) {\n  if (x) {\n    return 1;\n  }\n  return 0;\n}");
  EXPECT_EQ(definition(source, "missing"), "");
  EXPECT_EQ(squeeze("  a\n\t b  c \n"), "a b c");
  const std::string f = definition(source, "f");
  EXPECT_TRUE(is_quote_of(f, f));
  EXPECT_TRUE(is_quote_of("int f(int x) {\n  // ...\n  return 0;\n}\n", f));
  EXPECT_TRUE(is_quote_of("int f(int x) {\n  // ...\n    return 1;\n  // ...\n}\n", f));
  EXPECT_FALSE(is_quote_of("int f(int x) {\n  return 2;\n}\n", f));            // drifted
  EXPECT_FALSE(is_quote_of("int f(int x) {\n  // ...\n  return 2;\n}\n", f));  // drifted
  EXPECT_FALSE(is_quote_of("int f(int x) {\n  // ...\n  return\n}\n", f));     // cut mid-way
  EXPECT_FALSE(is_quote_of("int f(int x) {\n  // ...\n  return 0;\n", f));     // not the end
  EXPECT_FALSE(is_quote_of("  // ...\n  return 0;\n}\n", f));  // an empty first piece is no start
}

}  // namespace
