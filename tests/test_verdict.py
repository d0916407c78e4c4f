"""The one verdict rule (paper_repro.verdict): each branch of RULE on hand-computed cases."""
import math

import pandas as pd
import pytest

from paper_repro.verdict import (CONTRADICTED, INCONCLUSIVE, NOT_JUDGED, OURS, PIPELINE, RULE, SUPPORTED,
                                 judge, judge_all, judge_difference, verdict_table)


def test_two_standard_errors_decide_supported_inconclusive_contradicted():
    # values 1, 2, 3: mean 2, sd 1, se 1/sqrt(3) = 0.577; 2 se = 1.155
    assert judge("x > 0.8", [1, 2, 3], ">", 0.8).verdict == SUPPORTED        # 1.2 > 1.155
    assert judge("x > 0.9", [1, 2, 3], ">", 0.9).verdict == INCONCLUSIVE     # 1.1 < 1.155
    assert judge("x > 3.2", [1, 2, 3], ">", 3.2).verdict == CONTRADICTED     # -1.2 < -1.155
    assert judge("x > 3.1", [1, 2, 3], ">", 3.1).verdict == INCONCLUSIVE
    assert judge("x < 3.2", [1, 2, 3], "<", 3.2).verdict == SUPPORTED
    v = judge("x > 0.8", [1, 2, 3], ">", 0.8, profile="gpu")
    assert (v.n, v.mean, v.sd) == (3, 2.0, 1.0) and v.profile == "gpu"


def test_one_seed_is_not_judged_and_ci_is_a_pipeline_check():
    assert judge("x > 0", [5.0]).verdict == NOT_JUDGED
    assert judge("x > 0", [5.0, 6.0, 7.0], profile="ci").verdict == PIPELINE
    assert judge("x > 0", [-5.0, -6.0], profile="ci").verdict == PIPELINE     # never "fails" at ci


def test_equal_seeds_are_decided_by_the_comparison_and_exact_values_by_the_op():
    assert judge("usage >= 1", [1.0, 1.0, 1.0], ">=", 1.0).verdict == SUPPORTED
    assert judge("usage > 1", [1.0, 1.0, 1.0], ">", 1.0).verdict == CONTRADICTED
    assert judge("err < 1e-12", [3e-13], "<", 1e-12, exact=True).verdict == SUPPORTED
    assert judge("err < 1e-12", [3e-11], "<", 1e-12, exact=True).verdict == CONTRADICTED
    with pytest.raises(ValueError, match="one value"):
        judge("err", [1, 2], exact=True)


def test_differences_pair_by_seed():
    a = pd.Series({0: 0.9, 1: 0.8, 2: 0.85, 7: 0.1})
    b = pd.Series({0: 0.5, 1: 0.45, 2: 0.5})
    v = judge_difference("a > b", a, b)
    assert v.n == 3 and math.isclose(v.mean, (0.4 + 0.35 + 0.35) / 3) and v.verdict == SUPPORTED
    with pytest.raises(ValueError, match="no seed in common"):
        judge_difference("a > b", pd.Series({5: 1.0}), b)
    with pytest.raises(ValueError, match="pair them"):
        judge_difference("a > b", [1, 2], [1])


