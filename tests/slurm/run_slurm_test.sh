#!/usr/bin/env bash
# Real SLURM test: run the smoke workflow through sbatch on a one-node SLURM on localhost.
#
#   bash tests/slurm/run_slurm_test.sh [TARGET...]      (as root; `make test-slurm`)
#
# Installs Debian's slurm-wlm and munge (apt) when missing, writes a one-node slurm.conf
# for this machine (CPUs from nproc, RealMemory from free), starts munged, slurmctld and
# slurmd, runs `snakemake --profile profiles/slurm --configfile tests/configs/smoke.yaml`
# in a temporary folder, checks that the outputs exist, that every job went through
# sbatch, and that a rerun schedules nothing. The daemons it started are stopped by PID
# on exit, pass or fail. Without TARGETs the whole smoke workflow runs.
#
# Environment: SLURM_TEST_SNAKEFILE (default: the repository's Snakefile) runs another
# workflow instead; SLURM_TEST_TIMEOUT (s, default 900) bounds the workflow run;
# SLURM_TEST_KEEP=1 keeps the temporary folders; SLURM_TEST_PREEMPT_ONLY=1 runs only the
# time-limit test; SLURM_TEST_PREEMPT_STEPS (default 20000) is that SFT job's length; VENV (default .venv) holds snakemake
# and snakemake-executor-plugin-slurm.
#
# Pitfalls handled here (see docs/cluster.md, "SLURM"): no accounting, so the
# status check uses squeue (sacct would hang the run); MinJobAge stays at 300 s, well
# above 3x the first-check delay; slurm.conf lives at /etc/slurm/slurm.conf because the
# job-step plugin drops SLURM_CONF inside jobs.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
TIMEOUT="${SLURM_TEST_TIMEOUT:-900}"
KEEP="${SLURM_TEST_KEEP:-0}"
START=$(date +%s)

log() { echo "[slurm-test $(( $(date +%s) - START ))s] $*"; }
fail() { log "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (installs packages and starts SLURM daemons)"
[ -x "$VENV/bin/snakemake" ] || fail "no snakemake in $VENV (run make install)"
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# ------------------------------------------------------------------ install
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
python -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
  || fail "snakemake-executor-plugin-slurm is not installed in $VENV (it is in requirements.txt)"
log "$(slurmctld -V), $(snakemake --version | sed 's/^/snakemake /'), plugin $(python -c 'import importlib.metadata as m; print(m.version("snakemake-executor-plugin-slurm"))')"

# ------------------------------------------------------------------ state and cleanup
SLURM_DIR="$(mktemp -d /tmp/rlheals-slurm.XXXXXX)"
WORK="$(mktemp -d /tmp/rlheals-slurm-work.XXXXXX)"
mkdir -p "$SLURM_DIR"/{state,spool,log}
CONF=/etc/slurm/slurm.conf
CONF_BACKUP=""
PIDS=()            # daemons this script started, stopped in reverse order
MUNGED_PID=""
SMK_PID=""

cleanup() {
  local rc=$?
  set +e
  if [ -n "$SMK_PID" ]; then
    kill -KILL -- "-$SMK_PID" 2>/dev/null || kill -KILL "$SMK_PID" 2>/dev/null
  fi
  if command -v scancel >/dev/null && [ ${#PIDS[@]} -gt 0 ]; then
    scancel --quiet --user=root 2>/dev/null
    # Let slurmd end the jobs' processes before it is stopped itself.
    for _ in $(seq 30); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    local pid=${PIDS[$i]}
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ -n "$MUNGED_PID" ]; then
    kill -TERM "$MUNGED_PID" 2>/dev/null
  fi
  if [ -n "$CONF_BACKUP" ]; then
    mv -f "$CONF_BACKUP" "$CONF"
  elif [ -L "$CONF" ] && [ "$(readlink "$CONF")" = "$SLURM_DIR/slurm.conf" ]; then
    rm -f "$CONF"
  fi
  if [ "$rc" != 0 ]; then
    log "--- slurmctld log (tail)"; tail -n 30 "$SLURM_DIR/log/slurmctld.log" 2>/dev/null
    log "--- slurmd log (tail)"; tail -n 30 "$SLURM_DIR/log/slurmd.log" 2>/dev/null
    for f in $(find "$WORK/.snakemake/slurm_logs" -name '*.log' 2>/dev/null | head -n 5); do
      log "--- $f (tail)"; tail -n 20 "$f"
    done
  fi
  if [ "$KEEP" = 1 ]; then
    log "kept $SLURM_DIR and $WORK"
  else
    rm -rf "$SLURM_DIR" "$WORK"
  fi
  log "finished with exit code $rc after $(( $(date +%s) - START )) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ slurm.conf
CPUS=$(nproc)
MEM_TOTAL=$(free -m | awk '/^Mem:/ {print $2}')
REAL_MEM=$(( MEM_TOTAL * 8 / 10 ))
cat > "$SLURM_DIR/slurm.conf" <<EOF
ClusterName=rlheals-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
SwitchType=switch/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SchedulerType=sched/backfill
MinJobAge=300
SlurmctldDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p /etc/slurm
if [ -e "$CONF" ] || [ -L "$CONF" ]; then
  CONF_BACKUP="$SLURM_DIR/slurm.conf.orig"
  mv -f "$CONF" "$CONF_BACKUP"
fi
ln -s "$SLURM_DIR/slurm.conf" "$CONF"
log "one-node slurm.conf: CPUs=$CPUS RealMemory=${REAL_MEM}MB ($SLURM_DIR)"

# ------------------------------------------------------------------ daemons
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running; using it"
else
  [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.25; done
  MUNGED_PID=$(cat /run/munge/munged.pid)
  munge -n | unmunge >/dev/null || fail "munged does not answer"
  log "munged started (pid $MUNGED_PID)"
fi
if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
  fail "a slurmctld or slurmd is already running here; stop it first"
fi
slurmctld -D >"$SLURM_DIR/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -N localhost >"$SLURM_DIR/log/slurmd.out" 2>&1 &
PIDS+=($!)
log "slurmctld (pid ${PIDS[0]}) and slurmd (pid ${PIDS[1]}) started"
for _ in $(seq 60); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1 || true)
  case "$state" in idle*|mix*) break ;; esac
  sleep 1
done
case "$state" in idle*|mix*) ;; *) fail "node did not come up (state '$state')" ;; esac
log "node is $state; sbatch check: $(sbatch --parsable --wrap true -o /dev/null) submitted"

