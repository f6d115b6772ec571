// The property the checkpoint fuzzer checks, shared with the test that replays its corpus
// (tests/fuzz/test_checkpoint_corpus.cpp).
//
// Input: a mode byte, then bytes. Mode odd: the bytes are a checkpoint body and the correct
// FNV-1a trailer is appended, so the fuzzer gets past the checksum and explores the header's
// meaning; mode even: the bytes are the whole file. For float32 and float64 models (w of shape
// (1,) and b of shape (2,), SGD with momentum), loading must either succeed with every parameter
// finite, or throw CheckpointError with a one-line message and leave the model and the optimizer
// exactly as they were. Anything else (another exception, a crash, a sanitizer report) is a bug.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "io/checkpoint.h"

namespace tapegrad::fuzzcheck {

inline std::string with_trailer(const std::string& body) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) h = (h ^ c) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return body + "\nfnv1a64 " + hex + "\n";
}

// Returns an empty string when the property holds, else what went wrong.
template <class T>
std::string check_one_dtype(const std::string& file) {
  Tensor<T> w(xt::xarray<T>{T(0.25)}, true), b(xt::xarray<T>{T(1), T(-2)}, true);
  SGD<T> optimizer({w, b}, T(0.1), T(0.9));
  NamedTensors<T> named = {{"w", w}, {"b", b}};
  try {
    const CheckpointContents<T> contents = parse_checkpoint<T>(file, "fuzz");
    restore_checkpoint(contents, named, optimizer, "fuzz");
  } catch (const CheckpointError& e) {
    if (std::string(e.what()).find('\n') != std::string::npos) return "a multi-line error";
    if (w.value()(0) != T(0.25) || b.value()(1) != T(-2) || optimizer.has_momentum_buffer()[0])
      return "a rejected checkpoint changed the model";
    return "";
  } catch (const std::exception& e) {
    return std::string("unexpected exception: ") + e.what();
  }
  for (const T v : w.value())
    if (!std::isfinite(v)) return "a non-finite parameter was loaded";
  for (const T v : b.value())
    if (!std::isfinite(v)) return "a non-finite parameter was loaded";
  return "";
}

inline std::string check(const std::string& input) {
  if (input.empty()) return check_one_dtype<double>("") + check_one_dtype<float>("");
  const std::string rest = input.substr(1);
  const std::string file = (input[0] & 1) ? with_trailer(rest) : rest;
  return check_one_dtype<double>(file) + check_one_dtype<float>(file);
}

}  // namespace tapegrad::fuzzcheck
