#!/usr/bin/env bash
# The cpu-profile grids, most informative first, as one resumable background chain for a 2-core
# machine (two 1-thread runs at once, niced). Every step skips what is stored, shares what another grid
# already trained (same config hash) and resumes unfinished runs from their checkpoints, so the chain
# can be killed and restarted at any time. Run it from a separate worktree, so the checkout you work
# in stays clean:
#     git worktree add --detach ../run HEAD && cd ../run
#     PY=$OLDPWD/.venv/bin/python OMP_WAIT_POLICY=PASSIVE setsid nohup bash scripts/cpu_chain.sh > chain.log 2>&1 &
# (PY: the checkout's environment; a worktree has none of its own)
# then, in the working checkout, `make collect RUN=../run` (copies the finished records it lacks and
# refreshes the pages that show them) and commit. Pause it while you run tests:
# pkill -STOP -f "paper_repro (sweep|train)" (and -CONT afterwards); a paused run's train_seconds
# include the pause.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD"
PY=${PY:-.venv/bin/python}
S="nice -n 19 $PY -m paper_repro sweep --profile cpu --jobs 2 --threads-per-job 1"
$S codebook_size --where num_codes=1024 --where code_dim=64
$S transvq_diagnosis
$S first_run
$S nsvq_ablation --where num_codes=1024
$S replacement
$S codebook_size --where num_codes=8192 --where code_dim=64
$S batch_steps
$S batch_size
$S causes
$S nsvq_ablation --where num_codes=8192
$S codebook_size --where num_codes=64 --where code_dim=64
$S codebook_size --where code_dim=3
$S staged
