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

// Row blocks of the tall form A (p x q) of row-major W (m x n): A = W if m >= n, else Wᵀ.
// Each block (rows r0..r0+nb of A) is converted to float64 in the layout that reads W in
// memory order, so every product below accumulates in float64 while only one block is ever
// held in float64, and the conversion is a stream, not a transpose:
//   m >= n (A = W):  A_bᵀ, q x nb column-major (ld q): W's rows r0.. as they lie;
//   m <  n (A = Wᵀ): A_b, nb x q column-major (ld nb): W's columns r0.. row by row.
constexpr int kBlock = 256;

template <typename T>
void load_block(const T* w, int m, int n, int r0, int nb, double* out) {
  if (m >= n) {
    const T* rows = w + (size_t)r0 * n;
    for (size_t t = 0; t < (size_t)nb * n; ++t) out[t] = rows[t];
  } else {  // column c of the block is row c of W
    for (int c = 0; c < m; ++c) {
      const T* row = w + (size_t)c * n + r0;
      for (int i = 0; i < nb; ++i) out[i + (size_t)c * nb] = row[i];
    }
  }
}

// Products of blocks in either layout (tall: stored A_bᵀ, ld q; wide: stored A_b, ld nb).
// C (q x q, upper) += A_bᵀ A_b
void syrk_block(bool tall, int q, int nb, const double* b, double* c) {
  scipy_cblas_dsyrk(CblasColMajor, CblasUpper, tall ? CblasNoTrans : CblasTrans, q, nb, 1.0, b, tall ? q : nb, 1.0,
                    c, q);
}
// C (q x q) += A0_bᵀ A_b
void cross_block(bool tall, int q, int nb, const double* b0, const double* b, double* c) {
  if (tall)
    scipy_cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, q, q, nb, 1.0, b0, q, b, q, 1.0, c, q);
  else
    scipy_cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, q, q, nb, 1.0, b0, nb, b, nb, 1.0, c, q);
}
// P (nb x k) = A0_b Y (Y q x k, ld q)
void times_block(bool tall, int q, int nb, int k, const double* b0, const double* y, double* pb) {
  scipy_cblas_dgemm(CblasColMajor, tall ? CblasTrans : CblasNoTrans, CblasNoTrans, nb, k, q, 1.0, b0, tall ? q : nb,
                    y, q, 0.0, pb, nb);
}
// Z (k x q) += Pᵀ A_b
void project_block(bool tall, int q, int nb, int k, const double* pb, const double* b, double* z) {
  scipy_cblas_dgemm(CblasColMajor, CblasTrans, tall ? CblasTrans : CblasNoTrans, k, q, nb, 1.0, pb, nb, b,
                    tall ? q : nb, 1.0, z, k);
}

// Upper triangle of G = AᵀA (q x q, column-major), accumulated over row blocks in float64.
template <typename T>
dvec gram(const T* w, int m, int n) {
  const int p = std::max(m, n), q = std::min(m, n);
  dvec g((size_t)q * q, 0.0), blk((size_t)kBlock * q);
  for (int r0 = 0; r0 < p; r0 += kBlock) {
    int nb = std::min(kBlock, p - r0);
    load_block(w, m, n, r0, nb, blk.data());
    syrk_block(m >= n, q, nb, blk.data(), g.data());
  }
  return g;
}

// Eigen-decompose symmetric g (upper triangle set) in place: returns eigenvalues ascending;
// with vectors, g holds them (column-major, ascending order).
dvec syevd(dvec& g, int q, bool vectors, int64_t m, int64_t n) {
  dvec w(q);
  int info = scipy_LAPACKE_dsyevd(LAPACK_COL_MAJOR, vectors ? 'V' : 'N', 'U', q, g.data(), q, w.data());
  lapack_check(info, "dsyevd", m, n);
  return w;
}

