// The tape as a picture: a training step's graph written as Graphviz DOT and, when Graphviz's
// `dot` is installed, rendered to PNG. The DOT text itself comes from to_dot (autograd/graph.h);
// running an external program is the example programs' business, not the engine's.
#pragma once

#include <string>

#include "autograd/graph.h"

namespace tapegrad {

// What write_graph wrote.
struct GraphFiles {
  std::string dot;  // <dir>/graph.dot
  std::string png;  // <dir>/graph.png, or "" when Graphviz's dot is not installed
};

// One picture of a training step: retain_grads(loss), loss.backward(retain_graph=true) (the
// parameters' grads accumulate, as in the step's own backward), then writes <dir>/graph.dot and,
// when Graphviz's `dot` is on PATH, renders <dir>/graph.png (no shell). Each file is written to a
// temporary name and renamed into place. Throws WriteError (examples/outputs.h) naming the file and
// the reason when it cannot be written, and ToolError (examples/errors.h) with dot's exit status in
// words when dot fails, or when it exits 0 but graph.png is not a whole PNG.
template <class T>
GraphFiles write_graph(const std::string& dir, const Tensor<T>& loss);

}  // namespace tapegrad
