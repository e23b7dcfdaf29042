// Device kernels of the CUDA SVD backend (included by svd_cuda.cu only).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace rlheals {
namespace cuda {
namespace kernels {

constexpr int kThreads = 256;
inline int blocks(int64_t n) { return (int)std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 4); }

// dst (row-major R x C, batch stride dst_bs) from column-major src:
// transpose: dst[i][j] = src[i + j*ld]; else dst[i][j] = src[j + i*ld].
template <typename S, typename D>
__global__ void copy_block(const S* src, int64_t src_bs, int64_t ld, D* dst, int64_t dst_bs, int64_t R, int64_t C,
                           int64_t batch, bool transpose) {
  int64_t total = batch * R * C;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    int64_t b = t / (R * C), r = t % (R * C), i = r / C, j = r % C;
    dst[b * dst_bs + i * C + j] = (D)src[b * src_bs + (transpose ? i + j * ld : j + i * ld)];
  }
}

template <typename T>
__global__ void finite_kernel(const T* a, int64_t len, int* bad) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < len; t += (int64_t)gridDim.x * blockDim.x)
    if (!isfinite(a[t])) { *bad = 1; return; }
}

// Descending order from syevd's ascending output: s[j] = sqrt(max(0, w[q-1-j])).
template <typename D>
__global__ void sqrt_reverse(const double* w, int64_t q, D* s) {
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < q; j += (int64_t)gridDim.x * blockDim.x)
    s[j] = (D)sqrt(fmax(0.0, w[q - 1 - j]));
}

// The first kb columns of Z (q x q, ascending) in descending order: column-major
// y[i + j*q] = z[i + (q-1-j)*q], or row-major y[i*kb + j] (the layout Python receives).
__global__ void reverse_cols(const double* z, int64_t q, int64_t kb, double* y, bool row_major) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < q * kb; t += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = t % q, j = t / q;
    y[row_major ? i * kb + j : i + j * q] = z[i + (q - 1 - j) * q];
  }
}

// Identity (k x k).
__global__ void eye(double* h, int64_t k) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < k * k; t += (int64_t)gridDim.x * blockDim.x)
    h[t] = (t % k == t / k) ? 1.0 : 0.0;
}

// C = RR[:, :k] / (s0_i s_j) and H = I (k x k), column-major.
__global__ void scale_c(const double* rr, const double* s0, const double* s, int64_t k, double* c, double* h) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < k * k; t += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = t % k, j = t / k;
    c[t] = rr[t] / (s0[i] * s[j]);
    h[t] = i == j ? 1.0 : 0.0;
  }
}

// Energies of M = RR[:, k:] / s0_i − diag(s0): out[0] = diagonal, out[1] = total.
__global__ void energy(const double* rr, const double* s0, int64_t k, double* out) {
  double d = 0, tot = 0;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < k * k; t += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = t % k, j = t / k;
    double v = rr[k * k + t] / s0[i] - (i == j ? s0[i] : 0.0);
    tot += v * v;
    if (i == j) d += v * v;
  }
  atomicAdd(out, d);
  atomicAdd(out + 1, tot);
}

}  // namespace kernels
}  // namespace cuda
}  // namespace rlheals
