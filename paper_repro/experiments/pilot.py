"""The pilot grid that chooses the ``cpu`` profile: which affordable scale can tell methods apart?

Grid ``pilot`` (``paper_repro.experiments.grids``): {vq, simvq, nsvq, nsvq official} at backbone
width 1/4, K = 1024, D = 64, full Fashion-MNIST training split, evaluated on 2,000 test images after
each of 3 epochs, 2 seeds, with the paper's constant learning rate and with a 500-step linear warm-up.
One 3-epoch run gives the 1-, 2- and 3-epoch numbers. A scale here is (width, warm-up, epochs).

:func:`dead_decoders` lists the runs whose decoder ended up ignoring its input, and
:func:`saturation_study` measures why (the decoder's Tanh saturating in the first steps).

The rule (stated in the issue that asked for this grid): the ``cpu`` profile is the cheapest scale at
which the experiment can discriminate, i.e. at least one method collapses (mean eval usage < 0.2)
and at least one keeps mean eval usage >= 0.8 at the same K and D. :func:`discriminating_scales`
applies it to every (width, epochs) cell the committed runs cover.
"""
from __future__ import annotations

import pandas as pd

from .report import epoch_frame

COLLAPSED, KEPT = 0.2, 0.8


SCALE = ["width", "warmup", "epochs"]
DEAD_DB = 12.0     # eval PSNR below this: the decoder's output no longer depends on its input


def _method(tag: str) -> str:
    return tag.split(" w", 1)[0] if isinstance(tag, str) else tag


def _warmups(df: pd.DataFrame) -> pd.Series:
    w = df["warmup_steps"] if "warmup_steps" in df else pd.Series(0, index=df.index)
    return w.fillna(0).astype(int)


def scale_name(width: float, warmup: int, epochs: int | None = None) -> str:
    out = f"width {width:g}, " + (f"warm-up {warmup}" if warmup else "no warm-up")
    return out + (f", {epochs} epoch{'s' if epochs > 1 else ''}" if epochs is not None else "")


def per_epoch(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, epoch): width, method, seed, epoch (1-based), eval usage and PSNR after it,
    and the training steps taken so far (the cost)."""
    ep = epoch_frame(df)
    ep = ep[ep["complete"]].copy()
    ep["width"] = ep["config_hash"].map(dict(zip(df["config_hash"], df["width"])))
    ep["warmup"] = ep["config_hash"].map(dict(zip(df["config_hash"], _warmups(df))))
    ep["method"] = ep["tag"].map(_method)
    ep["epoch"] = ep["epoch"] + 1
    ep["steps_so_far"] = ep.groupby("config_hash")["steps"].cumsum()
    keep = ["config_hash", "width", "warmup", "method", "seed", "epoch", "steps_so_far", "eval.eval_usage", "eval.psnr"]
    return ep[[c for c in keep if c in ep]].rename(columns={"eval.eval_usage": "usage", "eval.psnr": "psnr"})


def pilot_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of eval usage and PSNR per (width, warm-up, epochs,
    method)."""
    ep = per_epoch(df)
    g = ep.groupby(["width", "warmup", "epoch", "method"], sort=True)
    out = g.agg(usage=("usage", "mean"), usage_sd=("usage", "std"), psnr=("psnr", "mean"),
                psnr_sd=("psnr", "std"), seeds=("seed", "nunique")).reset_index()
    return out.rename(columns={"epoch": "epochs"})


def discriminating_scales(df: pd.DataFrame) -> pd.DataFrame:
    """Per (width, warm-up, epochs): the lowest and highest mean eval usage over methods, which methods they
    are, and whether the scale discriminates (some method < 0.2 and some >= 0.8), cheapest first.
    Cost: measured training minutes of one run to that epoch (mean over the width's runs, from the
    records' ``train_seconds``; on the recorded device and thread count)."""
    t = pilot_table(df)
    per_epoch_s = (df["train_seconds"] / df["epochs_done"]).groupby([df["width"], _warmups(df)]).mean()
    rows = []
    for (w, wu, e), g in t.groupby(SCALE):
        lo, hi = g.loc[g.usage.idxmin()], g.loc[g.usage.idxmax()]
        rows.append({"width": w, "warmup": wu, "epochs": e, "minutes per run": per_epoch_s[(w, wu)] * e / 60,
                     "lowest usage": lo.usage, "collapsed method": lo.method,
                     "highest usage": hi.usage, "best method": hi.method,
                     "methods": len(g), "seeds": int(g.seeds.min()),
                     "discriminates": bool(lo.usage < COLLAPSED and hi.usage >= KEPT)})
    return pd.DataFrame(rows).sort_values(["width", "epochs", "warmup"]).reset_index(drop=True)


