#include "examples/csv.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace tapegrad {

std::string InputError::message() const {
  return line_ ? file_ + ":" + std::to_string(line_) + ": " + what() : file_ + ": " + what();
}

namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto comma = line.find(',', start);
    out.push_back(
        trim(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

std::string joined(const std::vector<std::string>& h) {
  std::string s;
  for (std::size_t i = 0; i < h.size(); ++i) s += (i ? "," : "") + h[i];
  return s;
}

// Shown in messages: long or binary cells are cut and escaped so the error stays one line.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 40)) {
    if (c >= 32 && c < 127) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return s.size() > 40 ? out + "..." : out;
}

std::string shortest(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Reads one line (without its '\n') into `line`, refusing a line longer than the limit, a NUL byte
// and a file longer than the limit as soon as they are seen: memory stays bounded whatever the
// stream. Returns false at the end of the stream.
bool read_line(std::istream& in, std::string& line, std::size_t lineno, std::size_t& file_bytes,
               const CsvLimits& limits, const std::string& name) {
  line.clear();
  std::streambuf* buf = in.rdbuf();
  for (;;) {
    const int c = buf->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      return !line.empty();
    }
    if (++file_bytes > limits.max_file_bytes)
      throw InputError(
          name, lineno,
          "file longer than the limit of " + std::to_string(limits.max_file_bytes) + " bytes");
    if (c == '\n') return true;
    if (c == '\0') throw InputError(name, lineno, "binary data (a NUL byte) in a text file");
    if (line.size() == limits.max_line_bytes)
      throw InputError(
          name, lineno,
          "line longer than the limit of " + std::to_string(limits.max_line_bytes) + " bytes");
    line += static_cast<char>(c);
  }
}

// One numeric cell: a finite number within the limits' magnitude.
double parse_cell(const std::string& cell, const std::string& column, std::size_t lineno,
                  const CsvLimits& limits, const std::string& name) {
  char* end = nullptr;
  errno = 0;
  const double v = cell.empty() ? 0.0 : std::strtod(cell.c_str(), &end);
  if (cell.empty() || end != cell.c_str() + cell.size())
    throw InputError(name, lineno,
                     "column " + column + ": '" + printable(cell) + "' is not a number");
  if (!std::isfinite(v) || (errno == ERANGE && std::abs(v) > 1.0))
    throw InputError(name, lineno,
                     "column " + column + ": '" + printable(cell) + "' is not a finite number");
  if (std::abs(v) > limits.max_abs)
    throw InputError(name, lineno,
                     "column " + column + ": '" + printable(cell) + "' is outside the range of " +
                         limits.dtype + " (magnitude at most " + shortest(limits.max_abs) + ")");
  return v;
}

}  // namespace

