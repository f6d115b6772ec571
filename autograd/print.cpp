#include "autograd/print.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

#include "autograd/tape.h"

namespace tapegrad {

namespace {

constexpr std::size_t kThreshold = 1000;  // summarise tensors with more elements than this
constexpr std::size_t kEdgeItems = 3;     // entries shown at each end of a summarised axis
constexpr std::size_t kLineWidth = 80;

enum class Style { Integer, Fixed, Scientific };

// One style for the whole tensor, chosen as torch does from the finite magnitudes.
template <class T>
Style choose_style(const xt::xarray<T>& a) {
  double max_abs = 0, min_abs = INFINITY;
  bool integral = true;
  for (const T v : a) {
    if (!std::isfinite(v)) continue;
    const double m = std::fabs(static_cast<double>(v));
    integral = integral && std::nearbyint(v) == v;
    max_abs = std::max(max_abs, m);
    if (m > 0) min_abs = std::min(min_abs, m);
  }
  if (integral && max_abs < 1e8) return Style::Integer;
  if (max_abs >= 1e8 || min_abs < 1e-4 || max_abs / min_abs > 1e3) return Style::Scientific;
  return Style::Fixed;
}

std::string format_number(double v, Style style) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  if (style == Style::Integer)
    std::snprintf(buf, sizeof buf, "%.0f.", v);
  else if (style == Style::Fixed)
    std::snprintf(buf, sizeof buf, "%.4f", v);
  else
    std::snprintf(buf, sizeof buf, "%.4e", v);
  return buf;
}

// The indices shown along an axis of extent n; kSkip marks the "..." between the two ends.
constexpr std::size_t kSkip = static_cast<std::size_t>(-1);
std::vector<std::size_t> shown_indices(std::size_t n, bool summarise) {
  std::vector<std::size_t> idx;
  if (summarise && n > 2 * kEdgeItems) {
    for (std::size_t i = 0; i < kEdgeItems; ++i) idx.push_back(i);
    idx.push_back(kSkip);
    for (std::size_t i = n - kEdgeItems; i < n; ++i) idx.push_back(i);
  } else {
    for (std::size_t i = 0; i < n; ++i) idx.push_back(i);
  }
  return idx;
}

// Formats the (sub)array at `offset` whose first axis is `dim`, already knowing every element's
// text (cells, row-major) and the common width.
struct Formatter {
  Shape shape;
  std::vector<std::size_t> strides;  // row-major, in elements
  std::vector<std::string> cells;    // text of each element, row-major
  std::size_t width = 0;
  bool summarise = false;

  void row(std::ostringstream& os, std::size_t offset, std::size_t column) const {
    // The innermost axis: "[a, b, c]", wrapped so that no line passes kLineWidth.
    os << '[';
    std::size_t col = column + 1;
    bool first = true;
    for (std::size_t i : shown_indices(shape.back(), summarise)) {
      std::string cell = i == kSkip ? std::string(" ...") : cells[offset + i];
      if (i != kSkip) cell.insert(0, width - cell.size(), ' ');  // torch writes " ..." unpadded
      if (!first) {
        const bool wrap = col + 2 + cell.size() + 2 > kLineWidth;
        os << (wrap ? ",\n" + std::string(column + 1, ' ') : std::string(", "));
        col = wrap ? column + 1 : col + 2;
      }
      os << cell;
      col += cell.size();
      first = false;
    }
    os << ']';
  }

  void block(std::ostringstream& os, std::size_t dim, std::size_t offset,
             std::size_t column) const {
    if (dim + 1 == shape.size()) return row(os, offset, column + dim);
    os << '[';
    bool first = true;
    for (std::size_t i : shown_indices(shape[dim], summarise)) {
      if (!first)  // one newline per axis closed, as torch separates 2-d blocks by a blank line
        os << ',' << std::string(shape.size() - dim - 1, '\n')
           << std::string(column + dim + 1, ' ');
      if (i == kSkip)
        os << "...";
      else
        block(os, dim + 1, offset + i * strides[dim], column);
      first = false;
    }
    os << ']';
  }
};

}  // namespace

template <class T>
std::string format_values(const xt::xarray<T>& a, std::size_t indent) {
  const Style style = choose_style(a);
  if (a.dimension() == 0) return format_number(static_cast<double>(a()), style);
  Formatter f;
  f.shape = to_shape(a.shape());
  f.strides.assign(f.shape.size(), 1);
  for (std::size_t d = f.shape.size() - 1; d-- > 0;)
    f.strides[d] = f.strides[d + 1] * f.shape[d + 1];
  f.summarise = a.size() > kThreshold;
  for (const T v : a) f.cells.push_back(format_number(static_cast<double>(v), style));
  for (const auto& c : f.cells) f.width = std::max(f.width, c.size());
  if (a.size() == 0) return "[]";
  std::ostringstream os;
  f.block(os, 0, 0, indent);
  return os.str();
}

std::string grad_fn_name(const NodeBase& node) {
  if (node.entry_id == 0) return "";
  const std::vector<Entry>& entries = tape_entries();
  auto pos = std::lower_bound(entries.begin(), entries.end(), node.entry_id,
                              [](const Entry& e, std::uint64_t id) { return e.id < id; });
  if (node.graph_freed || pos == entries.end() || pos->id != node.entry_id) return "freed";
  return pos->op;
}

template <class T>
std::string to_string(const Tensor<T>& t) {
  if (!t.defined()) return "tensor(undefined)";
  std::ostringstream os;
  os << "tensor(" << format_values(t.value(), 7) << ", shape=" << shape_str(t.shape())
     << ", dtype=" << (std::is_same_v<T, float> ? "float32" : "float64")
     << ", requires_grad=" << (t.requires_grad() ? "true" : "false");
  if (!t.name().empty()) os << ", name=\"" << t.name() << '"';
  const std::string fn = grad_fn_name(t.node());
  if (!fn.empty()) os << ", grad_fn=<" << fn << '>';
  os << ')';
  return os.str();
}

template std::string to_string<float>(const Tensor<float>&);
template std::string to_string<double>(const Tensor<double>&);
template std::string format_values<float>(const xt::xarray<float>&, std::size_t);
template std::string format_values<double>(const xt::xarray<double>&, std::size_t);

}  // namespace tapegrad
