#include "ops/kernels/nw_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <type_traits>

#include "ops/kernels/exp.h"
#include "ops/kernels/parallel.h"

namespace tapegrad::kernels {

namespace {

constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
template <class T>
constexpr T kInf = std::numeric_limits<T>::infinity();

// Exps in whole vectors of kVector keys (one 512-bit register, or two or four narrower ones).
// Sums in kChains independent vector accumulators: an add waits for the previous add into its
// accumulator (4 cycles) while the CPU can start two a cycle, so one accumulator (what `omp simd
// reduction` makes) would bind the sums to that wait.
template <class T>
constexpr std::size_t kVector = 64 / sizeof(T);
constexpr std::size_t kChains = 4;
template <class T>
constexpr std::size_t kLanes = kChains* kVector<T>;

// combine of term(s) over s in [lo, hi), term s into lane s % kLanes (a lane array in vector
// registers: one accumulator waits on every add, and clang does not vectorise its max without
// -ffast-math), the lanes combined as a tree at the end. Changes only the order of the sums.
template <class T, class Term, class Combine>
T reduce_over(std::size_t lo, std::size_t hi, T init, const Term& term, const Combine& combine) {
  T lane[kLanes<T>];
  std::fill(lane, lane + kLanes<T>, init);
  std::size_t s = lo;
  for (; s + kLanes<T> <= hi; s += kLanes<T>)
    for (std::size_t l = 0; l < kLanes<T>; ++l) lane[l] = combine(lane[l], term(s + l));
  for (std::size_t l = 0; s + l < hi; ++l) lane[l] = combine(lane[l], term(s + l));
  for (std::size_t half = kLanes<T> / 2; half > 0; half /= 2)
    for (std::size_t l = 0; l < half; ++l) lane[l] = combine(lane[l], lane[l + half]);
  return lane[0];
}

template <class T, class Term>
T sum_over(std::size_t lo, std::size_t hi, const Term& term) {
  return reduce_over<T>(lo, hi, T(0), term, [](T x, T y) { return x + y; });
}

// --- sorting ------------------------------------------------------------------------------------

// The window's coordinate: the one whose |width| times spread is largest, so that its term alone
// rules out the most keys.
template <class T>
std::size_t window_axis(const NwProblem<T>& a) {
  std::size_t best = 0;
  T best_reach = -1;
  for (std::size_t l = 0; l < a.d; ++l) {
    T lo = kInf<T>, hi = -kInf<T>;
    for (std::size_t j = 0; j < a.m; ++j)
      lo = std::min(lo, a.keys[j * a.d + l]), hi = std::max(hi, a.keys[j * a.d + l]);
    const T reach = std::abs(a.w[l]) * (hi - lo);
    if (reach > best_reach) best = l, best_reach = reach;
  }
  return best;
}

}  // namespace

template <class T>
NwKeys<T> nw_sort_keys(const NwProblem<T>& a, const T* values, std::size_t C,
                       const std::int64_t* labels) {
  NwKeys<T> keys;
  const std::size_t m = a.m, d = a.d;
  keys.m = m, keys.d = d, keys.C = C, keys.axis = window_axis(a);
  keys.w.assign(a.w, a.w + d);
  auto label = [labels](std::size_t j) { return labels ? labels[j] : std::int64_t(0); };
  auto coordinate = [&](std::size_t j) { return a.keys[j * d + keys.axis]; };
  keys.original.resize(m);
  std::iota(keys.original.begin(), keys.original.end(), std::size_t(0));
  // By label, then by coordinate with NaN last (a strict weak order even with NaN keys); stable,
  // so that equal keys keep the caller's order, and the sums their order.
  std::stable_sort(keys.original.begin(), keys.original.end(), [&](std::size_t x, std::size_t y) {
    if (label(x) != label(y)) return label(x) < label(y);
    const T cx = coordinate(x), cy = coordinate(y);
    if (std::isnan(cx) || std::isnan(cy)) return !std::isnan(cx) && std::isnan(cy);
    return cx < cy;
  });
  keys.sorted_at.resize(m), keys.key.resize(m * d), keys.value.resize(m * C), keys.bin.resize(m);
  if (labels) keys.label.resize(m);
  bool one_hot = C > 16;  // each row a single 1 (fewer classes: C vector sums beat bins)
  for (std::size_t s = 0; s < m; ++s) {
    const std::size_t j = keys.original[s];
    keys.sorted_at[j] = s;
    for (std::size_t l = 0; l < d; ++l) keys.key[l * m + s] = a.keys[j * d + l];
    T ones = 0;
    for (std::size_t c = 0; c < C; ++c) {
      const T v = keys.value[c * m + s] = values[j * C + c];
      one_hot &= v == 0 || v == 1, ones += v, keys.bin[s] = v == 1 ? c : keys.bin[s];
    }
    one_hot &= ones == 1;
    if (labels) keys.label[s] = labels[j];
  }
  if (!one_hot) keys.bin.clear();
  return keys;
}

namespace {

// --- one row: its nearest key and window -------------------------------------------------------

// One query row: the query, its nearest key k* (sorted position near, coordinates kstar, and
// half_dstar = (q - k*) / 2), the keys it visits [lo, hi), widened to whole vectors [begin, end),
// and the skipped key.
template <class T>
struct Row {
  std::vector<T> q, kstar, half_dstar;
  std::size_t near = kNone, skip = kNone, lo = 0, hi = 0, begin = 0, end = 0;
  std::size_t at = 0;         // q_a's place among the keys (the first key not below it)
  long double distance2 = 0;  // |(q - k*) w|^2 (+inf: none)
};

// One thread's rows and (m,) buffers by sorted position: weights e (or e A), the logits and one
// coordinate's terms (d >= 2), the logits' slopes g (and g_class, the cross-entropy's class part);
// and (d,) sums.
template <class T>
struct Scratch {
  Row<T> row, row_class;
  std::vector<T> e, logit, term, g, g_class, sum_q, sum_w;
  Scratch(std::size_t m, std::size_t d)
      : e(m), logit(d > 1 ? m : 0), term(d > 1 ? m : 0), g(m), g_class(m), sum_q(d), sum_w(d) {}
};

template <class T>
void set_nearest(const NwKeys<T>& keys, Row<T>& row, std::size_t s) {
  row.near = s;
  for (std::size_t l = 0; l < keys.d; ++l) {
    const T k = s == kNone ? std::numeric_limits<T>::quiet_NaN() : keys.key[l * keys.m + s];
    row.kstar[l] = k, row.half_dstar[l] = (row.q[l] - k) * T(0.5);
  }
}

using LD = long double;  // the nearest-key search's arithmetic: |(q - k) w|^2 of any inputs fits

// The search's distance of sorted key s: |(q - k_s) w|^2 in D = long double; for d = 1, D = T and
// |q - k_s|, which orders the keys alike (and is what the logits compare, in T).
template <class D, class T>
D search_distance(const NwKeys<T>& keys, const T* q, std::size_t s) {
  if constexpr (std::is_same_v<D, T>) return std::abs(q[0] - keys.key[s]);
  LD sum = 0;
  for (std::size_t l = 0; l < keys.d; ++l) {
    const LD x = (LD(q[l]) - keys.key[l * keys.m + s]) * keys.w[l];
    sum += x * x;
  }
  return sum;
}

// Whether sorted key s is strictly nearer than sorted key t: the sign of s's logit relative to t,
// which tells apart keys whose distances round to the same number (a query far from keys 0, 1, 2:
// the nearest is 2).
template <class T>
bool nearer(const NwKeys<T>& keys, const T* q, std::size_t s, std::size_t t) {
  LD excess = 0;
  for (std::size_t l = 0; l < keys.d; ++l) {
    const LD ks = keys.key[l * keys.m + s], kt = keys.key[l * keys.m + t], wl = keys.w[l];
    excess += ((kt - ks) * wl) * (((q[l] - ks) + (q[l] - kt)) * wl);
  }
  return excess < 0;
}

// The nearest key to row.q among the sorted keys [lo, hi) (one class) but row.skip: blocks outward
// from q_a's place, doubling, each side stopped once its next key's axis term alone is not below
// the best distance so far (the keys beyond cannot be nearer; a sum of non-negative terms is never
// below one of them; NaN keys, sorted last, stop it). d = 1: the keys beside q and no more.
template <class D, class T>
void find_nearest(const NwKeys<T>& keys, Row<T>& row, std::size_t lo, std::size_t hi) {
  const T *c = keys.key.data() + keys.axis * keys.m, *q = row.q.data();
  const T qa = q[keys.axis];
  row.at = static_cast<std::size_t>(std::lower_bound(c + lo, c + hi, qa) - c);
  std::size_t a = row.at, b = a, best = kNone;
  D best_distance = std::numeric_limits<D>::infinity();
  auto consider = [&](std::size_t s) {
    if (s == row.skip) return;
    const D dist = search_distance<D>(keys, q, s);
    if (best == kNone ? dist == dist
                      : dist < best_distance || (dist == best_distance && nearer(keys, q, s, best)))
      best = s, best_distance = dist;
  };
  auto beyond = [&](T k) {
    const D gap = std::is_same_v<D, T> ? D(std::abs(qa - k)) : D((qa - LD(k)) * keys.w[keys.axis]);
    return best != kNone && !((std::is_same_v<D, T> ? gap : gap * gap) < best_distance);
  };
  for (std::size_t width = 2;; width *= 2) {
    const bool down = a > lo && !beyond(c[a - 1]), up = b < hi && !beyond(c[b]);
    if (!down && !up) break;
    if (down)
      for (const std::size_t next = a - std::min(width, a - lo); a > next;) consider(--a);
    if (up)
      for (const std::size_t next = b + std::min(width, hi - b); b < next; ++b) consider(b);
  }
  const LD scaled = std::is_same_v<D, T> ? best_distance * LD(keys.w[0]) : 1;
  row.distance2 = std::is_same_v<D, T> ? scaled * scaled : LD(best_distance);
  set_nearest(keys, row, best);
}

// The keys of [lo, hi) whose weight can be non-zero, |q_a - k_sa| <= radius with
// (radius w_a)^2 = |(q - k*) w|^2 + 2 kUnderflow (w_a = 0 or NaN: every key), widened by a few ulp
// for its own rounding (the nearest key is always inside), then to whole vectors inside [lo, hi):
// the keys added have weight exactly 0.
template <class T>
void set_window(const NwKeys<T>& keys, Row<T>& row, std::size_t lo, std::size_t hi) {
  const T* c = keys.key.data() + keys.axis * keys.m;
  const T qa = row.q[keys.axis];
  const LD ulps = 1 + 8 * LD(keys.d + 1) * std::numeric_limits<T>::epsilon();
  const LD reach = std::sqrt(row.distance2 + 2 * kUnderflow<T>) / std::abs(LD(keys.w[keys.axis]));
  const T radius = reach * ulps < std::numeric_limits<T>::max() ? T(reach * ulps) : kInf<T>;
  const T* mid = c + row.at;
  row.lo = static_cast<std::size_t>(
      std::partition_point(c + lo, mid, [=](T k) { return qa - k > radius; }) - c);
  row.hi = static_cast<std::size_t>(
      std::partition_point(mid, c + hi, [=](T k) { return k - qa <= radius; }) - c);
  const std::size_t vectors = (row.hi - row.lo + kVector<T> - 1) / kVector<T>;
  const std::size_t padded = std::min(hi - lo, vectors * kVector<T>);
  row.begin = std::min(row.lo, hi - padded), row.end = row.begin + padded;
}

// Row i over the sorted keys [lo, hi) (one class): its query, skipped key, nearest key and window.
template <class T>
void setup_row(const NwProblem<T>& a, const NwKeys<T>& keys, std::size_t i, std::size_t lo,
               std::size_t hi, Row<T>& row) {
  row.q.assign(a.queries + i * a.d, a.queries + (i + 1) * a.d);
  row.kstar.resize(a.d), row.half_dstar.resize(a.d);
  row.skip = a.leave_one_out ? keys.sorted_at[i] : kNone;
  if (a.d == 1)
    find_nearest<T>(keys, row, lo, hi);
  else
    find_nearest<LD>(keys, row, lo, hi);
  set_window(keys, row, lo, hi);
}

// The class part of row i: the keys of class y (a segment of by_class), their nearest key and
// window; false when the row has no key of its class.
template <class T>
bool setup_class_row(const NwProblem<T>& a, const NwKeys<T>& by_class, std::size_t i,
                     std::int64_t y, Row<T>& row) {
  const auto seg = std::equal_range(by_class.label.begin(), by_class.label.end(), y);
  setup_row(a, by_class, i, static_cast<std::size_t>(seg.first - by_class.label.begin()),
            static_cast<std::size_t>(seg.second - by_class.label.begin()), row);
  return row.near != kNone;
}

// A_l of a key at coordinate k_l, relative to the row's nearest key (its logit is -sum_l w_l A_l).
template <class T>
T coordinate_a(const Row<T>& row, std::size_t l, T k_l, T w_l) {
  return ((row.kstar[l] - k_l) * w_l) * ((row.q[l] - k_l) * T(0.5) + row.half_dstar[l]);
}

// --- one row: its weights -----------------------------------------------------------------------

// The power of 2 by which logits_nd scales the widths of a row down: none unless the row's
// nearest key is so far (|(q - k*) w| past sqrt(max / 2d) / 2) that the terms of a key nearer than
// k* in some coordinates, which are at least -(d*_l w_l)^2, could overflow to -inf.
template <class T>
int row_scale(const NwKeys<T>& keys, const Row<T>& row) {
  const T bound = std::sqrt(std::numeric_limits<T>::max() / T(2 * keys.d)) / 2;
  if (!(row.distance2 > 0 && std::isfinite(row.distance2))) return 0;
  const int shift = std::ilogb(row.distance2) / 2 + 2 - std::ilogb(bound);
  return std::clamp(shift, 0, std::numeric_limits<T>::max_exponent - 2);
}

// d >= 2: logit[s] = -sum_l w_l A_sl over the row's [begin, end), each coordinate's term stored
// before it is added (see the file comment), -inf at the skipped key. Terms are formed with the
// widths scaled by 2^-shift (row_scale) and the sum scaled back, so that a sum never meets
// inf - inf. Should rounding leave a key with a positive logit (nearer than k*), it becomes k* and
// the logits are redone.
template <class T>
void logits_nd(const NwKeys<T>& keys, Row<T>& row, T* logit, T* term) {
  const std::size_t lo = row.begin, hi = row.end;
  const int shift = row_scale(keys, row);
  for (int step = 0; step < 8; ++step) {
    for (std::size_t l = 0; l < keys.d; ++l) {
      const T* k = keys.key.data() + l * keys.m;
      const T ql = row.q[l], ks = row.kstar[l], hd = row.half_dstar[l];
      const T u = std::ldexp(keys.w[l], -shift);
      T* out = l == 0 ? logit : term;
#pragma omp simd
      for (std::size_t s = lo; s < hi; ++s)
        out[s] = ((ks - k[s]) * u) * (((ql - k[s]) * T(0.5) + hd) * -u);
      if (l == 0) continue;
#pragma omp simd
      for (std::size_t s = lo; s < hi; ++s) logit[s] += term[s];
    }
    const T up = std::ldexp(T(1), shift);
    for (std::size_t s = lo; s < hi && shift > 0; ++s) logit[s] = (logit[s] * up) * up;
    if (row.skip >= lo && row.skip < hi) logit[row.skip] = -kInf<T>;
    const T top = reduce_over<T>(  // the largest logit (NaN never wins; -inf for no key)
        lo, hi, -kInf<T>, [logit](std::size_t t) { return logit[t]; },
        [](T x, T y) { return y > x ? y : x; });
    if (!(top > 0)) return;
    set_nearest(keys, row,
                static_cast<std::size_t>(std::find(logit + lo, logit + hi, top) - logit));
  }
}

// The logit of key t, from the key (d = 1; k and the results offset to the row's range) or from
// the buffer logits_nd wrote (d >= 2); A_t = dw_t h_t with dw = (k* - k_t) w and h = d_t / 2 +
// d* / 2 (d = 1 only).
template <class T>
struct KeyLogit {
  const T* k;
  T q, kstar, half_dstar, w;
  template <class Index>
  T operator()(Index t, T& dw, T& h) const {
    dw = (kstar - k[t]) * w, h = (q - k[t]) * T(0.5) + half_dstar;
    return (dw * h) * -w;
  }
};
template <class T>
struct BufferLogit {
  const T* logit;
  template <class Index>
  T operator()(Index t, T& dw, T& h) const {
    dw = h = 0;
    return logit[t];
  }
};

// What the weights' pass stores: e_t, or e_t A_t (d = 1: all that slope_w needs).
enum class Store { kWeights, kWeightedA };

template <class T>
struct Sums {
  T z = 0, zv = 0;
};

// e[t] = exp(logit_t) for t < count (e[skip_at] = 0, zeroed with an integer mask: a select would
// make gcc, which keeps FP exceptions, refuse to vectorise the loop; see exp.h), z = sum_t e[t]
// and zv = sum_t e[t] v[t], in one pass. Index: as wide as T's lanes where the count allows
// (32 bits for float), so that the skip test is one vector compare. flatten: fast_exp inlined
// here whatever the size of the callers (or the loop is not vectorised).
template <class T, Store kStore, bool kValues, class Index, class Logit>
[[gnu::flatten]] Sums<T> exp_pass(const Logit logit, const T* v, T* e, Index count, Index skip_at) {
  using Bits = typename detail::ExpTraits<T>::Bits;
  T z = 0, zv = 0;
#pragma omp simd reduction(+ : z, zv)
  for (Index t = 0; t < count; ++t) {
    const Bits keep = t == skip_at ? Bits(0) : ~Bits(0);
    T dw, h;
    const T exp_t = fast_exp_nonpositive(logit(t, dw, h));
    const T e_t = detail::from_bits<T>(detail::bits_of(exp_t) & keep);
    if constexpr (kStore == Store::kWeights)
      e[t] = e_t;
    else  // e_t A_t, as (e_t dw) h: a key of weight 0 stores 0, even where its A overflows
      e[t] = (e_t * dw) * h;
    z += e_t;
    if constexpr (kValues) zv += e_t * v[t];
  }
  return {z, zv};
}

template <class T, Store kStore, class Logit>
Sums<T> exp_pass_of(const Logit& logit, const T* v, T* e, std::size_t count, std::size_t skip_at) {
  using Narrow = typename detail::ExpTraits<T>::Bits;  // uint32 for float, uint64 for double
  if (count < std::numeric_limits<Narrow>::max()) {
    const Narrow c = static_cast<Narrow>(count), k = static_cast<Narrow>(skip_at);
    return v ? exp_pass<T, kStore, true>(logit, v, e, c, k)
             : exp_pass<T, kStore, false>(logit, v, e, c, k);
  }
  return v ? exp_pass<T, kStore, true>(logit, v, e, count, skip_at)
           : exp_pass<T, kStore, false>(logit, v, e, count, skip_at);
}

// The row's unnormalised weights over [begin, end) into s.e: e_s = exp(logit_s) (0 at the skipped
// key and outside the window), z = sum_s e_s >= 1 (its largest logit is 0), and with values v (a
// column by sorted position, or null) zv = sum_s e_s v_s: the row's softmax written out, p_s =
// e_s / z, its divide left to the few numbers that need it. This pass is most of the op's time.
template <class T, Store kStore = Store::kWeights>
Sums<T> row_exps(const NwKeys<T>& keys, Row<T>& row, Scratch<T>& s, const T* v) {
  const std::size_t begin = row.begin, count = row.end - row.begin;
  const std::size_t skip_at = row.skip >= begin && row.skip < row.end ? row.skip - begin : count;
  T* e = s.e.data() + begin;
  const T* vb = v ? v + begin : nullptr;
  if (keys.d > 1) {
    logits_nd(keys, row, s.logit.data(), s.term.data());
    return exp_pass_of<T, Store::kWeights>(BufferLogit<T>{s.logit.data() + begin}, vb, e, count,
                                           skip_at);
  }
  const KeyLogit<T> logit{keys.key.data() + begin, row.q[0], row.kstar[0], row.half_dstar[0],
                          keys.w[0]};
  return exp_pass_of<T, kStore>(logit, vb, e, count, skip_at);
}

// Over the row's window, with the logits' slopes g (by sorted position), adds
//   sum_q_l += sum_s g_s (k*_l - k_sl) w_l,   sum_w_l += sum_s g_s A_sl   (each when not null;
//   the scaled distance first, so that the sums do not underflow where dL/dq does not)
// and the key gradient dk[l m + s] += ((g_s w_l) d_sl) w_l (when not null; in that order so that
// a zero slope gives 0 even where w^2 overflows, and the scaled distance d w leads).
template <class T>
void add_row_grads(const NwKeys<T>& keys, const Row<T>& row, const T* g, T* sum_q, T* sum_w,
                   T* dk) {
  for (std::size_t l = 0; l < keys.d; ++l) {
    const T* k = keys.key.data() + l * keys.m;
    const T ql = row.q[l], ks = row.kstar[l], hd = row.half_dstar[l], wl = keys.w[l];
    if (sum_q)
      sum_q[l] +=
          sum_over<T>(row.lo, row.hi, [=](std::size_t s) { return g[s] * ((ks - k[s]) * wl); });
    if (sum_w)
      sum_w[l] += sum_over<T>(row.lo, row.hi, [=](std::size_t s) {
        const T term = g[s] * (((ks - k[s]) * wl) * ((ql - k[s]) * T(0.5) + hd));
        return g[s] != 0 ? term : T(0);  // a key of weight 0 adds 0, even if its A overflowed
      });
    if (!dk) continue;
    T* out = dk + l * keys.m;
#pragma omp simd
    for (std::size_t s = row.lo; s < row.hi; ++s) out[s] += ((g[s] * wl) * (ql - k[s])) * wl;
  }
}

// --- rows across threads -----------------------------------------------------------------------

inline int thread_count(std::size_t n, std::size_t m) {
  return n * m >= kParallelGrain ? omp_get_max_threads() : 1;
}

// body(i, scratch, thread) for every row i, split across `threads` OpenMP threads (static, in
// row order), each with its own scratch and flush-to-zero (see parallel.h).
template <class T, class Body>
void for_each_row(const NwProblem<T>& a, int threads, const Body& body) {
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const FlushDenormals flush;
    Scratch<T> scratch(a.m, a.d);
    const int thread = omp_get_thread_num();
#pragma omp for schedule(static)
    for (long il = 0; il < static_cast<long>(a.n); ++il)
      body(static_cast<std::size_t>(il), scratch, thread);
  }
}

// Per-thread partial sums, (width, m) by sorted position each.
template <class T>
using Partials = std::vector<std::vector<T>>;

// grad[original[s] * width + l] += the threads' part[l * m + s], added in thread order (the same
// result for any timing).
template <class T>
void add_partials(const Partials<T>& parts, const NwKeys<T>& keys, std::size_t width, T* grad) {
  for (std::size_t l = 0; l < width; ++l)
    for (std::size_t s = 0; s < keys.m; ++s) {
      T sum = 0;
      for (const auto& part : parts) sum += part[l * keys.m + s];
      grad[keys.original[s] * width + l] += sum;
    }
}

// --- the pooling ------------------------------------------------------------------------------

// Row i of the pooling's forward: f_i (C,) and the slopes asked for.
template <class T>
void pool_row(const NwProblem<T>& a, const NwKeys<T>& keys, std::size_t i, Scratch<T>& s,
              bool want_w, bool want_q, NwPool<T>& out) {
  Row<T>& row = s.row;
  setup_row(a, keys, i, 0, keys.m, row);
  const std::size_t C = keys.C, d = keys.d, m = keys.m;
  T* f = out.f.data() + i * C;
  const T* e = s.e.data();
  if (!keys.bin.empty() && !want_w && !want_q) {  // one-hot values: weights into class bins
    const T z = row_exps(keys, row, s, static_cast<const T*>(nullptr)).z;
    std::fill(f, f + C, T(0));
    for (std::size_t t = row.lo; t < row.hi; ++t) f[keys.bin[t]] += e[t];
    for (std::size_t c = 0; c < C; ++c) f[c] /= z;
    return;
  }
  if (want_w && !want_q && d == 1 && C == 1) {  // training: slope_w alone, from e_s A_s
    const Sums<T> sums = row_exps<T, Store::kWeightedA>(keys, row, s, keys.value.data());
    const T fi = f[0] = sums.zv / sums.z, *v = keys.value.data();
    const T sw = sum_over<T>(row.lo, row.hi, [=](std::size_t t) { return e[t] * (v[t] - fi); });
    out.slope_w[i] = sw / sums.z;
    return;
  }
  const Sums<T> sums = row_exps(keys, row, s, C > 0 ? keys.value.data() : nullptr);
  for (std::size_t c = 0; c < C; ++c) {
    const T* v = keys.value.data() + c * m;
    f[c] = (c == 0 ? sums.zv
                   : sum_over<T>(row.lo, row.hi, [=](std::size_t t) { return e[t] * v[t]; })) /
           sums.z;
    if (!want_w && !want_q) continue;
    T* g = s.g.data();  // g_s = p_s (v_sc - f_c): the slopes of f_c's logits
    const T fc = f[c], inv_z = 1 / sums.z;
#pragma omp simd
    for (std::size_t t = row.lo; t < row.hi; ++t) g[t] = (e[t] * inv_z) * (v[t] - fc);
    const std::size_t at = (i * C + c) * d;
    add_row_grads(keys, row, g, want_q ? out.slope_q.data() + at : nullptr,
                  want_w ? out.slope_w.data() + at : nullptr, static_cast<T*>(nullptr));
  }
}

// dL/dq_il = -w_l sum_c G_ic slope_q[i, c, l] and dL/dw_l = -2 sum_ic G_ic slope_w[i, c, l].
template <class T>
void pool_grads_from_slopes(const NwProblem<T>& a, const NwKeys<T>& keys, const NwPool<T>& pool,
                            const T* grad, T* grad_queries, T* grad_w) {
  const std::size_t d = a.d, C = keys.C;
  std::vector<T> sum_w(d, T(0));
  for (std::size_t i = 0; i < a.n; ++i)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t l = 0; l < d; ++l) {
        const T g = grad[i * C + c];
        const std::size_t at = (i * C + c) * d + l;
        if (grad_queries) grad_queries[i * d + l] += -(keys.w[l] * (g * pool.slope_q[at]));
        if (grad_w) sum_w[l] += g * pool.slope_w[at];
      }
  if (grad_w)
    for (std::size_t l = 0; l < d; ++l) grad_w[l] += -2 * sum_w[l];
}

