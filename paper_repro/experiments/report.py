"""Tables and figures of stored training runs, for the notebooks (all logic here, none in a notebook).

Names say what was measured: ``eval_usage`` is the fraction of codes used on the evaluation split;
the Frechet-distance column carries the metric's own name (``FD-VGG16``, ``FD-VGG16@native`` or
``rFID``), and captions name every stand-in (Fashion-MNIST for CelebA-HQ, VGG16 features for
Inception).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..provenance import format_provenance, short_commit
from ..quantizers.registry import display_names
from ..verdict import judge_difference, per_seed

METHOD_NAMES = display_names()      # from the quantizer registry (each class's display_name)
_ORDER = list(METHOD_NAMES)
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "celeba_hq": "CelebA-HQ", "imagenet": "ImageNet-1K"}


def fd_name(df: pd.DataFrame) -> str:
    names = sorted(set(df["fd_metric"].dropna())) if "fd_metric" in df else []
    if len(names) > 1:
        raise ValueError(f"runs mix Frechet-distance metrics {names}; they are not comparable")
    return names[0] if names else "FD"


def _groups(df: pd.DataFrame):
    yield from df.groupby(["quantizer", "num_codes", "code_dim"], sort=False)


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per (method, K, D): eval usage, perplexity, PSNR, SSIM, LPIPS, FD (named),
    with the number of seeds and, where there are several, the standard deviation beside each."""
    if df.empty:
        raise ValueError("no runs to tabulate")
    fd = fd_name(df)
    cols = [("eval_usage", "Eval usage"), ("eval_perplexity", "Perplexity"), ("psnr", "PSNR (dB)"),
            ("ssim", "SSIM"), ("lpips", "LPIPS (AlexNet)"), ("fd", fd)]
    rows = []
    for (q, k, d), g in _groups(df):
        row = {"Method": METHOD_NAMES.get(q, q), "K": int(k), "D": int(d), "Seeds": len(g)}
        for c, name in cols:
            if c in g and g[c].notna().any():
                row[name] = float(g[c].mean())
                if len(g) > 1:
                    row[f"{name} sd"] = float(g[c].std(ddof=1))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["_o"] = [(_ORDER.index(q) if q in _ORDER else 99) for q in
                 [next((k for k, v in METHOD_NAMES.items() if v == m), m) for m in out["Method"]]]
    return out.sort_values(["_o", "K", "D"]).drop(columns="_o").reset_index(drop=True)


#: the paper's name of each backbone (``paper_repro.backbones``) for captions
BACKBONE_NAMES = {"table1": "Table-1 backbone", "taming": "Taming backbone (Table 5)"}


