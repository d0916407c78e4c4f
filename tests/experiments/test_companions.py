"""The introduction's step 7 (``companions.reading``): every conclusion is chosen by a verdict, so each
branch is driven here by verdicts built with the one rule from chosen per-seed values."""
from types import SimpleNamespace

import pytest

from paper_repro import verdict as V
from paper_repro.experiments import companions as C
from paper_repro.experiments.mechanisms import CAUSE_CLAIMS, STAGED_CLAIMS

UP = [0.30, 0.32, 0.31]        # a clear positive paired difference over three seeds
DOWN = [-0.30, -0.32, -0.31]
FLAT = [0.05, -0.06, 0.01]     # within the seeds' spread


def claim(text, cells, profile="cpu", n_cells=None):
    """A claim over ``cells`` (a list of per-seed differences, one list per cell); ``n_cells``: how
    many cells the claim names (default: all of them run)."""
    parts = [V.judge(f"cell {i}", vals, ">", 0.0, profile) for i, vals in enumerate(cells)]
    n = len(cells) if n_cells is None else n_cells
    return V.judge_all(text, parts, n) if parts else V.not_run(text, n, profile=profile)


def src(runs=30, grid_runs=30, profile="cpu"):
    return SimpleNamespace(profile=profile, runs=runs, grid_runs=grid_runs)


def causes(init, wide, rank, profile="cpu"):
    return ([claim(CAUSE_CLAIMS["init"], init, profile), claim(CAUSE_CLAIMS["width_usage"], wide, profile),
             claim(CAUSE_CLAIMS["width_rank"], rank, profile)], src(profile=profile))


def staged(full, fd, psnr, a=(UP, UP)):
    vs = [claim(STAGED_CLAIMS["full"], full), claim(STAGED_CLAIMS["fd"], fd), claim(STAGED_CLAIMS["psnr"], psnr),
          claim(STAGED_CLAIMS["lpips"], [UP, UP]), claim(STAGED_CLAIMS["a"], list(a)),
          claim(STAGED_CLAIMS["b"], [FLAT, FLAT]), claim(STAGED_CLAIMS["c"], [], n_cells=2),
          claim(STAGED_CLAIMS["c_weight"], [], n_cells=2)]
    return vs, src(runs=24)


def text(c, s=None):
    return C.reading(pages={"causes": c, "staged": s or staged([UP, UP], [UP, UP], [UP, UP])})


def test_a_supported_cause_is_named_with_its_mean_difference():
    t = text(causes([UP] * 4, [FLAT] * 5, [UP] * 5))
    assert "part of the collapse is set at initialisation" in t
    assert "(supported, mean paired difference +0.31)" in t
    assert "So drift is not the only cause here: initialisation explains part of the collapse" in t
    assert "changes eval usage by less than the seeds&#x27; spread (inconclusive" in t


def test_both_causes_supported_are_both_named():
    t = text(causes([UP] * 4, [UP] * 5, [UP] * 5))
    assert "initialisation and capacity explain part of the collapse" in t


def test_both_causes_contradicted_leave_drift_standing_and_count_the_failing_cells():
    t = text(causes([UP, DOWN, UP, DOWN], [DOWN] * 5, [FLAT] * 5))
    assert "it lowers it in 2 of 4 cells" in t
    assert "lowers it for 5 of 5 arms" in t
    assert "Neither alternative cause accounts for the collapse" in t
    assert "(inconclusive, mean paired difference +0.000)" in t or "(inconclusive, mean paired difference -0.000)" in t
    assert "drift is not the only cause" not in t


def test_causes_neither_supported_nor_both_contradicted_are_not_established():
    t = text(causes([DOWN] * 4, [FLAT] * 5, [FLAT] * 5))
    assert "Neither alternative cause is established at this scale" in t
    assert "Until both are judged" not in t and "leaves the paper" not in t


def test_mixed_cells_say_how_many_support_the_claim():
    t = text(causes([UP, FLAT, UP, FLAT], [FLAT] * 5, [FLAT] * 5))
    assert "a data-driven start raises eval usage in 2 of the 4 cells judged, and in the others by less than the " \
           "seeds&#x27; spread (inconclusive" in t