// Row i's logit slopes into s.g, g_s = p_s sum_c G_c (v_sc - f_c), and dv_sc += G_c p_s (when dv
// is not null); one-hot values: g_s = p_s (G_(class of s) - G . f), O(window + C).
template <class T>
void pool_slopes(const NwKeys<T>& keys, const Row<T>& row, Scratch<T>& s, T z, const T* G,
                 const T* f, T* dv) {
  const T* e = s.e.data();
  T* g = s.g.data();
  if (!keys.bin.empty() && !dv) {
    T gf = 0;
    for (std::size_t c = 0; c < keys.C; ++c) gf += G[c] * f[c];
    for (std::size_t t = row.lo; t < row.hi; ++t) g[t] = (e[t] / z) * (G[keys.bin[t]] - gf);
    return;
  }
  std::fill(g + row.lo, g + row.hi, T(0));
  for (std::size_t c = 0; c < keys.C; ++c) {
    const T *v = keys.value.data() + c * keys.m, gc = G[c] / z, fc = f[c];
#pragma omp simd
    for (std::size_t t = row.lo; t < row.hi; ++t) g[t] += (e[t] * gc) * (v[t] - fc);
    if (!dv) continue;
#pragma omp simd
    for (std::size_t t = row.lo; t < row.hi; ++t) dv[c * keys.m + t] += gc * e[t];
  }
}

}  // namespace

