"""Every claim the committed results judge, in one table: claim, the paper's side, ours (profile,
seeds, mean ± sd), the verdict of the one rule and the page that shows it.

Built from committed data only (``load_grid`` at ``profile="auto"`` and the committed studies of
``STUDY_PAGES``), so the table is the same on every machine and a build trains nothing. The proof
walkthroughs (``COMPUTED_PAGES``: exact identities and convergence checks, computed on their own
pages) are linked, not recomputed here.
"""
from __future__ import annotations

import html as _html

import pandas as pd

from .. import verdict as V
from .runner import load_grid

#: pages whose verdicts are computed on the page itself (listed with a link)
COMPUTED_PAGES = {
    "kmeans_convergence": "Supp. 8: online VQ converges to a k-means fixed point",
    "modified_ste": "Sec. 3.3.3, Supp. 9: the modified STE's delay-free correction",
}

#: pages judged from a committed study (``paper_repro.study``): page -> (module with ``load()`` and
#: ``claim_verdicts(df)``, the paper's side of its claims, what a build adds to the study)
STUDY_PAGES = {
    "kmeans_reach": ("paper_repro.theory.kmeans_reach", "Sec. 3.4.3 (argument, no numbers)", ""),
    "nonstationarity": ("paper_repro.theory.nonstationarity", "Sec. 3.2, 3.2.2 (argument, no numbers)",
                        "; its first seeds recomputed and checked on every build"),
    "ntk_rbf": ("paper_repro.theory.ntk", "Sec. 3.3.2, Supp. 10 (derivation, no numbers)",
                "; one seed recomputed and checked on every build"),
    "kernel_meanshift": ("paper_repro.theory.meanshift", "Sec. 3.3.2, Eq. 16-17 (the update; nothing on where it leaves the codes)",
                         "; one seed of its judged cells recomputed and checked on every build"),
    "toy_demos": ("paper_repro.toy.demos", "Supp. 11, Figures 1, 6, 7 (figures, no numbers)",
                  "; its first seeds recomputed and checked on every build"),
}


def _study(page: str):
    """(module, committed table) of a :data:`STUDY_PAGES` page."""
    import importlib

    mod = importlib.import_module(STUDY_PAGES[page][0])
    return mod, mod.load()[0]


def study_verdicts(page: str) -> list:
    """The verdicts of a :data:`STUDY_PAGES` page, from its committed study."""
    mod, df = _study(page)
    return mod.claim_verdicts(df)


def _row(v: V.Verdict, page: str, paper: str = "") -> dict:
    return {"": v.mark, "claim": v.claim, "paper": paper, "ours": v.stats(3) + (f"; profile {v.profile}" if v.profile else ""),
            "verdict": v.verdict, "page": page}


def _parts_stats(v: V.Verdict) -> str:
    n = sorted({p.n for p in v.parts})
    seeds = V.count(n[0], "seed") if len(n) == 1 else f"{n[0]} to {n[-1]} seeds"
    return f"{V.count(len(v.parts), 'cell')}, {seeds} each"


_COLUMNS = ["", "claim", "paper", "ours", "verdict", "page"]

#: what the paper (or the companion paper) says on each mechanism page's claims
MECHANISM_PAPER_SIDE = {
    "nsvq_ablation": "Sec. 3.3 (mechanism, no ablation printed)",
    "transvq_diagnosis": "Table 3 (K = 1024, D = 64): TransVQ usage 1.00",
    "batch_steps": "Figure 4 (curves at fixed epochs)",
    "replacement": "NSVQ follow-up paper (abstract): uses codebook replacement",
    "causes": "\"Early Quantization Shrinks Codebook\" (follow-up study)",
    "staged": "NSVQ follow-up paper (abstract): full utilisation, better than SimVQ",
}


