// LAPACK/BLAS kernels (scipy-openblas32, column-major calls, no LAPACKE row-major copies).
// Row-major m x n data read as column-major is its transpose B = Wᵀ (n x m, ld n); the code
// works with B instead of copying W, and picks the tall orientation A (A = W if m >= n, else Wᵀ).
#include "svd_cpu.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <cblas.h>
#include <lapacke.h>

namespace rlheals {
namespace {

using dvec = std::vector<double>;

void lapack_check(int info, const char* routine, int64_t m, int64_t n) {
  if (info == 0) return;
  std::string why = info < 0 ? "illegal argument " + std::to_string(-info)
                             : "did not converge (info=" + std::to_string(info) + ")";
  throw std::runtime_error(std::string(routine) + " failed on a " + std::to_string(m) + "x" +
                           std::to_string(n) + " matrix: " + why);
}

// gesdd (divide and conquer), falling back to gesvd (QR iteration) if it does not converge.
int gesdd(char jobz, int m, int n, float* a, float* s, float* u, int ldu, float* vt, int ldvt) {
  std::vector<float> keep(a, a + (size_t)m * n);
  int info = scipy_LAPACKE_sgesdd(LAPACK_COL_MAJOR, jobz, m, n, a, m, s, u, ldu, vt, ldvt);
  if (info > 0) {
    std::vector<float> sup(std::min(m, n));
    char job = jobz == 'N' ? 'N' : 'S';
    info = scipy_LAPACKE_sgesvd(LAPACK_COL_MAJOR, job, job, m, n, keep.data(), m, s, u, ldu, vt, ldvt, sup.data());
  }
  return info;
}
int gesdd(char jobz, int m, int n, double* a, double* s, double* u, int ldu, double* vt, int ldvt) {
  dvec keep(a, a + (size_t)m * n);
  int info = scipy_LAPACKE_dgesdd(LAPACK_COL_MAJOR, jobz, m, n, a, m, s, u, ldu, vt, ldvt);
  if (info > 0) {
    dvec sup(std::min(m, n));
    char job = jobz == 'N' ? 'N' : 'S';
    info = scipy_LAPACKE_dgesvd(LAPACK_COL_MAJOR, job, job, m, n, keep.data(), m, s, u, ldu, vt, ldvt, sup.data());
  }
  return info;
}

template <typename T>
dvec to_double(const T* a, size_t len) {
  return dvec(a, a + len);
}

// Upper triangle of G = AᵀA (q x q, column-major) for the tall form A of row-major W (m x n).
// B = Wᵀ is n x m column-major: tall (A = W): G = B Bᵀ; wide (A = Wᵀ = B): G = BᵀB.
dvec gram(const dvec& b, int m, int n) {
  bool tall = m >= n;
  int q = tall ? n : m;
  dvec g((size_t)q * q, 0.0);
  scipy_cblas_dsyrk(CblasColMajor, CblasUpper, tall ? CblasNoTrans : CblasTrans, q, tall ? m : n, 1.0,
                    b.data(), n, 0.0, g.data(), q);
  return g;
}

// X = A0ᵀA (q x q, column-major) from B0 = W0ᵀ, B = Wᵀ.
dvec cross_gram(const dvec& b0, const dvec& b, int m, int n) {
  bool tall = m >= n;
  int q = tall ? n : m;
  dvec x((size_t)q * q);
  if (tall)
    scipy_cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, q, q, m, 1.0, b0.data(), n, b.data(), n, 0.0, x.data(), q);
  else
    scipy_cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, q, q, n, 1.0, b0.data(), n, b.data(), n, 0.0, x.data(), q);
  return x;
}

// Eigen-decompose symmetric g (upper triangle set) in place: returns eigenvalues ascending;
// with vectors, g holds them (column-major, ascending order).
dvec syevd(dvec& g, int q, bool vectors, int64_t m, int64_t n) {
  dvec w(q);
  int info = scipy_LAPACKE_dsyevd(LAPACK_COL_MAJOR, vectors ? 'V' : 'N', 'U', q, g.data(), q, w.data());
  lapack_check(info, "dsyevd", m, n);
  return w;
}

