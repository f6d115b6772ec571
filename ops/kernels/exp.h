// exp whose cost does not depend on its argument: the kernels' exp (softmax, the fused attention
// op, the elementwise exp).
//
// Why not std::exp: glibc's vector exp (libmvec, reached only under -ffast-math and only with gcc)
// leaves the vector loop for a scalar slow path on every lane whose result underflows, so a softmax
// whose logits span [-300, 0] runs 3x slower than one over [-1, 0] (bench/exp_bench.cpp measures
// it). Without -ffast-math std::exp does not vectorise at all. The functions below are branch-free
// straight-line code that gcc and clang both vectorise at plain -O2/-O3, with no libm call.
//
// The method (Cody and Waite; Cephes' expf is the same recipe):
//   x = n ln2 + r,  n = round(x log2(e)),  |r| <= ln2 / 2
//   exp(x) = 2^n exp(r),  exp(r) by its Taylor polynomial (degree 7 for float, 13 for double: the
//   first omitted term, r^8 / 8! < 5e-9 resp. r^14 / 14! < 5e-18, is below half an ulp).
// - round(): adding 1.5 * 2^23 (2^52 for double) pushes the fraction bits out of the mantissa, so
//   the sum's low mantissa bits hold n as an integer and (sum - magic) is n as a float. No
//   float -> int conversion anywhere (that is UB for NaN and out-of-range values).
// - ln2 = kLn2Hi + kLn2Lo, kLn2Hi with trailing zero bits so that n * kLn2Hi is exact and
//   x - n * kLn2Hi loses nothing; kLn2Lo carries the rest. No FMA needed (the result is the same
//   with or without contraction, to rounding).
// - 2^n: its bits are the biased exponent (n + bias) shifted into place, built in unsigned
//   integers and read back as a float through memcpy. n reaches 128 (1024 for double) just below
//   the overflow threshold, one past the largest exponent, so the scale is applied as two halves
//   2^(n - n/2) * 2^(n/2), each a normal number.
//
// Special values (selects, not branches, so the loop stays one vector loop):
// - NaN in, NaN out (the clamps let NaN through, the comparisons below are false for it).
// - x above log(max) (including +inf) -> +inf.
// - x below log(smallest normal) (including -inf) -> +0: results that would be subnormal are
//   flushed to zero, and no lane ever multiplies into a subnormal (that is the slow path this file
//   exists to avoid: x is clamped at log(smallest normal) before the arithmetic).
// Accuracy against glibc's std::exp: at most 1 ulp over the normal range. Measured on every float
// of [log(FLT_MIN), log(FLT_MAX)] (99.5% identical, the rest 1 ulp apart) and on 1e8 random doubles
// (94% identical, the rest 1 ulp), with gcc 12 and clang 14 alike; tests/ops/test_exp.cpp keeps
// dense sweeps of both and the special values.
// Vectorisation: the loops below vectorise under plain -O2/-O3 (no -ffast-math, no libmvec) with
// gcc 12 and clang 14, float and double; the one exception is double with gcc at the x86-64
// baseline (SSE2 has no 64-bit compare-to-mask; from -march=x86-64-v2 on it vectorises).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

