#!/usr/bin/env bash
# The cpu-profile grids (scripts/cpu_plan.json: grid slices, most informative first) as one resumable
# background queue for a 2-core machine: two 1-thread runs at once, niced, and no core idle while a
# slice's last run finishes. The sweep skips what is stored, shares what another grid already trained
# (same config hash) and resumes unfinished runs from their checkpoints, so the chain can be killed and
# restarted at any time. Run it from a separate worktree, so the checkout you work in stays clean:
#     git worktree add --detach ../run HEAD && cd ../run
#     PY=$OLDPWD/.venv/bin/python OMP_WAIT_POLICY=PASSIVE setsid nohup bash scripts/cpu_chain.sh > chain.log 2>&1 &
# (PY: the checkout's environment; a worktree has none of its own)
# On a machine that will not be kept (a session of fixed length), give it the time left:
#     BUDGET=SECONDS [FIT=MARGIN] ... bash scripts/cpu_chain.sh
# runs `sweep --time-budget SECONDS --fit [MARGIN]`: it starts only runs expected to finish in time
# (stored similar runs' time x MARGIN, 1.25 unless FIT says otherwise), so none is lost half-trained.
# then, in the working checkout, `make collect RUN=../run` (copies the finished records it lacks and
# refreshes the pages that show them) and commit. Pause it while you run tests:
# pkill -STOP -f "paper_repro (sweep|train)" (and -CONT afterwards); a paused run's train_seconds
# include the pause.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD"
PY=${PY:-.venv/bin/python}
# `nice` alone does not yield to your tests: with the kernel's autogroup scheduling (on where
# /proc/sys/kernel/sched_autogroup_enabled is 1) each session (setsid) gets an equal share of the CPU
# whatever its processes' nice values, so a 2-thread test beside the chain got one core and ran its
# OpenMP regions up to 10x slower (measured on a 2-core AMD EPYC: the nonstationarity page took 11 min
# in the book build beside the chain; its main cell took 99 s once the chain's autogroup was niced).
# Niceness of the chain's whole autogroup fixes that.
if [ -w "/proc/$$/autogroup" ]; then echo 19 > "/proc/$$/autogroup" 2>/dev/null || true; fi
budget=()
if [ -n "${BUDGET:-}" ]; then budget=(--time-budget "$BUDGET" --fit ${FIT:-}); fi
exec nice -n 19 "$PY" -m paper_repro sweep --plan scripts/cpu_plan.json --profile cpu --jobs 2 --threads-per-job 1 "${budget[@]}"
