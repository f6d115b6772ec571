#include "examples/csv.h"

#include <cerrno>
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

}  // namespace

Columns parse_csv(std::istream& in, const std::vector<std::string>& header,
                  const std::string& name) {
  std::string line;
  std::size_t lineno = 0;
  bool have_header = false;
  Columns cols(header.size());
  while (std::getline(in, line)) {
    ++lineno;
    if (lineno == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM
    if (line.find('\0') != std::string::npos)
      throw InputError(name, lineno, "binary data (a NUL byte) in a text file");
    if (trim(line).empty()) continue;
    const auto fields = split(line);
    if (!have_header) {
      if (fields != header)
        throw InputError(
            name, lineno,
            "expected the header '" + joined(header) + "', found '" + printable(trim(line)) + "'");
      have_header = true;
      continue;
    }
    if (fields.size() != header.size())
      throw InputError(name, lineno,
                       "expected " + std::to_string(header.size()) + " field(s) (" +
                           joined(header) + "), found " + std::to_string(fields.size()));
    for (std::size_t c = 0; c < fields.size(); ++c) {
      const std::string& f = fields[c];
      char* end = nullptr;
      errno = 0;
      const double v = f.empty() ? 0.0 : std::strtod(f.c_str(), &end);
      if (f.empty() || end != f.c_str() + f.size())
        throw InputError(name, lineno,
                         "column " + header[c] + ": '" + printable(f) + "' is not a number");
      if (!std::isfinite(v) || (errno == ERANGE && std::abs(v) > 1.0))
        throw InputError(name, lineno,
                         "column " + header[c] + ": '" + printable(f) + "' is not a finite number");
      cols[c].push_back(v);
    }
  }
  if (in.bad()) throw InputError(name, 0, "read error");
  if (!have_header)
    throw InputError(name, 0, "empty file (expected the header '" + joined(header) + "')");
  return cols;
}

Columns read_csv(const std::string& path, const std::vector<std::string>& header) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InputError(path, 0, "is a directory, not a CSV file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, std::string("cannot open: ") + std::strerror(errno));
  return parse_csv(in, header, path);
}

}  // namespace tapegrad