template <class T>
NwPool<T> nw_pool_forward(const NwProblem<T>& a, const NwKeys<T>& keys, bool want_slope_w,
                          bool want_slope_q) {
  NwPool<T> out;
  out.f.assign(a.n * keys.C, T(0));
  if (want_slope_w) out.slope_w.assign(a.n * keys.C * a.d, T(0));
  if (want_slope_q) out.slope_q.assign(a.n * keys.C * a.d, T(0));
  for_each_row(a, thread_count(a.n, a.m), [&](std::size_t i, Scratch<T>& s, int) {
    pool_row(a, keys, i, s, want_slope_w, want_slope_q, out);
  });
  return out;
}

// Keys and values: each row's weights redone (the same e and z as the forward's, bit for bit),
//   g_s = p_s sum_c G_c (v_sc - f_c),   dv_sc += G_c p_s,   dk_sl += w_l^2 g_s d_sl.
template <class T>
void nw_pool_backward(const NwProblem<T>& a, const NwKeys<T>& keys, const NwPool<T>& pool,
                      const T* grad, T* grad_queries, T* grad_keys, T* grad_values, T* grad_w) {
  pool_grads_from_slopes(a, keys, pool, grad, grad_queries, grad_w);
  if (!grad_keys && !grad_values) return;
  const std::size_t m = keys.m, C = keys.C;
  const int threads = thread_count(a.n, m);
  Partials<T> dk(threads, std::vector<T>(grad_keys ? a.d * m : 0));
  Partials<T> dv(threads, std::vector<T>(grad_values ? C * m : 0));
  for_each_row(a, threads, [&](std::size_t i, Scratch<T>& s, int thread) {
    Row<T>& row = s.row;
    setup_row(a, keys, i, 0, m, row);
    const T z = row_exps(keys, row, s, C > 0 ? keys.value.data() : nullptr).z;
    pool_slopes(keys, row, s, z, grad + i * C, pool.f.data() + i * C,
                grad_values ? dv[static_cast<std::size_t>(thread)].data() : nullptr);
    if (grad_keys)
      add_row_grads(keys, row, s.g.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                    dk[static_cast<std::size_t>(thread)].data());
  });
  if (grad_keys) add_partials(dk, keys, a.d, grad_keys);
  if (grad_values) add_partials(dv, keys, C, grad_values);
}

