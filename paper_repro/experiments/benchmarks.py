"""Quantizer speed and memory tables, read from ``benchmarks/bench_quantizers.py`` output.

Each run of the benchmark leaves ``data/results/bench_quantizers/<device>.csv`` (one row per method
and codebook size K: median / best ms of one forward + backward step, peak memory above the inputs)
and ``<device>.provenance.json`` beside it (commit, versions, device, date, setup). Nothing here
times anything: it only loads, compares and plots what the benchmark measured.

The quantizer issue's targets are for a GPU: NS-VQ (paper flavour) within 1.5x of plain ``vq`` at
N = 16,384, d = 64, K = 65,536, and plain ``vq`` at least 2x faster than vector-quantize-pytorch's
``VectorQuantize``. :func:`target_table` evaluates them on every device measured and says which
device each verdict is for.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..paths import RESULTS_DIR
from ..provenance import short_commit

BENCH_DIR = RESULTS_DIR / "bench_quantizers"

LABELS = {
    "vq": "vq (chunked addmm search)",
    "nsvq": "nsvq (paper: RBF kernel term, modified STE)",
    "nsvq_official": "nsvq, flavor='official'",
    "ema": "ema",
    "simvq": "simvq",
    "transvq": "transvq (transformer map)",
    "nsvq_dense": "nsvq, naive dense N x K reference",
    "vqpytorch": "vector-quantize-pytorch VectorQuantize",
}

# (name, numerator, denominator, bound, sense): ratio of median step times at the largest K.
TARGETS = (
    ("NS-VQ within 1.5x of vq", "nsvq", "vq", 1.5, "<="),
    ("vq at least 2x faster than vector-quantize-pytorch", "vqpytorch", "vq", 2.0, ">="),
)


def load_benchmarks(root: Path | str | None = None) -> pd.DataFrame:
    """Every benchmark table under ``root`` as one tidy frame, with its provenance columns
    (``device_name``, ``commit``, ``date``, ``source`` = the CSV file's name).

    Raises FileNotFoundError when there is none, ValueError when a table lacks its provenance."""
    root = Path(root) if root is not None else BENCH_DIR
    csvs = sorted(root.glob("*.csv"))
    if not csvs:
        raise FileNotFoundError(f"no benchmark tables in {root}; run "
                                "`python benchmarks/bench_quantizers.py` to make one")
    frames = []
    for path in csvs:
        prov_path = path.with_suffix(".provenance.json")
        if not prov_path.exists():
            raise ValueError(f"{path.name} has no provenance file {prov_path.name} beside it")
        prov = json.loads(prov_path.read_text())
        df = pd.read_csv(path, dtype={"note": str}, keep_default_na=False, na_values=[""])
        missing = {"method", "K", "N", "d", "ms_median", "ms_min", "peak_mib"} - set(df.columns)
        if missing:
            raise ValueError(f"{path.name} lacks column(s) {sorted(missing)}")
        df["note"] = df["note"].fillna("") if "note" in df else ""
        df["device_name"] = prov.get("device", "?")
        df["commit"] = short_commit(prov.get("git_commit", "?"))
        df["date"] = prov.get("date", "?")
        df["torch"] = prov.get("versions", {}).get("torch", "?")
        df["source"] = path.name
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


CHUNKED = ("vq", "nsvq", "nsvq_official", "ema", "simvq")   # methods whose N x K work is chunked
VALUE_NAMES = {"ms_median": "ms per forward+backward step (median)",
               "peak_mib": "peak memory above the inputs (MiB)"}
#: what ``peak_mib`` is on a CPU: the resident set's high-water mark minus the resident set after
#: the warm-up steps, which misses what the allocator kept from the warm-up (it can even be < 0)
CPU_MEMORY_NAME = "resident-set growth after warm-up (MiB; not a peak)"
#: a median this many times its run's minimum step time was disturbed by other load
NOISY_MEDIAN = 1.25


def _is_cpu(device_name: str) -> bool:
    return not device_name.startswith("cuda")


def _by_method(df: pd.DataFrame, device_name: str, value: str) -> pd.DataFrame:
    """One device's ``value``: rows = method, columns = K."""
    sub = df[df.device_name == device_name]
    return sub.pivot_table(index="method", columns="K", values=value, aggfunc="first")


def _labelled(t: pd.DataFrame, methods: list[str], title: str) -> pd.DataFrame:
    """Rows ``methods`` of ``t`` under their LABELS, columns named ``K=...``, index titled."""
    t = t.loc[methods]
    t.index = [LABELS.get(m, m) for m in methods]
    t.columns = [f"K={k:,}" for k in t.columns]
    t.index.name = title
    return t


def speed_table(df: pd.DataFrame, device_name: str, value: str = "ms_median") -> pd.DataFrame:
    """Median ms per step (or ``value="peak_mib"``) for one device: rows = method, columns = K."""
    t = _by_method(df, device_name, value)
    order = [m for m in LABELS if m in t.index] + [m for m in t.index if m not in LABELS]
    name = CPU_MEMORY_NAME if value == "peak_mib" and _is_cpu(device_name) else VALUE_NAMES.get(value, value)
    return _labelled(t, order, name)


def peak_memory_bound(df: pd.DataFrame, device_name: str, bound_mib: float = 1024.0) -> tuple[float, bool]:
    """(largest peak memory of the chunked methods at the largest K, whether it is <= bound_mib):
    the search and NS-VQ's kernel pass never hold more than a chunk of the N x K distances. Only
    where memory is measured as a peak (a GPU's allocator); a CPU table's memory column is not one."""
    if _is_cpu(device_name):
        raise ValueError(f"{device_name!r}: the CPU benchmark measures resident-set growth after warm-up, "
                         "not a peak; no peak-memory bound can be read from it")
    sub = df[(df.device_name == device_name) & df.method.isin(CHUNKED)]
    at = sub[sub.K == sub.K.max()]["peak_mib"].dropna()
    worst = float(at.max())
    return worst, worst <= bound_mib


def ratio_table(df: pd.DataFrame, device_name: str, reference: str = "vq") -> pd.DataFrame:
    """Median step time of each method divided by ``reference``'s, per K, for one device."""
    t = _by_method(df, device_name, "ms_median")
    if reference not in t.index:
        raise ValueError(f"no {reference!r} rows for {device_name!r}")
    r = t.div(t.loc[reference], axis=1)
    order = [m for m in LABELS if m in r.index and m != reference]
    return _labelled(r, order, f"time / time of {reference}")


def target_table(df: pd.DataFrame) -> pd.DataFrame:
    """The issue's two speed targets on each device: the ratio of median step times at the largest
    K where both methods have a time (``K``), the bound, and whether it is met. ``applies`` is
    False on a CPU: the targets are stated for a GPU. ``note`` says why a larger K has no ratio."""
    rows = []
    for device_name, sub in df.groupby("device_name", sort=True):
        t = sub.pivot_table(index="K", columns="method", values="ms_median", aggfunc="first")
        notes = sub[sub.note != ""].set_index(["method", "K"])["note"]
        for name, num, den, bound, sense in TARGETS:
            both = t[[num, den]].dropna() if {num, den} <= set(t.columns) else pd.DataFrame()
            row = dict(device=device_name, target=name, K=None, ratio=None, bound=f"{sense} {bound}",
                       met=None, applies=device_name.startswith("cuda"), note="")
            if len(both):
                k = int(both.index.max())
                ratio = float(both.loc[k, num] / both.loc[k, den])
                row.update(K=k, ratio=round(ratio, 2), met=ratio <= bound if sense == "<=" else ratio >= bound)
            missing = [f"{LABELS.get(m, m)} at K={k:,}: {v}" for (m, k), v in notes.items()
                       if m in (num, den) and (row["K"] is None or k > row["K"])]
            row["note"] = "; ".join(missing)
            rows.append(row)
    return pd.DataFrame(rows)


def noisy_medians(df: pd.DataFrame, device_name: str, factor: float = NOISY_MEDIAN) -> list[str]:
    """Measurements whose median step time is more than ``factor`` times their fastest step: other
    load disturbed them, and a ratio with them in it is unreliable."""
    sub = df[(df.device_name == device_name) & (df.ms_median > factor * df.ms_min)]
    return [f"{LABELS.get(r.method, r.method)} at K={int(r.K):,}: median {r.ms_median:.1f} ms, fastest "
            f"{r.ms_min:.1f} ms" for r in sub.itertuples()]


def notes(df: pd.DataFrame) -> list[str]:
    """One line per measurement that has no time, saying why (not installed, out of memory)."""
    return [f"{r.device_name}: {LABELS.get(r.method, r.method)} at K={int(r.K):,}: {r.note}"
            for r in df[df.note != ""].itertuples()]


def caption(df: pd.DataFrame, device_name: str) -> str:
    sub = df[df.device_name == device_name].iloc[0]
    kind, _, name = device_name.partition(": ")
    what = "GPU" if kind == "cuda" else "CPU"
    but = "" if kind == "cuda" else " (not the GPU the speed targets are stated for)"
    return (f"{what}: {name or device_name}{but}. N = {int(sub.N):,} latents, d = {int(sub.d)}, fp32; "
            f"commit {sub.commit}, torch {sub.torch}, {sub.date}; file {sub.source}.")


def plot_benchmarks(df: pd.DataFrame):
    """Time and peak memory against K, one pair of panels per device (log-log)."""
    import matplotlib.pyplot as plt

    devices = sorted(df.device_name.unique())
    fig, axes = plt.subplots(len(devices), 2, figsize=(11, 3.8 * len(devices)), squeeze=False)
    for row, device_name in zip(axes, devices):
        sub = df[(df.device_name == device_name) & df.ms_median.notna()]
        for m in [m for m in LABELS if m in set(sub.method)]:
            s = sub[sub.method == m].sort_values("K")
            style = dict(marker="o", lw=2 if m in ("vq", "nsvq") else 1,
                         ls="--" if m in ("nsvq_dense", "vqpytorch") else "-")
            row[0].plot(s.K, s.ms_median, label=LABELS[m], **style)
            row[1].plot(s.K, s.peak_mib.clip(lower=0.5), label=LABELS[m], **style)   # log axis: >= 0.5
        memory = "RSS growth after warm-up (MiB)" if _is_cpu(device_name) else "peak memory above inputs (MiB)"
        for ax, what in zip(row, ("ms per step (median)", memory)):
            ax.set(xscale="log", yscale="log", xlabel="codebook size K", ylabel=what)
            ax.grid(alpha=0.3, which="both")
        row[0].set_title(device_name, fontsize=10)
    axes[0, 1].legend(fontsize=9, loc="upper left")
    fig.tight_layout()
    return fig


TRAINING_BENCH_DIR = BENCH_DIR.parent / "bench_training"


def load_training_bench(root: Path | str | None = None) -> tuple[pd.DataFrame, dict]:
    """(the sweep-throughput table of benchmarks/bench_training.py, its provenance)."""
    d = Path(root) if root is not None else TRAINING_BENCH_DIR
    csvs = sorted(d.glob("*.csv"))
    if not csvs:
        raise FileNotFoundError(f"no training benchmark in {d}; run `python benchmarks/bench_training.py`")
    prov_path = csvs[0].with_suffix(".provenance.json")
    if not prov_path.exists():
        raise ValueError(f"{csvs[0].name} has no provenance file {prov_path.name} beside it")
    return pd.read_csv(csvs[0]), json.loads(prov_path.read_text())