# SLURM_TEST_PREEMPT_ONLY=1 runs only the last part (a job stopped at its time limit).
if [ "${SLURM_TEST_PREEMPT_ONLY:-0}" != 1 ]; then
# ------------------------------------------------------------------ the workflow
SMK=(snakemake --snakefile "${SLURM_TEST_SNAKEFILE:-$ROOT/Snakefile}" --directory "$WORK"
     --configfile "$ROOT/tests/configs/smoke.yaml" "$ROOT/tests/configs/smoke_rl.yaml"
     --profile "$ROOT/profiles/slurm")
# Settings for this one small machine, on top of the profile: the partition written
# above, memory that fits it, a queue three jobs per CPU deep (SLURM starts the next job
# the moment a CPU frees, instead of waiting for Snakemake's next status check), fast
# polling, no retries (a failure must show), and the SLURM logs of successful jobs kept
# as proof of submission.
SMK_RUN=(--jobs $(( CPUS * 3 )) --max-threads "$CPUS"
         --default-resources slurm_partition=debug mem_mb=2000 runtime=30
         --set-resources base_model:mem_mb=2000 sft:mem_mb=2000 rl:mem_mb=2000 evaluate:mem_mb=2000 analyze:mem_mb=2000 reference_svd:mem_mb=2000 edit:mem_mb=2000
         --slurm-init-seconds-before-status-checks 5 --latency-wait 10 --retries 0
         --slurm-keep-successful-logs)

PLAN="$SLURM_DIR/log/plan.out"
"${SMK[@]}" "${SMK_RUN[@]}" -n --quiet=rules "$@" >"$PLAN" 2>&1 || { cat "$PLAN"; fail "dry run failed"; }
EXPECTED=$(awk '$1=="total" {print $2}' "$PLAN" | tail -n 1)
log "dry run: ${EXPECTED:-0} jobs planned"
sed -n '/^job /,/^total/p' "$PLAN" | awk '!seen[$0]++'
[ -n "$EXPECTED" ] && [ "$EXPECTED" -gt 0 ] || fail "nothing to run (is the workflow empty?)"

log "running the workflow through SLURM (bound: ${TIMEOUT}s)"
RUN_START=$(date +%s)
set +e
timeout -k 30 "$TIMEOUT" "${SMK[@]}" "${SMK_RUN[@]}" "$@" >"$SLURM_DIR/log/snakemake.out" 2>&1 &
SMK_PID=$!       # timeout's own process group: killed as a whole if this script is stopped
wait "$SMK_PID"
RC=$?
SMK_PID=""
set -e
tail -n 15 "$SLURM_DIR/log/snakemake.out"
[ "$RC" = 124 ] || [ "$RC" = 137 ] && fail "the workflow did not finish within ${TIMEOUT}s"
[ "$RC" = 0 ] || fail "snakemake exited with $RC (log: $SLURM_DIR/log/snakemake.out)"

# ------------------------------------------------------------------ checks
# 1. Every output is there and up to date: a dry rerun schedules nothing.
"${SMK[@]}" "${SMK_RUN[@]}" -n "$@" >"$SLURM_DIR/log/rerun.out" 2>&1 \
  || { cat "$SLURM_DIR/log/rerun.out"; fail "dry rerun failed"; }
