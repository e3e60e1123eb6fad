"""``msn evaluate`` end to end with the bundled weights on a few real DAVIS frames, and
``--merge`` joining evaluations made on disjoint sequences (as parallel processes make them)."""

from __future__ import annotations

import json

import pytest

from msn_core.cli import main
from msn_core.errors import InputError
from msn_core.evaluation import merge_results

pytestmark = pytest.mark.usefixtures("one_thread", "offline_hub")

ARGS = ["--propagators", "tpn", "--selectors", "previous,first,msn", "--max-side", "160",
        "--max-frames", "4", "--threads", "1"]


def _evaluate(davis_dir, out, seqs, *extra):
    rc = main(["evaluate", "--data-dir", str(davis_dir), "--out-dir", str(out), "--sequences", seqs, *ARGS, *extra])
    assert rc == 0
    return json.loads((out / "evaluation.json").read_text())


@pytest.fixture(scope="module")
def runs(davis_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("evaluate")
    return base, {
        "both": _evaluate(davis_dir, base / "both", "dog,camel"),
        "a": _evaluate(davis_dir, base / "a", "dog"),
        "b": _evaluate(davis_dir, base / "b", "camel"),
    }


def test_evaluate_writes_tables_with_the_command(runs):
    base, res = runs
    table = res["both"]["masks"]["tpn"]["summary"]
    assert list(table) == ["previous", "first", "msn"]
    for row in table.values():
        assert 0 <= row["J"] <= 100 and 0 <= row["F"] <= 100 and row["seconds_per_frame"] > 0
    md = (base / "both" / "evaluation.md").read_text()
    assert "--sequences dog,camel" in md and "| msn |" in md and "(best heuristic)" in md
    assert "- msn - best heuristic (" in md and "95 % interval" in md and "sequences won / tied / lost" in md


def test_merge_equals_one_run_on_all_sequences(runs, capsys):
    base, res = runs
    rc = main(["evaluate", "--merge", f"{base / 'a'},{base / 'b'}", "--out-dir", str(base / "merged")])
    assert rc == 0
    merged = json.loads((base / "merged" / "evaluation.json").read_text())
    assert merged["sequences"] == ["dog", "camel"]
    for sel, row in res["both"]["masks"]["tpn"]["summary"].items():  # the networks are deterministic
        assert merged["masks"]["tpn"]["summary"][sel]["J&F"] == pytest.approx(row["J&F"], abs=1e-6)
    md = (base / "merged" / "evaluation.md").read_text()
    assert "--sequences dog " in md and "--sequences camel " in md and "--merge" in md  # every command kept
    out = capsys.readouterr().out
    assert "merged 2 evaluations" in out and "tpn: msn - best heuristic (" in out


def test_merge_refuses_what_does_not_add_up(runs, tmp_path, capsys):
    _, res = runs
    with pytest.raises(InputError, match="evaluated twice"):
        merge_results([res["a"], res["both"]])
    with pytest.raises(InputError, match="different max_side"):
        merge_results([res["a"], {**res["b"], "max_side": 384}])
    with pytest.raises(InputError, match="at least two"):
        merge_results([res["a"]])
    rc = main(["evaluate", "--merge", f"{tmp_path},{tmp_path}", "--out-dir", str(tmp_path / "m")])
    assert rc == 2 and "evaluation.json does not exist" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_spread_scores_every_candidate_of_an_audited_msn_run(davis_dir, tmp_path, runs):
    res = _evaluate(davis_dir, tmp_path, "dog", "--spread")
    tpn = res["masks"]["tpn"]
    spread = tpn["spread"]["dog"]
    assert spread["frames"] == 3  # every propagated frame has candidates
    assert 0 <= spread["random"] <= spread["best"] <= 100 and spread["chosen"] <= spread["best"]
    assert tpn["spread_summary"]["best"] == pytest.approx(spread["best"])
    # the audited run is an extra run: the selectors' own scores are those of the plain evaluation
    assert tpn["summary"]["msn"]["J&F"] == pytest.approx(runs[1]["a"]["masks"]["tpn"]["summary"]["msn"]["J&F"])
    assert "One-step candidate spread" in (tmp_path / "evaluation.md").read_text()
