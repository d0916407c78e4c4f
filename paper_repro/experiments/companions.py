"""What the two companion studies add to the paper's explanation of collapse: the introduction's
step 7, written from the verdicts of the ``causes`` page (seed 003's two other causes, measured on the
same runs as the drift) and the ``staged`` page (the authors' follow-up schedule).

Every conclusion in the text is chosen by a verdict of the one rule (``paper_repro.verdict``) and
every number comes from the committed runs, so the paragraph cannot go stale or contradict the pages
when more runs land; a claim that is not judged yet says how many of its cells have runs.
"""
from __future__ import annotations

import html
import math

from .. import verdict as V
from .mechanisms import CAUSE_CLAIMS, STAGED_CLAIMS, causes_start, page_verdicts

#: the pages this paragraph reads
PAGES = ("causes", "staged")


def _find(verdicts, key: str, claims: dict):
    """The verdict of the claim ``claims[key]`` (a partial grid appends "[k of its n cells run]" or "judged")."""
    return next((v for v in verdicts if v.claim.startswith(claims[key])), None)


def _progress(v) -> str:
    """``k of its n cells run`` (or ``judged``) while some cell of the claim is not judged yet."""
    if v is None or v.cells is None:
        return ""
    return V.progress(v.parts, v.cells)


def _judged(v) -> list:
    """The cells of claim ``v`` that are judged (more than one seed)."""
    return [p for p in v.parts if p.verdict in V.JUDGED]


def _status(v) -> str:
    """``verdict`` and, while some of the claim's cells are not judged, ``(k of its n cells run)``."""
    prog = _progress(v)
    return v.verdict + (f" ({prog})" if prog else "")


def _mean_difference(v, signed: bool = True) -> str:
    """The mean over a claim's judged cells of each cell's mean (the quantity its parts judge: a
    paired difference, ``+0.31``, or with ``signed=False`` a value, ``0.31``); empty when no part has
    a finite mean."""
    means = [p.mean for p in _judged(v) if p.mean is not None and math.isfinite(p.mean)]
    if not means:
        return ""
    m = sum(means) / len(means)
    sign = "+" if signed else ""
    return f"{m:{sign}.3g}" if abs(m) >= 1e-3 else f"{m:{sign}.3f}"     # ~0 reads +0.000, not +1.7e-18


def say(v, supported: str, contradicted: str, inconclusive: str, question: str,
        measure: str = "mean paired difference", signed: bool = True) -> str:
    """One clause for claim verdict ``v``: the ``supported`` / ``contradicted`` / ``inconclusive``
    text, or "whether {question} is not judged yet (k of its n cells run)". ``question`` is the claim as
    a clause ("X raises Y"); an inconclusive claim some of whose cells support it is said with it
    ("so far, X raises Y in every cell judged"), ``inconclusive`` is for the others. ``contradicted``
    may use ``{bad}`` (cells contradicting) and ``{cells}`` (cells judged). Judged clauses end with
    the verdict word and ``measure``: the mean over the cells judged of what each cell judges (a paired
    difference between arms, or for a bound on one arm its value)."""
    if v is None:
        return f"whether {question} is not measured at this profile"
    if v.verdict == V.PIPELINE:
        return f"whether {question} is only a pipeline check at this profile"
    prog = _progress(v)
    if v.verdict == V.NOT_JUDGED:
        return f"whether {question} is not judged yet" + (f" ({prog})" if prog else "")
    diff = _mean_difference(v, signed)
    evidence = v.verdict + (f", {measure} {diff}" if diff else "") + (f", {prog}" if prog else "")
    if v.verdict == V.SUPPORTED:
        text = supported
    elif v.verdict == V.CONTRADICTED:
        text = contradicted.format(bad=sum(p.verdict == V.CONTRADICTED for p in v.parts), cells=len(_judged(v)))
    else:
        judged = _judged(v)
        sup = sum(p.verdict == V.SUPPORTED for p in judged)
        if judged and sup == len(judged):      # every cell judged supports it; the rest are not judged yet
            text = f"so far, {question} in every cell judged"
        elif sup:
            text = f"{question} in {sup} of the {len(judged)} cells judged, and in the others by less than the seeds' spread"
        else:
            text = inconclusive
    return f"{text} ({evidence})"