// Singular values (descending) and vectors (column-major, column j = j-th largest) from G.
void gram_svd(dvec& g, int q, int64_t m, int64_t n, double* s, dvec* y) {
  dvec w = syevd(g, q, y != nullptr, m, n);
  for (int j = 0; j < q; ++j) s[j] = std::sqrt(std::max(0.0, w[q - 1 - j]));
  if (y) {
    y->assign((size_t)q * q, 0.0);
    for (int j = 0; j < q; ++j)
      std::copy(g.data() + (size_t)(q - 1 - j) * q, g.data() + (size_t)(q - j) * q, y->data() + (size_t)j * q);
  }
}

// Principal angles from squared sines (k of them; missing ones are 0), ascending.
std::vector<double> angles_from_sin2(const dvec& sin2, int64_t k) {
  std::vector<double> out(k, 0.0);
  for (size_t i = 0; i < sin2.size() && i < (size_t)k; ++i)
    out[i] = std::asin(std::sqrt(std::min(1.0, std::max(0.0, sin2[i]))));
  std::sort(out.begin(), out.end());
  return out;
}

// Eigenvalues of HᵀH (or HHᵀ, whichever is smaller) for an r x c column-major H.
dvec gram_eigvals(const dvec& h, int r, int c, int64_t m, int64_t n) {
  bool small_c = c <= r;
  int p = small_c ? c : r;
  dvec g((size_t)p * p, 0.0);
  scipy_cblas_dsyrk(CblasColMajor, CblasUpper, small_c ? CblasTrans : CblasNoTrans, p, small_c ? r : c, 1.0,
                    h.data(), r, 0.0, g.data(), p);
  return syevd(g, p, false, m, n);
}

}  // namespace

void set_blas_threads(int n) { scipy_openblas_set_num_threads(std::max(1, n)); }
int get_blas_threads() { return scipy_openblas_get_num_threads(); }

template <typename T>
void svd_one(const T* a, int64_t m64, int64_t n64, int64_t kk, bool compute_uv, T* u, T* s, T* vh) {
  const int m = (int)m64, n = (int)n64, r = std::min(m, n);
  if (!compute_uv && sizeof(T) == sizeof(float)) {  // float64 Gram: absolute error ~1e-8 sigma_max
    dvec g = gram(to_double(a, (size_t)m * n), m, n);
    dvec sd(r);
    gram_svd(g, r, m64, n64, sd.data(), nullptr);
    for (int64_t j = 0; j < kk; ++j) s[j] = (T)sd[j];
    return;
  }
  const bool tall = m >= n;
  const int p = tall ? m : n;  // A = W (tall) or Wᵀ (wide), column-major p x r
  std::vector<T> buf((size_t)m * n), sv(r);
  if (tall) {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) buf[i + (size_t)j * m] = a[(size_t)i * n + j];
  } else {
    std::copy(a, a + (size_t)m * n, buf.begin());
  }
  std::vector<T> ua, vta;
  if (compute_uv) { ua.resize((size_t)p * r); vta.resize((size_t)r * r); }
  int info = gesdd(compute_uv ? 'S' : 'N', p, r, buf.data(), sv.data(), compute_uv ? ua.data() : nullptr, p,
                   compute_uv ? vta.data() : nullptr, r);
  lapack_check(info, sizeof(T) == 4 ? "sgesdd" : "dgesdd", m64, n64);
  std::copy(sv.begin(), sv.begin() + kk, s);
  if (!compute_uv) return;
  // A = Ua S VTa. Tall: U = Ua (m x r col-major), Vh = VTa (r x n col-major).
  // Wide: W = Aᵀ, so U = VTaᵀ (VTa is r x m col-major) and Vh = Uaᵀ (Ua is n x r col-major).
  for (int i = 0; i < m; ++i)
    for (int64_t j = 0; j < kk; ++j)
      u[(size_t)i * kk + j] = tall ? ua[i + (size_t)j * m] : vta[j + (size_t)i * r];
  for (int64_t j = 0; j < kk; ++j)
    for (int c = 0; c < n; ++c)
      vh[(size_t)j * n + c] = tall ? vta[j + (size_t)c * r] : ua[c + (size_t)j * n];
}

