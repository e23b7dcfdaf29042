"""Build the rlheals package and its compiled SVD extension (see csrc/build_svd.py)."""
import os
import sys

from setuptools import find_packages, setup

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc"))
from build_svd import BuildExt, extensions  # noqa: E402  (CPU always; CUDA when found)

setup(
    name="rlheals",
    version="0.1.0",
    description="Reproduce 'RL Fine-Tuning Heals OOD Forgetting in SFT' as a Snakemake workflow",
    packages=find_packages(include=["rlheals", "rlheals.*"]),
    package_data={"rlheals": ["schemas/*.yaml"]},
    python_requires=">=3.10",
    install_requires=["numpy", "pandas", "pyyaml", "jsonschema", "scipy-openblas32"],
    # evaluation.backend: vllm and rl.vllm (GPUs only; vLLM brings its own CUDA build of torch)
    extras_require={"vllm": ["vllm"]},
    entry_points={"console_scripts": ["rlheals=rlheals.cli:main"]},
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExt},
    zip_safe=False,
)