def _start_clause(start: dict | None) -> str:
    """What the k-means start keeps (``mechanisms.start_kept``), measured on the same runs and not
    judged; empty without such runs."""
    if not start:
        return ""
    lo, hi = start["steps"]
    step = f"step {lo:,}" if lo == hi else f"steps {lo:,} to {hi:,}"
    return (f" What the start keeps, measured on the same runs and not judged: the k-means start's usage of "
            f"the probe images is {start['start']:.2g} at step 0 and {start['first']:.2g} by the first probe, "
            f"{step} (mean of {V.count(start['runs'], 'run')}).")


def _causes(verdicts, src, prefix: str, start: dict | None = None) -> str:
    init = _find(verdicts, "init", CAUSE_CLAIMS)
    wide = _find(verdicts, "width_usage", CAUSE_CLAIMS)
    rank = _find(verdicts, "width_rank", CAUSE_CLAIMS)
    s_init = say(init,
                 "a data-driven start (k-means on the untrained encoder's latents) raises the eval usage of vq and "
                 "NS-VQ at every width: part of the collapse is set at initialisation, before any drift",
                 "a data-driven start does not raise eval usage everywhere (it lowers it in {bad} of {cells} "
                 "cells): the random start is not what collapses these codebooks",
                 "a data-driven start changes eval usage by less than the seeds' spread",
                 "a data-driven start raises eval usage")
    s_wide = say(wide,
                 "a wider backbone raises eval usage for every arm: capacity limits usage too",
                 "a wider backbone does not raise eval usage for every arm (it lowers it for {bad} of {cells} arms): "
                 "capacity is not a general cause at this scale",
                 "a wider backbone changes eval usage by less than the seeds' spread",
                 "a wider backbone raises eval usage")
    s_rank = say(rank,
                 "its latents spread over more directions (participation ratio, our proxy for the study's "
                 "embedding collapse)",
                 "its latents do not spread over more directions for every arm",
                 "the spread of its latents over directions changes by less than the seeds' spread",
                 "a wider backbone's latents spread over more directions")
    verdicts_of = [v.verdict if v is not None else None for v in (init, wide)]
    if V.SUPPORTED in verdicts_of:
        causes = [name for name, v in (("initialisation", init), ("capacity", wide))
                  if v is not None and v.verdict == V.SUPPORTED]
        close = (f"So drift is not the only cause here: {' and '.join(causes)} "
                 f"{'explain' if len(causes) > 1 else 'explains'} part of the collapse that the paper "
                 f"attributes to drift alone.")
    elif verdicts_of == [V.CONTRADICTED, V.CONTRADICTED]:
        close = ("Neither alternative cause accounts for the collapse at this scale, which leaves the paper's "
                 "explanation, drift, standing; the page measures the drift on the same runs but does not "
                 "judge it.")
    elif all(v in (V.CONTRADICTED, V.INCONCLUSIVE) for v in verdicts_of):
        close = ("Neither alternative cause is established at this scale (each is contradicted or within the "
                 "seeds' spread), so these runs do not narrow the paper's explanation.")
    else:
        close = ("Until both are judged, these runs neither confirm nor narrow the paper's single-cause "
                 "explanation.")
    return (f"The paper names one cause of collapse, the encoder's drift; Zhao et al. add two, the random "
            f"start and a backbone too small for its latents. Measured on the same runs "
            f"(<a href=\"{prefix}causes.html\">causes of collapse</a>: {_scale(src)}): "
            f"on initialisation, {html.escape(s_init)}.{html.escape(_start_clause(start))} On capacity, "
            f"{html.escape(s_wide)}; {html.escape(s_rank)}. {html.escape(close)}")