def caption(df: pd.DataFrame, stand_in: str = "CelebA-HQ") -> str:
    """A caption naming the data, scale and every proxy metric of the runs in ``df``. ``stand_in``:
    the paper's data set that Fashion-MNIST stands in for on this page."""
    r = df.iloc[0]
    ds = DATASET_NAMES.get(r["dataset"], r["dataset"])
    size = int(r["image_size"])
    parts = [f"{ds} {size}\u00d7{size}"]
    if r["dataset"] == "fashion_mnist":
        parts[0] += f" (offline stand-in for {stand_in})"
    prof = ", ".join(sorted(set(df["profile"])))
    n_train = "all" if pd.isna(r["train_images"]) else f"{int(r['train_images']):,}"
    epochs = sorted({int(e) for e in df["epochs"]})
    batches = sorted({int(b) for b in df["batch_size"]})
    batch = f"batch {batches[0]}" if len(batches) == 1 else f"batch sizes {', '.join(map(str, batches))}"
    widths = sorted({float(w) for w in df["width"]})
    backbones = sorted(set(df["backbone"])) if "backbone" in df else ["table1"]
    name = "backbone" if backbones == ["table1"] else " and ".join(BACKBONE_NAMES.get(b, b) for b in backbones)
    width = f"{name} width {widths[0]:g}" if len(widths) == 1 else \
        f"{name} widths {', '.join(f'{w:g}' for w in widths)}"
    steps = sorted({int(m) for m in df["max_steps"].dropna()}) if "max_steps" in df else []
    capped_all = bool(steps) and not df["max_steps"].isna().any()
    one_cap = len(epochs) > 1 and len(steps) == 1 and capped_all    # the cap, not the epochs, sets the length
    length = (f"{steps[0]:,} optimiser steps for every run" if one_cap
              else f"{epochs[0]} epoch{'s' if epochs[0] != 1 else ''}" if len(epochs) == 1 else
              f"{epochs[0]}-{epochs[-1]} epochs")
    if one_cap and "steps" in df:   # a run stops short where its epochs hold fewer full batches than the cap
        short = df[df["steps"] < df["max_steps"]].groupby("batch_size")["steps"].agg(["min", "max"])
        if len(short):
            length += (" (" + ", ".join(f"batch {int(b)}: {int(r['min']):,}"
                                        + (f"-{int(r['max']):,}" if r["max"] != r["min"] else "")
                                        for b, r in short.iterrows())
                       + ", where its whole epochs of full batches end)")
    if steps and not one_cap:
        length += (f" (at most {'/'.join(f'{s:,}' for s in steps)} optimiser steps"
                   + ("" if capped_all else " where capped") + ")")
    warm = sorted({int(w) for w in df["warmup_steps"].fillna(0)}) if "warmup_steps" in df else [0]
    on = "/".join(str(w) for w in warm if w > 0)
    warmup = ("" if not on else f", a {on}-step learning-rate warm-up (not in the paper)" if 0 not in warm
              else f", with and without a {on}-step learning-rate warm-up (not in the paper)")
    parts.append(f"profile {prof}: {length}, {batch}, {width}{warmup}, {n_train} training / "
                 f"{int(r['eval_images']):,} evaluation images, {seeds_per_cell(df)}")
    fd = fd_name(df)
    if fd.startswith("FD-VGG16"):
        at = "at native resolution" if fd.endswith("@native") else "resized to 224\u00d7224"
        parts.append(f"{fd} = Fr\u00e9chet distance on VGG16 features {at}, not rFID (biased upward on few "
                     f"images: compared only between runs evaluated on the same number)")
        from ..metrics.fd_floor import scale
        if pd.notna(r["eval_images"]) and (floor := scale(int(r["eval_images"]), fd)):
            parts.append(f"for scale, {floor}")
    parts.append("usage = fraction of the K codes selected on the evaluation split")
    return "; ".join(parts) + "."


#: config columns that tell one cell of a grid from another (with every ``quantizer_options.*``)
CELL_COLUMNS = ("tag", "quantizer", "num_codes", "code_dim", "dataset", "image_size", "backbone", "width",
                "batch_size", "epochs", "max_steps", "lr", "warmup_steps", "freeze_encoder_at_epoch",
                "refine_from_epoch", "train_images")


def seeds_per_cell(df: pd.DataFrame) -> str:
    """"3 seeds", or "2-3 seeds per cell" when the grid's cells have different numbers of seeds."""
    cols = [c for c in CELL_COLUMNS if c in df] + sorted(c for c in df if c.startswith("quantizer_options."))
    n = (df.astype({c: str for c in cols}).groupby(cols, dropna=False)["seed"].nunique() if cols
         else pd.Series([df["seed"].nunique()]))
    lo, hi = int(n.min()), int(n.max())
    if lo == hi:
        return f"{lo} seed{'s' if lo != 1 else ''}"
    return f"{lo}-{hi} seeds per cell"


def styled_table(df: pd.DataFrame, digits: int = 3):
    """``summary_table`` as a captioned pandas Styler (numbers to ``digits`` decimals)."""
    t = summary_table(df)
    num = [c for c in t.columns if c not in ("Method", "K", "D", "Seeds")]
    return t.style.format({c: f"{{:.{digits}f}}" for c in num}).hide(axis="index").set_caption(caption(df))


def check_lines(df: pd.DataFrame, digits: int = 3) -> list[str]:
    """Rounded lines (``digits`` significant digits) of the committed runs, for nbval to compare."""
    t = summary_table(df)
    fd = fd_name(df)
    out = []
    for _, r in t.iterrows():
        vals = [f"{name}={sig(r[name], digits)}" for name in
                ("Eval usage", "PSNR (dB)", "SSIM", "LPIPS (AlexNet)", fd) if name in r and pd.notna(r[name])]
        out.append(f"{r['Method']} K={r['K']} D={r['D']}: " + ", ".join(vals))
    return out


NOT_RUN = "not run"


def single_profile(df: pd.DataFrame) -> str | None:
    """The one profile of the runs in ``df`` (what a verdict is judged at), or None when they mix."""
    profs = sorted(set(df["profile"]))
    return profs[0] if len(profs) == 1 else None