def scale_verdicts(df: pd.DataFrame) -> list:
    """For each (width, warm-up, epochs), "this scale discriminates" judged by the one rule over seeds: the
    method with the lowest mean usage is collapsed (< 0.2) and the one with the highest keeps
    >= 0.8 of the codes (``paper_repro.verdict``)."""
    from .. import verdict as V

    ep = per_epoch(df)
    t = pilot_table(df)
    out = []
    for (w, wu, e), g in t.groupby(SCALE):
        lo, hi = g.loc[g.usage.idxmin(), "method"], g.loc[g.usage.idxmax(), "method"]

        def seeds_of(m):
            s = ep[(ep.width == w) & (ep.warmup == wu) & (ep.epoch == e) & (ep.method == m)]
            return V.per_seed(s, "usage")

        out.append(V.judge_all(f"{scale_name(w, wu, e)}: {lo} collapses and {hi} keeps "
                               f"the codebook", [V.judge(f"{lo} usage < {COLLAPSED}", seeds_of(lo), "<", COLLAPSED),
                                                 V.judge(f"{hi} usage >= {KEPT}", seeds_of(hi), ">=", KEPT)]))
    return out


def plot_pilot(df: pd.DataFrame):
    """Eval usage after each epoch per method, one panel per (width, warm-up): mean over seeds with
    the seeds' range as a band; the two thresholds of the rule dashed."""
    import matplotlib.pyplot as plt

    ep = per_epoch(df)
    panels = sorted(set(zip(ep["width"], ep["warmup"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), sharey=True, squeeze=False)
    markers = dict(zip(sorted(ep["method"].unique()), "osD^v<>"))
    for ax, (w, wu) in zip(axes[0], panels):
        for m, g in ep[(ep.width == w) & (ep.warmup == wu)].groupby("method"):
            s = g.groupby("epoch")["usage"].agg(["mean", "min", "max"])
            ax.plot(s.index, s["mean"], marker=markers[m], label=m)
            ax.fill_between(s.index, s["min"], s["max"], alpha=0.2)
        for y in (COLLAPSED, KEPT):
            ax.axhline(y, color="k", ls="--", lw=0.8)
        ax.set(xlabel="epochs trained", title=scale_name(w, wu), ylim=(0, 1.02))
        ax.set_xticks(sorted(ep["epoch"].unique()))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("eval usage (K = 1024, D = 64)")
    axes[0, -1].legend(fontsize=9)
    fig.tight_layout()
    return fig


def caption(df: pd.DataFrame) -> str:
    """The pilot's caption: data, what varies, evaluation, metric names."""
    widths = ", ".join(f"{w:g}" for w in sorted(df["width"].unique()))
    warm = ", ".join(f"{w}" for w in sorted(_warmups(df).unique()) if w)
    sched = ""
    if "lr_gamma" in df and "grad_clip" in df:     # the authors' code's schedule, where the records say
        g, clip = df["lr_gamma"].dropna().unique(), df["grad_clip"].dropna().unique()
        sched = "".join([f", ExponentialLR \u03b3 = {g[0]:g} per epoch" if len(g) == 1 and g[0] != 1 else "",
                         f", gradient clipping at {clip[0]:g}" if len(clip) == 1 else ""])
        sched += " (the authors' code)" if sched else ""
    return (f"Fashion-MNIST 32\u00d732 (offline stand-in for CelebA-HQ), full 60,000-image training split, "
            f"batch 16, Adam 5e-4 (no warm-up, as in the paper" + (f", or after a linear warm-up of {warm} steps"
                                                                  if warm else "") + f"){sched}; "
            f"backbone width {widths} (1 = the paper's Table-1 backbone); K = 1024, "
            f"D = 64; evaluated on {int(df['eval_images'].iloc[0]):,} test images after each of "
            f"{int(df['epochs'].max())} epochs; {df['seed'].nunique()} seed(s); usage = fraction of the "
            f"K codes selected on the evaluation images.")


def dead_decoders(df: pd.DataFrame, threshold_db: float = DEAD_DB) -> pd.DataFrame:
    """The runs whose final eval PSNR is below ``threshold_db``: their reconstructions no longer
    depend on the input (an all-background image scores about 8.8 dB on these test images)."""
    out = df.assign(warmup=_warmups(df), method=df["tag"].map(_method))
    out = out[out["psnr"] < threshold_db]
    return out[["method", "width", "warmup", "seed", "psnr", "eval_usage", "config_hash"]].reset_index(drop=True)


def saturation_study(quantizer: str = "vq", seed: int = 1, warmups=(0, 500), steps: int = 300,
                     width: float = 0.25, data=None) -> pd.DataFrame:
    """Why a pilot run's decoder dies: train the pilot's config (``quantizer``, ``seed``) for
    ``steps`` optimiser steps with each warm-up and record, at every step, the decoder's pre-Tanh
    activations (mean, and the fraction with |a| > 3, where Tanh's slope is below 0.01), the batch's
    code usage and the reconstruction loss. Tidy: one row per (warm-up, step)."""
    import torch

    from ..training.config import TrainConfig
    from ..training.trainer import build_model, train
    rows = []
    for wu in warmups:
        cfg = TrainConfig(quantizer=quantizer, num_codes=1024, code_dim=64, width=width, dataset="fashion_mnist",
                          seed=seed, epochs=1, max_steps=steps, batch_size=16, lr=5e-4, warmup_steps=wu,
                          eval_images=256, eval_metrics=["usage"], num_threads=1, progress=False)
        seen: list[dict] = []

        def factory(c, seen=seen):
            model = build_model(c)
            tanh = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Tanh)][-1]
            codes = {}

            def qhook(_m, _inp, out):            # the quantizer runs before the decoder
                codes["n"] = int(torch.unique(out.indices).numel())

            def hook(_m, inp, _out):
                if model.training:
                    a = inp[0].detach()
                    seen.append({"pre_tanh_mean": float(a.mean()),
                                 "saturated": float((a.abs() > 3).float().mean()),
                                 "batch_codes": codes.pop("n")})
            model.quantizer.register_forward_hook(qhook)
            tanh.register_forward_hook(hook)
            return model
        rec = train(cfg, data=data, model_factory=factory)
        for step, r in enumerate(seen[:steps], start=1):
            rows.append({"warmup": wu, "step": step, **r})
        rows[-1]["final_eval_mse"] = rec["final"]["eval_mse"]
    return pd.DataFrame(rows)