// --- the cross-entropy ------------------------------------------------------------------------

template <class T>
T nw_cross_entropy_forward(const NwProblem<T>& a, const NwKeys<T>& keys, const NwKeys<T>& by_class,
                           const std::int64_t* query_labels) {
  std::vector<double> loss(a.n);
  for_each_row(a, thread_count(a.n, a.m), [&](std::size_t i, Scratch<T>& s, int) {
    setup_row(a, keys, i, 0, keys.m, s.row);
    const T z = row_exps(keys, s.row, s, static_cast<const T*>(nullptr)).z;
    if (!setup_class_row(a, by_class, i, query_labels[i], s.row_class)) {
      loss[i] = std::numeric_limits<double>::infinity();  // p_i[y_i] = 0
      return;
    }
    const T zc = row_exps(by_class, s.row_class, s, static_cast<const T*>(nullptr)).z;
    double logit = 0;  // of the class's nearest key, relative to the row's
    for (std::size_t l = 0; l < a.d; ++l)
      logit -= keys.w[l] * coordinate_a(s.row, l, s.row_class.kstar[l], keys.w[l]);
    loss[i] = std::log(static_cast<double>(z)) - std::log(static_cast<double>(zc)) - logit;
  });
  double total = 0;  // in row order: the same for every thread count
  for (double li : loss) total += li;
  return static_cast<T>(total);
}