def one_profile(df: pd.DataFrame) -> str:
    """:func:`single_profile`, for a verdict that must be judged at one profile: mixed profiles raise."""
    profs = sorted(set(df["profile"]))
    if len(profs) != 1:
        raise ValueError(f"runs of several profiles {profs}; judge one profile at a time")
    return profs[0]


def mean_sd(mean, sd, n, mean_fmt: str = ".3f", sd_fmt: str = ".3f") -> str:
    """A table cell: ``"mean ± sd (n seeds)"``, ``"mean (1 seed)"``, or ``"not run"`` (no mean)."""
    if pd.isna(mean):
        return NOT_RUN
    if pd.isna(n) or int(n) < 2:
        return f"{mean:{mean_fmt}} (1 seed)"
    return f"{mean:{mean_fmt}} \u00b1 {sd:{sd_fmt}} ({int(n)} seeds)"


def usage_verdict(df: pd.DataFrame, better: str = "nsvq", than: str = "vq"):
    """The claim "``better`` keeps more codes than ``than``" judged by the one rule on the per-seed
    eval-usage differences (``paper_repro.verdict``); None while either side has no runs (a partial
    grid: the page says so)."""
    have = set(df["quantizer"])
    if better not in have or than not in have:
        return None

    return judge_difference(f"{METHOD_NAMES[better]} eval usage > {METHOD_NAMES[than]} eval usage",
                            per_seed(df[df.quantizer == better], "eval_usage"),
                            per_seed(df[df.quantizer == than], "eval_usage"), ">", 0.0, single_profile(df))


def sig(v: float, digits: int) -> str:
    """``v`` to ``digits`` significant digits, trailing zeros kept (17.0, 0.500, 150, 1230)."""
    v = float(v)
    if v == 0 or not np.isfinite(v):
        return f"{v:g}"
    d = digits - 1 - int(np.floor(np.log10(abs(v))))
    return f"{v:.{d}f}" if d > 0 else f"{round(v, d):.0f}"


def provenance_lines(df: pd.DataFrame) -> list[str]:
    """One provenance line per distinct (commit, device) of the runs, with their count and the span of
    their dates (first to last)."""
    recs = _records(df)
    seen: dict = {}
    for rec in recs:
        p = rec["provenance"]
        key = (short_commit(p.get("git_commit")), p.get("device"))
        seen.setdefault(key, [p, []])[1].append(str(p.get("date", "?")))
    out = []
    for p, dates in seen.values():
        span = min(dates) if min(dates) == max(dates) else f"{min(dates)} to {max(dates)}"
        out.append(f"{format_provenance({**p, 'date': span})} [{len(dates)} run{'s' if len(dates) > 1 else ''}]")
    return out


def _records(df: pd.DataFrame) -> list[dict]:
    if "record_path" not in df:
        raise ValueError("the table has no record_path column (use grid_results / run_or_load)")
    return [json.loads(Path(p).read_text()) for p in df["record_path"]]


def epoch_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Long table of per-epoch training metrics: one row per (run, epoch); with
    ``eval_every_epoch`` runs, the evaluation after each epoch as ``eval.<metric>`` columns."""
    rows = []
    for rec in _records(df):
        for e in rec["epochs"]:
            ev = {f"eval.{k}": v for k, v in e.get("eval", {}).items()}
            rows.append({"config_hash": rec["config_hash"], "quantizer": rec["config"]["quantizer"],
                         "tag": rec["config"].get("tag"), "batch_size": rec["config"]["batch_size"],
                         "seed": rec["config"]["seed"],
                         **{k: v for k, v in e.items() if k != "eval"}, **ev})
    return pd.DataFrame(rows)


def trace_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Long table of the records' loss traces: one row per (run, trace point) with the run's config
    keys (``tag`` from ``df``: the grid's current label), ``step``, ``window_steps`` (the optimiser
    steps since the previous trace point; trace points are log-spaced, so windows grow with the step)
    and the window's ``window_usage`` (fraction of the K codes selected in those steps) and losses."""
    tags = dict(zip(df["config_hash"], df["tag"])) if {"config_hash", "tag"} <= set(df.columns) else {}
    rows = []
    for rec in _records(df):
        cfg = rec["config"]
        keys = {k: cfg.get(k) for k in ("quantizer", "num_codes", "code_dim", "batch_size", "seed")}
        keys["tag"] = tags.get(rec["config_hash"], cfg.get("tag"))
        rows += [{**keys, "config_hash": rec["config_hash"], **t} for t in rec["trace"]]
    return pd.DataFrame(rows)