def test_all_cells_claim_takes_the_weakest_and_any_contradiction():
    s, i, c = (judge("s", [1, 2, 3], ">", 0), judge("i", [1, 2, 3], ">", 1.5), judge("c", [1, 2, 3], ">", 5))
    assert judge_all("all", [s, s]).verdict == SUPPORTED
    assert judge_all("all", [s, i]).verdict == INCONCLUSIVE
    assert judge_all("all", [s, i, c]).verdict == CONTRADICTED
    # a cell with one seed is not judged yet: beside judged cells the claim is at best inconclusive
    one = judge("one", [1.0])
    assert judge_all("all", [one, one]).verdict == NOT_JUDGED
    waiting = judge_all("all", [s, one])
    assert waiting.verdict == INCONCLUSIVE and waiting.claim == "all [1 of its 2 cells judged]"
    assert judge_all("all", [i, one]).verdict == INCONCLUSIVE
    assert judge_all("all", [c, one]).verdict == CONTRADICTED
    assert judge_all("all", [s, one], cells=3).claim == "all [2 of its 3 cells run, 1 judged]"
    assert judge_all("all", [one, one]).claim == "all [0 of its 2 cells judged]"
    t = verdict_table([s, i, judge_all("all", [s, c])])
    assert list(t["verdict"]) == [SUPPORTED, INCONCLUSIVE, CONTRADICTED]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="finite"):
        judge("x", [1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one"):
        judge("x", [])
    with pytest.raises(ValueError, match="op must be"):
        judge("x", [1.0], "=>")


def test_the_rule_is_stated_once_on_the_verification_page():
    from paper_repro.paths import REPO_ROOT
    page = (REPO_ROOT / "book" / "verification.md").read_text()
    assert " ".join(RULE.split()) in " ".join(page.split())


def test_a_partial_grid_supports_nothing_but_can_contradict():
    from paper_repro.verdict import judge, judge_all
    ok = [judge(f"cell {i}", [0.9, 0.91, 0.92], ">=", 0.5) for i in range(2)]
    bad = judge("cell x", [0.1, 0.11, 0.12], ">=", 0.5)
    assert judge_all("every cell", ok).verdict == SUPPORTED
    partial = judge_all("every cell", ok, cells=6)
    assert partial.verdict == INCONCLUSIVE and "[2 of its 6 cells run]" in partial.claim
    assert judge_all("every cell", ok + [bad], cells=6).verdict == CONTRADICTED
    assert judge_all("every cell", ok, cells=2).verdict == SUPPORTED
    # how many cells it names travels with the verdict (the introduction's step 7 reads "2 of its 6")
    assert (partial.cells, len(partial.parts)) == (6, 2) and judge_all("every cell", ok).cells == 2
    assert judge("one cell", [0.9, 0.91]).cells is None


def test_whose_claim_is_carried_by_every_judge():
    """``side`` (whose claim, where not the page's source) passes through judge, judge_difference and
    judge_all unchanged, and changes no verdict."""
    a = judge("a", [0.5, 0.6], ">", 0.1, side=OURS)
    d = judge_difference("d", [0.5, 0.6], [0.1, 0.2], side=OURS)
    both = judge_all("both", [a, d], side=OURS)
    assert a.side == d.side == both.side == OURS
    assert (a.verdict, d.verdict, both.verdict) == (judge("a", [0.5, 0.6], ">", 0.1).verdict, SUPPORTED, SUPPORTED)
    assert judge("plain", [0.5, 0.6]).side == "" and judge_all("plain", [a]).side == ""


def test_a_claim_with_no_cell_run_is_listed_as_not_judged():
    from paper_repro import verdict as V

    v = V.not_run("X beats Y at every K", 3, side=V.OURS, profile="cpu")
    assert (v.verdict, v.mark, v.n, v.parts, v.side) == (V.NOT_JUDGED, "\u00b7", 0, (), V.OURS)
    assert v.line() == "\u00b7 X beats Y at every K [0 of its 3 cells run]: not judged [no runs yet; profile cpu]"
    assert V.not_run("one cell", 1).claim.endswith("[0 of its 1 cell run]")
    assert v.cells == 3


def test_counts_read_in_the_right_number():
    one, three = judge("one", [1.0, 1.0, 1.0], ">=", 0), judge("two", [1.0, 2.0], ">", 0)
    assert judge_all("a", [one]).short().endswith("(1 cell)")
    assert judge_all("b", [one, three]).stats() == "2 cells"
    assert judge("c", [1.0]).short().endswith("(1 seed)")
    from paper_repro.experiments.verdicts import _parts_stats
    assert _parts_stats(judge_all("d", [one])) == "1 cell, 3 seeds each"
    assert _parts_stats(judge_all("e", [one, three])) == "2 cells, 2 to 3 seeds each"