namespace {

// Row i of the cross-entropy's backward, into s.sum_q, s.sum_w and the key partials dk, dk_class:
// g_s = grad p_s over the row's window, g_t = -grad pc_t over its class's window, a key in both
// windows with grad (p - pc) in the first (its two terms may overflow where their difference does
// not). The sums of the rest of the class are relative to its nearest key kc*, moved to k* with
// their total r = sum_t g_t: sum_q += r (k* - kc*) w, sum_w += r A(kc*).
template <class T>
void cross_entropy_row(const NwProblem<T>& a, const NwKeys<T>& keys, const NwKeys<T>& by_class,
                       std::int64_t label, std::size_t i, T grad, Scratch<T>& s, T* sum_q, T* dk,
                       T* dk_class) {
  Row<T>&row = s.row, &row_class = s.row_class;
  T *g = s.g.data(), *g_class = s.g_class.data(), *sum_w = s.sum_w.data();
  const T* e = s.e.data();
  setup_row(a, keys, i, 0, keys.m, row);
  const T z = row_exps(keys, row, s, static_cast<const T*>(nullptr)).z;
#pragma omp simd
  for (std::size_t j = row.lo; j < row.hi; ++j) g[j] = grad * (e[j] / z);
  const bool has_class = setup_class_row(a, by_class, i, label, row_class);
  T rest = 0;
  if (has_class) {
    const T zc = row_exps(by_class, row_class, s, static_cast<const T*>(nullptr)).z;
    for (std::size_t t = row_class.lo; t < row_class.hi; ++t) {
      const std::size_t at = keys.sorted_at[by_class.original[t]];
      const bool shared = at >= row.lo && at < row.hi;
      const T gt = -grad * (e[t] / zc);
      g[at] += shared ? gt : T(0);
      rest += g_class[t] = shared ? T(0) : gt;
    }
  }
  add_row_grads(keys, row, g, sum_q, sum_w, dk);
  if (!has_class) return;
  add_row_grads(by_class, row_class, g_class, sum_q, sum_w, dk_class);
  for (std::size_t l = 0; l < a.d; ++l) {
    const T kc = row_class.kstar[l];
    if (sum_q) sum_q[l] += rest * ((row.kstar[l] - kc) * keys.w[l]);
    sum_w[l] += rest * coordinate_a(row, l, kc, keys.w[l]);
  }
}

}  // namespace

