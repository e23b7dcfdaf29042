// CUDA kernels of the SVD extension (cuSOLVER/cuBLAS), on raw device pointers.
// Matrices are row-major (C order) and already checked for shape/dtype/layout by
// csrc/svd_cuda_module.cpp; all work is queued on `stream`. Errors throw std::runtime_error
// (cuSOLVER info != 0, CUDA errors) or std::invalid_argument (NaN/inf found on the device).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rlheals {
namespace cuda {

enum class Method { Auto, Gesvdj, Gesvdp, Gesvd };
Method parse_method(const std::string& name);

// Thin SVD of `batch` matrices of m x n stored back to back (stride m*n), top kk triplets.
// u: batch x m x kk, s: batch x kk, vh: batch x kk x n (row-major, may be null if !compute_uv).
void svd(bool f64, const void* a, int64_t batch, int64_t m, int64_t n, int64_t kk, bool compute_uv, void* u,
         void* s, void* vh, uintptr_t stream, Method method);

// Float64 singular values (q) and the top kb small-side singular vectors (q x kb row-major) of w0.
void reference(bool f64, const void* w0, int64_t m, int64_t n, int64_t kb, double* s0, double* y0, uintptr_t stream);

struct CompareOut {
  std::vector<double> s, angles_left, angles_right;
  double diag_energy = 0, offdiag_energy = 0, delta_fro = 0;
  int64_t k = 0;
};
// y0: q x kb row-major (kb >= k; kb == q gives exact small-side sines from the off-block).
CompareOut compare(bool f64, const void* w0, const double* s0, const double* y0, int64_t kb, const void* w, int64_t m,
                   int64_t n, int64_t k, uintptr_t stream);

// Raise std::invalid_argument(name ...) if the device array holds NaN or inf.
void check_finite(bool f64, const void* a, int64_t len, const std::string& name, uintptr_t stream);

std::string device_name();

}  // namespace cuda
}  // namespace rlheals
