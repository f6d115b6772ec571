// The example program's strict CSV reader (examples/csv.h): what it accepts, and that every bad
// input is an InputError naming the file and the physical line (1-based, blank lines counted).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>

#include "examples/csv.h"

using namespace tapegrad;

namespace {

const std::vector<std::string> kXY = {"x", "y"};

Columns parse(const std::string& text, const std::vector<std::string>& header = kXY) {
  std::istringstream in(text);
  return parse_csv(in, header, "data.csv");
}

// Parses text that must fail; returns the error for inspection.
InputError parse_error(const std::string& text, const std::vector<std::string>& header = kXY) {
  try {
    parse(text, header);
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "no InputError for: " << text;
  return InputError("", 0, "");
}

// The error's line, and that its one-line message is "data.csv:LINE: ..." (or "data.csv: ..." for
// whole-file errors).
void expect_error_at(const std::string& text, std::size_t line, const std::string& fragment = "") {
  SCOPED_TRACE(text);
  const InputError e = parse_error(text);
  EXPECT_EQ(e.file(), "data.csv");
  EXPECT_EQ(e.line(), line);
  const std::string prefix = line ? "data.csv:" + std::to_string(line) + ": " : "data.csv: ";
  EXPECT_EQ(e.message().rfind(prefix, 0), 0u) << e.message();
  EXPECT_EQ(e.message().find('\n'), std::string::npos) << e.message();
  if (!fragment.empty()) {
    EXPECT_NE(e.message().find(fragment), std::string::npos) << e.message();
  }
}

}  // namespace

// A well-formed file: columns in header order, values parsed exactly (0.1 is the double 0.1).
TEST(Csv, GoodFile) {
  const Columns c = parse("x,y\n0.1,2\n-3.5e-2, 4 \n1e300,\t-0\n");
  ASSERT_EQ(c.size(), 2u);
  ASSERT_EQ(c[0].size(), 3u);
  EXPECT_EQ(c[0][0], 0.1);
  EXPECT_EQ(c[1][0], 2.0);
  EXPECT_EQ(c[0][1], -3.5e-2);
  EXPECT_EQ(c[1][1], 4.0);  // surrounding whitespace is accepted
  EXPECT_EQ(c[0][2], 1e300);
  EXPECT_EQ(c[1][2], 0.0);
  // Full float64 precision round-trips (what the reference files rely on).
  const Columns r = parse("x,y\n0.12449613775174007,-0.416966674062927\n");
  EXPECT_EQ(r[0][0], 0.12449613775174007);
  EXPECT_EQ(r[1][0], -0.416966674062927);
  // One-column files and a missing final newline.
  const Columns q = parse("x\n1\n2", {"x"});
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0], (std::vector<double>{1, 2}));
}

// A header without rows is a valid, empty table (the caller decides whether that is enough).
TEST(Csv, HeaderOnlyGivesNoRows) {
  const Columns c = parse("x,y\n");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_TRUE(c[0].empty());
  EXPECT_TRUE(c[1].empty());
}

// Windows line ends are accepted.
TEST(Csv, CrLf) {
  const Columns c = parse("x,y\r\n1,2\r\n3,4\r\n");
  EXPECT_EQ(c[0], (std::vector<double>{1, 3}));
  EXPECT_EQ(c[1], (std::vector<double>{2, 4}));
}

// A UTF-8 byte-order mark before the header is skipped.
TEST(Csv, ByteOrderMark) {
  const Columns c = parse("\xEF\xBB\xBFx,y\n1,2\n");
  EXPECT_EQ(c[0], (std::vector<double>{1}));
  // ...but only at the very start of the file.
  expect_error_at(
      "x,y\n\xEF\xBB\xBF"
      "1,2\n",
      2, "not a number");
}

// Blank (or whitespace-only) lines are skipped anywhere, and still count for line numbers.
TEST(Csv, BlankLines) {
  const Columns c = parse("\n  \nx,y\n\n1,2\n \t\n3,4\n\n");
  EXPECT_EQ(c[0], (std::vector<double>{1, 3}));
  expect_error_at("\n\nx,y\n\n1,2\n\n3,oops\n", 7, "oops");
}