Table parse_csv_table(std::istream& in, const HeaderRule& rule, const std::string& name,
                      const CsvLimits& limits) {
  std::string line;
  std::size_t lineno = 0, file_bytes = 0, rows = 0;
  Table table;
  bool have_header = false;
  while (read_line(in, line, lineno + 1, file_bytes, limits, name)) {
    ++lineno;
    if (lineno == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM
    if (trim(line).empty()) continue;
    const auto fields = split(line);
    if (!have_header) {
      const std::string problem = rule.problem(fields);
      if (!problem.empty()) throw InputError(name, lineno, problem);
      table.header = fields;
      table.columns.assign(fields.size(), {});
      have_header = true;
      continue;
    }
    if (fields.size() != table.header.size())
      throw InputError(name, lineno,
                       "expected " + std::to_string(table.header.size()) + " field(s) (" +
                           joined(table.header) + "), found " + std::to_string(fields.size()));
    if (++rows > limits.max_rows)
      throw InputError(name, lineno,
                       "more than the limit of " + std::to_string(limits.max_rows) + " rows");
    for (std::size_t c = 0; c < fields.size(); ++c)
      table.columns[c].push_back(parse_cell(fields[c], table.header[c], lineno, limits, name));
    table.row_lines.push_back(lineno);
  }
  if (in.bad()) throw InputError(name, 0, "read error");
  if (!have_header)
    throw InputError(name, 0, "empty file (expected the header " + rule.expected + ")");
  return table;
}

namespace {

HeaderRule exact_header(const std::vector<std::string>& header) {
  HeaderRule rule;
  rule.expected = "'" + joined(header) + "'";
  rule.problem = [header](const std::vector<std::string>& fields) -> std::string {
    if (fields == header) return "";
    return "expected the header '" + joined(header) + "', found '" + printable(joined(fields)) +
           "'";
  };
  return rule;
}

// Opens `path` for reading; a directory or an unreadable file is an InputError.
std::ifstream open_csv(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InputError(path, 0, "is a directory, not a CSV file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, std::string("cannot open: ") + std::strerror(errno));
  return in;
}

}  // namespace

Columns parse_csv(std::istream& in, const std::vector<std::string>& header, const std::string& name,
                  const CsvLimits& limits) {
  return parse_csv_table(in, exact_header(header), name, limits).columns;
}

Table read_csv_table(const std::string& path, const HeaderRule& rule, const CsvLimits& limits) {
  std::ifstream in = open_csv(path);
  return parse_csv_table(in, rule, path, limits);
}

Columns read_csv(const std::string& path, const std::vector<std::string>& header,
                 const CsvLimits& limits) {
  return read_csv_table(path, exact_header(header), limits).columns;
}

// ---- writing numbers -------------------------------------------------------------------------

namespace {

// "1.9708e-05" -> "1.9708e-5", "2e+10" -> "2e10": the exponent without its sign "+" or leading
// zeros, as every CSV reader parses it.
std::string compact_exponent(std::string s) {
  const std::size_t at = s.find('e');
  if (at == std::string::npos) return s;
  std::string exponent = s.substr(at + 1);
  const bool negative = exponent[0] == '-';
  exponent.erase(0, exponent.find_first_not_of("+-0"));
  if (exponent.empty()) return s.substr(0, at);
  return s.substr(0, at) + "e" + (negative ? "-" : "") + exponent;
}

// v as the shorter of its fixed and scientific texts: for a double, the shortest that reads back
// as the same double; for a float (single), 6 significant digits, the decimal digits a float holds
// faithfully (numeric_limits<float>::digits10): large attention matrices take a fifth fewer bytes
// than with a float's exact 9, and float32 sums over n terms are not more accurate than that.
void append_number(std::string& text, double v, bool single) {
  char a[64], b[64];
  const auto fixed = single ? std::to_chars(a, a + 64, float(v), std::chars_format::general, 6)
                            : std::to_chars(a, a + 64, v);
  const auto sci = single ? std::to_chars(b, b + 64, float(v), std::chars_format::scientific, 5)
                          : std::to_chars(b, b + 64, v, std::chars_format::scientific);
  std::string x = compact_exponent(std::string(a, fixed.ptr));
  std::string y = compact_exponent(std::string(b, sci.ptr));
  if (single && y.find('e') != std::string::npos) {  // drop the mantissa's trailing zeros
    const std::size_t e = y.find('e');
    std::string mantissa = y.substr(0, e);
    if (mantissa.find('.') != std::string::npos) {
      mantissa.erase(mantissa.find_last_not_of('0') + 1);
      if (mantissa.back() == '.') mantissa.pop_back();
    }
    y = mantissa + y.substr(e);
  }
  text += x.size() <= y.size() ? x : y;
}

}  // namespace

std::string matrix_csv(const std::vector<std::vector<double>>& m, bool single) {
  std::string text;
  for (const auto& row : m) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (c) text += ',';
      append_number(text, row[c], single);
    }
    text += '\n';
  }
  return text;
}

std::string probabilities_csv(const std::vector<std::vector<double>>& p, std::size_t classes,
                              bool single) {
  std::string header;
  for (std::size_t c = 0; c < classes; ++c) header += (c ? ",p" : "p") + std::to_string(c);
  return header + "\n" + matrix_csv(p, single);
}

}  // namespace tapegrad
