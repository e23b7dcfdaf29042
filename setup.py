"""Build the rlheals package (and, once present, its compiled SVD extension)."""
from setuptools import find_packages, setup

setup(
    name="rlheals",
    version="0.1.0",
    description="Reproduce 'RL Fine-Tuning Heals OOD Forgetting in SFT' as a Snakemake workflow",
    packages=find_packages(include=["rlheals", "rlheals.*"]),
    package_data={"rlheals": ["schemas/*.yaml"]},
    python_requires=">=3.10",
    install_requires=["numpy", "pandas", "pyyaml", "jsonschema"],
    entry_points={"console_scripts": ["rlheals=rlheals.cli:main"]},
)