template <typename T>
void reference_one(const T* w0, int64_t m, int64_t n, double* s0, double* y0) {
  const int q = (int)std::min(m, n);
  dvec g = gram(to_double(w0, (size_t)m * n), (int)m, (int)n);
  dvec y;
  gram_svd(g, q, m, n, s0, &y);
  for (int i = 0; i < q; ++i)  // row-major out: y0[i][j] = component i of vector j
    for (int j = 0; j < q; ++j) y0[(size_t)i * q + j] = y[i + (size_t)j * q];
}

template <typename T>
CompareOut compare_one(const T* w0, const double* s0, const double* y0_rm, const T* w, int64_t m64, int64_t n64,
                       int64_t k64) {
  const int m = (int)m64, n = (int)n64, q = std::min(m, n), k = (int)std::min<int64_t>(k64, q);
  const bool tall = m >= n;
  CompareOut out;
  out.k = k;
  dvec b0 = to_double(w0, (size_t)m * n), b = to_double(w, (size_t)m * n);
  dvec g = gram(b, m, n), y;
  out.s.resize(q);
  gram_svd(g, q, m64, n64, out.s.data(), &y);
  const double tol = 1e-13;
  if (!(s0[k - 1] > tol * s0[0]) || !(out.s[k - 1] > tol * out.s[0]))
    throw std::invalid_argument("k=" + std::to_string(k) + ": W_ref or W is numerically rank-deficient at k " +
                                "(sigma_k ~ 0), so its top-k singular subspace is not defined; use a smaller k");
  dvec y0((size_t)q * q);  // to column-major
  for (int i = 0; i < q; ++i)
    for (int j = 0; j < q; ++j) y0[i + (size_t)j * q] = y0_rm[(size_t)i * q + j];
  // small side: sines are the singular values of D = Y0[:, k:]ᵀ Y[:, :k]
  dvec small_sin2;
  if (q > k) {
    dvec d((size_t)(q - k) * k);
    scipy_cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, q - k, k, q, 1.0, y0.data() + (size_t)k * q, q,
                      y.data(), q, 0.0, d.data(), q - k);
    small_sin2 = gram_eigvals(d, q - k, k, m64, n64);
    std::reverse(small_sin2.begin(), small_sin2.end());
  }
  // big side through the cross Gram X = A0ᵀA: T = X [Y_k, Y0_k], R = Y0_kᵀ T = [C', M']
  dvec x = cross_gram(b0, b, m, n);
  dvec yy((size_t)q * 2 * k), t((size_t)q * 2 * k), rr((size_t)k * 2 * k);
  std::copy(y.begin(), y.begin() + (size_t)q * k, yy.begin());
  std::copy(y0.begin(), y0.begin() + (size_t)q * k, yy.begin() + (size_t)q * k);
  scipy_cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, q, 2 * k, q, 1.0, x.data(), q, yy.data(), q, 0.0,
                    t.data(), q);
  scipy_cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, k, 2 * k, q, 1.0, y0.data(), q, t.data(), q, 0.0,
                    rr.data(), k);
  // C = U0_kᵀU_k = C' / (s0_i s_j); sin² = eig(I − CᵀC)
  dvec c((size_t)k * k), h((size_t)k * k, 0.0);
  for (int j = 0; j < k; ++j)
    for (int i = 0; i < k; ++i) c[i + (size_t)j * k] = rr[i + (size_t)j * k] / (s0[i] * out.s[j]);
  for (int i = 0; i < k; ++i) h[i + (size_t)i * k] = 1.0;
  scipy_cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, k, k, -1.0, c.data(), k, 1.0, h.data(), k);
  dvec big_sin2 = syevd(h, k, false, m64, n64);
  // energy split of M = U0_kᵀ ΔW V0_k = M' / s0_i − diag(s0)
  double diag = 0, total = 0;
  for (int j = 0; j < k; ++j)
    for (int i = 0; i < k; ++i) {
      double v = rr[i + (size_t)(k + j) * k] / s0[i] - (i == j ? s0[i] : 0.0);
      total += v * v;
      if (i == j) diag += v * v;
    }
  out.diag_energy = diag;
  out.offdiag_energy = total - diag;
  out.angles_left = angles_from_sin2(tall ? big_sin2 : small_sin2, k);
  out.angles_right = angles_from_sin2(tall ? small_sin2 : big_sin2, k);
  return out;
}

