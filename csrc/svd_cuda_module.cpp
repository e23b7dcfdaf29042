// Python module rlheals._svd_cuda: GPU arrays arrive as (pointer, typestr, shape, strides)
// from __cuda_array_interface__ (cupy, torch); outputs are allocated by the caller in the
// same framework, so nothing crosses to the host. Checks here raise ValueError naming the
// argument; cuSOLVER failures raise RuntimeError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "checks.h"
#include "cuda/svd_cuda.h"

namespace py = pybind11;
using namespace rlheals;

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// Validate one device array; returns whether it is float64. ndim: 2 or 3 allowed when ndim == 0.
bool check(const std::string& name, const std::string& typestr, const std::vector<int64_t>& shape,
           const py::object& strides, int ndim, uintptr_t ptr, uintptr_t stream) {
  bool f32 = typestr == "<f4", f64 = typestr == "<f8";
  if (!f32 && !f64)
    throw std::invalid_argument(name + ": dtype " + typestr + " is not supported; expected float32 or float64");
  if ((int)shape.size() != ndim)
    throw std::invalid_argument(name + ": expected a " + std::to_string(ndim) + "-D array, got shape " + shape_str(shape));
  int64_t len = 1;
  for (auto d : shape) len *= d;
  if (len == 0) throw std::invalid_argument(name + ": empty array of shape " + shape_str(shape));
  if (!strides.is_none()) {
    auto st = strides.cast<std::vector<int64_t>>();
    int64_t expect = f64 ? 8 : 4;
    for (int i = ndim - 1; i >= 0; --i) {
      if (shape[i] != 1 && st[i] != expect)
        throw std::invalid_argument(name + ": array of shape " + shape_str(shape) +
                                    " is not C-contiguous; call .contiguous() / cupy.ascontiguousarray first");
      expect *= shape[i];
    }
  }
  check_dims(name, shape[ndim - 2], shape[ndim - 1]);
  cuda::check_finite(f64, reinterpret_cast<const void*>(ptr), len, name, stream);
  return f64;
}

}  // namespace

PYBIND11_MODULE(_svd_cuda, m) {
  m.doc() = "Batched SVD and spectral comparison on CUDA (cuSOLVER/cuBLAS) for GPU arrays";
  m.def("check", &check, py::arg("name"), py::arg("typestr"), py::arg("shape"), py::arg("strides"), py::arg("ndim"),
        py::arg("ptr"), py::arg("stream"), "Validate a device array (dtype, shape, layout, finite); returns is_float64");
  m.def("check_k", &check_k, py::arg("k"));
  m.def(
      "svd",
      [](bool f64, uintptr_t a, int64_t batch, int64_t mm, int64_t n, int64_t kk, bool uv, uintptr_t u, uintptr_t s,
         uintptr_t vh, uintptr_t stream, const std::string& method) {
        auto meth = cuda::parse_method(method);
        py::gil_scoped_release nogil;
        cuda::svd(f64, (const void*)a, batch, mm, n, kk, uv, (void*)u, (void*)s, (void*)vh, stream, meth);
      },
      py::arg("f64"), py::arg("a"), py::arg("batch"), py::arg("m"), py::arg("n"), py::arg("kk"), py::arg("compute_uv"),
      py::arg("u"), py::arg("s"), py::arg("vh"), py::arg("stream"), py::arg("method") = "auto",
      "Thin SVD of `batch` row-major m x n matrices at a into preallocated u, s, vh");
  m.def(
      "reference",
      [](bool f64, uintptr_t w0, int64_t mm, int64_t n, int64_t kb, uintptr_t s0, uintptr_t y0, uintptr_t stream) {
        if (kb < 1 || kb > std::min(mm, n)) throw std::invalid_argument("basis=" + std::to_string(kb) + ": expected 1..min(m, n)");
        py::gil_scoped_release nogil;
        cuda::reference(f64, (const void*)w0, mm, n, kb, (double*)s0, (double*)y0, stream);
      },
      py::arg("f64"), py::arg("w0"), py::arg("m"), py::arg("n"), py::arg("kb"), py::arg("s0"), py::arg("y0"),
      py::arg("stream"));
  m.def(
      "compare",
      [](bool f64, uintptr_t w0, uintptr_t s0, uintptr_t y0, int64_t kb, uintptr_t w, int64_t mm, int64_t n, int64_t k,
         uintptr_t stream) {
        cuda::CompareOut r;
        {
          py::gil_scoped_release nogil;
          r = cuda::compare(f64, (const void*)w0, (const double*)s0, (const double*)y0, kb, (const void*)w, mm, n, k,
                            stream);
        }
        return py::make_tuple(r.s, r.angles_left, r.angles_right, r.diag_energy, r.offdiag_energy, r.k, r.delta_fro);
      },
      py::arg("f64"), py::arg("w0"), py::arg("s0"), py::arg("y0"), py::arg("kb"), py::arg("w"), py::arg("m"),
      py::arg("n"), py::arg("k"), py::arg("stream"),
      "(sigma, angles_left, angles_right, scaling_energy, rotation_energy, k, delta_fro)");
  m.def("device_name", &cuda::device_name);
}