def plot_usage_per_epoch(df: pd.DataFrame):
    """Training-epoch usage (fraction of codes selected during each epoch's training batches) per
    epoch, one line per run, and each run's final eval usage as a marker after the last epoch."""
    import matplotlib.pyplot as plt

    ep = epoch_frame(df)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    colors = {}
    for (h, q, s), g in ep.groupby(["config_hash", "quantizer", "seed"], sort=False):
        c = colors.setdefault(q, f"C{len(colors)}")
        x = g["epoch"].to_numpy() + 1
        ax.plot(x, g["train_epoch_usage"], "-o", color=c, ms=3,
                label=f"{METHOD_NAMES.get(q, q)} (train epochs)" if s == ep[ep.quantizer == q].seed.min() else None)
        ev = df.loc[df["config_hash"] == h, "eval_usage"]
        if len(ev):
            ax.plot([x.max() + 0.3], [float(ev.iloc[0])], marker="*", ms=10, color=c, ls="none",
                    label=f"{METHOD_NAMES.get(q, q)} (eval split)" if s == ep[ep.quantizer == q].seed.min() else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("codebook usage")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(sorted(set((ep["epoch"] + 1).tolist())))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(f"Codebook usage, K = {int(df['num_codes'].iloc[0])}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_reconstructions(df: pd.DataFrame):
    """Stored sample reconstructions (first eval images): per method, originals above and
    reconstructions below (the PNG saved beside each record; first seed of each method, labelled by
    the config's ``tag`` where it has one)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    picks = []
    df = df.assign(_label=[t if isinstance(t, str) and t else METHOD_NAMES.get(q, q)
                           for t, q in zip(df.get("tag", [None] * len(df)), df["quantizer"])])
    for (label, k, d), g in df.groupby(["_label", "num_codes", "code_dim"], sort=False):
        g = g.sort_values("seed")
        png = Path(g["record_path"].iloc[0]).with_suffix(".png")
        if png.exists():
            picks.append((f"{label} (K={int(k)}, D={int(d)}, seed {int(g['seed'].iloc[0])})",
                          np.asarray(Image.open(png))))
    if not picks:
        raise FileNotFoundError("no sample PNGs stored beside these records")
    fig, axes = plt.subplots(len(picks), 1, figsize=(8, 2.1 * len(picks)), squeeze=False)
    for ax, (title, img) in zip(axes[:, 0], picks):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(f"{title}: top originals, bottom reconstructions", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def glue_at_a_glance(source, finding: str) -> None:
    """Store the page's scale (the grid source's sentence) and finding for the admonition at the top
    of an experiment page (MyST-NB glue keys ``scale`` and ``finding``; nothing is displayed)."""
    from IPython.display import Markdown
    from myst_nb import glue

    glue("scale", Markdown(str(source)), display=False)
    glue("finding", Markdown(finding), display=False)


FIGURE_DPI = 100


def glue_figure(key: str, fig) -> None:
    """Store ``fig`` under ``key`` for a numbered MyST figure (``{glue:figure}`` with its caption in
    the page's text, not in the image) and close it, so it is not also shown inline."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    if fig.dpi < FIGURE_DPI:
        fig.set_dpi(FIGURE_DPI)         # legible at 1:1 (the same layout in inches, more pixels)
    glue(key, fig, display=False)
    plt.close(fig)


def text_figure(text: str):
    """A small figure that only says ``text``: what a page glues where its data are not committed yet,
    so the page's numbered figure still builds."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, wrap=True)
    return fig


def download_files(source) -> dict:
    """File names of a grid page's downloads (the book build writes them under _static/downloads/):
    the runs table as CSV and the committed records (JSON, with provenance) as a zip."""
    stem = f"{source.grid}-{source.profile}"
    return {"table": f"{stem}-runs.csv", "records": f"{stem}-records.zip"}


def download_links(source, prefix: str = "../_static/downloads/"):
    """A Markdown line linking a grid page's downloads (see :func:`download_files`)."""
    from IPython.display import Markdown

    f = download_files(source)
    return Markdown(f"**Download** the data behind this page: [the runs as a table (CSV)]({prefix}{f['table']}), "
                    f"[the {source.runs} committed records with provenance (JSON, zip)]({prefix}{f['records']}).")