grep -q "Nothing to be done" "$SLURM_DIR/log/rerun.out" \
  || { cat "$SLURM_DIR/log/rerun.out"; fail "outputs missing or outdated after the run"; }
# 2. Every non-local job went through sbatch: slurmctld saw the submissions, and the
#    plugin kept one SLURM log per job under .snakemake/slurm_logs/rule_<name>/.
SUBMITTED=$(grep -c "_slurm_rpc_submit_batch_job: JobId=" "$SLURM_DIR/log/slurmctld.log" || true)
SUBMITTED=$(( SUBMITTED - 1 ))   # minus the sbatch check above
LOGS=$(find "$WORK/.snakemake/slurm_logs" -name '*.log' 2>/dev/null | wc -l)
RULES=$(find "$WORK/.snakemake/slurm_logs" -mindepth 1 -maxdepth 1 -type d -printf '%f ' 2>/dev/null)
LOCAL_JOBS=$(grep -c "^localrule " "$SLURM_DIR/log/snakemake.out" || true)
# Jobs run in all: the final "N of N steps (100%) done" (checkpoints may add jobs to the plan).
RAN=$(grep -oE "^[0-9]+ of [0-9]+ steps \(100%\) done" "$SLURM_DIR/log/snakemake.out" | tail -n 1 | cut -d' ' -f1)
[ -n "$RAN" ] || fail "snakemake did not report 100% done"
log "slurmctld accepted $SUBMITTED batch jobs; SLURM job logs: $LOGS ($RULES); local jobs: $LOCAL_JOBS"
[ "$SUBMITTED" -gt 0 ] || fail "no job was submitted through sbatch"
[ "$SUBMITTED" -eq $(( RAN - LOCAL_JOBS )) ] \
  || fail "expected $(( RAN - LOCAL_JOBS )) sbatch jobs ($RAN jobs, $LOCAL_JOBS local), slurmctld saw $SUBMITTED"
[ "$LOGS" -eq "$SUBMITTED" ] || fail "expected $SUBMITTED SLURM job logs, found $LOGS"
grep -q "Finished jobid" "$SLURM_DIR/log/snakemake.out" || fail "snakemake reported no finished job"
log "PASS: $RAN jobs ($SUBMITTED through sbatch, $LOCAL_JOBS local) in $(( $(date +%s) - RUN_START )) s; outputs complete"

# ------------------------------------------------------------------ a multi-process job
# One SFT length trained by 2 processes (compute.processes: 2; accelerate launch, gloo on
# the CPU) inside one SLURM job that asks for both processes' threads and memory.
MP_WORK="$WORK-multiprocess"
mkdir -p "$MP_WORK"
MP_CFG="$MP_WORK/two_processes.yaml"
printf 'replicates: 1\ncompute: {device: cpu, threads: 1, processes: 2}\n' >"$MP_CFG"
MP_START=$(date +%s)
set +e
# (the target first: --configfile and --set-resources take every word after them)
timeout -k 30 600 snakemake results/s0/models/sft-10 --snakefile "${SLURM_TEST_SNAKEFILE:-$ROOT/Snakefile}" \
  --directory "$MP_WORK" --profile "$ROOT/profiles/slurm" "${SMK_RUN[@]}" --set-resources sft:mem_mb=4000 \
  --configfile "$ROOT/tests/configs/smoke.yaml" "$MP_CFG" >"$SLURM_DIR/log/multiprocess.out" 2>&1
RC=$?
set -e
tail -n 5 "$SLURM_DIR/log/multiprocess.out"
[ "$RC" = 0 ] || fail "the 2-process SFT job failed (rc $RC; log: $SLURM_DIR/log/multiprocess.out)"
grep -q "launching 2 training processes" "$MP_WORK"/logs/sft/s0-10.log \
  || fail "the SFT job did not run as 2 processes (see $MP_WORK/logs/sft/s0-10.log)"
[ -f "$MP_WORK/results/s0/models/sft-10/config.json" ] || fail "the 2-process SFT job exported no model"
log "PASS: SFT in 2 processes inside one SLURM job ($(( $(date +%s) - MP_START )) s)"
fi