def claim_rows(pages=None) -> pd.DataFrame:
    """One row per claim judged from committed data (see the module docstring); ``pages``: only
    those pages' claims (their grids are the only ones loaded)."""
    def want(page):
        return pages is None or page in pages

    from . import batch_size as bs
    from . import codebook_size as cs
    from . import report
    from .paper_tables import load_paper_tables

    rows = []
    if want("first_training_run"):
        df, src = load_grid("first_run")
        v = report.usage_verdict(df)
        if v is not None:
            rows.append(_row(v, "first_training_run", "Sec. 3.2-3.3 (argument; no vanilla-VQ usage printed)"))
    if want("codebook_size"):
        rows += _codebook_rows(cs, load_paper_tables)
    if want("table6"):
        rows += _table6_rows(load_paper_tables)
    if want("batch_size"):
        df, src = load_grid("batch_size")
        for v in bs.verdicts(df):
            r = _row(v, "batch_size", _batch_side(v.claim, "Figure 4 (rFID curves, no numbers printed)"))
            r["ours"] = _parts_stats(v) + f"; profile {src.profile}"
            rows.append(r)
    from . import mechanisms as mech
    for page in mech.MECHANISM_PAGES:
        if not want(page):
            continue
        try:
            vs, src = mech.page_verdicts(page)
        except FileNotFoundError:
            continue
        for v in vs:
            r = _row(v, page, v.side or (_batch_side(v.claim, MECHANISM_PAPER_SIDE[page]) if page == "batch_steps"
                                         else MECHANISM_PAPER_SIDE[page]))
            r["ours"] = (_parts_stats(v) if v.parts else v.stats(3)) + f"; profile {src.profile}"
            rows.append(r)
    for page, (_, side, _) in STUDY_PAGES.items():
        if not want(page):
            continue
        for v in study_verdicts(page):
            r = _row(v, page, v.side or side)
            if v.parts:
                r["ours"] = _parts_stats(v)
            rows.append(r)
    return pd.DataFrame(rows, columns=_COLUMNS)


def _batch_side(claim: str, rfid_side: str) -> str:
    """The paper side of a batch-size claim: Figure 4 plots rFID only; the usage claims are Sec. 3.2.2's
    argument."""
    return "Sec. 3.2.2 (argument, no numbers)" if claim.startswith("Sec. 3.2.2") else rfid_side


def _codebook_rows(cs, load_paper_tables) -> list[dict]:
    rows = []
    df, src = load_grid("codebook_size")
    for c, vo, vp in cs.claim_verdicts(df, cs.paper_long(load_paper_tables())):
        # a claim none of whose cells has run yet is listed as not judged (V.not_run: no parts)
        r = _row(vo, "codebook_size", f"{cs.printed_holds(vp)} as printed" if vp is not None else "")
        r["ours"] = (_parts_stats(vo) if vo.parts else vo.stats(3)) + f"; profile {src.profile}"
        rows.append(r)
    return rows


def _table6_rows(load_paper_tables) -> list[dict]:
    from . import table6 as t6
    try:
        df, src = load_grid("table6")
    except FileNotFoundError:
        return []
    rows = []
    for c, recipe, vo, printed in t6.claim_verdicts(df, load_paper_tables()):
        if vo is None:
            continue
        r = _row(vo, "table6", f"{'holds' if printed else 'does not hold'} as printed")
        r["ours"] = _parts_stats(vo) + f"; profile {src.profile}"
        rows.append(r)
    return rows


#: pages whose claims are not the paper's and stay out of the verdict table: page -> why
OFF_TABLE_PAGES = {"pilot": "they choose the book's scale and are not claims of the paper"}


