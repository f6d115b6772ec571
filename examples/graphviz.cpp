#include "examples/graphviz.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "autograd/tape.h"
#include "examples/errors.h"
#include "examples/outputs.h"
#include "io/files.h"

namespace tapegrad {

namespace {

// Writes `text` to path.tmp and renames it onto path; WriteError with the reason in words.
void write_text(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  int err = write_file(tmp.string(), text);
  if (!err && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err) {
    ::unlink(tmp.c_str());
    throw WriteError("cannot write " + path.filename().string() + ": " + std::strerror(err));
  }
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
  const std::string problem = png_problem(tmp);
  if (!problem.empty())
    throw ToolError("Graphviz's dot exited with status 0 but graph.png is " + problem);
  if (::rename(tmp.c_str(), png.c_str()) != 0)
    throw WriteError("cannot write graph.png: " + std::string(std::strerror(errno)));
  files.png = png;
  return files;
}

template GraphFiles write_graph<float>(const std::string&, const Tensor<float>&);
template GraphFiles write_graph<double>(const std::string&, const Tensor<double>&);

}  // namespace tapegrad
