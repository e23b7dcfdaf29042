# Sourced by the GPU scripts (gpu_check.sh, gpu_smollm2.sh): the packages a GPU machine lacks,
# from .whl/ as `python benchmarks/gpu_wheels.py` makes it, and the extension built for it.
SITE=${SITE:-/tmp/site}

# Join .whl/parts/<wheel>.partNN (pieces of a wheel too large for one transfer) into
# .whl/wheels/<wheel>.
gpu_join_parts() {
  local first name
  for first in .whl/parts/*.part00; do
    [ -f "$first" ] || continue
    name=${first%.part00}; name=${name##*/}
    mkdir -p .whl/wheels && cat .whl/parts/"$name".part* > ".whl/wheels/$name"
  done
}

# Install every wheel of .whl/wheels/ into $SITE (no index, no dependencies: the set is
# complete) and put $SITE first on PYTHONPATH and PATH. Returns 1 if the install fails (log
# in $1), 0 otherwise, also when there are no wheels.
gpu_install_wheels() {
  ls .whl/wheels/*.whl > /dev/null 2>&1 || return 0
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    .whl/wheels/*.whl > "$1" 2>&1 || return 1
  export PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH} PATH=$SITE/bin:$PATH
}

# Build the extensions in place with the CUDA one required (CUDA_ARCHS, default 90 = H100/H200);
# prints "build rc=<rc> in <s> s" and returns the build's status. Log in $1.
gpu_build() {
  local t0; t0=$(date +%s)
  CUDA_ARCHS=${CUDA_ARCHS:-90} FORCE_CUDA=1 timeout 200 python3 setup.py build_ext --inplace > "$1" 2>&1
  local rc=$?
  echo "build rc=$rc in $(( $(date +%s) - t0 )) s"
  return $rc
}