// All eigenvalues of symmetric g (upper triangle set; destroyed) as singular values s (descending,
// s = sqrt(max(0, lambda))) and, when kv > 0, the top kv eigenvectors into y (q x kv column-major,
// column j = j-th largest; all q columns when kv > q/4). Few vectors (kv <= q/4) run dsytrd +
// dsterf (all values) + dstemr (kv vectors) + dormtr, about the cost of the values alone; more
// run dsyevd for all of them.
void gram_svd(dvec& g, int q, int64_t m, int64_t n, double* s, dvec* y, int kv) {
  if (y == nullptr) kv = 0;
  if (kv == 0) {
    dvec w = syevd(g, q, false, m, n);
    for (int j = 0; j < q; ++j) s[j] = std::sqrt(std::max(0.0, w[q - 1 - j]));
    return;
  }
  if (4 * kv > q) {  // many vectors: divide and conquer for all of them (dsyevd; dsyevr measured 1.3-1.5x slower)
    dvec w = syevd(g, q, true, m, n);
    for (int j = 0; j < q; ++j) s[j] = std::sqrt(std::max(0.0, w[q - 1 - j]));
    y->assign((size_t)q * q, 0.0);  // all q vectors (they came for free; compare uses the rest)
    for (int j = 0; j < q; ++j)
      std::copy(g.data() + (size_t)(q - 1 - j) * q, g.data() + (size_t)(q - j) * q, y->data() + (size_t)j * q);
    return;
  }
  dvec d(q), e(q, 0.0), tau(std::max(1, q - 1));
  lapack_check(scipy_LAPACKE_dsytrd(LAPACK_COL_MAJOR, 'U', q, g.data(), q, d.data(), e.data(), tau.data()), "dsytrd",
               m, n);
  dvec dv = d, ev = e;
  lapack_check(scipy_LAPACKE_dsterf(q, dv.data(), ev.data()), "dsterf", m, n);  // ascending
  for (int j = 0; j < q; ++j) s[j] = std::sqrt(std::max(0.0, dv[q - 1 - j]));
  dvec w(q), z((size_t)q * kv);
  std::vector<lapack_int> isuppz(2 * (size_t)kv);
  lapack_int found = 0;
  lapack_logical tryrac = 1;
  int info = scipy_LAPACKE_dstemr(LAPACK_COL_MAJOR, 'V', 'I', q, d.data(), e.data(), 0.0, 0.0, q - kv + 1, q, &found,
                                  w.data(), z.data(), q, kv, isuppz.data(), &tryrac);
  lapack_check(info, "dstemr", m, n);
  if (found != kv) throw std::runtime_error("dstemr found " + std::to_string(found) + " of " + std::to_string(kv) +
                                            " eigenvectors on a " + std::to_string(m) + "x" + std::to_string(n) + " matrix");
  lapack_check(scipy_LAPACKE_dormtr(LAPACK_COL_MAJOR, 'L', 'U', 'N', q, kv, g.data(), q, tau.data(), z.data(), q),
               "dormtr", m, n);
  y->assign((size_t)q * kv, 0.0);
  for (int j = 0; j < kv; ++j)  // ascending -> descending
    std::copy(z.data() + (size_t)(kv - 1 - j) * q, z.data() + (size_t)(kv - j) * q, y->data() + (size_t)j * q);
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
    dvec g = gram(a, m, n);
    dvec sd(r);
    gram_svd(g, r, m64, n64, sd.data(), nullptr, 0);
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
void reference_one(const T* w0, int64_t m, int64_t n, int64_t kb, double* s0, double* y0) {
  const int q = (int)std::min(m, n), kv = (int)std::min<int64_t>(kb, q);
  dvec g = gram(w0, (int)m, (int)n);
  dvec y;
  gram_svd(g, q, m, n, s0, &y, kv);
  for (int i = 0; i < q; ++i)  // row-major out: y0[i][j] = component i of vector j
    for (int j = 0; j < kv; ++j) y0[(size_t)i * kv + j] = y[i + (size_t)j * q];
}

template <typename T>
CompareOut compare_one(const T* w0, const double* s0, const double* y0_rm, int64_t kb64, const T* w, int64_t m64,
                       int64_t n64, int64_t k64) {
  const int m = (int)m64, n = (int)n64, p = std::max(m, n), q = std::min(m, n), kb = (int)kb64;
  const int k = (int)std::min<int64_t>(k64, q);
  const bool tall = m >= n;
  if (k > kb)
    throw std::invalid_argument("k=" + std::to_string(k) + ": the reference keeps only " + std::to_string(kb) +
                                " singular vectors; decompose it again with at least k");
  CompareOut out;
  out.k = k;
  const double tol = 1e-13;
  if (!(s0[k - 1] > tol * s0[0]))
    throw std::invalid_argument("k=" + std::to_string(k) + ": W_ref is numerically rank-deficient at k " +
                                "(sigma_k ~ 0), so its top-k singular subspace is not defined; use a smaller k");
  dvec y0((size_t)q * kb);  // column-major q x kb
  for (int i = 0; i < q; ++i)
    for (int j = 0; j < kb; ++j) y0[i + (size_t)j * q] = y0_rm[(size_t)i * kb + j];
  // One pass over row blocks: G = AᵀA and either Z = Y0_kᵀ A0ᵀ A directly (P = A0_b Y0_k per
  // block: 4pqk flops) or through X = A0ᵀA (2pq² + 2kq²), whichever is cheaper for this k.
  const bool via_x = 2.0 * k >= q;
  dvec g((size_t)q * q, 0.0), x(via_x ? (size_t)q * q : 0, 0.0), z((size_t)k * q, 0.0);
  dvec b0((size_t)kBlock * q), b((size_t)kBlock * q), pb(via_x ? 0 : (size_t)kBlock * k);
  double dfro = 0;
  for (int r0 = 0; r0 < p; r0 += kBlock) {
    int nb = std::min(kBlock, p - r0);
    load_block(w0, m, n, r0, nb, b0.data());
    load_block(w, m, n, r0, nb, b.data());
    for (size_t t = 0; t < (size_t)nb * q; ++t) dfro += (b[t] - b0[t]) * (b[t] - b0[t]);
    syrk_block(tall, q, nb, b.data(), g.data());
    if (via_x) {
      cross_block(tall, q, nb, b0.data(), b.data(), x.data());
    } else {
      times_block(tall, q, nb, k, b0.data(), y0.data(), pb.data());
      project_block(tall, q, nb, k, pb.data(), b.data(), z.data());
    }
  }
  out.delta_fro = std::sqrt(dfro);
  if (via_x)
    scipy_cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, k, q, q, 1.0, y0.data(), q, x.data(), q, 0.0, z.data(), k);
  dvec y;
  out.s.resize(q);
  gram_svd(g, q, m64, n64, out.s.data(), &y, k);
  if (!(out.s[k - 1] > tol * out.s[0]))
    throw std::invalid_argument("k=" + std::to_string(k) + ": W is numerically rank-deficient at k " +
                                "(sigma_k ~ 0), so its top-k singular subspace is not defined; use a smaller k");
  // small side: sines of the angles between span(Y0_k) and span(Y_k)
  dvec small_sin2;
  if (kb == q) {  // exact: singular values of the off-block D = Y0[:, k:]ᵀ Y_k
    if (q > k) {
      dvec d((size_t)(q - k) * k);
      scipy_cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, q - k, k, q, 1.0, y0.data() + (size_t)k * q, q,
                        y.data(), q, 0.0, d.data(), q - k);
      small_sin2 = gram_eigvals(d, q - k, k, m64, n64);
      std::reverse(small_sin2.begin(), small_sin2.end());
    }
  } else {  // truncated reference basis: sin² = eig(I − DᵀD), D = Y0_kᵀ Y_k (error ~1e-16 in sin²)
    dvec d((size_t)k * k), hs((size_t)k * k, 0.0);
    scipy_cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, k, k, q, 1.0, y0.data(), q, y.data(), q, 0.0, d.data(), k);
    for (int i = 0; i < k; ++i) hs[i + (size_t)i * k] = 1.0;
    scipy_cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, k, k, -1.0, d.data(), k, 1.0, hs.data(), k);
    small_sin2 = syevd(hs, k, false, m64, n64);
  }
  // big side and energy: R = Z [Y_k, Y0_k] = [Y0_kᵀ X Y_k, Y0_kᵀ X Y0_k]
  dvec rr((size_t)k * 2 * k), big_sin2;
  scipy_cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, k, k, q, 1.0, z.data(), k, y0.data(), q, 0.0,
                    rr.data() + (size_t)k * k, k);
  // Square, well-conditioned and everything at hand: U0 and U are square orthogonal, so the big
  // side's sines are exactly the singular values of the off-block U0[:, k:]ᵀ U_k, (q-k) x k,
  // which is far cheaper than the k x k eigensolve below when k is near q.
  const double cond_tol = 1e-8;
  const bool square = p == q && kb == q && via_x && (int)(y.size() / q) == q && q > k &&
                      s0[q - 1] > cond_tol * s0[0] && out.s[q - 1] > cond_tol * out.s[0];
  if (square) {
    const int r = q - k;
    dvec zb((size_t)r * q), f((size_t)r * k);
    scipy_cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, r, q, q, 1.0, y0.data() + (size_t)k * q, q, x.data(), q,
                      0.0, zb.data(), r);
    scipy_cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, r, k, q, 1.0, zb.data(), r, y.data(), q, 0.0, f.data(),
                      r);
    for (int j = 0; j < k; ++j)
      for (int i = 0; i < r; ++i) f[i + (size_t)j * r] /= s0[k + i] * out.s[j];
    big_sin2 = gram_eigvals(f, r, k, m64, n64);
    std::reverse(big_sin2.begin(), big_sin2.end());
  } else {
    scipy_cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, k, k, q, 1.0, z.data(), k, y.data(), q, 0.0, rr.data(),
                      k);
    // C = U0_kᵀU_k = C' / (s0_i s_j); sin² = eig(I − CᵀC)
    dvec c((size_t)k * k), h((size_t)k * k, 0.0);
    for (int j = 0; j < k; ++j)
      for (int i = 0; i < k; ++i) c[i + (size_t)j * k] = rr[i + (size_t)j * k] / (s0[i] * out.s[j]);
    for (int i = 0; i < k; ++i) h[i + (size_t)i * k] = 1.0;
    scipy_cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, k, k, -1.0, c.data(), k, 1.0, h.data(), k);
    big_sin2 = syevd(h, k, false, m64, n64);
  }
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

