#!/usr/bin/env bash
# Run (part of) a named experiment grid, or an experiment notebook, on the GPU machine within one
# device command, resumably.
#
#   bash scripts/gpu_sweep.sh --prepare              # HERE, once: fill .data/ .weights/ .whl/ to carry
#   bash scripts/gpu_sweep.sh NAME PROFILE JOBS [BUDGET_S]    # THERE, via the device tool:
#       run(command="bash scripts/gpu_sweep.sh first_run gpu 8", carry=[".data", ".weights", ".whl"])
#   bash scripts/gpu_sweep.sh --check     # THERE, first (carry .weights, .whl): the training tests on
#       CUDA (PAPER_REPRO_TEST_DEVICE), ~30 s; BENCH=1 adds the quantizer benchmark. Then the sweep
#       (carry .data) on the still-warm machine.
#   NAME may be a plan file: `bash scripts/gpu_sweep.sh scripts/cpu_plan.json cpu 12` trains the
#   plan's unstored runs, costliest on the CPU first (ORDER=plan: in the plan's order); a lease too
#   short for a gpu-profile run still finishes about 12 cpu ones
#   bash scripts/gpu_sweep.sh --collect FILES_AT/results_NAME_PROFILE.tgz   # HERE: merge new records, refresh their pages
# The copy there may carry a stale .git: prefix the command with PAPER_REPRO_COMMIT=<git rev-parse HEAD here>
# (from a clean, committed tree) and the records' provenance says "<sha>+copy" (it wins over git there).
# The tree, shared/ and the carried paths travel within 64 MiB together: with a ~12 MiB tree,
# .data (30 MiB) and .weights (33 MiB) do not fit in one call; carry one, then the other on the
# still-warm machine (it keeps ignored paths between calls while warm).
#
# The same grid through Papermill (the notebook trains the runs itself, into a separate store, so
# CLI and notebook runs can be compared); papermill's wheels and the data do not fit in one 64 MiB
# carry, so it takes two calls on a warm machine:
#   ../shared/tools/gpu-wheels.sh                     # HERE: papermill, ipykernel, lpips (~26 MiB)
#   run(command="bash scripts/gpu_sweep.sh --install", carry=[".whl"])          # THERE: into .site/
#   run(command="bash scripts/gpu_sweep.sh --notebook first_training_run gpu 6", carry=[".data", ".weights"])
#   -> $OUT/first_training_run_gpu.ipynb (executed) and $OUT/results_nb_NAME_gpu.tgz
# (.site/ and .whl/ are git-ignored build outputs: the device keeps them between calls while warm.)
#
# What the sweep does on the device machine (torch + pandas there; no lpips, no Fashion-MNIST, no internet):
# 1. installs the carried lpips wheel into .site/ (unless already there), points PAPER_REPRO_WEIGHTS
#    at the carried fp16 LPIPS / VGG16 weights and FASHION_MNIST_DIR at the carried idx files;
#    checks all three load;
# 2. seeds the device-side results store runs/_results/ with the records already committed in
#    data/results/NAME/PROFILE (so finished runs are skipped) and runs
#    `python -m paper_repro sweep NAME --profile PROFILE --device cuda --jobs JOBS --time-budget T`:
#    JOBS worker processes share the one GPU (nproc/JOBS CPU threads each); at the budget each worker
#    checkpoints and exits 75;
# 3. writes every finished record (+ sample PNG) to $OUT/results_NAME_PROFILE.tgz, and a sweep log
#    with images/s per run and in total to $OUT/sweep_NAME_PROFILE.log.
# Checkpoints stay in runs/ (git-ignored). The device tool keeps ignored paths between commands only
# while the machine stays warm: call the same command again within its idle window to continue the
# partial runs; on a fresh machine partial runs restart from zero (finished ones are never redone,
# as long as their records were collected and committed here).
# SWEEP_DEVICE=cpu rehearses any of these modes on this machine (with profile ci).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# carried wheels -> .site/ (git-ignored), the packages the GPU image lacks
site_install() {
  ${PYTHON:-python3} -m pip install -q --upgrade --no-index --no-deps --no-compile --target "$root/.site" "$@" 2>&1 \
    | grep -v "^WARNING: Running pip as" || true
}