def _staged(verdicts, src, prefix: str) -> str:
    full = _find(verdicts, "full", STAGED_CLAIMS)
    s_full = say(full,
                 "the full schedule keeps more than 90 % of its codes in use at every codebook size",
                 "the full schedule does not keep 90 % of its codes in use everywhere (it falls short in {bad} "
                 "of {cells} cells)",
                 "the full schedule keeps a share of its codes in use that cannot be told from 90 % at these seeds",
                 "the full schedule keeps more than 90 % of its codes in use", measure="mean eval usage",
                 signed=False)
    metrics = []
    for key, name in (("fd", "FD"), ("psnr", "PSNR"), ("lpips", "LPIPS, which stage (c) trains on")):
        v = _find(verdicts, key, STAGED_CLAIMS)
        if v is not None:
            metrics.append(f"{name}: {_status(v)}")
    stages = []
    frozen = _frozen_epochs(src.profile)
    for key, name in (("a", "replacement raises NS-VQ's usage"),
                      ("b", "freezing the encoder lowers the FD" + (f" (its encoder trains {frozen})" if frozen else "")),
                      ("c", "adversarial refinement lowers the FD"),
                      ("c_weight", "VQGAN's adaptive GAN weight gives it a lower FD than a fixed weight of 0.1")):
        v = _find(verdicts, key, STAGED_CLAIMS)
        if v is not None:
            stages.append(f"{name}: {_status(v)}")
    better = [_find(verdicts, k, STAGED_CLAIMS) for k in ("fd", "psnr")]
    if full is not None and full.verdict == V.SUPPORTED and all(v is not None and v.verdict == V.SUPPORTED
                                                                 for v in better):
        close = ("Here the follow-up's remedy does what it claims: removing the drift for a stage (the frozen "
                 "encoder is the stationary case of step 1) and replacing dead codes keeps the codebook in use.")
    elif full is not None and full.verdict == V.CONTRADICTED:
        close = "Here the schedule does not deliver the full utilisation the follow-up reports."
    else:
        close = ""
    return (f"The authors' follow-up answers with a training schedule, not a new update rule "
            f"(<a href=\"{prefix}staged.html\">staged training</a>: {_scale(src)}). On utilisation, "
            f"{html.escape(s_full)}; whether it reconstructs better than SimVQ, by metric: "
            f"{html.escape('; '.join(metrics) or 'no metric measured yet')}. Stage by stage, "
            f"{html.escape('; '.join(stages) or 'no stage judged yet')}."
            + (f" {html.escape(close)}" if close else ""))


def _frozen_epochs(profile: str) -> str:
    """How long the frozen arms' encoder trains at ``profile``, from the ``staged`` grid's own +a+b
    config ("1 epoch of 3"); empty where the grid is not defined at the profile."""
    from .grids import get_grid

    try:
        cfg = next(c for c in get_grid("staged", profile) if c.tag == "NS-VQ +a+b")
    except (KeyError, ValueError, StopIteration):
        return ""
    n = cfg.freeze_encoder_at_epoch
    return f"{n} epoch{'s' if n != 1 else ''} of {cfg.epochs}"


def _scale(src) -> str:
    return f"profile {src.profile}, {src.runs} of its {src.grid_runs} runs committed"


def reading(link_prefix: str = "../notebooks/", pages: dict | None = None, start: dict | None = None) -> str:
    """The introduction's step 7 as HTML (two paragraphs): what seed 003's causes and the follow-up's
    schedule add, from the two pages' verdicts. ``pages``: ``{page: (verdicts, GridSource)}``
    (default: :func:`mechanisms.page_verdicts` on the committed runs); a page without committed runs
    is said to have none. ``start``: what the k-means start keeps (``mechanisms.start_kept``; default
    with ``pages`` None: from the committed causes runs)."""
    out = []
    for page, write in zip(PAGES, (_causes, _staged)):
        try:
            vs, src = pages[page] if pages is not None else page_verdicts(page)
            extra = {}
            if page == "causes":
                extra["start"] = start if start is not None or pages is not None else causes_start()
        except FileNotFoundError:
            out.append(f'<a href="{link_prefix}{page}.html">{html.escape(page)}</a>: no committed runs yet.')
            continue
        out.append(write(vs, src, link_prefix, **extra))
    return (f'<div class="companion-reading"><p><b>7. What the companion studies add.</b> {out[0]}</p>'
            + "".join(f"<p>{o}</p>" for o in out[1:]) + "</div>")