// The first non-blank line must be the header: a data row there is a missing header.
TEST(Csv, MissingHeader) {
  expect_error_at("1,2\n3,4\n", 1, "expected the header 'x,y'");
}

// A header with other names, another order, or extra columns is wrong.
TEST(Csv, WrongHeader) {
  expect_error_at("x,z\n1,2\n", 1, "found 'x,z'");
  expect_error_at("y,x\n1,2\n", 1, "expected the header 'x,y'");
  expect_error_at("x,y,z\n1,2,3\n", 1);
  expect_error_at("X,Y\n1,2\n", 1);
  expect_error_at("\n\nx\n1\n", 3);
}

// Cells that are not numbers (or are empty, or have trailing junk) name the column and the cell.
TEST(Csv, NonNumeric) {
  expect_error_at("x,y\n1,2\n3,abc\n", 3, "column y: 'abc' is not a number");
  expect_error_at("x,y\n1,\n", 2, "column y");
  expect_error_at("x,y\n,1\n", 2, "column x");
  expect_error_at("x,y\n1.5.2,1\n", 2, "'1.5.2'");
  expect_error_at("x,y\n1 2,1\n", 2);
}

// NaN, infinities and overflowing numbers are not finite data.
TEST(Csv, NanInfAndOverflow) {
  expect_error_at("x,y\n1,nan\n", 2, "not a finite number");
  expect_error_at("x,y\n1,2\nNaN,2\n", 3, "not a finite number");
  expect_error_at("x,y\ninf,1\n", 2, "not a finite number");
  expect_error_at("x,y\n1,-Infinity\n", 2, "not a finite number");
  expect_error_at("x,y\n1e999,1\n", 2, "'1e999' is not a finite number");
  expect_error_at("x,y\n1,-1e999\n", 2, "not a finite number");
}

// Rows with too many or too few fields.
TEST(Csv, WrongFieldCount) {
  expect_error_at("x,y\n1,2,3\n", 2, "expected 2 field(s) (x,y), found 3");
  expect_error_at("x,y\n1,2\n4\n", 3, "found 1");
  expect_error_at("x,y\n1,2,\n", 2, "found 3");
}

// An empty (or all-blank) file has no header: a whole-file error (line 0).
TEST(Csv, EmptyFile) {
  expect_error_at("", 0, "empty file");
  expect_error_at("\n\n  \n", 0, "empty file");
}

// A NUL byte means a binary file: rejected at its line, and the message stays printable.
TEST(Csv, NulByte) {
  expect_error_at(std::string("x,y\n1,2\n3\0,4\n", 13), 3, "NUL");
  expect_error_at(std::string("\0x,y\n", 5), 1, "NUL");
}

// Long or binary cells are shortened and escaped in the message, which stays on one line.
TEST(Csv, MessagesArePrintable) {
  const InputError e = parse_error("x,y\n1,\x01\x7f" + std::string(100, 'a') + "\n");
  EXPECT_EQ(e.line(), 2u);
  EXPECT_NE(e.message().find("\\x01\\x7f"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("..."), std::string::npos) << e.message();
  EXPECT_LT(e.message().size(), 200u);
}

// read_csv on a path that does not exist is an InputError naming the path (line 0).
TEST(Csv, ReadCsvMissingFile) {
  const std::string path =
      (std::filesystem::temp_directory_path() / "tapegrad_no_such_dir/none.csv").string();
  try {
    read_csv(path, kXY);
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_EQ(e.line(), 0u);
    EXPECT_EQ(e.message().rfind(path + ": ", 0), 0u) << e.message();
  }
}

// read_csv on a directory is an InputError naming it, not a crash or an empty table.
TEST(Csv, ReadCsvDirectory) {
  const std::string path = std::filesystem::temp_directory_path().string();
  try {
    read_csv(path, kXY);
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_EQ(e.message().rfind(path + ": ", 0), 0u) << e.message();
  }
}