if [[ "${1:-}" == "--prepare" ]]; then
  py=${PYTHON:-.venv/bin/python}
  mkdir -p .data/fashion-mnist
  for f in train-images-idx3-ubyte.gz t10k-images-idx3-ubyte.gz; do
    [[ -f .data/fashion-mnist/$f ]] || cp /usr/share/datasets/fashion-mnist/$f .data/fashion-mnist/
  done
  [[ -f .weights/vgg16_features.pt ]] || make weights
  mkdir -p .whl                   # git-ignored (.gitignore)
  ls .whl/lpips-*.whl >/dev/null 2>&1 || "$py" -m pip download -q --no-deps --only-binary=:all: -d .whl lpips==0.1.4
  du -shc .data .weights .whl
  echo "carry [\".data\", \".weights\", \".whl\"] (must total < 64 MiB)"
  exit 0
fi

if [[ "${1:-}" == "--collect" ]]; then
  # the records the repo lacks -> data/results, then re-execute the pages that show them (and the
  # verdict table), as `make collect` does for a background sweep; NO_REFRESH=1: copy only
  tgz=${2:?path of results_NAME_PROFILE.tgz}
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  tar xzf "$tgz" -C "$tmp"
  for profile in $(find "$tmp" -mindepth 2 -maxdepth 2 -type d -printf '%f\n' | sort -u); do
    ${PYTHON:-.venv/bin/python} -m paper_repro.build.book collect "$tmp" --profile "$profile" \
      ${NO_REFRESH:+--no-refresh}
  done
  exit 0
fi

