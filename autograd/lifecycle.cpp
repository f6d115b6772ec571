// The tape's lifecycle: what is freed after backward, what is swept when nobody can reach it, and
// the errors for a graph that is gone (see the lifecycle notes in autograd/tape.h).
#include <algorithm>
#include <atomic>

#include "autograd/tape_internal.h"

namespace tapegrad {

namespace detail {

namespace {
std::atomic<std::uint64_t> tape_serials{0};

// Why a node's graph is gone, for the errors below: clear_tape() or an earlier backward.
std::string why_graph_is_gone(const NodeBase& n) {
  if (n.graph_cleared)
    return "its graph was dropped by clear_tape(), which turns every graph on the tape into "
           "constants; record it again after clear_tape()";
  return "its graph was already freed by an earlier backward (backward through the graph a second "
         "time); pass retain_graph=true to the first call if you need to";
}
}  // namespace

Tape::Tape() : serial(++tape_serials) {}

Tape& tape() {
  thread_local Tape t;
  return t;
}

// The next sweep comes when the tape has doubled (at least 1024 entries): amortised O(1) per
// entry. Called whenever the tape shrinks, not only after a sweep: otherwise one large graph (say
// 10^5 ops, then backward) would leave the threshold at 2^17 and let that many dead entries, and
// the tensors they hold, pile up before the next sweep.
void Tape::reset_sweep_threshold() {
  sweep_at = std::max<std::size_t>(1024, 2 * entries.size());
}

// Drops entries whose output nobody can reach. Going from the newest entry to the oldest matters:
// dropping an entry releases its inputs, which may leave an older entry's output unreachable too.
void Tape::sweep() {
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->output.expired()) {
      it->inputs.clear();
      it->backward = nullptr;
    }
  }
  entries.erase(std::remove_if(entries.begin(), entries.end(),
                               [](const Entry& e) { return e.output.expired(); }),
                entries.end());
  reset_sweep_threshold();
}

std::size_t position_of_loss_entry(const Tape& tp, const NodeBase& loss, const std::string& what) {
  if (loss.tape_serial != tp.serial)
    throw std::logic_error("backward: " + what +
                           " was recorded on another thread's tape; call backward on that thread");
  if (loss.graph_freed)
    throw std::logic_error("backward: " + what + ": " + why_graph_is_gone(loss));
  // Entries are sorted by id, so a binary search finds it.
  auto pos = std::lower_bound(tp.entries.begin(), tp.entries.end(), loss.entry_id,
                              [](const Entry& e, std::uint64_t id) { return e.id < id; });
  if (pos == tp.entries.end() || pos->id != loss.entry_id)
    throw std::logic_error("backward: the graph of " + what + " is no longer on the tape");
  return static_cast<std::size_t>(pos - tp.entries.begin());
}

void check_inputs_alive(const Entry& e) {
  for (const auto& in : e.inputs)
    if (in->requires_grad && in->entry_id != 0 && in->graph_freed)
      throw std::logic_error("backward: " + e.op +
                             " uses a tensor whose graph is gone: " + why_graph_is_gone(*in));
}

// Marks the outputs of the entries that ran, so that a second backward through them says so, and
// drops those entries from the tape with the tensors they held.
void free_entries(Tape& tp, const std::vector<std::size_t>& ran) {
  for (std::size_t i : ran) {
    Entry& e = tp.entries[i];
    if (auto out = e.output.lock()) out->graph_freed = true;
    e.inputs.clear();
    e.backward = nullptr;
    e.output.reset();
  }
  tp.entries.erase(std::remove_if(tp.entries.begin(), tp.entries.end(),
                                  [](const Entry& e) { return e.output.expired(); }),
                   tp.entries.end());
  tp.reset_sweep_threshold();
}

}  // namespace detail

std::size_t tape_size() {
  return detail::tape().entries.size();
}

const std::vector<Entry>& tape_entries() {
  return detail::tape().entries;
}

void clear_tape() {
  detail::Tape& tp = detail::tape();
  for (auto it = tp.entries.rbegin(); it != tp.entries.rend(); ++it) {
    if (auto out = it->output.lock()) out->graph_freed = out->graph_cleared = true;
  }
  tp.entries.clear();
  tp.reset_sweep_threshold();
}

}  // namespace tapegrad
