// Boundary checks shared by the CPU and CUDA modules. Each failure throws
// std::invalid_argument naming the argument, which pybind11 turns into a ValueError.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace rlheals {

template <typename T>
bool all_finite(const T* p, size_t len) {
  // Sum-of-zero trick: x - x is 0 for finite x and NaN for NaN/inf; vectorises well.
  T acc = 0;
  for (size_t i = 0; i < len; ++i) acc += p[i] - p[i];
  return acc == 0;
}

inline void check_k(int64_t k) {
  if (k == 0 || k < -1) throw std::invalid_argument("k=" + std::to_string(k) + ": expected a positive integer (or None)");
}

// LAPACK (scipy-openblas32) takes 32-bit sizes.
inline void check_dims(const std::string& name, int64_t m, int64_t n) {
  const int64_t lim = std::numeric_limits<int32_t>::max();
  if (m > lim || n > lim || m * n > lim)
    throw std::invalid_argument(name + ": " + std::to_string(m) + "x" + std::to_string(n) +
                                " is too large for 32-bit LAPACK indices");
}

}  // namespace rlheals
