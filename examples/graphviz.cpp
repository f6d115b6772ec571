#include "examples/graphviz.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "autograd/tape.h"
#include "examples/errors.h"
#include "examples/outputs.h"

namespace tapegrad {

namespace {

void write_text(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  std::ofstream f(tmp, std::ios::binary);
  f << text;
  f.close();
  if (!f) throw std::runtime_error("write_graph: cannot write " + tmp.string());
  std::filesystem::rename(tmp, path);
}

}  // namespace

template <class T>
GraphFiles write_graph(const std::string& dir, const Tensor<T>& loss) {
  retain_grads(loss);
  loss.backward(/*retain_graph=*/true);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);  // an existing directory is fine
  const std::filesystem::path base(dir);
  GraphFiles files;
  files.dot = (base / "graph.dot").string();
  write_text(files.dot, to_dot(loss));
  if (!on_path("dot")) return files;  // no Graphviz: the DOT file alone
  const std::string png = (base / "graph.png").string(), tmp = png + ".tmp";
  const int status = run_program(base, {"dot", "-Tpng", files.dot, "-o", tmp});
  if (status != 0) throw ToolError("Graphviz's dot " + describe_wait_status(status));
  if (!std::filesystem::is_regular_file(tmp) || std::filesystem::file_size(tmp) == 0)
    throw ToolError("Graphviz's dot exited with status 0 but wrote no graph.png");
  std::filesystem::rename(tmp, png);
  files.png = png;
  return files;
}

template GraphFiles write_graph<float>(const std::string&, const Tensor<float>&);
template GraphFiles write_graph<double>(const std::string&, const Tensor<double>&);

}  // namespace tapegrad