def finding(page: str, rows: pd.DataFrame | None = None, verdicts: list | None = None) -> str:
    """One sentence for the top of an experiment page: how many claims the page judges and how
    they came out (from ``claim_rows()``, or from the page's own ``verdicts``)."""
    if verdicts is not None:
        marks = [v.verdict for v in verdicts]
    else:
        rows = claim_rows(pages={page}) if rows is None else rows
        marks = list(rows.loc[rows["page"] == page, "verdict"])
    if not marks:
        return "No claim is judged here yet."
    n = {v: marks.count(v) for v in V.VERDICTS if marks.count(v)}
    parts = ", ".join(f"{V.MARKS[v]} {k} {v}" for v, k in n.items())
    only_pipeline = set(n) == {V.PIPELINE}
    where = (f" Each claim's line is below ({OFF_TABLE_PAGES[page]}, so *Verdicts at a glance* leaves them out)."
             if page in OFF_TABLE_PAGES else " Each claim's line is below; all of them: *Verdicts at a glance*.")
    return (f"{len(marks)} claim{'s' if len(marks) > 1 else ''} on this page: {parts}"
            + (" (this profile checks the pipeline, not the paper)." if only_pipeline else ".") + where)



def mechanism_summary(rows: pd.DataFrame | None = None, link_prefix: str = "../notebooks/") -> str:
    """HTML list for the introduction: each mechanism page (a link), its claims' verdicts and the
    profile they were judged at."""
    from .mechanisms import MECHANISM_PAGES

    rows = claim_rows(pages=set(MECHANISM_PAGES)) if rows is None else rows
    titles = {p.split("/")[-1]: t for p, t, _ in PAGE_MAP}
    items = []
    for page in MECHANISM_PAGES:
        r = rows[rows["page"] == page]
        if r.empty:
            status = "no claim judged yet"
        else:
            n = {v: int((r["verdict"] == v).sum()) for v in V.VERDICTS if (r["verdict"] == v).any()}
            prof = sorted({o.rsplit("profile ", 1)[-1] for o in r["ours"]})
            status = ", ".join(f"{V.MARKS[v]} {k} {v}" for v, k in n.items()) + f" (profile {'/'.join(prof)})"
        items.append(f'<li><a href="{link_prefix}{page}.html">{_html.escape(titles.get(page, page))}</a>: '
                     f"{_html.escape(status)}</li>")
    return '<ul class="mechanism-summary">' + "".join(items) + "</ul>"


def computed_pages() -> pd.DataFrame:
    return pd.DataFrame([{"claims of": text, "page": page} for page, text in COMPUTED_PAGES.items()])


def counts(rows: pd.DataFrame) -> dict:
    return {v: int((rows["verdict"] == v).sum()) for v in V.VERDICTS}


def html_table(rows: pd.DataFrame, link_prefix: str = "") -> str:
    """The table as HTML, four columns so that a claim gets room to read: the verdict (mark and
    word), the claim followed by a link to its page, the paper's side and ours. The pages sit beside
    the verdicts page in notebooks/; ``link_prefix`` (e.g. ``"../notebooks/"``) makes the links work
    from a page elsewhere (the introduction pastes this table)."""
    esc = _html.escape
    t = pd.DataFrame({
        "verdict": [f"{esc(m)} {esc(v)}" for m, v in zip(rows[""], rows["verdict"])],
        "claim": [f'{esc(c)} <a class="verdict-page" href="{link_prefix}{p}.html">({esc(p.replace("_", " "))})</a>'
                  for c, p in zip(rows["claim"], rows["page"])],
        "paper": [esc(str(x)) for x in rows["paper"]],
        "ours": [esc(str(x)) for x in rows["ours"]]})
    return t.to_html(index=False, escape=False, classes="verdict-table", border=0).replace(
        '<tr style="text-align: right;">', "<tr>")