def test_a_partial_grid_says_how_many_cells_have_runs():
    partial = ([claim(CAUSE_CLAIMS["init"], [UP, UP], n_cells=4), claim(CAUSE_CLAIMS["width_usage"], [], n_cells=5),
                claim(CAUSE_CLAIMS["width_rank"], [], n_cells=5)], src(runs=6))
    t = text(partial)
    # every judged cell supports it, but two of four cells have no runs: inconclusive at best (the rule)
    assert "so far, a data-driven start raises eval usage in every cell judged (inconclusive, mean paired " \
           "difference +0.31, 2 of its 4 cells run)" in t
    assert "whether a wider backbone raises eval usage is not judged yet (0 of its 5 cells run)" in t
    assert "Until both are judged" in t
    assert "profile cpu, 6 of its 30 runs committed" in t


def test_a_cell_with_one_seed_is_neither_evidence_nor_in_the_mean():
    t = text(causes([UP, UP, UP, [0.9]], [FLAT] * 5, [FLAT] * 5))
    assert "so far, a data-driven start raises eval usage in every cell judged (inconclusive, mean paired " \
           "difference +0.31, 3 of its 4 cells judged)" in t
    t = text(causes([UP, DOWN, UP, [0.9]], [FLAT] * 5, [FLAT] * 5))
    assert "it lowers it in 1 of 3 cells" in t


def test_pipeline_profile_is_never_read_as_evidence():
    t = text(causes([UP] * 4, [UP] * 5, [UP] * 5, profile="ci"))
    assert "only a pipeline check at this profile" in t
    assert "drift is not the only cause" not in t


def test_staged_paragraph_reads_each_metric_and_stage():
    t = text(causes([UP] * 4, [UP] * 5, [UP] * 5))
    assert "the full schedule keeps more than 90 % of its codes in use at every codebook size (supported, " \
           "mean eval usage 0.31)" in t
    assert "FD: supported; PSNR: supported; LPIPS, which stage (c) trains on: supported" in t
    # the schedule fact that weighs on stage (b), from the grid's own config at the profile
    assert "freezing the encoder lowers the FD (its encoder trains 1 epoch of 3): inconclusive" in t
    assert "adversarial refinement lowers the FD: not judged (0 of its 2 cells run)" in t
    assert "VQGAN&#x27;s adaptive GAN weight gives it a lower FD than a fixed weight of 0.1: not judged" in t
    assert "the follow-up&#x27;s remedy does what it claims" in t
    t = text(causes([UP] * 4, [UP] * 5, [UP] * 5), staged([DOWN, UP], [UP, UP], [DOWN, DOWN]))
    assert "falls short in 1 of 2 cells" in t
    assert "does not deliver the full utilisation" in t
    assert "PSNR: contradicted" in t


def test_the_frozen_arms_encoder_epochs_come_from_the_staged_grid():
    # +a+b freezes the encoder from the second-to-last epoch (from the last with two epochs)
    assert C._frozen_epochs("ci") == "1 epoch of 2"
    assert C._frozen_epochs("cpu") == "1 epoch of 3"
    assert C._frozen_epochs("gpu") == "8 epochs of 10"
    assert C._frozen_epochs("no-such-profile") == ""


def test_a_page_without_runs_keeps_the_heading_and_says_so():
    class NoCauses(dict):        # as page_verdicts does for a grid without committed runs
        def __getitem__(self, k):
            if k == "causes":
                raise FileNotFoundError(k)
            return super().__getitem__(k)
    t = C.reading(pages=NoCauses(staged=staged([UP, UP], [UP, UP], [UP, UP])))
    assert t.startswith('<div class="companion-reading"><p><b>7. What the companion studies add.</b> ')
    assert 'causes.html">causes</a>: no committed runs yet.' in t
    assert "staged training</a>: profile cpu, 24 of its 30 runs committed" in t


def test_claims_not_found_are_said_to_be_unmeasured():
    t = text(([], src()))
    assert t.count("is not measured at this profile") == 3