template <typename T>
std::vector<double> principal_angles_one(const T* a_rm, const T* b_rm, int64_t n64, int64_t ka64, int64_t kb64) {
  const int n = (int)n64, ka = (int)ka64, kb = (int)kb64, kk = std::min(ka, kb);
  // Row-major n x k read as column-major is k x n; copy to column-major n x k in float64.
  auto colmajor = [n](const T* src, int kc) {
    dvec out((size_t)n * kc);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < kc; ++j) out[i + (size_t)j * n] = src[(size_t)i * kc + j];
    return out;
  };
  dvec a = colmajor(a_rm, ka), b = colmajor(b_rm, kb), c((size_t)ka * kb);
  scipy_cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, ka, kb, n, 1.0, a.data(), n, b.data(), n, 0.0,
                    c.data(), ka);
  dvec cos(std::min(ka, kb)), sin(kk);
  dvec cc = c;
  lapack_check(gesdd('N', ka, kb, cc.data(), cos.data(), nullptr, 1, nullptr, 1), "dgesdd", ka, kb);
  // residual with kk columns: B − A C (ka >= kb) or A − B Cᵀ
  dvec res = ka >= kb ? b : a;
  if (ka >= kb)
    scipy_cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, kb, ka, -1.0, a.data(), n, c.data(), ka, 1.0,
                      res.data(), n);
  else
    scipy_cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, n, ka, kb, -1.0, b.data(), n, c.data(), ka, 1.0,
                      res.data(), n);
  dvec sv(std::min(n, kk));
  lapack_check(gesdd('N', n, kk, res.data(), sv.data(), nullptr, 1, nullptr, 1), "dgesdd", n, kk);
  for (int i = 0; i < kk; ++i) sin[i] = i < (int)sv.size() ? sv[sv.size() - 1 - i] : 0.0;  // ascending
  if ((int)sv.size() < kk) std::sort(sin.begin(), sin.end());
  std::vector<double> out(kk);
  for (int i = 0; i < kk; ++i) {
    double cs = std::min(1.0, std::max(-1.0, cos[i]));
    out[i] = cs * cs >= 0.5 ? std::asin(std::min(1.0, std::max(0.0, sin[i]))) : std::acos(cs);
  }
  return out;
}

template void svd_one<float>(const float*, int64_t, int64_t, int64_t, bool, float*, float*, float*);
template void svd_one<double>(const double*, int64_t, int64_t, int64_t, bool, double*, double*, double*);
template void reference_one<float>(const float*, int64_t, int64_t, double*, double*);
template void reference_one<double>(const double*, int64_t, int64_t, double*, double*);
template CompareOut compare_one<float>(const float*, const double*, const double*, const float*, int64_t, int64_t,
                                       int64_t);
template CompareOut compare_one<double>(const double*, const double*, const double*, const double*, int64_t,
                                        int64_t, int64_t);
template std::vector<double> principal_angles_one<float>(const float*, const float*, int64_t, int64_t, int64_t);
template std::vector<double> principal_angles_one<double>(const double*, const double*, int64_t, int64_t, int64_t);

}  // namespace rlheals