# ------------------------------------------------------------------ a job stopped at its time limit
# One SFT length whose work outlasts its SLURM time limit (3 minutes), with no periodic save
# (save_every above the length): without the signal every step would be lost. The profile
# asks SLURM for SIGTERM 60 s before the limit (--signal=TERM@60 here; 180 s in the
# profile); the trainer saves at the next step boundary, requeues its own job (same id, no
# Snakemake retry: --retries 0) and the requeued job resumes from the saved step. The same
# length trained without SLURM, uninterrupted, in parallel, must give the same model bytes.
PRE_WORK="$WORK-preempt"
REF_WORK="$WORK-uninterrupted"
mkdir -p "$PRE_WORK" "$REF_WORK"
PRE_STEPS="${SLURM_TEST_PREEMPT_STEPS:-20000}"
PRE_CFG="$PRE_WORK/long_sft.yaml"
printf 'replicates: 1\nsft: {steps: [%s], save_every: 1000000, eval_every: 1000000}\nrl: {fork_from: [%s]}\n' \
  "$PRE_STEPS" "$PRE_STEPS" >"$PRE_CFG"
PRE_TARGET="results/s0/models/sft-$PRE_STEPS"
PRE_START=$(date +%s)
snakemake "$PRE_TARGET" --snakefile "${SLURM_TEST_SNAKEFILE:-$ROOT/Snakefile}" --directory "$REF_WORK" --cores 1 \
  --configfile "$ROOT/tests/configs/smoke.yaml" "$PRE_CFG" >"$SLURM_DIR/log/uninterrupted.out" 2>&1 &
REF_PID=$!
set +e
timeout -k 30 900 snakemake "$PRE_TARGET" --snakefile "${SLURM_TEST_SNAKEFILE:-$ROOT/Snakefile}" \
  --directory "$PRE_WORK" --profile "$ROOT/profiles/slurm" --jobs 2 --max-threads "$CPUS" \
  --default-resources slurm_partition=debug mem_mb=2000 runtime=30 \
  --slurm-init-seconds-before-status-checks 5 --latency-wait 10 --retries 0 --slurm-keep-successful-logs \
  --set-resources base_model:mem_mb=2000 sft:mem_mb=2000 sft:runtime=3 "sft:slurm_extra='--signal=TERM@60'" \
  --configfile "$ROOT/tests/configs/smoke.yaml" "$PRE_CFG" >"$SLURM_DIR/log/preempt.out" 2>&1
RC=$?
wait "$REF_PID"
REF_RC=$?
set -e
tail -n 5 "$SLURM_DIR/log/preempt.out"
PRE_LOG="$PRE_WORK/logs/sft/s0-$PRE_STEPS.log"
[ "$REF_RC" = 0 ] || { tail -n 20 "$SLURM_DIR/log/uninterrupted.out"; fail "the uninterrupted SFT run failed"; }
[ "$RC" = 0 ] || { tail -n 30 "$PRE_LOG" 2>/dev/null; fail "the SFT job stopped at its time limit did not finish (rc $RC; log: $SLURM_DIR/log/preempt.out)"; }
# The job's own log is rewritten when it runs again; each stop is recorded in the run folder.
STOPS_FILE=$(ls "$PRE_WORK"/results/s0/train/sft/*/stops.log 2>/dev/null | head -n 1 || true)
[ -n "$STOPS_FILE" ] || { tail -n 30 "$PRE_LOG"; fail "the SFT job recorded no stop on SLURM's signal (no stops.log)"; }
sed 's/^/    /' "$STOPS_FILE"
STOPS=$(wc -l <"$STOPS_FILE")
SAVED=$(grep -oE "at step [0-9]+" "$STOPS_FILE" | grep -oE "[0-9]+" | tr '\n' ' ')
LAST=$(grep -oE "at step [0-9]+" "$STOPS_FILE" | tail -n 1 | grep -oE "[0-9]+")
[ "$(grep -c "requeued" "$STOPS_FILE")" = "$STOPS" ] && ! grep -q "not requeued" "$STOPS_FILE" \
  || fail "a stopped SFT job did not requeue itself ($STOPS_FILE)"
RESUMED=$(grep -oE "SFT to step $PRE_STEPS from step [0-9]+" "$PRE_LOG" | head -n 1 | grep -oE "[0-9]+$" || true)
[ "$RESUMED" = "$LAST" ] || fail "the requeued job resumed from step '${RESUMED}', not from the step saved at the stop ($LAST)"
REQUEUES=$(grep -c "Requeuing JobId=" "$SLURM_DIR/log/slurmctld.log" || true)
A=$(sha256sum "$PRE_WORK/$PRE_TARGET/model.safetensors" | cut -c1-16)
B=$(sha256sum "$REF_WORK/$PRE_TARGET/model.safetensors" | cut -c1-16)
[ "$A" = "$B" ] || fail "the stopped-and-resumed SFT model ($A) differs from the uninterrupted one ($B)"
log "PASS: SFT to $PRE_STEPS steps stopped by SLURM's signal $STOPS time(s) (saved at step(s) $SAVED), requeued $REQUEUES time(s) under the same job id, no retry spent; resumed from step $RESUMED (0 steps lost); final model = the uninterrupted run's (sha256 $A) ($(( $(date +%s) - PRE_START )) s)"