namespace tapegrad {
namespace kernels {

namespace detail {

// The float/double constants of the method, and the integer type of the same width.
template <class T>
struct ExpTraits;

template <>
struct ExpTraits<float> {
  using Bits = std::uint32_t;
  static constexpr int kMantissaBits = 23;
  static constexpr Bits kBias = 127;
  static constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  static constexpr float kLog2e = 1.44269504088896341f;
  static constexpr float kLn2Hi = 0.693359375f;  // 0x3f318000: 10 significant bits
  static constexpr float kLn2Lo = -2.12194440e-4f;
  // log(FLT_MIN) = -126 ln2 = -87.33654475...: the smallest float above it. (log(FLT_MAX) =
  // 88.7228391...)
  static constexpr float kMinArg = -87.3365402f;
  static constexpr float kOverflowArg = 89.0f;  // > log(FLT_MAX), and round(89 log2 e) = 128
  // Taylor coefficients 1/k!, k = 2..7 (1 and 1/1! are written out in the Horner scheme).
  static constexpr int kDegree = 7;
  static constexpr float kCoeff[] = {1.0f / 2,   1.0f / 6,   1.0f / 24,
                                     1.0f / 120, 1.0f / 720, 1.0f / 5040};
};

template <>
struct ExpTraits<double> {
  using Bits = std::uint64_t;
  static constexpr int kMantissaBits = 52;
  static constexpr Bits kBias = 1023;
  static constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double kLog2e = 1.4426950408889634074;
  static constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 0x3fe62e42fee00000: 32 bits
  static constexpr double kLn2Lo = 1.90821492927058770002e-10;
  // log(DBL_MIN) = -1022 ln2 = -708.39641853226410...: the smallest double above it. (log(DBL_MAX)
  // = 709.78271289338399...)
  static constexpr double kMinArg = -708.396418532264078;
  static constexpr double kOverflowArg = 710.0;  // round(710 log2 e) = 1024
  static constexpr int kDegree = 13;
  static constexpr double kCoeff[] = {1.0 / 2,        1.0 / 6,         1.0 / 24,
                                      1.0 / 120,      1.0 / 720,       1.0 / 5040,
                                      1.0 / 40320,    1.0 / 362880,    1.0 / 3628800,
                                      1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
};

template <class T>
inline typename ExpTraits<T>::Bits bits_of(T v) {
  typename ExpTraits<T>::Bits b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

template <class T>
inline T from_bits(typename ExpTraits<T>::Bits b) {
  T v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// The shared middle of fast_exp and fast_exp_nonpositive, for a clamped argument xc: exp(r) of
// the reduced argument, and the magic sum whose low mantissa bits hold n = round(xc log2 e):
//   xc = n ln2 + r,  |r| <= ln2 / 2,  exp(xc) = 2^n exp(r).
template <class T>
struct Reduced {
  T exp_r;    // exp(r), by its Taylor polynomial
  T shifted;  // xc log2 e + kMagic: bits_of(shifted) - bits_of(kMagic) = n
};

template <class T>
inline Reduced<T> reduce_and_exp(T xc) {
  using E = ExpTraits<T>;
  const T shifted = xc * E::kLog2e + E::kMagic;
  const T n = shifted - E::kMagic;
  const T r = (xc - n * E::kLn2Hi) - n * E::kLn2Lo;  // |r| <= ln2 / 2
  // exp(r) = 1 + r (1 + r (1/2! + r (1/3! + ...)))
  T p = E::kCoeff[E::kDegree - 2];
  for (int k = E::kDegree - 3; k >= 0; --k) p = p * r + E::kCoeff[k];
  p = p * r + T(1);
  p = p * r + T(1);
  return {p, shifted};
}

}  // namespace detail

// exp(x) for one float or double: branch-free, within 1 ulp of the correctly rounded exp on the
// normal range; see the file comment for the special values.
template <class T>
inline T fast_exp(T x) {
  using E = detail::ExpTraits<T>;
  using Bits = typename E::Bits;
  // The clamps are integer masks (all ones or 0) applied with bit operations, not selects of
  // floats: gcc, which keeps FP exceptions (-ftrapping-math), would otherwise fold the whole
  // computation for the clamped constant into one arm of a branch, or thread the repeated test of
  // x < kMinArg into branches, and then not vectorise the loop.
  // Underflow: keep = 0 flushes the result to +0 (the argument is clamped to kMinArg so that no
  // lane computes a subnormal). Overflow: clamp just past log(max) (+inf included); 2^n exp(r)
  // overflows to +inf by itself (overflow is not a slow path; subnormals are). NaN: neither.
  const Bits keep = x < E::kMinArg ? Bits(0) : ~Bits(0);
  const Bits over = x > E::kOverflowArg ? ~Bits(0) : Bits(0);
  const Bits x_bits = (detail::bits_of(x) & keep & ~over) | (detail::bits_of(E::kMinArg) & ~keep) |
                      (detail::bits_of(E::kOverflowArg) & over);
  const detail::Reduced<T> red = detail::reduce_and_exp(detail::from_bits<T>(x_bits));
  const T p = red.exp_r, shifted = red.shifted;
  // 2^n as two normal halves, n in [1 - bias, bias + 1] (float [-126, 128]): exponent fields
  // a = (n + bias + 1) / 2 in [1, bias + 1] and b = n + 2 bias - a in [bias, 2 bias]. Unsigned, so
  // that nothing overflows even for the NaN lane (its garbage scale is multiplied by NaN anyway).
  const Bits n_plus = detail::bits_of(shifted) - detail::bits_of(E::kMagic) + (E::kBias + 1);
  const Bits a = n_plus >> 1;
  const Bits b = n_plus + (E::kBias - 1) - a;
  const T scale_a = detail::from_bits<T>((a << E::kMantissaBits) & keep);  // 0 when flushed
  const T scale_b = detail::from_bits<T>(b << E::kMantissaBits);
  return p * scale_b * scale_a;
}

// exp(x) for x <= 0, bit for bit fast_exp(x) there (and NaN for NaN); x > 0 gives 1 = exp(0).
// For loops whose arguments cannot be positive (logits shifted by their row's maximum): it drops
// what only positive arguments need, about a third of fast_exp's instructions. The clamp at
// kMinArg and the flush to +0 below it are fast_exp's. n = round(x log2 e) is in [-126, 0]
// (float) or [-1022, 0] (double), so 2^n is one normal number, exponent field n + bias in
// [1, bias], and p * 2^n rounds exactly once, as fast_exp's p * 2^(n - n/2) * 2^(n/2) does (its
// first product is exact).
template <class T>
inline T fast_exp_nonpositive(T x) {
  using E = detail::ExpTraits<T>;
  using Bits = typename E::Bits;
  // Integer masks as in fast_exp. Below kMinArg: keep = 0 (clamped to kMinArg, then flushed to
  // +0); above 0: the bits of +0, so exp(0); NaN: neither comparison holds, NaN flows through.
  const Bits keep = x < E::kMinArg ? Bits(0) : ~Bits(0);
  const Bits positive = x > T(0) ? ~Bits(0) : Bits(0);
  const T xc = detail::from_bits<T>((detail::bits_of(x) & keep & ~positive) |
                                    (detail::bits_of(E::kMinArg) & ~keep));
  const detail::Reduced<T> red = detail::reduce_and_exp(xc);  // exactly fast_exp's
  const T p = red.exp_r, shifted = red.shifted;
  // 2^n: exponent field n + bias, from the magic sum's low bits (0 when flushed).
  const Bits field = detail::bits_of(shifted) - detail::bits_of(E::kMagic) + E::kBias;
  return p * detail::from_bits<T>((field << E::kMantissaBits) & keep);
}

// out[i] = exp(in[i]) for i < n. in and out may be the same array (exact aliasing only).
template <class T>
inline void exp_array(const T* in, T* out, std::size_t n) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) out[i] = fast_exp(in[i]);
}

// out[i] = exp(in[i] - shift), returns sum_i out[i] (the softmax numerator and its sum in one
// pass). Summed in T, in the loop's vector order.
template <class T>
inline T exp_shifted_sum(const T* in, T shift, T* out, std::size_t n) {
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (std::size_t i = 0; i < n; ++i) sum += out[i] = fast_exp(in[i] - shift);
  return sum;
}

// exp_shifted_sum for a shift that no in[i] exceeds (the row's maximum, so every argument is
// <= 0): the same values bit for bit, through fast_exp_nonpositive's shorter arithmetic.
template <class T>
inline T exp_shifted_sum_from_max(const T* in, T max, T* out, std::size_t n) {
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (std::size_t i = 0; i < n; ++i) sum += out[i] = fast_exp_nonpositive(in[i] - max);
  return sum;
}

}  // namespace kernels
}  // namespace tapegrad