if [[ "${1:-}" == "--check" ]]; then     # THERE, first call (carry .weights, .whl): the GPU code paths
  # the CPU tests cannot reach: the training tests' tiny runs on CUDA (bit-exact resume and the rest,
  # ~30 s; on 2026-12-04 they found two CUDA-only bugs), then the quantizer benchmark if asked (BENCH=1)
  PY=${PYTHON:-python3}
  OUT=${OUT:-$PWD/_build/gpu_out}; mkdir -p "$OUT"
  if ls .whl/*.whl >/dev/null 2>&1; then
    site_install $(ls .whl/*.whl | grep -v '/cuda_')   # never shadow the image's CUDA Python bindings
  fi
  export PYTHONPATH=$PWD:$PWD/.site PYTHONUNBUFFERED=1 PAPER_REPRO_TEST_DEVICE=${SWEEP_DEVICE:-cuda}
  [[ -d .weights ]] && export PAPER_REPRO_WEIGHTS=$PWD/.weights
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  set +e
  timeout "${CHECK_TIMEOUT:-150}" $PY -m pytest -q tests/training -p no:cacheprovider 2>&1 | tee "$OUT/check_training_tests.log" | tail -25
  rc=${PIPESTATUS[0]}
  if [[ ${BENCH:-0} == 1 ]]; then
    timeout 200 $PY benchmarks/bench_quantizers.py 2>&1 | tee "$OUT/bench.log" | tail -4
    cp data/results/bench_quantizers/*.csv data/results/bench_quantizers/*.provenance.json "$OUT"/ 2>/dev/null
  fi
  echo "== check done (training tests exit $rc)"
  exit 0
fi

if [[ "${1:-}" == "--install" ]]; then   # THERE: every carried wheel into .site/
  PY=${PYTHON:-python3}
  ls .whl/*.whl >/dev/null 2>&1 || { echo "no wheels in .whl/: run ../shared/tools/gpu-wheels.sh here and carry .whl" >&2; exit 1; }
  wheels=$(ls .whl/*.whl | grep -v '/cuda_')   # never shadow the image's CUDA Python bindings
  site_install $wheels
  PYTHONPATH=$PWD/.site $PY -c "import papermill, ipykernel, lpips; print('installed in .site: papermill', papermill.__version__, '/ ipykernel', ipykernel.__version__)"
  exit 0
fi

mode=sweep
if [[ "${1:-}" == "--notebook" ]]; then mode=notebook; shift; fi
name=${1:?usage: gpu_sweep.sh [--notebook] NAME PROFILE JOBS [BUDGET_S]}
plan=""                           # NAME may be a plan file (scripts/cpu_plan.json): its grid slices, in order
if [[ $name == *.json ]]; then plan=$name; name=$(basename "$name" .json); fi
profile=${2:-gpu}
jobs=${3:-8}
budget=${4:-540}                  # whole command, seconds (device limit: 600)
device=${SWEEP_DEVICE:-cuda}      # SWEEP_DEVICE=cpu: a local rehearsal of the whole flow
ncpu=$(nproc)
threads=${SWEEP_THREADS:-$(( ncpu / jobs > 0 ? ncpu / jobs : 1 ))}   # CPU threads per run: no oversubscription
t0=$(date +%s)
OUT=${OUT:-$PWD/_build/gpu_out}
mkdir -p "$OUT"
log="$OUT/${mode}_${name}_${profile}.log"
exec > >(tee -a "$log") 2>&1

PY=${PYTHON:-python3}
site=$PWD/.site                   # git-ignored; packages the GPU image lacks
export PYTHONPATH=$PWD:$site PATH=$site/bin:$PATH
if [[ ! -d $site/lpips ]] && ls .whl/lpips-*.whl >/dev/null 2>&1; then
  site_install .whl/lpips-*.whl
fi
[[ -d .weights ]] && export PAPER_REPRO_WEIGHTS=$PWD/.weights
[[ -d .data/fashion-mnist ]] && export FASHION_MNIST_DIR=$PWD/.data/fashion-mnist
if [[ $mode == notebook ]]; then   # the notebook trains its own runs, apart from the CLI's
  export PAPER_REPRO_RESULTS=$PWD/runs/_results_nb PAPER_REPRO_RUNS=$PWD/runs/nb
else
  export PAPER_REPRO_RESULTS=${SWEEP_STORE:-$PWD/runs/_results}   # SWEEP_STORE: a rehearsal's own store
fi
export PYTHONUNBUFFERED=1

echo "== $(date -u +%FT%TZ) $mode $name profile=$profile jobs=$jobs budget=${budget}s"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
$PY - "$device" <<'EOF'
# preflight: data and metric weights load, CUDA present (fails in seconds, not after training)
import sys
import torch
from paper_repro import metrics as M
from paper_repro.data import load_tensor_dataset
dev = sys.argv[1]
assert dev == "cpu" or torch.cuda.is_available(), "no CUDA device"
x = load_tensor_dataset("fashion_mnist", "val", limit=8)
M.lpips_model("alex", dev); M.vgg16_features_model(224, dev)
name = torch.cuda.get_device_name(0) if dev != "cpu" else "cpu"
print(f"preflight ok: torch {torch.__version__}, {name}, data {tuple(x.shape)}")
EOF

if [[ $mode == notebook ]]; then
  nb_budget=$(( budget - ($(date +%s) - t0) - 90 ))   # margin: kernel start, last evaluation, tarball
  (( nb_budget > 30 )) || { echo "not enough time left ($nb_budget s)"; exit 1; }
  set +e
  $PY -m papermill "notebooks/$name.ipynb" "$OUT/${name}_${profile}.ipynb" -k python3 \
      -p profile "$profile" -p device "$device" -p jobs "$jobs" -p time_budget_s "$nb_budget"
  rc=$?
  set -e
  [[ -d $PAPER_REPRO_RESULTS ]] && tar czf "$OUT/results_nb_${name}_${profile}.tgz" -C "$PAPER_REPRO_RESULTS" .
  echo "== done in $(( $(date +%s) - t0 )) s (papermill exit $rc: 0 complete; otherwise see the notebook's last cell — a time-budget stop says to rerun, which resumes)"
  exit 0
fi

# committed records -> device-side store, so finished runs are skipped (a plan: every grid's)
for d in data/results/*/"$profile"; do
  [[ -d $d ]] || continue
  g=$(basename "$(dirname "$d")")
  [[ -n $plan || $g == "$name" ]] || continue
  mkdir -p "$PAPER_REPRO_RESULTS/$g/$profile"
  cp -n "$d"/* "$PAPER_REPRO_RESULTS/$g/$profile/" 2>/dev/null || true
done
# a plan: the runs this CPU would take longest over first (ORDER=plan: the plan's order); on the GPU a
# cpu-profile run takes about the same time whatever its shape, so these save the most CPU hours
what=("$name"); [[ -n $plan ]] && what=(--plan "$plan" --order "${ORDER:-costly}")

elapsed=$(( $(date +%s) - t0 ))
train_budget=$(( budget - elapsed - 90 ))   # margin: final evaluation of running workers + tarball
(( train_budget > 30 )) || { echo "not enough time left ($train_budget s)"; exit 1; }
set +e
$PY -m paper_repro sweep "${what[@]}" --profile "$profile" --device "$device" --jobs "$jobs" \
    --threads-per-job "$threads" --time-budget "$train_budget"
rc=$?
set -e

# progress of every run (finished or checkpointed) and throughput
$PY - "${plan:-$name}" "$profile" <<'EOF'
import sys
from pathlib import Path
from paper_repro.experiments.grids import get_grid
from paper_repro.experiments.runner import load_plan, plan_configs, run_dir_for
from paper_repro.experiments.store import record_path
from paper_repro.training import config_hash, load_checkpoint
name, profile = sys.argv[1:3]
tot_img = tot_s = 0.0
cfgs = ([c for _, cs in plan_configs(load_plan(name), profile) for c in cs] if name.endswith(".json")
        else get_grid(name, profile))
for cfg in cfgs:
    h = config_hash(cfg)
    done = record_path(cfg.experiment, profile, h).exists()
    ck = run_dir_for(cfg) / "checkpoint.pt"
    if ck.exists():
        st = load_checkpoint(ck)["state"]
        ips = st["train_images"] / st["train_seconds"] if st["train_seconds"] else 0.0
        tot_img += st["train_images"]; tot_s = max(tot_s, st["train_seconds"])
        print(f"{h} {cfg.quantizer:8s} seed {cfg.seed}: step {st['global_step']}, epoch {st['epoch']}"
              f"/{cfg.epochs}, {ips:.0f} images/s{' DONE' if done else ''}")
    else:
        print(f"{h} {cfg.quantizer:8s} seed {cfg.seed}: {'DONE (stored)' if done else 'not started'}")
print(f"aggregate: {tot_img / tot_s if tot_s else 0:.0f} images/s over concurrent runs (approx.)")
EOF

new=$(shopt -s nullglob; cd "$PAPER_REPRO_RESULTS" 2>/dev/null && for f in */"$profile"/*; do [[ -e $root/data/results/$f ]] || echo "$f"; done)
if [[ -n $new ]]; then            # the records (and sample images) this machine made, not the committed ones
  (cd "$PAPER_REPRO_RESULTS" && tar czf "$OUT/results_${name}_${profile}.tgz" $new)
  echo "records: $(grep -c '\.json$' <<< "$new") new in $OUT/results_${name}_${profile}.tgz"
fi
echo "== done in $(( $(date +%s) - t0 )) s (sweep exit $rc: 0 complete, 75 partial - rerun to continue, 1 failed)"
exit 0