def plot_saturation(study: pd.DataFrame):
    """The saturation study: fraction of saturated pre-Tanh activations and codes used per batch,
    against the step, one line per warm-up."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9.2, 3.2))
    for wu, g in study.groupby("warmup"):
        label = f"warm-up {wu}" if wu else "no warm-up (paper)"
        axes[0].plot(g["step"], g["saturated"], label=label)
        axes[1].plot(g["step"], g["batch_codes"], label=label)
    axes[0].set(xlabel="optimiser step", ylabel="pre-Tanh |a| > 3 (fraction)", ylim=(0, 1.02))
    axes[1].set(xlabel="optimiser step", ylabel="codes used in the batch (of 1024)", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=9)
    fig.tight_layout()
    return fig


def load_saturation(profile: str = "cpu"):
    """The committed saturation study (``scripts/pilot_saturation.py``) and its provenance."""
    import json

    from ..paths import RESULTS_DIR
    d = RESULTS_DIR / "pilot_saturation"
    csv, prov = d / f"{profile}.csv", d / f"{profile}.provenance.json"
    if not csv.exists():
        raise FileNotFoundError(f"{csv} not found: run `python scripts/pilot_saturation.py` and commit it")
    return pd.read_csv(csv), json.loads(prov.read_text())


def saturation_summary(study: pd.DataFrame, at=(3, 50, 300)) -> list[str]:
    """One line per warm-up: codes per batch, saturated fraction and pre-Tanh mean at the steps
    ``at``, and the evaluation MSE after the last step."""
    lines = []
    for wu, g in study.groupby("warmup"):
        g = g.set_index("step")
        pts = "; ".join(f"step {s}: {int(g.at[s, 'batch_codes'])} code(s) per batch, "
                        f"{g.at[s, 'saturated']:.1%} saturated, pre-Tanh mean {g.at[s, 'pre_tanh_mean']:.2g}"
                        for s in at if s in g.index)
        mse = g["final_eval_mse"].dropna()
        lines.append(f"{'warm-up ' + str(wu) if wu else 'no warm-up (paper)'}: {pts}"
                     + (f"; eval MSE after step {g.index.max()}: {mse.iloc[-1]:.3f}" if len(mse) else ""))
    return lines


def dead_decoder_summary(df: pd.DataFrame, threshold_db: float = DEAD_DB) -> list[str]:
    """One line per warm-up setting: how many of its runs ended with a dead decoder, and which."""
    dead, warm = dead_decoders(df, threshold_db), _warmups(df)
    lines = []
    for wu in sorted(warm.unique()):
        g, n = dead[dead["warmup"] == wu], int((warm == wu).sum())
        name = f"warm-up {wu}" if wu else "no warm-up (paper)"
        lines.append(f"{name}: {len(g)} of {n} runs with a dead decoder"
                     + (": " + ", ".join(f"{r.method} seed {r.seed}" for r in g.itertuples()) if len(g) else ""))
    return lines


def chosen_scale(verdicts: list, profile: str = "cpu") -> str:
    """The scale the ``cpu`` profile uses and the pilot's verdict on it."""
    from ..profiles import get_profile
    p = get_profile(profile)
    name = scale_name(p.backbone_width, p.warmup_steps, p.epochs)
    found = [v for v in verdicts if v.claim.startswith(name + ":")]
    return (f"the {profile} profile's scale, {name}: " + (f"{found[0].verdict} ({found[0].claim.split(': ', 1)[1]})"
            if found else "not among the pilot's committed runs yet"))