def grouped_html(rows: pd.DataFrame, link_prefix: str = "", open_pages=("codebook_size",)) -> str:
    """:func:`html_table` split by the part of the book (``_toc.yml``'s captions, in its order) that
    holds each claim's page, each part a collapsible block whose one-line summary counts its
    verdicts; the parts holding ``open_pages`` start open (the introduction: the paper's Tables 2-4
    open, the rest a click away). Within a part the judged claims come first (in page order), those
    not judged or pipeline checks after them. A page in no part is listed last, under "Other pages"."""
    from ..toc import toc_parts

    groups, placed = [], set()
    for caption, files in toc_parts():
        pages = [f.split("/")[-1] for f in files]
        groups.append((caption, pages))
        placed |= set(pages)
    groups.append(("Other pages", sorted(set(rows["page"]) - placed)))
    out = []
    for caption, pages in groups:
        g = rows[rows["page"].isin(pages)]
        if g.empty:
            continue
        judged = g["verdict"].isin((V.SUPPORTED, V.CONTRADICTED, V.INCONCLUSIVE))
        g = pd.concat([g[judged], g[~judged]])
        n = counts(g)
        tally = ", ".join(f"{V.MARKS[v]} {k} {v}" for v, k in n.items() if k)
        is_open = " open" if set(pages) & set(open_pages) else ""
        out.append(f'<details class="verdict-group"{is_open}><summary><b>{_html.escape(caption)}</b>: '
                   f"{len(g)} claim{'s' if len(g) != 1 else ''}, {_html.escape(tally)}</summary>"
                   f"{html_table(g, link_prefix)}</details>")
    return "".join(out)


#: The introduction's map: (page, paper artifact, grid behind it or None). Its status column is
#: computed from the committed results by :func:`page_map`.
PAGE_MAP = (
    ("notebooks/paper_tables", "Tables 2, 3, 4, 6 as printed (the paper's numbers)", None),
    ("book/paper_vs_code", "Where the authors' code departs from the paper", None),
    ("book/verification", "How every number here is checked: tests, reproduction within tolerance, nbval, the verdict rule", None),
    ("notebooks/reproduction", "How far other float kernels and other seeds move a run (the tolerances' measurement)", None),
    ("notebooks/kmeans_convergence", "Supp. 8: online VQ converges to k-means", None),
    ("notebooks/kmeans_reach", "Sec. 3.4.3: can SimVQ's and TransVQ's maps reach a k-means solution?", None),
    ("notebooks/nonstationarity", "Sec. 3.2, 3.2.2: encoder drift kills codes; batch-size effect", None),
    ("notebooks/ntk_rbf", "Sec. 3.3.2, Supp. 10: NTK → RBF approximation", None),
    ("notebooks/kernel_meanshift", "Sec. 3.3.2, Eq. 16: the kernel update is mean shift, and stacks the codes", None),
    ("notebooks/modified_ste", "Sec. 3.3.3, Supp. 9: modified STE", None),
    ("notebooks/toy_demos", "Supp. 11, Figures 1, 6, 7: toy demos", None),
    ("notebooks/pilot", "Which scale two CPU cores afford that still tells methods apart (chooses the cpu profile)", "pilot"),
    ("notebooks/first_training_run", "Sec. 4: VQ-VAE training, vanilla VQ vs NS-VQ", "first_run"),
    ("notebooks/codebook_size", "Tables 2–4, Figures 3 and 5: usage, distance, best configurations and reconstructions against K and D", "codebook_size"),
    ("notebooks/batch_size", "Sec. 3.2.2, Figure 4: batch size against collapse", "batch_size"),
    ("notebooks/table6", "Table 6 (Supp. 12): the six methods on the Taming backbone with the ImageNet recipe", "table6"),
    ("notebooks/nsvq_ablation", "Sec. 3.3: NS-VQ's kernel and modified STE switch by switch, and the kernel's reach", "nsvq_ablation"),
    ("notebooks/transvq_diagnosis", "Sec. 3.4: TransVQ's map, when it collapses and why; its variants against SimVQ", "transvq_diagnosis"),
    ("notebooks/batch_steps", "Figure 4 without the step-count confound: fixed steps, and fixed epochs with the learning rate scaled", "batch_steps"),
    ("notebooks/replacement", "Dead-code replacement across methods: how much of the usage is its own", "replacement"),
    ("notebooks/causes", "\"Early Quantization Shrinks Codebook\" vs Sec. 3.2: initialisation, encoder capacity and drift on the same runs", "causes"),
    ("notebooks/staged", "NSVQ follow-up paper: staged training (replacement, encoder freezing, adversarial stage)", "staged"),
    ("notebooks/performance", "Speed and memory of every quantizer (Sec. 3.3's kernel term at scale)", None),
)