template <class T>
void nw_cross_entropy_backward(const NwProblem<T>& a, const NwKeys<T>& keys,
                               const NwKeys<T>& by_class, const std::int64_t* query_labels, T grad,
                               T* grad_queries, T* grad_keys, T* grad_w) {
  const std::size_t m = keys.m, d = a.d;
  const int threads = thread_count(a.n, m);
  Partials<T> dk(threads, std::vector<T>(grad_keys ? d * m : 0)), dk_class = dk;
  Partials<T> dw(threads, std::vector<T>(d));
  for_each_row(a, threads, [&](std::size_t i, Scratch<T>& s, int thread) {
    const auto t = static_cast<std::size_t>(thread);
    std::fill(s.sum_q.begin(), s.sum_q.end(), T(0));
    std::fill(s.sum_w.begin(), s.sum_w.end(), T(0));
    T* sum_q = grad_queries ? s.sum_q.data() : nullptr;
    cross_entropy_row(a, keys, by_class, query_labels[i], i, grad, s, sum_q,
                      grad_keys ? dk[t].data() : nullptr, grad_keys ? dk_class[t].data() : nullptr);
    for (std::size_t l = 0; l < d; ++l) {
      if (sum_q) grad_queries[i * d + l] += -(keys.w[l] * sum_q[l]);
      dw[t][l] += -2 * s.sum_w[l];
    }
  });
  if (grad_keys)
    add_partials(dk, keys, d, grad_keys), add_partials(dk_class, by_class, d, grad_keys);
  if (grad_w)
    for (const auto& part : dw)
      for (std::size_t l = 0; l < d; ++l) grad_w[l] += part[l];
}

