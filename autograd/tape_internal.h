// What tape.cpp (the algorithm), lifecycle.cpp (freeing graphs) and anomaly.cpp (NaN hunting)
// share. Not part of the public API: include autograd/tape.h instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tape.h"

namespace tapegrad::detail {

// One thread's tape: its entries in creation order (= a topological order of every graph on it).
struct Tape {
  const std::uint64_t serial;    // unique in the process, never reused (tells threads' tapes apart)
  std::vector<Entry> entries;    // ordered by id
  std::uint64_t next_id = 1;     // 0 means "leaf"
  std::uint64_t next_stamp = 1;  // one per backward pass
  std::size_t sweep_at = 1024;   // sweep unreachable entries when the tape grows past this

  Tape();
  void reset_sweep_threshold();
  void sweep();
};
Tape& tape();  // the calling thread's

// --- lifecycle.cpp ---
// Where the entry that made `loss` sits on the tape; throws when it was recorded on another
// thread or its graph was freed.
std::size_t position_of_loss_entry(const Tape& tp, const NodeBase& loss, const std::string& what);
// Throws when an entry about to run reads a tensor whose own graph is gone.
void check_inputs_alive(const Entry& e);
// After backward: frees the entries that ran (positions `ran`) and the tensors they held.
void free_entries(Tape& tp, const std::vector<std::size_t>& ran);

// --- anomaly.cpp (each a no-op outside DetectAnomalyGuard) ---
template <class T, class U>
void check_forward_finite(const std::string& op, const xt::xarray<T>& value,
                          const std::vector<Tensor<U>>& inputs, std::uint64_t position);
template <class T>
void check_gradient_finite(const std::string& op, const xt::xarray<T>& g, const Shape& shape);
// Runs e's backward closure, naming e in anomaly messages while it runs.
void run_backward_closure(const Entry& e, NodeBase& out);

}  // namespace tapegrad::detail
