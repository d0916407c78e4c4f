"""Command line: ``python -m paper_repro {train,sweep,results,grids} ...`` (see ``--help``)."""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from . import exitcodes
from .data import DATASETS
from .profiles import AUTO, PROFILES
from .training.config import BACKBONES, EVAL_METRICS, QUANTIZERS

EPILOG = textwrap.dedent("""\
    examples:
      python -m paper_repro train --quantizer nsvq --num-codes 1024 --code-dim 64 --profile ci
      python -m paper_repro train --config run.json --run-dir runs/mine --resume
      python -m paper_repro sweep first_run --profile gpu --device cuda --jobs 8 --time-budget 540
      python -m paper_repro results first_run --profile gpu
    """)


def json_object(s):
    try:
        v = json.loads(s)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {s!r}") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {s!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from .experiments.runner import FIT_MARGIN, ORDERS

    ap = argparse.ArgumentParser(
        prog="python -m paper_repro",
        description="paper-repro: train VQ autoencoders (NS-VQ, TransVQ and baselines), run named "
                    "experiment grids, show stored results.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    tr = sub.add_parser("train", help="train one run (from a JSON config or flags)",
                        description="Train one VQ autoencoder. Start from --config FILE or from the "
                                    "--profile defaults; flags override either.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = tr.add_argument_group("what to train")
    src.add_argument("--config", help="JSON file with TrainConfig fields (data, not code)")
    src.add_argument("--profile", default=None, choices=list(PROFILES),
                     help="start from this profile's defaults (default ci when no --config)")
    src.add_argument("--quantizer", help=", ".join(QUANTIZERS))
    src.add_argument("--num-codes", type=int, help="codebook size K")
    src.add_argument("--code-dim", type=int, help="code dimension D")
    src.add_argument("--quantizer-options", type=json_object, metavar="JSON",
                     help='quantizer options as JSON, e.g. \'{"flavor": "official"}\'')
    src.add_argument("--backbone", choices=list(BACKBONES))
    src.add_argument("--width", type=float, help="backbone width multiplier (1.0 = paper)")
    src.add_argument("--dataset", choices=list(DATASETS))
    src.add_argument("--data-root", help="folder holding the dataset")
    src.add_argument("--epochs", type=int)
    src.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    src.add_argument("--batch-size", type=int)
    src.add_argument("--lr", type=float)
    src.add_argument("--seed", type=int)
    src.add_argument("--train-images", type=int, help="use a subset of this many training images")
    src.add_argument("--eval-images", type=int, help="evaluate on this many images")
    src.add_argument("--amp", choices=["bf16"], help="bf16 autocast (default fp32)")
    src.add_argument("--eval-metrics", help="comma-separated subset of " + ",".join(EVAL_METRICS))
    src.add_argument("--experiment", help="experiment name (results go to <results>/<experiment>/<profile>/)")
    run = tr.add_argument_group("how to run it")
    run.add_argument("--device", help="cpu, cuda or cuda:N")
    run.add_argument("--run-dir", help="checkpoint folder (default runs/<experiment>/<profile>/<hash>)")
    run.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    run.add_argument("--restart", action="store_true", help="discard the run folder's checkpoint and record "
                     "and start again (without --resume or --restart an existing checkpoint is never overwritten)")
    run.add_argument("--checkpoint-every", type=int, help="checkpoint every N optimiser steps")
    run.add_argument("--threads", type=int, help="torch CPU threads for this process")
    run.add_argument("--deadline", type=float, help=f"unix time: checkpoint and exit (code {exitcodes.INTERRUPTED}) when reached")
    run.add_argument("--publish", action="store_true", help="copy the record into the results store")
    run.add_argument("--results-root", help="results store root (default by profile; see experiments.store)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--dry-run", action="store_true", help="print the config and its hash, do not train")

    sw = sub.add_parser("sweep", help="run a named grid (or a plan of grid slices), skipping stored runs",
                        description="Run every config of a named grid that is not stored yet; resumes "
                                    "partial runs from their checkpoints. With --plan FILE instead of a "
                                    "name: the grid slices the JSON file lists, in order, as one queue.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sw.add_argument("name", nargs="?", help="grid name (see `grids`)")
    sw.add_argument("--plan", type=Path, help='JSON file {"steps": [{"grid": NAME, "where": {FIELD: VALUE}}, '
                    '...]} (e.g. scripts/cpu_plan.json); instead of a name')
    sw.add_argument("--profile", default="ci", choices=list(PROFILES))
    sw.add_argument("--device", default="cpu")
    sw.add_argument("--jobs", type=int, default=1, help="worker processes at once (1: in this process)")
    sw.add_argument("--threads-per-job", type=int, help="CPU threads per worker (default 1 on cpu, 2 on cuda)")
    sw.add_argument("--time-budget", type=float, help="seconds; workers checkpoint and stop before it ends")
    sw.add_argument("--fit", nargs="?", type=float, const=FIT_MARGIN, metavar="MARGIN", help="with --time-budget: "
                    "start only the runs expected to finish within it: stored similar runs' time (for a "
                    f"checkpointed run, the rest of it) x MARGIN ({FIT_MARGIN:g} when not given), so none is left "
                    "half-trained on a machine that will not be there for the next sweep; the others wait "
                    "for a later sweep")
    sw.add_argument("--order", default="plan", choices=list(ORDERS), help="plan: the runs in the grid's "
                    "or plan's order; costly: the ones stored similar runs say take longest first (for a "
                    "lent GPU, where a small run's time hardly depends on its shape)")
    sw.add_argument("--results-root", help="results store root (default by profile)")
    sw.add_argument("--runs-root", help="checkpoint root (default runs/)")
    sw.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                    help="run only the configs with this field value (repeatable; VALUE is JSON, "
                         "else a string), e.g. --where num_codes=1024 --where code_dim=64")
    sw.add_argument("--dry-run", action="store_true", help="train nothing: say what is stored, what would "
                    "run, and an estimate of its training time from the stored records of similar runs")
    sw.add_argument("--fresh", action="store_true", help="ignore stored results and checkpoints; rerun all "
                    "(then commit the new records under data/results/NAME/PROFILE/)")

    rs = sub.add_parser("results", help="print the stored results table of a grid",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    rs.add_argument("name")
    rs.add_argument("--profile", default=AUTO, choices=[*PROFILES, AUTO],
                    help="auto: the highest-scale profile with stored runs")
    rs.add_argument("--results-root")
    rs.add_argument("--all-columns", action="store_true")

    sub.add_parser("grids", help="list the named grids and their run counts")
    return ap


_FLAG_FIELDS = {"quantizer": "quantizer", "num_codes": "num_codes", "code_dim": "code_dim",
                "quantizer_options": "quantizer_options", "backbone": "backbone", "width": "width",
                "dataset": "dataset", "data_root": "data_root", "epochs": "epochs",
                "max_steps": "max_steps", "batch_size": "batch_size", "lr": "lr", "seed": "seed",
                "train_images": "train_images", "eval_images": "eval_images", "amp": "amp",
                "experiment": "experiment", "device": "device", "checkpoint_every": "checkpoint_every",
                "threads": "num_threads"}


def config_from_args(args):
    from .training import TrainConfig

    overrides = {f: getattr(args, a) for a, f in _FLAG_FIELDS.items() if getattr(args, a) is not None}
    if args.eval_metrics is not None:
        overrides["eval_metrics"] = [m.strip() for m in args.eval_metrics.split(",") if m.strip()]
    if args.no_progress:
        overrides["progress"] = False
    if args.config:
        cfg = TrainConfig.from_json(args.config)
        if args.profile:
            overrides["profile"] = args.profile
        return cfg.replace(**overrides) if overrides else cfg
    return TrainConfig.from_profile(args.profile or "ci", **overrides)


def cmd_train(args) -> int:
    from .experiments import store
    from .experiments.runner import run_dir_for
    from .training import NonFiniteLossError, TrainingInterrupted, config_hash, train
    from .training.trainer import CHECKPOINT_NAME, RECORD_NAME, SAMPLES_NAME, install_signal_handlers

    cfg = config_from_args(args)
    h = config_hash(cfg)
    if args.dry_run:
        print(cfg.to_json())
        print(f"config hash: {h}")
        return 0
    run_dir = Path(args.run_dir) if args.run_dir else run_dir_for(cfg)
    if args.resume and args.restart:
        print("error: --resume and --restart exclude each other", file=sys.stderr)
        return exitcodes.USAGE
    ck, rec = run_dir / CHECKPOINT_NAME, run_dir / RECORD_NAME
    if not args.resume and not args.restart and (ck.exists() or rec.exists()):
        what = "a finished run (record.json)" if rec.exists() else "a checkpoint"
        print(f"error: {run_dir} already holds {what} of this config; --resume continues it, --restart "
              f"discards it and starts again (nothing was changed)", file=sys.stderr)
        return exitcodes.USAGE
    if args.restart:
        for f in (ck, rec, run_dir / SAMPLES_NAME):
            f.unlink(missing_ok=True)
    install_signal_handlers()
    print(f"training {cfg.quantizer} K={cfg.num_codes} D={cfg.code_dim} on {cfg.dataset} "
          f"({cfg.profile or 'custom'} profile, {cfg.device}), config {h}, run dir {run_dir}", flush=True)
    try:
        rec = train(cfg, run_dir=run_dir, resume=args.resume or not args.restart, deadline=args.deadline)
    except TrainingInterrupted as e:
        print(f"interrupted: {e}", file=sys.stderr, flush=True)
        return exitcodes.INTERRUPTED
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return exitcodes.NONFINITE
    if rec is None:      # a non-zero DDP rank
        return exitcodes.OK
    f = rec["final"]
    print("final: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in f.items()))
    ips = rec.get("images_per_s")
    print(f"{rec['steps']} steps in {rec['train_seconds']:.1f} s"
          + (f" ({ips:.0f} images/s)" if ips else ""), flush=True)
    if args.publish:
        if not cfg.experiment or not cfg.profile:
            print("error: --publish needs the config's experiment and profile", file=sys.stderr)
            return exitcodes.USAGE
        print(f"record: {store.publish_run(run_dir, args.results_root)}", flush=True)
    return exitcodes.OK


def parse_where(items: list[str]) -> dict:
    """``["num_codes=1024", "tag=NS-VQ"]`` -> ``{"num_codes": 1024, "tag": "NS-VQ"}`` (JSON values,
    else strings; parsed, never evaluated)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--where needs FIELD=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_sweep(args) -> int:
    from .experiments.runner import COMPLETE, Status, load_plan, run_grid, run_plan

    if (args.name is None) == (args.plan is None):
        raise ValueError("sweep needs a grid name or --plan FILE (one of the two)")
    if args.plan is not None and args.where:
        raise ValueError("--where filters a named grid; a plan's steps carry their own filters")
    if args.dry_run:
        return sweep_dry_run(args)
    kw = dict(jobs=args.jobs, resume=not args.fresh, root=args.results_root, runs_root=args.runs_root,
              time_budget_s=args.time_budget, threads_per_job=args.threads_per_job, progress=False, fit=args.fit,
              order=args.order)
    if args.plan is not None:
        summary = run_plan(load_plan(args.plan), args.profile, args.device, **kw)
    else:
        summary = run_grid(args.name, args.profile, args.device, where=parse_where(args.where), **kw)
    done = summary["status"].isin(COMPLETE)
    ips = summary.loc[summary["status"] == Status.DONE.value, "images_per_s"].dropna()
    print(f"sweep {args.name or args.plan} ({args.profile}): {int(done.sum())}/{len(summary)} runs complete"
          + (f"; training images/s per run: mean {ips.mean():.0f}, with {min(args.jobs, len(ips))} at once "
             f"~{ips.mean() * min(args.jobs, len(ips)):.0f} in all" if len(ips) else ""), flush=True)
    print("\n".join(summary_lines(summary)))
    if (summary["status"] == Status.FAILED.value).any():
        return exitcodes.FAILED
    return exitcodes.OK if done.all() else exitcodes.INTERRUPTED


def summary_lines(summary) -> list[str]:
    """One line per run of a sweep's summary: grid, hash, quantizer, seed, status and, where there is
    one, the reason in parentheses (pandas 3 reads a missing reason as NaN in a column of strings)."""
    return [f"  {r.grid} {r.config_hash} {r.quantizer} seed {r.seed}: {r.status}"
            + (f" ({r.error})" if isinstance(r.error, str) and r.error else "") for r in summary.itertuples()]


def sweep_dry_run(args) -> int:
    """`sweep --dry-run`: one line per plan step (or for the grid), then the total and a wall-time
    estimate at --jobs runs at once."""
    import pandas as pd

    from .experiments.runner import TO_TRAIN, _check_run_args, device_kind, load_plan, plan_configs, plan_status

    _check_run_args(args.jobs, args.profile)
    plan = load_plan(args.plan) if args.plan is not None else [{"grid": args.name, "where": parse_where(args.where)}]
    steps = plan_configs(plan, args.profile, args.device)
    cfgs = [c for _, cs in steps for c in cs]
    st = plan_status(cfgs, args.profile, root=args.results_root, runs_root=args.runs_root, device=args.device)
    st["step"] = [label for label, cs in steps for _ in cs]
    train = st["state"].isin(TO_TRAIN)
    table = st.assign(train=train).groupby("step", sort=False).agg(
        runs=("state", "size"), stored=("state", lambda x: int((x == "stored").sum())),
        shared=("state", lambda x: int(x.isin(["shareable", "queued twice"]).sum())),
        to_train=("train", "sum"), est_hours=("est_seconds", lambda x: round(x.sum() / 3600, 1)))
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print(table.to_string())
    unknown = int((train & st["est_seconds"].isna()).sum())
    hours = st.loc[train, "est_seconds"].sum() / 3600
    rough = st.loc[train, "est_from"].value_counts()
    print(f"total: {len(st)} runs, {int((st.state == 'stored').sum())} stored, {int(train.sum())} to train "
          f"(~{hours:.1f} h of training as stored records of similar runs took on {device_kind(args.device)}; "
          f"about {hours / args.jobs:.1f} h of wall time at --jobs {args.jobs}, if the runs were timed that way too)"
          + (f"; {unknown} without an estimate (nothing stored at {args.profile!r})" if unknown else ""))
    for how, n in rough.items():
        print(f"  {n} estimated from stored runs with the {how}")
    if (st["state"] == "data mismatch").any():
        print("  data mismatch (a stored record of the config was made on other data): "
              + ", ".join(st.loc[st.state == "data mismatch", "config_hash"]))
        return exitcodes.FAILED
    return exitcodes.OK


def cmd_results(args) -> int:
    from .experiments import load_grid, load_results
    from .experiments.runner import grid_results

    from .experiments.grids import GRIDS
    profile = args.profile
    errors: list = []
    if args.name in GRIDS:
        if profile == AUTO:
            try:
                _, source = load_grid(args.name, AUTO, args.results_root)
            except FileNotFoundError as e:
                print(e)
                return 1
            profile = source.profile
        df, missing = grid_results(args.name, profile, args.results_root, errors)
    else:
        from .experiments.store import load_records, records_frame
        df = records_frame(load_records(args.name, "ci" if profile == AUTO else profile, args.results_root, errors))
        missing = []
    for path, reason in errors:
        print(f"corrupt record left out: {path} ({reason}); rerun its config to replace it", file=sys.stderr)
    if df.empty:
        print(f"no stored results for {args.name!r} at profile {profile!r}")
        return 1
    print(f"{args.name} at profile {profile}: {len(df)} stored run(s)")
    cols = list(df.columns) if args.all_columns else [c for c in (
        "config_hash", "quantizer", "num_codes", "code_dim", "seed", "epochs_done", "eval_usage",
        "eval_perplexity", "psnr", "ssim", "lpips", "fd", "fd_metric", "train_epoch_usage",
        "images_per_s", "device", "git_commit") if c in df.columns]
    import pandas as pd
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.precision", 4):
        print(df[cols].to_string(index=False))
    if missing:
        print(f"({len(missing)} run(s) of the grid not stored yet: {', '.join(missing)})")
    return 0


def cmd_grids(args) -> int:
    from .experiments.grids import GRIDS, get_grid

    for name in sorted(GRIDS):
        counts = ", ".join(f"{p}: {len(get_grid(name, p))}" for p in PROFILES)
        doc = (GRIDS[name].__doc__ or "").strip().splitlines()[0]
        print(f"{name:16s} runs ({counts})  {doc}")
    return 0


def main(argv=None) -> int:
    from .training.trainer import RunLockedError

    args = build_parser().parse_args(argv)
    try:
        return {"train": cmd_train, "sweep": cmd_sweep, "results": cmd_results,
                "grids": cmd_grids}[args.command](args)
    except (ValueError, FileNotFoundError, TypeError, RunLockedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.USAGE
    except OSError as e:   # disk full, permission denied, ...: nothing half-written (atomic writes)
        print(f"error: {e.strerror or e} ({getattr(e, 'filename', '') or 'no file'}); files are written "
              f"atomically, so the previous checkpoint and records are intact", file=sys.stderr)
        return exitcodes.IO


if __name__ == "__main__":
    sys.exit(main())