template <class T>
void nw_attention_matrix(const NwProblem<T>& a, const NwKeys<T>& keys, T* p) {
  std::fill(p, p + a.n * a.m, T(0));
  for_each_row(a, thread_count(a.n, a.m), [&](std::size_t i, Scratch<T>& s, int) {
    setup_row(a, keys, i, 0, keys.m, s.row);
    const T z = row_exps(keys, s.row, s, static_cast<const T*>(nullptr)).z;
    for (std::size_t t = s.row.lo; t < s.row.hi; ++t) p[i * a.m + keys.original[t]] = s.e[t] / z;
  });
}

#define TAPEGRAD_INSTANTIATE(T)                                                                    \
  template NwKeys<T> nw_sort_keys(const NwProblem<T>&, const T*, std::size_t,                      \
                                  const std::int64_t*);                                            \
  template NwPool<T> nw_pool_forward(const NwProblem<T>&, const NwKeys<T>&, bool, bool);           \
  template void nw_pool_backward(const NwProblem<T>&, const NwKeys<T>&, const NwPool<T>&,          \
                                 const T*, T*, T*, T*, T*);                                        \
  template T nw_cross_entropy_forward(const NwProblem<T>&, const NwKeys<T>&, const NwKeys<T>&,     \
                                      const std::int64_t*);                                        \
  template void nw_cross_entropy_backward(const NwProblem<T>&, const NwKeys<T>&, const NwKeys<T>&, \
                                          const std::int64_t*, T, T*, T*, T*);                     \
  template void nw_attention_matrix(const NwProblem<T>&, const NwKeys<T>&, T*);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::kernels
