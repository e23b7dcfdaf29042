// Python module rlheals._svd_cpu: boundary checks, thread pool over matrices, dispatch to
// the LAPACK kernels in cpu/svd_cpu.cpp. Every bad input raises std::invalid_argument (a
// Python ValueError) naming the argument; LAPACK failures raise std::runtime_error.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <functional>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "checks.h"
#include "cpu/svd_cpu.h"

namespace py = pybind11;
using namespace rlheals;

namespace {

// One checked input matrix (row-major, contiguous, finite).
struct Mat {
  const void* ptr;
  int64_t m, n;
  bool f64;
  size_t cost() const { return (size_t)m * n * std::min(m, n); }
};

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

Mat check_array(const py::handle& h, const std::string& name, int ndim = 2) {
  if (!py::isinstance<py::array>(h))
    throw std::invalid_argument(name + ": expected a numpy array, got " + std::string(py::str(py::type::handle_of(h).attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(h);
  bool f32 = a.dtype().is(py::dtype::of<float>()), f64 = a.dtype().is(py::dtype::of<double>());
  if (!f32 && !f64)
    throw std::invalid_argument(name + ": dtype " + std::string(py::str(a.dtype())) +
                                " is not supported; expected float32 or float64");
  if (a.ndim() != ndim)
    throw std::invalid_argument(name + ": expected a " + std::to_string(ndim) + "-D array, got shape " + shape_str(a));
  if (a.size() == 0) throw std::invalid_argument(name + ": empty array of shape " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(name + ": array of shape " + shape_str(a) +
                                " is not C-contiguous; pass np.ascontiguousarray(x)");
  int64_t m = ndim == 2 ? a.shape(0) : 1, n = a.shape(ndim - 1);
  check_dims(name, m, n);
  bool finite = f64 ? all_finite(static_cast<const double*>(a.data()), (size_t)a.size())
                    : all_finite(static_cast<const float*>(a.data()), (size_t)a.size());
  if (!finite) throw std::invalid_argument(name + ": array of shape " + shape_str(a) + " contains NaN or inf");
  return {a.data(), m, n, f64};
}

std::vector<Mat> check_list(const py::list& items, const std::string& name) {
  if (items.empty()) throw std::invalid_argument(name + ": empty list of matrices");
  std::vector<Mat> out;
  for (size_t i = 0; i < items.size(); ++i) out.push_back(check_array(items[i], name + "[" + std::to_string(i) + "]"));
  return out;
}

// Run job(i) for every item on `threads` workers, largest first, without the GIL. Each worker
// runs BLAS with one thread: measured on a shared 2-core machine, multithreaded OpenBLAS on a
// busy CPU was up to 10x slower than one thread. The first exception (by item order) is rethrown.
void parallel_for(const std::vector<size_t>& cost, int threads, const std::function<void(size_t)>& job) {
  const size_t count = cost.size();
  std::vector<size_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cost[a] > cost[b]; });
  int workers = (int)std::max<size_t>(1, std::min<size_t>(threads, count));
  std::vector<std::exception_ptr> errors(count);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t t; (t = next++) < count;) {
      try { job(order[t]); } catch (...) { errors[order[t]] = std::current_exception(); }
    }
  };
  {
    py::gil_scoped_release nogil;
    int before = get_blas_threads();
    set_blas_threads(1);
    std::vector<std::thread> pool;
    for (int w = 1; w < workers; ++w) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    set_blas_threads(before);
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<size_t> costs(const std::vector<Mat>& mats) {
  std::vector<size_t> c;
  for (auto& m : mats) c.push_back(m.cost());
  return c;
}

py::array_t<double> to_numpy(const std::vector<double>& v) {
  py::array_t<double> out((py::ssize_t)v.size());
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

template <typename T>
void svd_dispatch(const Mat& a, int64_t kk, bool uv, void* u, void* s, void* vh) {
  svd_one<T>(static_cast<const T*>(a.ptr), a.m, a.n, kk, uv, static_cast<T*>(u), static_cast<T*>(s),
             static_cast<T*>(vh));
}

py::list svd(const py::list& items, int64_t k, bool compute_uv, int threads) {
  check_k(k);
  auto mats = check_list(items, "a");
  std::vector<py::array> us, ss, vhs;
  for (auto& a : mats) {
    int64_t kk = k < 0 ? std::min(a.m, a.n) : std::min({k, a.m, a.n});
    auto dt = a.f64 ? py::dtype::of<double>() : py::dtype::of<float>();
    ss.emplace_back(dt, std::vector<py::ssize_t>{kk});
    us.emplace_back(dt, compute_uv ? std::vector<py::ssize_t>{a.m, kk} : std::vector<py::ssize_t>{0});
    vhs.emplace_back(dt, compute_uv ? std::vector<py::ssize_t>{kk, a.n} : std::vector<py::ssize_t>{0});
  }
  std::vector<void*> up, sp, vp;
  for (size_t i = 0; i < mats.size(); ++i) {
    up.push_back(us[i].mutable_data()); sp.push_back(ss[i].mutable_data()); vp.push_back(vhs[i].mutable_data());
  }
  parallel_for(costs(mats), threads, [&](size_t i) {
    const Mat& a = mats[i];
    int64_t kk = k < 0 ? std::min(a.m, a.n) : std::min({k, a.m, a.n});
    if (a.f64) svd_dispatch<double>(a, kk, compute_uv, up[i], sp[i], vp[i]);
    else svd_dispatch<float>(a, kk, compute_uv, up[i], sp[i], vp[i]);
  });
  py::list out;
  for (size_t i = 0; i < mats.size(); ++i) {
    if (compute_uv) out.append(py::make_tuple(us[i], ss[i], vhs[i]));
    else out.append(ss[i]);
  }
  return out;
}

py::list reference(const py::list& items, int64_t kb, int threads) {
  auto mats = check_list(items, "W_ref");
  if (kb == 0 || kb < -1) throw std::invalid_argument("basis=" + std::to_string(kb) + ": expected a positive count (or all)");
  std::vector<py::array_t<double>> s0, y0;
  std::vector<int64_t> kv;
  for (auto& a : mats) {
    int64_t q = std::min(a.m, a.n);
    kv.push_back(kb < 0 ? q : std::min(kb, q));
    s0.emplace_back(q);
    y0.emplace_back(std::vector<py::ssize_t>{q, kv.back()});
  }
  std::vector<double*> sp, yp;
  for (size_t i = 0; i < mats.size(); ++i) { sp.push_back(s0[i].mutable_data()); yp.push_back(y0[i].mutable_data()); }
  parallel_for(costs(mats), threads, [&](size_t i) {
    const Mat& a = mats[i];
    if (a.f64) reference_one<double>(static_cast<const double*>(a.ptr), a.m, a.n, kv[i], sp[i], yp[i]);
    else reference_one<float>(static_cast<const float*>(a.ptr), a.m, a.n, kv[i], sp[i], yp[i]);
  });
  py::list out;
  for (size_t i = 0; i < mats.size(); ++i) out.append(py::make_tuple(s0[i], y0[i]));
  return out;
}

// A C-contiguous float64 array of the given shape (-1: any extent >= 1 there); returns its data.
const double* check_f64(const py::handle& h, const std::string& name, std::vector<int64_t> shape) {
  if (!py::isinstance<py::array_t<double>>(h) || !(py::reinterpret_borrow<py::array>(h).flags() & py::array::c_style))
    throw std::invalid_argument(name + ": expected a C-contiguous float64 array (from rlheals.linalg.reference)");
  auto a = py::reinterpret_borrow<py::array>(h);
  bool ok = a.ndim() == (py::ssize_t)shape.size();
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 ? a.shape(i) >= 1 : a.shape(i) == shape[i];
  if (!ok) throw std::invalid_argument(name + ": shape " + shape_str(a) + " does not match the reference matrix");
  return static_cast<const double*>(a.data());
}

// ||ΔW||_2 for the gap warning: the power iteration of rlheals.svd.linalg.spectral_norm_diff
// (6 rounds of 4 columns), run in the worker that compared the pair.
constexpr int kSpecIters = 6, kSpecBlock = 4;

py::list compare(const py::list& w0s, const py::list& s0s, const py::list& y0s, const py::list& ws, int64_t k,
                 int threads) {
  check_k(k);
  auto ref = check_list(w0s, "W_ref"), cur = check_list(ws, "W");
  if (ref.size() != cur.size() || s0s.size() != cur.size() || y0s.size() != cur.size())
    throw std::invalid_argument("W_ref, W: expected lists of the same length, got " + std::to_string(ref.size()) +
                                " and " + std::to_string(cur.size()));
  std::vector<const double*> sp, yp;
  std::vector<int64_t> kbs;
  for (size_t i = 0; i < cur.size(); ++i) {
    std::string idx = "[" + std::to_string(i) + "]";
    if (ref[i].m != cur[i].m || ref[i].n != cur[i].n || ref[i].f64 != cur[i].f64)
      throw std::invalid_argument("W" + idx + ": shape (" + std::to_string(cur[i].m) + ", " + std::to_string(cur[i].n) +
                                  ") or dtype does not match W_ref" + idx + " (" + std::to_string(ref[i].m) + ", " +
                                  std::to_string(ref[i].n) + ")");
    int64_t q = std::min(cur[i].m, cur[i].n);
    sp.push_back(check_f64(s0s[i], "sigma_ref" + idx, {q}));
    yp.push_back(check_f64(y0s[i], "basis_ref" + idx, {q, -1}));
    int64_t kb = py::reinterpret_borrow<py::array>(y0s[i]).shape(1);
    if (kb > q) throw std::invalid_argument("basis_ref" + idx + ": more than " + std::to_string(q) + " columns");
    int64_t kk = k < 0 ? q : std::min(k, q);
    if (kk > kb)
      throw std::invalid_argument("k=" + std::to_string(kk) + ": basis_ref" + idx + " keeps only " + std::to_string(kb) +
                                  " singular vectors; decompose the reference with basis >= k");
    kbs.push_back(kb);
  }
  std::vector<CompareOut> res(cur.size());
  int64_t kk = k < 0 ? INT64_MAX : k;
  parallel_for(costs(cur), threads, [&](size_t i) {
    const Mat &a0 = ref[i], &a = cur[i];
    auto run = [&](auto zero) {  // one body for float32 and float64 pairs
      using T = decltype(zero);
      auto w0 = static_cast<const T*>(a0.ptr), w = static_cast<const T*>(a.ptr);
      res[i] = compare_one<T>(w0, sp[i], yp[i], kbs[i], w, a.m, a.n, kk);
      res[i].delta_spec = spectral_norm_diff_one<T>(w0, w, a.m, a.n, kSpecIters, kSpecBlock);
    };
    if (a.f64) run(0.0); else run(0.0f);
  });
  py::list out;
  for (auto& r : res)
    out.append(py::make_tuple(to_numpy(r.s), to_numpy(r.angles_left), to_numpy(r.angles_right), r.diag_energy,
                              r.offdiag_energy, r.k, r.delta_fro, r.delta_spec));
  return out;
}

py::list principal_angles(const py::list& as, const py::list& bs, int threads) {
  auto a = check_list(as, "A"), b = check_list(bs, "B");
  if (a.size() != b.size()) throw std::invalid_argument("A, B: different numbers of bases");
  for (size_t i = 0; i < a.size(); ++i) {
    std::string idx = "[" + std::to_string(i) + "]";
    if (a[i].m != b[i].m || a[i].f64 != b[i].f64)
      throw std::invalid_argument("A" + idx + ", B" + idx + ": bases need the same number of rows and dtype, got (" +
                                  std::to_string(a[i].m) + ", " + std::to_string(a[i].n) + ") and (" +
                                  std::to_string(b[i].m) + ", " + std::to_string(b[i].n) + ")");
    if (a[i].n > a[i].m || b[i].n > b[i].m)
      throw std::invalid_argument("A" + idx + ", B" + idx + ": an orthonormal basis (n, k) needs k <= n");
  }
  std::vector<std::vector<double>> res(a.size());
  parallel_for(costs(a), threads, [&](size_t i) {
    if (a[i].f64)
      res[i] = principal_angles_one<double>(static_cast<const double*>(a[i].ptr), static_cast<const double*>(b[i].ptr),
                                            a[i].m, a[i].n, b[i].n);
    else
      res[i] = principal_angles_one<float>(static_cast<const float*>(a[i].ptr), static_cast<const float*>(b[i].ptr),
                                           a[i].m, a[i].n, b[i].n);
  });
  py::list out;
  for (auto& r : res) out.append(to_numpy(r));
  return out;
}

}  // namespace

PYBIND11_MODULE(_svd_cpu, m) {
  m.doc() = "Batched SVD, principal angles and spectral comparison on CPU (LAPACK via scipy-openblas32)";
  m.def("svd", &svd, py::arg("a"), py::arg("k"), py::arg("compute_uv"), py::arg("threads"),
        "Thin SVD of each matrix of a list; k < 0 means all; returns a list of (U, S, Vh) or S");
  m.def("reference", &reference, py::arg("w_ref"), py::arg("basis"), py::arg("threads"),
        "Float64 singular values and the top `basis` (< 0: all) small-side singular vectors of each reference matrix");
  m.def("compare", &compare, py::arg("w_ref"), py::arg("sigma_ref"), py::arg("basis_ref"), py::arg("w"),
        py::arg("k"), py::arg("threads"),
        "Per pair: (sigma, angles_left, angles_right, scaling_energy, rotation_energy, k, delta_fro, delta_spec)");
  m.def("principal_angles", &principal_angles, py::arg("a"), py::arg("b"), py::arg("threads"),
        "Principal angles (ascending) between the column spans of each pair of orthonormal bases");
  m.def("blas_threads", &get_blas_threads, "Threads the bundled OpenBLAS uses per call");
}
