"""Benchmark rlheals.svd.linalg against numpy, scipy and torch on one checkpoint of a Qwen2.5-0.5B-shaped model.

Workload: 24 layers x (q 896x896, k/v 128x896, o 896x896, gate/up 4864x896, down 896x4864),
float32 weights W0 ~ N(0, 0.02) and a "fine-tuned" W = W0 + E with ‖E‖_F = 1e-3‖W0‖_F.
`--quick` runs a copy scaled by 1/4 (2 layers, k = 192) in well under a minute.

Three tasks, each method timed in the same run, interleaved (rounds of method A, B, C, ...):
  svd       thin U, S, Vh of every checkpoint matrix
  values    singular values only
  analysis  per (W0, W) pair: sigma relative change + top-k principal angles, left and right.
            Baselines: two SVDs + angles (numpy: the straightforward analysis; scipy gesdd;
            torch). Extension: linalg.compare against the reference's cached decomposition
            (as the workflow runs it: `reference_svd` once per reference), and with the
            reference decomposed inside the timing.
Errors are measured against a float64 numpy oracle on the first layer's matrices. The analysis
prints the goal ratios: cached vs numpy (goal >= 8x) and vs the best of torch/scipy (goal >= 3x);
the last line is `speedup_vs_best_baseline=<x>` (cached extension vs the best baseline).

`--model 7b` analyses a checkpoint of Qwen2.5-7B's shapes end to end instead: random bf16
weights (`--layers`, default 1) written as safetensors, then `reference_svd` and `analyze`
(the workflow's own functions, streamed) each in a fresh process under /usr/bin/time, with
wall time, peak RSS and a per-checkpoint extrapolation to 28 layers.

    python benchmarks/svd_bench.py --quick            # CPU: extension vs numpy / scipy / torch (CPU)
    python benchmarks/svd_bench.py --tasks analysis   # the CPU goal ratios on the full workload
    python benchmarks/svd_bench.py --model 7b         # 7B-shaped checkpoint, one layer, time + peak RSS
    python benchmarks/svd_bench.py --device cuda      # GPU: extension vs torch (CUDA) vs cupy
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from rlheals.svd import _linalg_ref as ref
from rlheals.svd import linalg


def workload(quick: bool, seed: int = 0, layers: int | None = None):
    h, kv, inter, n_layers, k = (224, 32, 1216, 2, 192) if quick else (896, 128, 4864, 24, 768)
    layers = layers or n_layers
    shapes = [(h, h), (kv, h), (kv, h), (h, h), (inter, h), (inter, h), (h, inter)]
    rng = np.random.default_rng(seed)
    w0s, ws = [], []
    for _ in range(layers):
        for shape in shapes:
            w0 = (0.02 * rng.standard_normal(shape)).astype(np.float32)
            e = rng.standard_normal(shape).astype(np.float32)
            w0s.append(w0)
            ws.append(w0 + e * (1e-3 * np.linalg.norm(w0) / np.linalg.norm(e)))
    return w0s, ws, k, len(shapes)


# ---------------------------------------------------------------- analysis, reference style
def angles_from_bases(xp, a, b, svdvals):
    """Sine/cosine principal angles (scipy's rule) with any array module."""
    c = a.T @ b
    cos = xp.clip(svdvals(c), -1.0, 1.0)
    sin = svdvals(b - a @ c)
    sin = xp.clip(sin.flip(0) if hasattr(sin, "flip") else sin[::-1], 0.0, 1.0)
    return xp.where(cos**2 >= 0.5, xp.arcsin(sin), xp.arccos(cos))


def analysis_numpy(w0, w, k):
    u0, s0, vh0 = np.linalg.svd(w0, full_matrices=False)
    u, s, vh = np.linalg.svd(w, full_matrices=False)
    k = min(k, s.size)
    sv = lambda x: np.linalg.svd(x, compute_uv=False)  # noqa: E731
    return ((s - s0) / s0, angles_from_bases(np, u0[:, :k], u[:, :k], sv),
            angles_from_bases(np, vh0[:k].T, vh[:k].T, sv))


def analysis_torch(torch, w0, w, k):
    u0, s0, vh0 = torch.linalg.svd(w0, full_matrices=False)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    k = min(k, s.numel())
    return ((s - s0) / s0, angles_from_bases(torch, u0[:, :k], u[:, :k], torch.linalg.svdvals),
            angles_from_bases(torch, vh0[:k].T, vh[:k].T, torch.linalg.svdvals))


def analysis_scipy(w0, w, k):
    import scipy.linalg as sl
    u0, s0, vh0 = sl.svd(w0, full_matrices=False, lapack_driver="gesdd", check_finite=False)
    u, s, vh = sl.svd(w, full_matrices=False, lapack_driver="gesdd", check_finite=False)
    k = min(k, s.size)
    sv = lambda x: sl.svd(x, compute_uv=False, check_finite=False)  # noqa: E731
    return ((s - s0) / s0, angles_from_bases(np, u0[:, :k], u[:, :k], sv),
            angles_from_bases(np, vh0[:k].T, vh[:k].T, sv))


def analysis_cupy(cp, w0, w, k):
    u0, s0, vh0 = cp.linalg.svd(w0, full_matrices=False)
    u, s, vh = cp.linalg.svd(w, full_matrices=False)
    k = min(k, s.size)
    sv = lambda x: cp.linalg.svd(x, compute_uv=False)  # noqa: E731
    return ((s - s0) / s0, angles_from_bases(cp, u0[:, :k], u[:, :k], sv),
            angles_from_bases(cp, vh0[:k].T, vh[:k].T, sv))


def analysis_ext(w0s, ws, k):
    return [(d["sigma_rel_change"], d["angles_left"], d["angles_right"]) for d in linalg.compare(w0s, ws, k)]


def cached_references(w0s, k):
    """The reference decomposed once, as `reference_svd` caches it (top k vectors where k <= rank/2)."""
    from rlheals.svd.analysis import basis_size
    return [linalg.reference(w, basis=basis_size(min(w.shape), k)) for w in w0s]


# ---------------------------------------------------------------- errors
def to_np(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


_S64: dict = {}


def svd_error(res, mats):
    """Max over matrices of max |σ − σ64|/σ64_max and max |U S Vh − W| / σ64_max."""
    err = 0.0
    for r, a in zip(res, mats):
        if id(a) not in _S64:
            _S64[id(a)] = np.linalg.svd(a.astype(np.float64), compute_uv=False)
        s64 = _S64[id(a)]
        if isinstance(r, tuple):
            u, s, vh = (to_np(x).astype(np.float64) for x in r)
            err = max(err, np.abs((u * s) @ vh - a).max() / s64[0])
        else:
            s = to_np(r).astype(np.float64)
        err = max(err, np.abs(s - s64[: s.size]).max() / s64[0])
    return err


def analysis_error(res, oracle):
    """(max |Δσ/σ − oracle|, max |angle − oracle| in rad) over the matrices checked."""
    es, ea = 0.0, 0.0
    for got, want in zip(res, oracle):
        g = [to_np(x).astype(np.float64) for x in got]
        es = max(es, np.abs(g[0] - want[0]).max())
        ea = max(ea, np.abs(np.sort(g[1]) - want[1]).max(), np.abs(np.sort(g[2]) - want[2]).max())
    return es, ea


# ---------------------------------------------------------------- timing
def run_interleaved(methods: dict, rounds: int, sync=lambda: None):
    times = {name: [] for name in methods}
    results = {}
    for _ in range(rounds):
        for name, fn in methods.items():
            sync()
            t0 = time.perf_counter()
            results[name] = fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {n: min(t) for n, t in times.items()}, results


def report(task, times, errors, ext="extension"):
    base = {n: t for n, t in times.items() if not n.startswith("ext")}
    best = min(base, key=base.get)
    print(f"\n[{task}]  (best baseline: {best})")
    for name, t in times.items():
        ratio = f"{times[best] / t:6.2f}x vs best" if name == ext else f"{t / times[ext]:6.2f}x ext time"
        print(f"  {name:<22s} {t:9.3f} s   {ratio}   max_err {errors[name]}")
    return times[best] / times[ext]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="scaled copy (2 layers, 1/4 dimensions)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--rounds", type=int, default=None, help="timing rounds per method (min is reported)")
    p.add_argument("--tasks", default="svd,values,analysis")
    p.add_argument("--layers", type=int, default=None, help="fewer layers (full-size matrices) for a shorter run")
    p.add_argument("--k", type=int, default=None, help="top k of the analysis (default 768; 192 with --quick)")
    p.add_argument("--model", choices=["0.5b", "7b"], default="0.5b",
                   help="7b: a Qwen2.5-7B-shaped checkpoint end to end (time, peak RSS)")
    p.add_argument("--threads", type=int, default=2, help="--model 7b: RLHEALS_SVD_THREADS of the jobs")
    p.add_argument("--keep", default=None, help="--model 7b: folder for the generated checkpoints")
    args = p.parse_args(argv)
    if args.model == "7b":
        bench_7b(args.layers or 1, args.k or 768, args.threads, args.keep, args.device)
        return
    w0s, ws, k, per_layer = workload(args.quick, layers=args.layers)
    k = args.k or k
    rounds = args.rounds or 1
    name = "quick" if args.quick else f"Qwen2.5-0.5B, {len(ws) // per_layer} layers"
    print(f"workload: {len(ws)} matrices ({name}), k={k}, device={args.device}")
    check = slice(0, per_layer)  # errors on the first layer
    oracle = [analysis_numpy(a.astype(np.float64), b.astype(np.float64), k) for a, b in zip(w0s[check], ws[check])]
    oracle = [(o[0], np.sort(o[1]), np.sort(o[2])) for o in oracle]
    tasks = args.tasks.split(",")
    fn = bench_cuda if args.device == "cuda" else bench_cpu
    speed = fn(w0s, ws, k, check, oracle, tasks, rounds)
    print(f"speedup_vs_best_baseline={speed:.2f}")


def bench_cpu(w0s, ws, k, check, oracle, tasks, rounds):
    import torch
    tws, tw0s = [torch.from_numpy(w) for w in ws], [torch.from_numpy(w) for w in w0s]
    print(f"extension backends: {linalg.backends()}, torch threads: {torch.get_num_threads()}")
    forced = os.environ.get("OPENBLAS_CORETYPE")
    kernels = ", ".join(f"{lib} {k}" for lib, k in linalg.blas_kernels().items()) or "unknown (no threadpoolctl)"
    print(f"OpenBLAS: {kernels}" + (f"  [forced by OPENBLAS_CORETYPE={forced}, not this CPU's default]" if forced else ""))
    speed = None
    if "svd" in tasks:
        t, r = run_interleaved({
            "extension": lambda: linalg.svd(ws),
            "numpy loop": lambda: [np.linalg.svd(w, full_matrices=False) for w in ws],
            "torch.linalg.svd": lambda: [torch.linalg.svd(w, full_matrices=False) for w in tws]}, rounds)
        report("svd (U, S, Vh)", t, {n: f"{svd_error(v[check], ws[check]):.1e}" for n, v in r.items()})
    if "values" in tasks:
        t, r = run_interleaved({
            "extension": lambda: linalg.svd(ws, compute_uv=False),
            "numpy loop": lambda: [np.linalg.svd(w, compute_uv=False) for w in ws],
            "torch.linalg.svdvals": lambda: [torch.linalg.svdvals(w) for w in tws]}, rounds)
        report("values only", t, {n: f"{svd_error(v[check], ws[check]):.1e}" for n, v in r.items()})
    if "analysis" in tasks:
        refs = cached_references(w0s, k)  # the workflow decomposes each reference once (rule reference_svd)
        t, r = run_interleaved({
            "extension": lambda: analysis_ext(refs, ws, k),
            "ext, reference inside": lambda: analysis_ext(w0s, ws, k),
            "numpy (2 SVDs+angles)": lambda: [analysis_numpy(a, b, k) for a, b in zip(w0s, ws)],
            "scipy gesdd (2 SVDs+angles)": lambda: [analysis_scipy(a, b, k) for a, b in zip(w0s, ws)],
            "torch (2 SVDs+angles)": lambda: [analysis_torch(torch, a, b, k) for a, b in zip(tw0s, tws)]}, rounds)
        errs = {n: "dsigma %.1e, angle %.1e rad" % analysis_error(v[check], oracle) for n, v in r.items()}
        speed = report("analysis (sigma change + top-k angles), cached reference", t, errs)
        ext = t["extension"]
        best_lib = min(t["scipy gesdd (2 SVDs+angles)"], t["torch (2 SVDs+angles)"])
        print(f"  goal ratios: vs numpy {t['numpy (2 SVDs+angles)'] / ext:.2f}x (goal >= 8), "
              f"vs best of torch/scipy {best_lib / ext:.2f}x (goal >= 3); "
              f"reference inside: {t['numpy (2 SVDs+angles)'] / t['ext, reference inside']:.2f}x vs numpy")
    return speed


def bench_7b(layers: int, k: int, threads: int, keep: str | None, device: str = "cpu"):
    """A Qwen2.5-7B-shaped checkpoint analysed end to end with the workflow's own functions."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    import torch
    from safetensors.torch import save_file

    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584,
           "intermediate_size": 18944, "num_attention_heads": 28, "num_key_value_heads": 4,
           "num_hidden_layers": layers, "torch_dtype": "bfloat16"}
    h, kv, inter = 3584, 512, 18944
    shapes = {"self_attn.q_proj": (h, h), "self_attn.k_proj": (kv, h), "self_attn.v_proj": (kv, h),
              "self_attn.o_proj": (h, h), "mlp.gate_proj": (inter, h), "mlp.up_proj": (inter, h),
              "mlp.down_proj": (h, inter)}
    root = keep or tempfile.mkdtemp(prefix="svd7b-")
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for name in ("ref", "ckpt"):
        os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(layers):  # one shard per layer and model, written as it is made
        ref, ckpt = {}, {}
        for part, shape in shapes.items():
            w0 = 0.02 * torch.randn(shape, generator=gen)
            e = torch.randn(shape, generator=gen)
            ref[f"model.layers.{i}.{part}.weight"] = w0.bfloat16()
            ckpt[f"model.layers.{i}.{part}.weight"] = (w0 + e * (1e-3 * w0.norm() / e.norm())).bfloat16()
        for name, tensors in (("ref", ref), ("ckpt", ckpt)):
            save_file(tensors, os.path.join(root, name, f"model-{i:05d}-of-{layers:05d}.safetensors"),
                      metadata={"format": "pt"})
        del ref, ckpt
    for name in ("ref", "ckpt"):
        with open(os.path.join(root, name, "config.json"), "w") as fh:
            json.dump(cfg, fh)
    print(f"workload: Qwen2.5-7B shapes, {layers} layer(s), bf16, k={k}, written to {root} "
          f"in {time.perf_counter() - t0:.1f} s; device {device}, RLHEALS_SVD_THREADS={threads}")
    steps = {
        "reference_svd": f"from rlheals.svd.analysis import save_reference as f; "
                         f"f('{root}/ref', {list(MATRICES)!r}, '{root}/ref.npz', '{device}', top_k={k})",
        "analyze": f"from rlheals.svd.analysis import analyze as f; "
                   f"t = f('{root}/ckpt', '{root}/ref', {k}, {list(MATRICES)!r}, backend='{device}', "
                   f"cache='{root}/ref.npz', out='{root}/analysis.csv'); "
                   f"print('rows', len(t), 'gap_warning', int(t.gap_warning.sum()), "
                   f"'mean angle', float(t.angle_left_mean.mean()))",
        "edit (directions, k)": f"from rlheals.svd.edits import EditSpec, build_edited_model as f; "
                                f"f('{root}/ckpt', '{root}/ref', '{root}/edit', EditSpec('e', 'directions', {k}), "
                                f"backend='{device}')",
    }
    env = dict(os.environ, RLHEALS_SVD_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    results = {}
    for step, code in steps.items():
        cmd = ["/usr/bin/time", "-v", sys.executable, "-c", code]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        rss = next((int(line.split()[-1]) for line in proc.stderr.splitlines() if "Maximum resident" in line), -1)
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            raise SystemExit(f"{step} failed")
        results[step] = (wall, rss)
        extra = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        print(f"  {step:<22s} {wall:8.1f} s   peak RSS {rss / 1024:8.0f} MB   "
              f"-> 28 layers ~{wall * 28 / layers / 60:6.1f} min   {extra}")
    big = 2 * inter * h * 2 / 2**20
    print(f"  (one bf16 MLP pair, reference + checkpoint, is {big:.0f} MB; one layer of both models "
          f"{2 * sum(a * b for a, b in shapes.values()) * 2 / 2**20:.0f} MB; the model pair at 28 layers "
          f"{28 * 2 * sum(a * b for a, b in shapes.values()) * 2 / 2**30:.1f} GB)")
    return results


MATRICES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def bench_cuda(w0s, ws, k, check, oracle, tasks, rounds):
    import torch
    from rlheals.svd import _linalg_gpu
    cp = None
    try:
        import cupy as cp
    except ImportError:
        pass
    sync = torch.cuda.synchronize
    tws, tw0s = [torch.from_numpy(w).cuda() for w in ws], [torch.from_numpy(w).cuda() for w in w0s]
    cws, cw0s = ([cp.asarray(w) for w in ws], [cp.asarray(w) for w in w0s]) if cp else (None, None)
    print(f"device: {_linalg_gpu._ext().device_name()}, cupy: {cp is not None}")
    # warm up every library once (handles, kernels)
    linalg.svd(tws[:2]), torch.linalg.svd(tws[0]), linalg.compare(tw0s[:1], tws[:1], k)
    if cp:
        cp.linalg.svd(cws[0])
    speed = None
    if "svd" in tasks:
        methods = {"extension": lambda: linalg.svd(tws),
                   "torch.linalg.svd (CUDA)": lambda: [torch.linalg.svd(w, full_matrices=False) for w in tws]}
        for meth in ("gesvdj", "gesvdp", "gesvd"):
            methods[f"ext method={meth}"] = (lambda mm: lambda: _linalg_gpu.svd(tws, -1, True, method=mm))(meth)
        if cp:
            methods["cupy.linalg.svd"] = lambda: [cp.linalg.svd(w, full_matrices=False) for w in cws]
        t, r = run_interleaved(methods, rounds, sync)
        report("svd (U, S, Vh)", t, {n: f"{svd_error(v[check], ws[check]):.1e}" for n, v in r.items()})
        per_shape(tws, torch, _linalg_gpu, sync)
    if "values" in tasks:
        methods = {"extension": lambda: linalg.svd(tws, compute_uv=False),
                   "torch.linalg.svdvals (CUDA)": lambda: [torch.linalg.svdvals(w) for w in tws]}
        if cp:
            methods["cupy.linalg.svd values"] = lambda: [cp.linalg.svd(w, compute_uv=False) for w in cws]
        t, r = run_interleaved(methods, rounds, sync)
        report("values only", t, {n: f"{svd_error(v[check], ws[check]):.1e}" for n, v in r.items()})
    if "analysis" in tasks:
        methods = {"extension": lambda: analysis_ext(tw0s, tws, k),
                   "torch CUDA (2 SVDs+angles)": lambda: [analysis_torch(torch, a, b, k) for a, b in zip(tw0s, tws)]}
        if cp:
            methods["cupy (2 SVDs+angles)"] = lambda: [analysis_cupy(cp, a, b, k) for a, b in zip(cw0s, cws)]
        t, r = run_interleaved(methods, rounds, sync)
        errs = {n: "dsigma %.1e, angle %.1e rad" % analysis_error(v[check], oracle) for n, v in r.items()}
        speed = report("analysis (sigma change + top-k angles)", t, errs)
    return speed


def per_shape(tws, torch, gpu, sync):
    """cuSOLVER routine per matrix shape (one matrix of each distinct shape, best of 3)."""
    print("\n[per shape, ms]  " + "  ".join(f"{m:>8s}" for m in ("gesvdj", "gesvdp", "gesvd", "torch")))
    seen = set()
    for w in tws:
        if tuple(w.shape) in seen:
            continue
        seen.add(tuple(w.shape))
        row = []
        for fn in [lambda mm=mm: gpu.svd([w], -1, True, method=mm) for mm in ("gesvdj", "gesvdp", "gesvd")] + [
                lambda: torch.linalg.svd(w, full_matrices=False)]:
            best = 1e9
            for _ in range(3):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                best = min(best, time.perf_counter() - t0)
            row.append(best * 1e3)
        print(f"  {str(tuple(w.shape)):<14s}" + "  ".join(f"{x:8.1f}" for x in row))


if __name__ == "__main__":
    main()