@pytest.mark.parametrize("page", C.PAGES)
def test_committed_runs_give_a_paragraph_with_their_counts(page):
    from paper_repro.experiments.mechanisms import page_verdicts
    _, s = page_verdicts(page)
    t = C.reading()
    assert f"{page}.html" in t
    assert f"profile {s.profile}, {s.runs} of its {s.grid_runs} runs committed" in t


def test_the_pages_own_verdicts_are_found_and_read():
    """End to end from runs: the causes and staged pages' verdict functions on full synthetic grids
    (init and width help; the schedule wins) give the 'supported' sentences, so the claim texts the
    paragraph looks up are the ones the pages write (width claims carry their '(width W vs w)')."""
    import pandas as pd

    from paper_repro.experiments import grids, mechanisms as mech

    rows = []
    for w in grids.CAUSE_WIDTHS["cpu"]:
        for q, init in grids.CAUSE_ARMS:
            for s in (0, 1, 2):
                rows.append({"profile": "cpu", "quantizer": q, "quantizer_options.init": init, "width": w, "seed": s,
                             "eval_usage": 0.1 + (0.3 if init == "kmeans" else 0) + (0.2 if w > 0.25 else 0) + 0.01 * s,
                             "config_hash": f"{q}{init}{w}{s}", "num_codes": 1024, "code_dim": 64, "tag": "x"})
    df = pd.DataFrame(rows)
    last = pd.DataFrame({"config_hash": df["config_hash"],
                         "latent_rank": [2.0 + (w > 0.25) + 0.1 * s for w, s in zip(df["width"], df["seed"])]})
    arms = {"SimVQ": (0.5, 25.0, 40.0, 0.2), "NS-VQ": (0.01, 22.0, 60.0, 0.3), "NS-VQ +a": (0.6, 23.0, 50.0, 0.25),
            "NS-VQ +a+b": (0.7, 22.5, 45.0, 0.26), "NS-VQ +a+b+c": (0.95, 25.5, 35.0, 0.1),
            "NS-VQ +a+b+c (fixed)": (0.6, 16.0, 60.0, 0.3)}
    st = pd.DataFrame([{"profile": "cpu", "tag": t, "num_codes": k, "seed": s, "eval_usage": u + 0.01 * s,
                        "psnr": p + 0.1 * s, "fd": f + s, "lpips": lp + 0.001 * s}
                       for t, (u, p, f, lp) in arms.items() for k in grids.STAGED_SIZES for s in (0, 1, 2)])
    t = C.reading(pages={"causes": (mech.causes_verdicts(df, last), src()),
                         "staged": (mech.staged_verdicts(st), src())})
    assert "part of the collapse is set at initialisation, before any drift (supported" in t
    assert "capacity limits usage too (supported" in t and "participation ratio, our proxy" in t
    assert "initialisation and capacity explain part of the collapse" in t
    assert "FD: supported; PSNR: supported; LPIPS, which stage (c) trains on: supported" in t
    assert "the follow-up&#x27;s remedy does what it claims" in t
    assert "adaptive GAN weight gives it a lower FD than a fixed weight of 0.1: supported" in t
    assert "not measured" not in t and "not judged" not in t


def test_what_the_start_keeps_is_said_after_the_init_clause_as_measured_not_judged():
    start = {"runs": 6, "start": 0.974, "first": 0.0182, "steps": (375, 375)}
    t = C.reading(pages={"causes": causes([FLAT] * 4, [FLAT] * 5, [FLAT] * 5),
                         "staged": staged([UP, UP], [UP, UP], [UP, UP])}, start=start)
    i = t.index("What the start keeps, measured on the same runs and not judged: the k-means start&#x27;s "
                "usage of the probe images is 0.97 at step 0 and 0.018 by the first probe, step 375 "
                "(mean of 6 runs).")
    assert t.index("on initialisation,") < i < t.index("On capacity,")
    spread = dict(start, steps=(375, 400), runs=1)
    assert "by the first probe, steps 375 to 400 (mean of 1 run)." in C.reading(
        pages={"causes": causes([FLAT] * 4, [FLAT] * 5, [FLAT] * 5), "staged": staged([UP, UP], [UP, UP], [UP, UP])},
        start=spread)
    assert "What the start keeps" not in text(causes([FLAT] * 4, [FLAT] * 5, [FLAT] * 5))   # not given
