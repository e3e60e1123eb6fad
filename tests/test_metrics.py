"""DAVIS J / F / statistics on hand-made masks, real DAVIS sequences, the CLI; PSNR and L1."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from davis_data import real_davis
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from msn_core.cli import main as cli_main
from msn_core.errors import InputError
from msn_core.io import read_mask
from msn_core.metrics import (
    EvalReport,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    evaluate_colour,
    evaluate_davis,
    evaluate_sequence,
    mean_abs_error,
    psnr,
)
from msn_core.metrics.measures import _seg2bmap


def _rect(r0: int, r1: int, c0: int, c1: int, shape=(20, 20), value: int = 1) -> np.ndarray:
    """uint8 mask with ``value`` on rows r0..r1 and columns c0..c1 (inclusive)."""
    m = np.zeros(shape, np.uint8)
    m[r0 : r1 + 1, c0 : c1 + 1] = value
    return m


SQUARE = _rect(5, 14, 5, 14)  # 10x10 = 100 px


# ---------------------------------------------------------------------------- J


def test_iou_square_vs_shifted_8x10_rect():
    # rect rows 9..16 (8 rows) x cols 5..14: inter = rows 9..14 = 6*10 = 60;
    # union = 100 + 80 - 60 = 120 -> J = 60/120 = 0.5
    assert db_eval_iou(SQUARE, _rect(9, 16, 5, 14)) == pytest.approx(0.5, abs=1e-12)
    # rect rows 7..14 inside the square: 80 / 100
    assert db_eval_iou(SQUARE, _rect(7, 14, 5, 14)) == pytest.approx(0.8, abs=1e-12)


def test_iou_empty_cases_and_stacks():
    empty = np.zeros((20, 20), np.uint8)
    assert db_eval_iou(empty, empty) == 1.0  # empty union -> 1
    assert db_eval_iou(SQUARE, empty) == 0.0
    stack = db_eval_iou(np.stack([SQUARE, empty, SQUARE]), np.stack([SQUARE, empty, empty]))
    np.testing.assert_array_equal(stack, [1.0, 1.0, 0.0])


def test_iou_void_pixels_removed_from_both():
    # prediction = square + 2 rows above (20 px); those rows are void -> J = 100/100;
    # without void: 100 / 120
    pred = _rect(3, 14, 5, 14)
    void = _rect(3, 4, 5, 14).astype(bool)
    assert db_eval_iou(SQUARE, pred, void) == pytest.approx(1.0)
    assert db_eval_iou(SQUARE, pred) == pytest.approx(100 / 120)


def test_iou_shape_mismatch_is_input_error():
    with pytest.raises(InputError, match="same shape"):
        db_eval_iou(SQUARE, np.zeros((10, 10)))


# ---------------------------------------------------------------------------- F


def test_boundary_map_of_a_square_has_40_pixels():
    # inside: right column (10) + bottom row (10) - shared corner = 19;
    # outside: column left of it rows 4..14 (11) + row above it cols 5..14 (10) = 21
    b = _seg2bmap(SQUARE)
    assert b.sum() == 40
    assert b[5:15, 14].all() and b[14, 5:15].all() and b[4:15, 4].all() and b[4, 5:15].all()
    assert not b[5:14, 5:14].any()


def test_boundary_f_one_pixel_shift_with_known_tolerance():
    shifted = _rect(5, 14, 6, 15)
    # tolerance 1 px (bound_th >= 1 is in pixels; disk(1) is a 3x3 cross): every
    # boundary pixel of either mask has one of the other within 1 step -> F = 1
    assert db_eval_boundary(SQUARE, shifted, bound_th=1) == pytest.approx(1.0)
    # tolerance 0 (ceil(0 * diag) = 0, a 1x1 disk): of the 40 boundary pixels of the
    # shifted square, 9 (bottom row) + 2 (left column, at the old top / bottom rows)
    # + 9 (top row) = 20 coincide -> P = 20/40, R = 20/40 by symmetry -> F = 0.5
    assert db_eval_boundary(SQUARE, shifted, bound_th=0) == pytest.approx(0.5)


def test_boundary_f_default_tolerance_is_8_px_on_davis_frames():
    # 854x480: ceil(0.008 * sqrt(480^2 + 854^2)) = ceil(7.84) = 8 px
    gt = _rect(100, 299, 200, 499, shape=(480, 854))
    assert db_eval_boundary(gt, np.roll(gt, 8, axis=1)) == pytest.approx(1.0)
    assert db_eval_boundary(gt, np.roll(gt, 9, axis=1)) < 1.0


def test_boundary_empty_cases():
    empty = np.zeros((20, 20), np.uint8)
    assert db_eval_boundary(empty, empty) == 1.0  # both empty: P = R = 1
    assert db_eval_boundary(SQUARE, empty) == 0.0  # no prediction: P = 1, R = 0
    assert db_eval_boundary(empty, SQUARE) == 0.0  # nothing to find: P = 0, R = 1
    out = db_eval_boundary(np.stack([SQUARE, empty]), np.stack([SQUARE, SQUARE]))
    np.testing.assert_array_equal(out, [1.0, 0.0])
    with pytest.raises(InputError, match="dimensions"):
        db_eval_boundary(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 4)))


# ------------------------------------------------------------------ statistics


def test_statistics_mean_recall_decay_by_hand():
    values = [1, 1, 0.4, 0.4, 0.4, 0.2, 0.2, 0.0]
    # mean = 3.6 / 8 = 0.45; recall = 2 frames > 0.5 of 8 = 0.25
    # bins: round(linspace(1, 8, 5) + 1e-10) - 1 = [0, 2, 4, 5, 7] (4.5 rounds up);
    # first bin values[0:3] = (1, 1, .4) mean 0.8, last values[5:8] = (.2, .2, 0) mean 0.1333
    mean, recall, decay = db_statistics(values)
    assert mean == pytest.approx(0.45)
    assert recall == pytest.approx(0.25)
    assert decay == pytest.approx(0.8 - 0.4 / 3)


def test_statistics_ignores_nan_in_mean_and_rejects_empty():
    mean, recall, _ = db_statistics([1.0, np.nan, 0.0, 0.5])
    assert mean == pytest.approx(0.5)  # (1 + 0 + 0.5) / 3
    assert recall == pytest.approx(0.25)  # nan > 0.5 is False: 1 of 4
    with pytest.raises(InputError):
        db_statistics([])


# -------------------------------------------------------------------- sequences


def test_first_and_last_frames_are_not_scored():
    gt = [SQUARE] * 5
    empty = np.zeros_like(SQUARE)
    pred = [empty, SQUARE, SQUARE, SQUARE, empty]  # wrong only on frames 0 and 4
    score = evaluate_sequence(gt, pred, name="toy")
    assert score.J_per_frame.shape == (1, 3) and score.F_per_frame.shape == (1, 3)
    assert score.J_mean == 1.0 and score.F_mean == 1.0 and score.JF_mean == 1.0
    worse = evaluate_sequence(gt, [SQUARE, empty, SQUARE, SQUARE, SQUARE])
    # frame 1 empty: J per frame (0, 1, 1) -> mean 2/3, recall 2/3
    assert worse.J_mean == pytest.approx(2 / 3) and worse.J_recall == pytest.approx(2 / 3)


def test_void_in_ground_truth_and_missing_objects():
    gt = SQUARE.copy()
    gt[3:5, 5:15] = 255  # void band above the object
    pred = _rect(3, 14, 5, 14)  # covers the void band too
    seq_gt, seq_pred = [gt] * 3, [pred] * 3
    assert evaluate_sequence(seq_gt, seq_pred).J_mean == pytest.approx(1.0)
    # as the official code: void counts as background -> 100 / 120
    assert evaluate_sequence(seq_gt, seq_pred, exclude_void=False).J_mean == pytest.approx(100 / 120)

    two = SQUARE.copy()
    two[0:3, 0:3] = 2  # second object
    score = evaluate_sequence([two] * 3, [SQUARE] * 3)  # object 2 never predicted
    assert score.n_objects == 2
    assert score.J_per_object == [1.0, 0.0] and score.F_per_object == [1.0, 0.0]
    assert score.J_mean == pytest.approx(0.5) and score.F_mean == pytest.approx(0.5)


def test_sequence_input_errors():
    with pytest.raises(InputError, match="object id 2"):
        evaluate_sequence([SQUARE] * 3, [SQUARE * 2] * 3)
    with pytest.raises(InputError, match="0/255"):  # raw 0/255 ground truth is all void
        evaluate_sequence([SQUARE * 255] * 3, [SQUARE] * 3)
    with pytest.raises(InputError, match="at least 3"):
        evaluate_sequence([SQUARE] * 2, [SQUARE] * 2)
    with pytest.raises(InputError, match="predicted frames"):
        evaluate_sequence([SQUARE] * 3, [SQUARE] * 4)
    with pytest.raises(InputError, match="annotation's size"):
        evaluate_sequence([SQUARE] * 3, [np.zeros((10, 10), np.uint8)] * 3)


@settings(max_examples=40, deadline=None)
@given(
    a=arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))),
    data=st.data(),
)
def test_iou_symmetric_bounded_and_one_on_identical(a, data):
    b = data.draw(arrays(bool, a.shape))
    j = db_eval_iou(a, b)
    assert 0.0 <= j <= 1.0
    assert j == db_eval_iou(b, a)
    assert db_eval_iou(a, a) == 1.0
    assert db_eval_boundary(a, a) == 1.0


# ------------------------------------------------------------------ real DAVIS


def _read_sequence(davis_dir: Path, name: str) -> list[np.ndarray]:
    return [read_mask(p) for p in sorted((davis_dir / "Annotations" / "480p" / name).glob("*.png"))]


def _exact_one(davis_dir: Path) -> str:
    """The sequence scored against itself: motocross-jump (40 frames) in DAVIS; without DAVIS the
    ``davis_dir`` fixture holds the bundled clips, and dog (30 frames at half the size) stands in."""
    return "motocross-jump" if davis_dir == real_davis() else "dog"


def _px(masks: list[np.ndarray], at_854: int) -> int:
    """A distance of ``at_854`` pixels in an 854-wide DAVIS frame, at the width of ``masks``."""
    return max(1, round(at_854 * masks[0].shape[1] / 854))


@pytest.mark.slow
def test_real_sequence_against_itself_and_shifted(davis_dir):
    name = _exact_one(davis_dir)
    gt = _read_sequence(davis_dir, name)
    same = evaluate_sequence(gt, gt, name=name)
    assert same.J_mean == 1.0 and same.F_mean == 1.0 and same.J_per_frame.shape == (1, len(gt) - 2)
    shifted = evaluate_sequence(gt, [np.roll(m, _px(gt, 10), axis=1) for m in gt])
    assert 0.5 < shifted.J_mean < 1.0
    assert shifted.F_mean < same.F_mean


def test_json_report_is_written_atomically(tmp_path, monkeypatch):
    """A write that fails half way (a full disk) keeps the earlier file whole and leaves no temporary."""
    gt = [np.pad(np.ones((8, 8), np.uint8), 8)] * 3
    report = EvalReport.from_sequences([evaluate_sequence(gt, gt, name="seq")])
    out = report.write_json(tmp_path / "scores.json")
    before = out.read_text()
    assert json.loads(before)["global"]["J_mean"] == 1.0

    def full_disk(self, text, *args, **kwargs):
        with open(self, "w") as f:
            f.write(text[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space"):
        report.write_json(out)
    assert out.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


@pytest.mark.slow
def test_cli_on_two_real_sequences(davis_dir, tmp_path, capsys):
    pred, exact = tmp_path / "pred", _exact_one(davis_dir)
    shutil.copytree(davis_dir / "Annotations" / "480p" / exact, pred / exact)
    (pred / "kite-surf").mkdir()
    kite = _read_sequence(davis_dir, "kite-surf")  # 50 frames (30 in the bundled clip)
    kernel = np.ones((2 * _px(kite, 2) + 1,) * 2, np.uint8)  # 5x5 at 854 wide
    for p in sorted((davis_dir / "Annotations" / "480p" / "kite-surf").glob("*.png")):
        eroded = cv2.erode((read_mask(p) * 255).astype(np.uint8), kernel)  # 0/255 binary PNG
        cv2.imwrite(str(pred / "kite-surf" / p.name), eroded)
    out_json = tmp_path / "scores.json"
    rc = cli_main(["evaluate-masks", str(pred), "--data-dir", str(davis_dir), "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:1].isalpha()}
    assert rows[exact][0] == "1.000" and rows[exact][-1] == "1.000"
    kite_j, kite_f = float(rows["kite-surf"][0]), float(rows["kite-surf"][3])
    assert 0.3 < kite_j < 0.99 and kite_f < 1.0
    assert "Global" in out
    data = json.loads(out_json.read_text())
    g = data["global"]
    # two single-object sequences: global means are the means over the 2 objects
    assert g["n_objects"] == 2 and [s["name"] for s in data["sequences"]] == sorted([exact, "kite-surf"])
    kite_json = next(s for s in data["sequences"] if s["name"] == "kite-surf")
    assert g["J_mean"] == pytest.approx((1.0 + kite_json["J_mean"]) / 2)
    assert g["J&F_mean"] == pytest.approx((g["J_mean"] + g["F_mean"]) / 2)
    assert len(kite_json["J_per_frame"][0]) == len(kite) - 2  # every frame but the first and last

    report = evaluate_davis(pred, davis_dir, [exact])
    assert report.J_mean == 1.0 and report.F_mean == 1.0 and report.n_objects == 1


def test_cli_errors_exit_2_with_a_clear_message(davis_dir, tmp_path, capsys):
    missing = tmp_path / "nope"
    assert cli_main(["evaluate-masks", str(missing), "--data-dir", str(davis_dir)]) == 2
    err = capsys.readouterr().err
    assert "prediction folder" in err and "does not exist" in err and str(missing) in err

    seq = tmp_path / "pred" / _exact_one(davis_dir)
    seq.mkdir(parents=True)  # the folder exists but holds no masks
    assert cli_main(["evaluate-masks", str(tmp_path / "pred"), "--data-dir", str(davis_dir)]) == 2
    err = capsys.readouterr().err
    assert "missing prediction" in err and "00001.png" in err

    rc = cli_main(
        ["evaluate-masks", str(tmp_path / "pred"), "--data-dir", str(davis_dir), "--sequences", "x"]
    )
    assert rc == 2 and "not in" in capsys.readouterr().err


# ---------------------------------------------------------------------- colour


def test_psnr_and_l1_by_hand():
    gt = np.zeros((2, 2, 3), np.uint8)
    # every value off by 10: MSE 100, RMSE 10 -> 20*log10(25.5) = 28.1308 dB; L1 = 10
    assert psnr(gt + 10, gt) == pytest.approx(20 * math.log10(25.5))
    assert psnr(gt + 10, gt) == pytest.approx(28.1308, abs=1e-4)
    assert mean_abs_error(gt + 10, gt) == pytest.approx(10.0)
    one = gt.copy()
    one[0, 0, 0] = 255  # 1 of 12 values off by 255: MSE 255^2/12 -> PSNR = 10*log10(12)
    assert psnr(one, gt) == pytest.approx(10 * math.log10(12))
    assert mean_abs_error(one, gt) == pytest.approx(255 / 12)
    assert psnr(gt, gt) == math.inf
    with pytest.raises(InputError, match="same"):
        psnr(gt, np.zeros((2, 3, 3), np.uint8))


def test_evaluate_colour_skips_the_given_first_frame():
    gt = [np.full((4, 4, 3), 100, np.uint8) for _ in range(5)]
    pred = [np.zeros((4, 4, 3), np.uint8)] + [g + 10 for g in gt[1:3]] + [g + 20 for g in gt[3:]]
    res = evaluate_colour(iter(pred), iter(gt), first_n=3)  # frames 1, 2 only
    assert res["frames"] == [1, 2]
    assert res["l1"] == pytest.approx(10.0) and res["psnr"] == pytest.approx(20 * math.log10(25.5))
    full = evaluate_colour(pred, gt)  # first_n=25 > 5 frames: frames 1..4
    assert full["frames"] == [1, 2, 3, 4] and full["l1"] == pytest.approx(15.0)
    assert full["l1_per_frame"] == pytest.approx([10, 10, 20, 20])
    with pytest.raises(InputError, match="prediction has 2 frames"):
        evaluate_colour(pred[:2], gt)


def test_rank_correlation():
    from msn_core.metrics import rank_correlation

    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 2, 3], [5, 5, 6, 7]) == pytest.approx(1.0)  # ties share their rank
    assert math.isnan(rank_correlation([1, 2, 3], [5, 5, 5])) and math.isnan(rank_correlation([1, 2], [2, 1]))
    with pytest.raises(InputError, match="one length"):
        rank_correlation([1, 2, 3], [1, 2])

