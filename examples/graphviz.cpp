#include "examples/graphviz.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "autograd/tape.h"
#include "examples/errors.h"
#include "examples/outputs.h"

namespace tapegrad {

namespace {

// Writes `text` to path.tmp and renames it onto path; WriteError with the reason in words.
void write_text(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = fd < 0 ? errno : 0;
  for (std::size_t off = 0; !err && off < text.size();) {
    const ssize_t w = ::write(fd, text.data() + off, text.size() - off);
    if (w < 0 && errno != EINTR) err = errno;
    if (w > 0) off += static_cast<std::size_t>(w);
  }
  if (fd >= 0 && ::close(fd) != 0 && !err) err = errno;
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