namespace {
void gemm_rm(bool ta, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc) {
  scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f,
                    c, ldc);
}
void gemm_rm(bool ta, int m, int n, int k, const double* a, int lda, const double* b, int ldb, double* c, int ldc) {
  scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a, lda, b, ldb, 0.0, c,
                    ldc);
}

// Standard normal numbers from a fixed seed (splitmix64 + Box-Muller): the same start on every
// machine and compiler, unlike std::normal_distribution.
std::vector<double> seeded_normals(size_t count, uint64_t seed) {
  std::vector<double> out(count);
  auto next = [&seed]() {
    uint64_t z = (seed += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return ((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
  };
  for (size_t i = 0; i < count; i += 2) {
    double u1 = std::max(next(), 1e-300), u2 = next(), r = std::sqrt(-2.0 * std::log(u1));
    out[i] = r * std::cos(6.283185307179586 * u2);
    if (i + 1 < count) out[i + 1] = r * std::sin(6.283185307179586 * u2);
  }
  return out;
}

// Orthonormal columns (modified Gram-Schmidt in float64, each column projected twice) of x,
// n x b row-major; a column that vanishes is left zero.
template <typename T>
void orthonormalize(std::vector<T>& x, int n, int b) {
  for (int j = 0; j < b; ++j) {
    for (int pass = 0; pass < 2; ++pass)
    for (int i = 0; i < j; ++i) {
      double dot = 0;
      for (int r = 0; r < n; ++r) dot += (double)x[(size_t)r * b + i] * x[(size_t)r * b + j];
      for (int r = 0; r < n; ++r) x[(size_t)r * b + j] = (T)(x[(size_t)r * b + j] - dot * x[(size_t)r * b + i]);
    }
    double norm = 0;
    for (int r = 0; r < n; ++r) norm += (double)x[(size_t)r * b + j] * x[(size_t)r * b + j];
    norm = std::sqrt(norm);
    for (int r = 0; r < n; ++r) x[(size_t)r * b + j] = norm > 0 ? (T)(x[(size_t)r * b + j] / norm) : T(0);
  }
}
}  // namespace

template <typename T>
double spectral_norm_diff_one(const T* w0, const T* w, int64_t m64, int64_t n64, int iters, int block) {
  const int m = (int)m64, n = (int)n64, b = std::min(block, std::min(m, n));  // at most rank(D) columns
  std::vector<T> d((size_t)m * n), x((size_t)n * b), y((size_t)m * b);
  for (size_t t = 0; t < d.size(); ++t) d[t] = w[t] - w0[t];
  std::vector<double> start = seeded_normals(x.size(), 0);
  for (size_t t = 0; t < x.size(); ++t) x[t] = (T)start[t];
  for (int it = 0; it < iters; ++it) {
    gemm_rm(false, m, b, n, d.data(), n, x.data(), b, y.data(), b);  // y = D x
    gemm_rm(true, n, b, m, d.data(), n, y.data(), b, x.data(), b);   // x = Dᵀ y
    orthonormalize(x, n, b);
  }
  gemm_rm(false, m, b, n, d.data(), n, x.data(), b, y.data(), b);
  dvec g((size_t)b * b, 0.0);  // yᵀy in float64; its largest eigenvalue is the top singular value²
  for (int r = 0; r < m; ++r)
    for (int i = 0; i < b; ++i)
      for (int j = i; j < b; ++j) g[i + (size_t)j * b] += (double)y[(size_t)r * b + i] * y[(size_t)r * b + j];
  dvec ev = syevd(g, b, false, m64, n64);
  double top = std::sqrt(std::max(0.0, ev[b - 1]));
  return std::isfinite(top) ? top : 0.0;
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
template void reference_one<float>(const float*, int64_t, int64_t, int64_t, double*, double*);
template void reference_one<double>(const double*, int64_t, int64_t, int64_t, double*, double*);
template CompareOut compare_one<float>(const float*, const double*, const double*, int64_t, const float*, int64_t,
                                       int64_t, int64_t);
template CompareOut compare_one<double>(const double*, const double*, const double*, int64_t, const double*, int64_t,
                                        int64_t, int64_t);
template double spectral_norm_diff_one<float>(const float*, const float*, int64_t, int64_t, int, int);
template double spectral_norm_diff_one<double>(const double*, const double*, int64_t, int64_t, int, int);
template std::vector<double> principal_angles_one<float>(const float*, const float*, int64_t, int64_t, int64_t);
template std::vector<double> principal_angles_one<double>(const double*, const double*, int64_t, int64_t, int64_t);

}  // namespace rlheals
