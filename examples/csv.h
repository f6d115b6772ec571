// A strict reader for the example program's CSV files.
//
// Format: a header line naming the columns exactly (e.g. "x,y"), then one row per example with that
// many numeric fields. Whitespace around fields, CRLF line ends, a UTF-8 byte-order mark and blank
// lines are accepted; anything else (a missing or wrong header, a non-numeric cell, a wrong number
// of fields, NaN or inf) is an error that names the file and the line.
//
// Limits (CsvLimits): a line longer than max_line_bytes, a file longer than max_file_bytes, more
// than max_rows rows, or a value whose magnitude exceeds max_abs (the dtype's largest finite value)
// is refused with the file and line. The reader holds at most one line in memory beyond the parsed
// columns, so a stream that never ends a line (/dev/zero, a pipe) is refused in bounded memory.
#pragma once

#include <cfloat>
#include <functional>
#include <istream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tapegrad {

// An error in user input: what(), file and line; the program prints "file:line: what" and exits 2.
class InputError : public std::runtime_error {
 public:
  InputError(std::string file, std::size_t line, const std::string& what)
      : std::runtime_error(what), file_(std::move(file)), line_(line) {}
  const std::string& file() const { return file_; }
  std::size_t line() const { return line_; }  // 0 when the error is about the whole file
  std::string message() const;                // "file:line: what" (or "file: what")

 private:
  std::string file_;
  std::size_t line_;
};

// Columns in header order; columns[c][r] is row r of column c.
using Columns = std::vector<std::vector<double>>;

struct CsvLimits {
  std::size_t max_line_bytes = 4096;
  std::size_t max_file_bytes = std::size_t(256) << 20;  // 256 MiB
  std::size_t max_rows = 1000000;
  double max_abs = DBL_MAX;       // e.g. FLT_MAX when the values go into float32
  std::string dtype = "float64";  // named in the message when max_abs is exceeded
};

// Parses CSV text with the given header. `name` is used in error messages.
Columns parse_csv(std::istream& in, const std::vector<std::string>& header, const std::string& name,
                  const CsvLimits& limits = CsvLimits());
// Opens and parses a file; an unreadable file is an InputError too.
Columns read_csv(const std::string& path, const std::vector<std::string>& header,
                 const CsvLimits& limits = CsvLimits());

// A header that is one of several: `problem` returns "" for an accepted header (its fields, trimmed)
// and otherwise the error message ("expected the header 'x,y' or 'x1,...,xd,y', found 'a,b'");
// `expected` describes the accepted headers for an empty file's message.
struct HeaderRule {
  std::function<std::string(const std::vector<std::string>& fields)> problem;
  std::string expected;
};

// A parsed file whose header was chosen by a HeaderRule: the header's column names, the columns,
// and the file line of every row (blank lines are skipped, so rows and lines differ).
struct Table {
  std::vector<std::string> header;
  Columns columns;
  std::vector<std::size_t> row_lines;
};

Table parse_csv_table(std::istream& in, const HeaderRule& rule, const std::string& name,
                      const CsvLimits& limits = CsvLimits());
Table read_csv_table(const std::string& path, const HeaderRule& rule,
                     const CsvLimits& limits = CsvLimits());

// ---- writing numbers -------------------------------------------------------------------------

// Rows of numbers as CSV lines (no header): for float64 data (single false) each number the
// shortest text that reads back as the same double; for float32, 6 significant digits.
std::string matrix_csv(const std::vector<std::vector<double>>& rows, bool single);
// Class probabilities: a header p0..p(C-1), then the rows of p.
std::string probabilities_csv(const std::vector<std::vector<double>>& p, std::size_t classes,
                              bool single);

}  // namespace tapegrad
