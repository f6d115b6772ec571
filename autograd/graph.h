// Seeing the tape: the graph that produced a tensor, as Graphviz DOT or as plain text.
//
//   Tensor<double> loss = ...;                 // forward: each op appended one tape entry
//   retain_grads(loss);                        // keep the intermediates' grads for the picture
//   loss.backward(/*retain_graph=*/true);      // keep the entries, so they can still be drawn
//   std::ofstream("graph.dot") << to_dot(loss);  // then: dot -Tpng graph.dot -o graph.png
//                                              // (examples/graphviz.h does both)
//   print_tape();                              // the same entries, one line each, in a terminal
//
// In the DOT graph there is one box per tape entry of the graph (its tape position, op name,
// output shape and, once backward has reached it, the norm of its gradient) and one ellipse per
// leaf it reads (name or "parameter"/"constant", shape and a summary of the values; parameters,
// the leaves that require grad, are filled). Edges go from each input to the op that reads it, in
// data-flow order: the order in which the entries were recorded, which is the order backward walks
// in reverse. The tensor itself is drawn with a double border.
#pragma once

#include <ostream>
#include <string>

#include "autograd/tensor.h"

namespace tapegrad {

// Graphviz DOT of the graph that produced t (only t's ancestors on this thread's tape).
template <class T>
std::string to_dot(const Tensor<T>& t);

// Every entry on this thread's tape, oldest first, one line each:
//   #3  softmax         -> (4, 3)   <- #2 (4, 3)
// Inputs made by an entry are written "#id", leaves by their name (or "leaf"/"const") and shape.
std::string tape_str();
void print_tape(std::ostream& os);
void print_tape();  // to std::cout

// Marks every non-leaf of t's graph to keep its gradient after backward (retain_grad on each), so
// that to_dot can show the gradient norm of every op.
template <class T>
void retain_grads(const Tensor<T>& t);

}  // namespace tapegrad
