#include "examples/graphviz.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "autograd/tape.h"
#include "examples/exercise_util.h"

namespace tapegrad {

using exercise::shell_quote;

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
  if (std::system("command -v dot > /dev/null 2>&1") != 0) return files;  // no Graphviz
  const std::string png = (base / "graph.png").string(), tmp = png + ".tmp";
  const std::string cmd = "dot -Tpng " + shell_quote(files.dot) + " -o " + shell_quote(tmp);
  if (std::system(cmd.c_str()) != 0)
    throw std::runtime_error("write_graph: dot failed on " + files.dot);
  std::filesystem::rename(tmp, png);
  files.png = png;
  return files;
}

template GraphFiles write_graph<float>(const std::string&, const Tensor<float>&);
template GraphFiles write_graph<double>(const std::string&, const Tensor<double>&);

}  // namespace tapegrad
