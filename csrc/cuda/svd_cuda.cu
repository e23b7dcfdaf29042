// cuSOLVER/cuBLAS side of the SVD extension. Row-major m x n data read as column-major is
// B = Wᵀ (n x m); the code factors the tall form A (W if m >= n, else B) and writes the thin
// row-major U (m x kk), S, Vh (kk x n) with one small copy kernel. Values-only float32 and the
// analysis (reference/compare) go through float64 Gram matrices and a symmetric eigensolver.
#include "svd_cuda.h"
#include "svd_kernels.cuh"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>

namespace rlheals {
namespace cuda {
namespace {

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
void solver_check(cusolverStatus_t s, const char* what) {
  if (s != CUSOLVER_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + " returned cusolver status " + std::to_string((int)s));
}
void blas_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + " returned cublas status " + std::to_string((int)s));
}

struct Handles {
  cusolverDnHandle_t solver = nullptr;
  cublasHandle_t blas = nullptr;
};

// One handle pair per (host thread, device), created on first use and bound to the caller's
// stream: Python runs several matrices at once from several threads, each on its own stream.
Handles& handles(cudaStream_t stream) {
  thread_local std::map<int, Handles> cache;
  int dev = 0;
  cuda_check(cudaGetDevice(&dev), "cudaGetDevice");
  Handles& h = cache[dev];
  if (!h.solver) solver_check(cusolverDnCreate(&h.solver), "cusolverDnCreate");
  if (!h.blas) blas_check(cublasCreate(&h.blas), "cublasCreate");
  solver_check(cusolverDnSetStream(h.solver, stream), "cusolverDnSetStream");
  blas_check(cublasSetStream(h.blas, stream), "cublasSetStream");
  return h;
}

// Stream-ordered device buffer.
template <typename T>
struct Buf {
  T* p = nullptr;
  cudaStream_t st;
  Buf(size_t count, cudaStream_t s) : st(s) {
    if (count) cuda_check(cudaMallocAsync((void**)&p, count * sizeof(T), st), "cudaMallocAsync");
  }
  ~Buf() { if (p) cudaFreeAsync(p, st); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
};

void check_info(const int* d_info, int count, const char* routine, int64_t m, int64_t n, cudaStream_t st) {
  std::vector<int> info(count);
  cuda_check(cudaMemcpyAsync(info.data(), d_info, count * sizeof(int), cudaMemcpyDeviceToHost, st), "copy info");
  cuda_check(cudaStreamSynchronize(st), routine);
  for (int i = 0; i < count; ++i)
    if (info[i] != 0)
      throw std::runtime_error(std::string(routine) + " failed on a " + std::to_string(m) + "x" + std::to_string(n) +
                               " matrix" + (count > 1 ? " (batch item " + std::to_string(i) + ")" : "") +
                               ": info=" + std::to_string(info[i]) + (info[i] > 0 ? " (no convergence)" : " (illegal argument)"));
}

using namespace kernels;

template <typename S, typename D>
void copy(const S* src, int64_t src_bs, int64_t ld, D* dst, int64_t dst_bs, int64_t R, int64_t C, int64_t batch,
          bool transpose, cudaStream_t st) {
  copy_block<<<blocks(batch * R * C), kThreads, 0, st>>>(src, src_bs, ld, dst, dst_bs, R, C, batch, transpose);
  cuda_check(cudaGetLastError(), "copy kernel");
}

template <typename T> constexpr cudaDataType dtype() { return sizeof(T) == 4 ? CUDA_R_32F : CUDA_R_64F; }

// ---- typed cuSOLVER wrappers (the legacy API is split by type)
template <typename T> struct Jacobi;
#define RLHEALS_JACOBI(T, P)                                                                                          \
  template <> struct Jacobi<T> {                                                                                      \
    static cusolverStatus_t size(cusolverDnHandle_t h, cusolverEigMode_t j, int e, int m, int n, T* a, int lda, T* s, \
                                 T* u, int ldu, T* v, int ldv, int* lw, gesvdjInfo_t p) {                             \
      return cusolverDn##P##gesvdj_bufferSize(h, j, e, m, n, a, lda, s, u, ldu, v, ldv, lw, p);                       \
    }                                                                                                                 \
    static cusolverStatus_t run(cusolverDnHandle_t h, cusolverEigMode_t j, int e, int m, int n, T* a, int lda, T* s,  \
                                T* u, int ldu, T* v, int ldv, T* w, int lw, int* info, gesvdjInfo_t p) {              \
      return cusolverDn##P##gesvdj(h, j, e, m, n, a, lda, s, u, ldu, v, ldv, w, lw, info, p);                         \
    }                                                                                                                 \
    static cusolverStatus_t bsize(cusolverDnHandle_t h, cusolverEigMode_t j, int m, int n, T* a, int lda, T* s, T* u, \
                                  int ldu, T* v, int ldv, int* lw, gesvdjInfo_t p, int b) {                           \
      return cusolverDn##P##gesvdjBatched_bufferSize(h, j, m, n, a, lda, s, u, ldu, v, ldv, lw, p, b);                \
    }                                                                                                                 \
    static cusolverStatus_t brun(cusolverDnHandle_t h, cusolverEigMode_t j, int m, int n, T* a, int lda, T* s, T* u,  \
                                 int ldu, T* v, int ldv, T* w, int lw, int* info, gesvdjInfo_t p, int b) {            \
      return cusolverDn##P##gesvdjBatched(h, j, m, n, a, lda, s, u, ldu, v, ldv, w, lw, info, p, b);                  \
    }                                                                                                                 \
  };
RLHEALS_JACOBI(float, S)
RLHEALS_JACOBI(double, D)

struct JacobiParams {
  gesvdjInfo_t p = nullptr;
  JacobiParams() { solver_check(cusolverDnCreateGesvdjInfo(&p), "cusolverDnCreateGesvdjInfo"); }
  ~JacobiParams() { cusolverDnDestroyGesvdjInfo(p); }
};

// Batched Jacobi for small matrices (m, n <= 32): A = Wᵀ (n x m) column-major, as stored.
template <typename T>
void svd_small_batched(const T* a, int64_t batch, int64_t m, int64_t n, int64_t kk, bool uv, T* u, T* s, T* vh,
                       cudaStream_t st) {
  Handles& h = handles(st);
  const int M = (int)n, N = (int)m, r = (int)std::min(m, n);  // factor Wᵀ: M x N
  Buf<T> work_a(batch * m * n, st), ss(batch * r, st), ua(batch * M * M, st), va(batch * N * N, st);
  cuda_check(cudaMemcpyAsync(work_a.p, a, sizeof(T) * batch * m * n, cudaMemcpyDeviceToDevice, st), "copy");
  JacobiParams prm;
  auto jobz = uv ? CUSOLVER_EIG_MODE_VECTOR : CUSOLVER_EIG_MODE_NOVECTOR;
  int lw = 0;
  solver_check(Jacobi<T>::bsize(h.solver, jobz, M, N, work_a.p, M, ss.p, ua.p, M, va.p, N, &lw, prm.p, (int)batch),
               "gesvdjBatched_bufferSize");
  Buf<T> w(lw, st);
  Buf<int> info(batch, st);
  solver_check(Jacobi<T>::brun(h.solver, jobz, M, N, work_a.p, M, ss.p, ua.p, M, va.p, N, w.p, lw, info.p, prm.p,
                               (int)batch), "gesvdjBatched");
  check_info(info.p, (int)batch, "gesvdjBatched", m, n, st);
  copy(ss.p, r, 1, s, kk, 1, kk, batch, false, st);
  if (!uv) return;
  copy(va.p, (int64_t)N * N, N, u, m * kk, m, kk, batch, true, st);    // U = V (m x m), first kk columns
  copy(ua.p, (int64_t)M * M, M, vh, kk * n, kk, n, batch, false, st);  // Vh = Uaᵀ
}

// One matrix, tall form A (p x r column-major) in `at`; writes U, S, Vh row-major.
template <typename T>
void svd_single(const T* a, int64_t m, int64_t n, int64_t kk, bool uv, T* u, T* s, T* vh, Method method,
                cudaStream_t st) {
  Handles& h = handles(st);
  const bool tall = m >= n;
  const int64_t p = std::max(m, n), r = std::min(m, n);
  Buf<T> at(m * n, st), ss(r, st), ua(uv ? p * r : 1, st), va(uv ? r * r : 1, st);
  if (tall) copy(a, 0, n, at.p, 0, n, m, 1, true, st);  // A = W column-major: at[i + j*m] = a[i*n + j]
  else cuda_check(cudaMemcpyAsync(at.p, a, sizeof(T) * m * n, cudaMemcpyDeviceToDevice, st), "copy");
  Buf<int> info(1, st);
  auto jobz = uv ? CUSOLVER_EIG_MODE_VECTOR : CUSOLVER_EIG_MODE_NOVECTOR;
  const char* name = "gesvdj";
  // Measured on an H200 (benchmarks/svd_bench.py, float32): Xgesvdp (polar decomposition) took
  // 23-28 ms on 896x896 / 4864x896 where gesvdj and torch took 44-49 ms and Xgesvd 86-135 ms.
  // Values only (float64; float32 takes the Gram path) stays on gesvdj.
  if (method == Method::Auto) method = uv ? Method::Gesvdp : Method::Gesvdj;
  bool vt_layout = false;  // Xgesvd returns Vᵀ (r x r) instead of V
  if (method == Method::Gesvdj) {
    JacobiParams prm;
    int lw = 0;
    solver_check(Jacobi<T>::size(h.solver, jobz, 1, (int)p, (int)r, at.p, (int)p, ss.p, ua.p, (int)p, va.p, (int)r,
                                 &lw, prm.p), "gesvdj_bufferSize");
    Buf<T> w(lw, st);
    solver_check(Jacobi<T>::run(h.solver, jobz, 1, (int)p, (int)r, at.p, (int)p, ss.p, ua.p, (int)p, va.p, (int)r,
                                w.p, lw, info.p, prm.p), "gesvdj");
  } else {
    cusolverDnParams_t prm;
    solver_check(cusolverDnCreateParams(&prm), "cusolverDnCreateParams");
    size_t dws = 0, hws = 0;
    cusolverStatus_t stt;
    if (method == Method::Gesvdp) {
      name = "Xgesvdp";
      stt = cusolverDnXgesvdp_bufferSize(h.solver, prm, jobz, 1, p, r, dtype<T>(), at.p, p, dtype<T>(), ss.p,
                                         dtype<T>(), ua.p, p, dtype<T>(), va.p, r, dtype<T>(), &dws, &hws);
    } else {
      name = "Xgesvd";
      vt_layout = true;
      signed char job = uv ? 'S' : 'N';
      stt = cusolverDnXgesvd_bufferSize(h.solver, prm, job, job, p, r, dtype<T>(), at.p, p, dtype<T>(), ss.p,
                                        dtype<T>(), ua.p, p, dtype<T>(), va.p, r, dtype<T>(), &dws, &hws);
    }
    if (stt != CUSOLVER_STATUS_SUCCESS) { cusolverDnDestroyParams(prm); solver_check(stt, name); }
    Buf<char> dw(dws, st);
    std::vector<char> hw(hws + 1);
    double err = 0;
    if (method == Method::Gesvdp)
      stt = cusolverDnXgesvdp(h.solver, prm, jobz, 1, p, r, dtype<T>(), at.p, p, dtype<T>(), ss.p, dtype<T>(), ua.p, p,
                              dtype<T>(), va.p, r, dtype<T>(), dw.p, dws, hw.data(), hws, info.p, &err);
    else {
      signed char job = uv ? 'S' : 'N';
      stt = cusolverDnXgesvd(h.solver, prm, job, job, p, r, dtype<T>(), at.p, p, dtype<T>(), ss.p, dtype<T>(), ua.p,
                             p, dtype<T>(), va.p, r, dtype<T>(), dw.p, dws, hw.data(), hws, info.p);
    }
    cusolverDnDestroyParams(prm);
    solver_check(stt, name);
  }
  check_info(info.p, 1, name, m, n, st);
  copy(ss.p, 0, 1, s, 0, 1, kk, 1, false, st);
  if (!uv) return;
  // A = Ua S Vᵀ; tall: U = Ua, Vh = Vᵀ; wide (A = Wᵀ): U = V, Vh = Uaᵀ.
  if (!vt_layout) {
    if (tall) { copy(ua.p, 0, m, u, 0, m, kk, 1, true, st); copy(va.p, 0, r, vh, 0, kk, n, 1, false, st); }
    else { copy(va.p, 0, m, u, 0, m, kk, 1, true, st); copy(ua.p, 0, n, vh, 0, kk, n, 1, false, st); }
  } else {
    if (tall) { copy(ua.p, 0, m, u, 0, m, kk, 1, true, st); copy(va.p, 0, r, vh, 0, kk, n, 1, true, st); }
    else { copy(va.p, 0, r, u, 0, m, kk, 1, false, st); copy(ua.p, 0, n, vh, 0, kk, n, 1, false, st); }
  }
}

// Upper triangle of the float64 Gram G = AᵀA (q x q) of the tall form of W; bd = Wᵀ in float64.
void gram(cublasHandle_t h, const double* bd, int64_t m, int64_t n, double* g) {
  const double one = 1, zero = 0;
  bool tall = m >= n;
  int q = (int)std::min(m, n);
  blas_check(cublasDsyrk(h, CUBLAS_FILL_MODE_UPPER, tall ? CUBLAS_OP_N : CUBLAS_OP_T, q, (int)(tall ? m : n), &one, bd,
                         (int)n, &zero, g, q), "cublasDsyrk");
}

// In-place dsyevd of the upper triangle of g (q x q); eigenvalues ascending into w.
void syevd(cusolverDnHandle_t h, double* g, int q, double* w, bool vectors, cudaStream_t st, int64_t m, int64_t n) {
  auto jobz = vectors ? CUSOLVER_EIG_MODE_VECTOR : CUSOLVER_EIG_MODE_NOVECTOR;
  int lw = 0;
  solver_check(cusolverDnDsyevd_bufferSize(h, jobz, CUBLAS_FILL_MODE_UPPER, q, g, q, w, &lw), "Dsyevd_bufferSize");
  Buf<double> work(lw, st);
  Buf<int> info(1, st);
  solver_check(cusolverDnDsyevd(h, jobz, CUBLAS_FILL_MODE_UPPER, q, g, q, w, work.p, lw, info.p), "Dsyevd");
  check_info(info.p, 1, "Dsyevd", m, n, st);
}

// Wᵀ as float64 (the input itself when already float64).
struct AsDouble {
  Buf<double> buf;
  const double* p;
  AsDouble(bool f64, const void* a, int64_t len, cudaStream_t st) : buf(f64 ? 0 : len, st) {
    if (f64) { p = static_cast<const double*>(a); return; }
    copy(static_cast<const float*>(a), 0, 1, buf.p, 0, 1, len, 1, false, st);
    p = buf.p;
  }
};

}  // namespace

Method parse_method(const std::string& name) {
  if (name == "auto") return Method::Auto;
  if (name == "gesvdj") return Method::Gesvdj;
  if (name == "gesvdp") return Method::Gesvdp;
  if (name == "gesvd") return Method::Gesvd;
  throw std::invalid_argument("method=" + name + ": expected 'auto', 'gesvdj', 'gesvdp' or 'gesvd'");
}

std::string device_name() {
  int dev = 0;
  cudaDeviceProp prop;
  cuda_check(cudaGetDevice(&dev), "cudaGetDevice");
  cuda_check(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
  return prop.name;
}

void check_finite(bool f64, const void* a, int64_t len, const std::string& name, uintptr_t stream) {
  auto st = reinterpret_cast<cudaStream_t>(stream);
  Buf<int> bad(1, st);
  cuda_check(cudaMemsetAsync(bad.p, 0, sizeof(int), st), "memset");
  if (f64) finite_kernel<<<blocks(len), kThreads, 0, st>>>(static_cast<const double*>(a), len, bad.p);
  else finite_kernel<<<blocks(len), kThreads, 0, st>>>(static_cast<const float*>(a), len, bad.p);
  int h = 0;
  cuda_check(cudaMemcpyAsync(&h, bad.p, sizeof(int), cudaMemcpyDeviceToHost, st), "copy flag");
  cuda_check(cudaStreamSynchronize(st), "finite check");
  if (h) throw std::invalid_argument(name + ": contains NaN or inf");
}

void svd(bool f64, const void* a, int64_t batch, int64_t m, int64_t n, int64_t kk, bool uv, void* u, void* s,
         void* vh, uintptr_t stream, Method method) {
  auto st = reinterpret_cast<cudaStream_t>(stream);
  const bool small = m <= 32 && n <= 32 && batch > 1 && method == Method::Auto;
  for (int64_t b = 0; b < (small ? 1 : batch); ++b) {
    if (f64) {
      auto A = static_cast<const double*>(a) + b * m * n;
      auto U = uv ? static_cast<double*>(u) + b * m * kk : nullptr;
      auto S = static_cast<double*>(s) + b * kk;
      auto V = uv ? static_cast<double*>(vh) + b * kk * n : nullptr;
      if (small) svd_small_batched<double>(A, batch, m, n, kk, uv, U, S, V, st);
      else svd_single<double>(A, m, n, kk, uv, U, S, V, method, st);
    } else {
      auto A = static_cast<const float*>(a) + b * m * n;
      auto U = uv ? static_cast<float*>(u) + b * m * kk : nullptr;
      auto S = static_cast<float*>(s) + b * kk;
      auto V = uv ? static_cast<float*>(vh) + b * kk * n : nullptr;
      if (small) svd_small_batched<float>(A, batch, m, n, kk, uv, U, S, V, st);
      else if (!uv && method == Method::Auto) {  // float64 Gram: faster and more accurate than float32 SVD
        Handles& h = handles(st);
        int q = (int)std::min(m, n);
        AsDouble bd(false, A, m * n, st);
        Buf<double> g((size_t)q * q, st), w(q, st), sd(q, st);
        gram(h.blas, bd.p, m, n, g.p);
        syevd(h.solver, g.p, q, w.p, false, st, m, n);
        sqrt_reverse<<<blocks(q), kThreads, 0, st>>>(w.p, q, sd.p);
        copy(sd.p, 0, 1, S, 0, 1, kk, 1, false, st);
      } else svd_single<float>(A, m, n, kk, uv, U, S, V, method, st);
    }
  }
  cuda_check(cudaGetLastError(), "svd");
}

void reference(bool f64, const void* w0, int64_t m, int64_t n, int64_t kb, double* s0, double* y0, uintptr_t stream) {
  auto st = reinterpret_cast<cudaStream_t>(stream);
  Handles& h = handles(st);
  int q = (int)std::min(m, n);
  AsDouble bd(f64, w0, m * n, st);
  Buf<double> g((size_t)q * q, st), w(q, st);
  gram(h.blas, bd.p, m, n, g.p);
  syevd(h.solver, g.p, q, w.p, true, st, m, n);
  sqrt_reverse<<<blocks(q), kThreads, 0, st>>>(w.p, q, s0);
  reverse_cols<<<blocks((int64_t)q * kb), kThreads, 0, st>>>(g.p, q, kb, y0, true);
  cuda_check(cudaGetLastError(), "reference");
}

CompareOut compare(bool f64, const void* w0, const double* s0, const double* y0_rm, int64_t kb64, const void* w,
                   int64_t m, int64_t n, int64_t k64, uintptr_t stream) {
  auto st = reinterpret_cast<cudaStream_t>(stream);
  Handles& h = handles(st);
  const bool tall = m >= n;
  const int q = (int)std::min(m, n), k = (int)std::min<int64_t>(k64, q), kb = (int)kb64;
  const double one = 1, zero = 0, minus = -1;
  if (k > kb) throw std::invalid_argument("k=" + std::to_string(k) + ": the reference keeps only " + std::to_string(kb) +
                                          " singular vectors");
  AsDouble b0(f64, w0, m * n, st), b(f64, w, m * n, st);
  Buf<double> g((size_t)q * q, st), ev(q, st), s(q, st), y((size_t)q * q, st), y0((size_t)q * kb, st);
  gram(h.blas, b.p, m, n, g.p);
  syevd(h.solver, g.p, q, ev.p, true, st, m, n);
  sqrt_reverse<<<blocks(q), kThreads, 0, st>>>(ev.p, q, s.p);
  reverse_cols<<<blocks((int64_t)q * q), kThreads, 0, st>>>(g.p, q, q, y.p, false);
  copy(y0_rm, 0, kb, y0.p, 0, kb, q, 1, true, st);  // row-major q x kb -> column-major (a transpose)
  CompareOut out;
  out.k = k;
  {  // ||W - W_ref||_F in float64
    Buf<double> diff((size_t)m * n, st);
    cuda_check(cudaMemcpyAsync(diff.p, b.p, sizeof(double) * m * n, cudaMemcpyDeviceToDevice, st), "copy");
    blas_check(cublasDaxpy(h.blas, (int)(m * n), &minus, b0.p, 1, diff.p, 1), "axpy");
    blas_check(cublasDnrm2(h.blas, (int)(m * n), diff.p, 1, &out.delta_fro), "nrm2");  // host pointer mode: syncs
  }
  out.s.resize(q);
  std::vector<double> s0h(q);
  cuda_check(cudaMemcpyAsync(out.s.data(), s.p, q * sizeof(double), cudaMemcpyDeviceToHost, st), "copy s");
  cuda_check(cudaMemcpyAsync(s0h.data(), s0, q * sizeof(double), cudaMemcpyDeviceToHost, st), "copy s0");
  cuda_check(cudaStreamSynchronize(st), "compare");
  if (!(s0h[k - 1] > 1e-13 * s0h[0]) || !(out.s[k - 1] > 1e-13 * out.s[0]))
    throw std::invalid_argument("k=" + std::to_string(k) + ": W_ref or W is numerically rank-deficient at k");
  std::vector<double> small_sin2, big_sin2(k);
  if (kb == q) {  // small side, exact: sines = singular values of D = Y0[:, k:]ᵀ Y[:, :k]
    if (q > k) {
      int r = q - k, p = std::min(r, k);
      Buf<double> d((size_t)r * k, st), dg((size_t)p * p, st), dw(p, st);
      blas_check(cublasDgemm(h.blas, CUBLAS_OP_T, CUBLAS_OP_N, r, k, q, &one, y0.p + (size_t)k * q, q, y.p, q, &zero,
                             d.p, r), "gemm D");
      blas_check(cublasDsyrk(h.blas, CUBLAS_FILL_MODE_UPPER, k <= r ? CUBLAS_OP_T : CUBLAS_OP_N, p, k <= r ? r : k,
                             &one, d.p, r, &zero, dg.p, p), "syrk D");
      syevd(h.solver, dg.p, p, dw.p, false, st, m, n);
      small_sin2.resize(p);
      cuda_check(cudaMemcpyAsync(small_sin2.data(), dw.p, p * sizeof(double), cudaMemcpyDeviceToHost, st), "copy");
    }
  } else {  // truncated reference basis: sin² = eig(I − DᵀD), D = Y0_kᵀ Y_k
    Buf<double> d((size_t)k * k, st), hs((size_t)k * k, st), hw(k, st), dummy(k, st);
    blas_check(cublasDgemm(h.blas, CUBLAS_OP_T, CUBLAS_OP_N, k, k, q, &one, y0.p, q, y.p, q, &zero, d.p, k), "gemm D");
    eye<<<blocks((int64_t)k * k), kThreads, 0, st>>>(hs.p, k);
    blas_check(cublasDsyrk(h.blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T, k, k, &minus, d.p, k, &one, hs.p, k), "syrk D");
    syevd(h.solver, hs.p, k, hw.p, false, st, m, n);
    small_sin2.resize(k);
    cuda_check(cudaMemcpyAsync(small_sin2.data(), hw.p, k * sizeof(double), cudaMemcpyDeviceToHost, st), "copy");
  }
  // big side and energy through X = A0ᵀA: T = X [Y_k, Y0_k], RR = Y0_kᵀ T
  Buf<double> x((size_t)q * q, st), yy((size_t)q * 2 * k, st), t((size_t)q * 2 * k, st), rr((size_t)k * 2 * k, st);
  if (tall)
    blas_check(cublasDgemm(h.blas, CUBLAS_OP_N, CUBLAS_OP_T, q, q, (int)m, &one, b0.p, (int)n, b.p, (int)n, &zero, x.p,
                           q), "gemm X");
  else
    blas_check(cublasDgemm(h.blas, CUBLAS_OP_T, CUBLAS_OP_N, q, q, (int)n, &one, b0.p, (int)n, b.p, (int)n, &zero, x.p,
                           q), "gemm X");
  cuda_check(cudaMemcpyAsync(yy.p, y.p, sizeof(double) * q * k, cudaMemcpyDeviceToDevice, st), "copy");
  cuda_check(cudaMemcpyAsync(yy.p + (size_t)q * k, y0.p, sizeof(double) * q * k, cudaMemcpyDeviceToDevice, st), "copy");
  blas_check(cublasDgemm(h.blas, CUBLAS_OP_N, CUBLAS_OP_N, q, 2 * k, q, &one, x.p, q, yy.p, q, &zero, t.p, q), "gemm T");
  blas_check(cublasDgemm(h.blas, CUBLAS_OP_T, CUBLAS_OP_N, k, 2 * k, q, &one, y0.p, q, t.p, q, &zero, rr.p, k), "gemm R");
  Buf<double> c((size_t)k * k, st), hm((size_t)k * k, st), hw(k, st), en(2, st);
  scale_c<<<blocks((int64_t)k * k), kThreads, 0, st>>>(rr.p, s0, s.p, k, c.p, hm.p);
  blas_check(cublasDsyrk(h.blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T, k, k, &minus, c.p, k, &one, hm.p, k), "syrk H");
  syevd(h.solver, hm.p, k, hw.p, false, st, m, n);
  cuda_check(cudaMemsetAsync(en.p, 0, 2 * sizeof(double), st), "memset");
  energy<<<std::min(blocks((int64_t)k * k), 1024), kThreads, 0, st>>>(rr.p, s0, k, en.p);
  double e[2];
  cuda_check(cudaMemcpyAsync(big_sin2.data(), hw.p, k * sizeof(double), cudaMemcpyDeviceToHost, st), "copy");
  cuda_check(cudaMemcpyAsync(e, en.p, 2 * sizeof(double), cudaMemcpyDeviceToHost, st), "copy");
  cuda_check(cudaStreamSynchronize(st), "compare");
  out.diag_energy = e[0];
  out.offdiag_energy = e[1] - e[0];
  auto angles = [k](const std::vector<double>& sin2) {
    std::vector<double> a(k, 0.0);
    for (size_t i = 0; i < sin2.size() && i < (size_t)k; ++i) a[i] = std::asin(std::sqrt(std::min(1.0, std::max(0.0, sin2[i]))));
    std::sort(a.begin(), a.end());
    return a;
  };
  out.angles_left = angles(tall ? big_sin2 : small_sin2);
  out.angles_right = angles(tall ? small_sin2 : big_sin2);
  return out;
}

}  // namespace cuda
}  // namespace rlheals