#: Grids a page reads besides its own (PAGE_MAP's third column), through the package's helpers; a
#: test spies on the store to keep this true. ``pages_reading`` uses it to say which pages new
#: records of a grid change.
ALSO_READS = {
    "notebooks/replacement": ("codebook_size",),      # the off arms (mechanisms.replacement_runs)
    "notebooks/batch_steps": ("batch_size", "batch_lr"),   # the other arms (batch_size.arm_frames)
    "notebooks/kernel_meanshift": ("nsvq_ablation",),  # codes in use in the training runs
}


def pages_reading(grids) -> list[str]:
    """The toc pages (``notebooks/NAME``) that show records of any of ``grids``, then the verdict
    table, which reads them all; empty when no page does."""
    grids = set(grids)
    pages = [page for page, _, grid in PAGE_MAP
             if grid is not None and ({grid} | set(ALSO_READS.get(page, ()))) & grids]
    return pages + ["notebooks/verdicts"] if pages else []


_STATIC_STATUS = {
    "notebooks/paper_tables": "transcribed data (data/paper/)",
    "book/paper_vs_code": "prose, with the option that selects each rule",
    "book/verification": "prose; the rule is checked against the code",
    "notebooks/reproduction": "measured on the ci sample (committed)",
}


def _performance_status() -> str:
    """Which machines the committed benchmark tables were measured on."""
    from .benchmarks import load_benchmarks

    try:
        devices = sorted(set(load_benchmarks()["device_name"]))
    except FileNotFoundError:
        return "no benchmark table committed yet"
    gpu = [d for d in devices if not d.lower().startswith("cpu")]
    return (f"benchmark tables committed for {len(devices)} machine(s): "
            f"{'CPU and GPU' if gpu and len(gpu) < len(devices) else 'GPU only' if gpu else 'CPU only, GPU not yet measured'}")


def _study_status(page: str) -> str:
    name = page.removeprefix("notebooks/")
    try:
        _, df = _study(name)
    except FileNotFoundError:
        return "study not committed yet"
    return f"committed study ({df['seed'].nunique()} seeds){STUDY_PAGES[name][2]}"


def page_map(rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The introduction's map with a status computed from the committed results: for a grid page,
    how many of its runs are committed at which profile and how its claims came out."""
    rows = claim_rows() if rows is None else rows
    out = []
    for page, artifact, grid in PAGE_MAP:
        name = page.split("/")[-1]
        if grid is not None:
            try:
                _, src = load_grid(grid)
                status = f"{src.runs} of {src.grid_runs} runs at profile {src.profile} ({len(src.seeds)} seed(s))"
            except FileNotFoundError:
                status = "defined, no runs committed yet"
        elif name in STUDY_PAGES:
            status = _study_status(page)
        elif page == "notebooks/performance":
            status = _performance_status()
        else:
            status = _STATIC_STATUS.get(page, "computed on every build (ci scale)")
        marks = rows.loc[rows["page"] == name, "verdict"] if name in set(rows["page"]) else []
        if len(marks):
            status += "; " + ", ".join(f"{V.MARKS[v]} {int((marks == v).sum())}" for v in V.VERDICTS if (marks == v).any())
        out.append({"paper artifact": artifact, "page": page, "status": status})
    return pd.DataFrame(out)


def page_map_html(rows: pd.DataFrame | None = None, link_prefix: str = "../") -> str:
    """:func:`page_map` as HTML; pages linked relative to a page one folder down (book/intro)."""
    t = page_map(rows)
    t["page"] = [f'<a href="{link_prefix}{p}.html">{p.split("/")[-1].replace("_", " ")}</a>' for p in t["page"]]
    return t.to_html(index=False, escape=False, classes="page-map", border=0)
