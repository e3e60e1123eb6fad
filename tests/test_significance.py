"""Paired comparisons of selectors over sequences (msn_core.evaluation.significance), the report that
experiments/selector_gaps.py makes from the evaluation tables kept in results/, and the one-step guide
quality tables of experiments/candidate_spread.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from msn_core.errors import InputError
from msn_core.evaluation import markdown
from msn_core.evaluation.significance import describe, gap_to_best

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    """A script of experiments/ as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _table(rows: dict[str, list[float]], metric: str = "J&F") -> dict:
    seqs = ["s0", "s1", "s2"]
    return {sel: {s: {metric: v} for s, v in zip(seqs, vals)} for sel, vals in rows.items()}


def test_gap_to_the_best_rival_per_sequence_and_left_out():
    # h1 is best on s0 only, by a lot; h2 is the best on average. Left out: s0 is scored against h2
    # (best on s1, s2), s1 and s2 against h1 (best on s0 + the other one).
    per_seq = _table({"msn": [5, 5, 5], "h1": [10, 0, 0], "h2": [4, 4, 4]})
    g = gap_to_best(per_seq, "msn", ["h1", "h2"])
    assert g["best_rival"] == "h2" and g["gap"] == pytest.approx(1.0)
    assert (g["wins"], g["ties"], g["losses"]) == (3, 0, 0)
    assert g["loo_gap"] == pytest.approx((1 + 5 + 5) / 3)
    assert g["ci95"] == pytest.approx((1.0, 1.0))  # the same gap on every sequence: no spread
    assert g["p_ahead"] == 1.0
    line = describe(g)
    assert "best heuristic (h2): +1.00 J&F" in line and "3 / 0 / 0" in line


def test_interval_holds_the_gap_and_losses_count():
    per_seq = _table({"msn": [50.0, 60.0, 70.2], "first": [50.5, 61.0, 70.0], "previous": [49.0, 59.0, 69.0]})
    g = gap_to_best(per_seq, "msn", ["first", "previous"], resamples=5000, seed=1)
    assert g["best_rival"] == "first"
    assert g["gap"] == pytest.approx((-0.5 - 1.0 + 0.2) / 3)
    lo, hi = g["ci95"]
    assert -1.0 - 1e-9 <= lo <= g["gap"] <= hi <= 0.2 + 1e-9
    assert (g["wins"], g["ties"], g["losses"]) == (1, 0, 2)
    assert 0 < g["p_ahead"] < 0.5
    assert gap_to_best(per_seq, "msn", ["first", "previous"], resamples=5000, seed=1) == g  # seeded


def test_lower_is_better_flips_the_sign():
    per_seq = _table({"msn": [3.0, 3.0, 3.0], "previous": [4.0, 4.5, 3.5]}, metric="l1")
    g = gap_to_best(per_seq, "msn", ["previous"], metric="l1", higher_is_better=False)
    assert g["gap"] == pytest.approx(1.0) and g["wins"] == 3


def test_clear_errors():
    per_seq = _table({"msn": [1, 2, 3], "first": [1, 2, 3]})
    with pytest.raises(InputError, match="no row for selector.*gap5"):
        gap_to_best(per_seq, "msn", ["gap5"])
    with pytest.raises(InputError, match="at least one rival"):
        gap_to_best(per_seq, "msn", ["msn"])


def test_evaluation_markdown_states_the_gap():
    per_seq = _table({"previous": [50, 60, 70], "first": [51, 61, 70], "msn": [52, 60, 71], "oracle": [53, 62, 72]})
    for rows in per_seq.values():
        for row in rows.values():
            row.update(J=row["J&F"], F=row["J&F"], seconds_per_frame=0.1)
    summary = {s: {k: sum(r[k] for r in rows.values()) / 3 for k in ("J", "F", "J&F", "seconds_per_frame")}
               for s, rows in per_seq.items()}
    md = markdown({"sequences": ["s0", "s1", "s2"], "max_side": 384,
                   "masks": {"tpn": {"summary": summary, "per_sequence": per_seq}}}, "msn evaluate")
    assert "- msn - best heuristic (first): +0.33 J&F" in md
    assert "- oracle - best heuristic (first): +1.67 J&F" in md


def test_selector_gaps_report_is_the_committed_one():
    """results/selector_gaps.md is what experiments/selector_gaps.py makes of the tables in results/."""
    text = _load("selector_gaps").report(20000)
    assert text == (ROOT / "results" / "selector_gaps.md").read_text()
    assert "| tpn | shipped weights, 384 | 8 | first |" in text  # the shipped TPN's best heuristic


def test_candidate_spread_picks_and_ranks():
    spread = _load("candidate_spread")
    # frame 12, candidates 0 (annotated), 5, 7, 11; MSN ranks them exactly as their quality
    frame = {"t": 12, "candidates": [0, 5, 7, 11], "quality": [0.6, 0.9, 0.7, 0.5], "msn": [0.3, 0.8, 0.5, 0.1]}
    picks = spread.picks(frame)
    assert picks == {"msn": 0.9, "first": 0.6, "previous": 0.5, "gap5": 0.7, "random (mean)": pytest.approx(0.675),
                     "best": 0.9}
    out = spread.summarise([frame, {**frame, "msn": [0.5, 0.1, 0.3, 0.8]}])  # the second ranks them backwards
    assert out["msn"] == pytest.approx(100 * (0.9 + 0.5) / 2) and out["best"] == pytest.approx(90)
    assert out["MSN rank correlation (Spearman, mean over frames)"] == pytest.approx(0.0)
    assert out["best - worst"] == pytest.approx(40) and out["frames"] == 2


@pytest.mark.parametrize("stem", ["tpn", "stm", "tpn_adapted", "stm_adapted", "tpn_adapted_854"])
def test_candidate_spread_tables_are_the_committed_ones(stem):
    import json

    spread = _load("candidate_spread")
    result = json.loads((ROOT / "results" / f"candidate_spread_{stem}.json").read_text())
    assert spread.markdown(result) == (ROOT / "results" / f"candidate_spread_{stem}.md").read_text()
    s = result["summary"]
    assert s["frames"] == 344 and s["best"] >= max(s[r] for r in ("msn", "first", "previous", "gap5"))
