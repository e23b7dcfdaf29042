// CPU kernels of the SVD extension: LAPACK/BLAS from scipy-openblas32, one matrix per call.
// Inputs are row-major (numpy C order) and already checked by csrc/svd.cpp; every routine
// is re-entrant, so the caller runs many of them in parallel threads (1 BLAS thread each).
#pragma once
#include <cstdint>
#include <vector>

namespace rlheals {

// Thin SVD of the m x n row-major matrix a, top kk = min(k, m, n) triplets.
// u: m x kk, s: kk, vh: kk x n (row-major); u/vh may be null when compute_uv is false.
// float32 values-only goes through a float64 Gram matrix (faster and more accurate than sgesdd).
template <typename T>
void svd_one(const T* a, int64_t m, int64_t n, int64_t kk, bool compute_uv, T* u, T* s, T* vh);

// Reference decomposition for compare(): all singular values s0 (q = min(m, n), descending) and
// the top kb float64 singular vectors y0 (q x kb row-major, column j = j-th vector) of the
// smaller side, from the eigendecomposition of the float64 Gram matrix (kb = q: all of them).
template <typename T>
void reference_one(const T* w0, int64_t m, int64_t n, int64_t kb, double* s0, double* y0);

struct CompareOut {
  std::vector<double> s;            // singular values of w, descending (q)
  std::vector<double> angles_left;  // top-k principal angles, ascending (k)
  std::vector<double> angles_right;
  double diag_energy = 0, offdiag_energy = 0;
  double delta_fro = 0;             // ||w - w0||_F
  double delta_spec = 0;            // ||w - w0||_2 (spectral_norm_diff_one), filled by the module
  int64_t k = 0;
};

// The analysis of w against its reference (w0, s0, y0 with kb >= k columns from reference_one),
// top k directions. Both matrices are read in row blocks of their tall form and accumulated in
// float64, so the working set is a few q x q matrices, never a float64 copy of w.
template <typename T>
CompareOut compare_one(const T* w0, const double* s0, const double* y0, int64_t kb, const T* w,
                       int64_t m, int64_t n, int64_t k);

// ||w - w0||_2 estimated from below by block power iteration (iters rounds, block columns, a
// seeded start), in the inputs' precision: the gap warning needs a few %, not a decomposition.
template <typename T>
double spectral_norm_diff_one(const T* w0, const T* w, int64_t m, int64_t n, int iters, int block);

// Principal angles (ascending, radians) between span(a) (n x ka) and span(b) (n x kb), both
// row-major with orthonormal columns; min(ka, kb) angles, sine-based below pi/4.
template <typename T>
std::vector<double> principal_angles_one(const T* a, const T* b, int64_t n, int64_t ka, int64_t kb);

// Number of threads OpenBLAS uses inside each call (global to our OpenBLAS copy).
void set_blas_threads(int n);
int get_blas_threads();

}  // namespace rlheals
