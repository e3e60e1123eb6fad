"""The shipped networks propagate what was marked, not the clip's main object. Real frames (the
bundled camel and dog clips, validation sequences), the bundled weights, no adaptation, the
default size; frame 10 is scored, as in the project's acceptance probe."""

from __future__ import annotations

import numpy as np
import pytest

import msn_core
from msn_core.io import example_sequence, read_mask
from msn_core.training.scenes import build_scene

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
FRAMES = 11  # frames 0..10: the annotation and ten propagated frames
PROPAGATORS = ("tpn", "stm")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MSN_WEIGHTS_DIR", raising=False)


def _clip(name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    source, masks = example_sequence(name, max_frames=FRAMES)
    return list(source), [read_mask(p) for p in masks]


@pytest.fixture(scope="module")
def camel():
    return _clip("camel")


@pytest.fixture(scope="module")
def scene(camel):
    """The camel clip with the dog (cut out frame after frame from its own clip) walking across."""
    return build_scene("second", camel, _clip("dog"), seed=0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def _last(propagator: str, frames, first) -> np.ndarray:
    """The label map at the last frame, with the shipped weights and the default selector."""
    return list(msn_core.load(propagator).propagate(frames, first))[-1].labels


# Measures the shipped weights do not reach yet (results/evaluation.md, "Guide dependence", has the
# figures): expected failures, strict, so one that starts to pass fails the run until it is removed.
_GUEST = "loses the marked guest (a small, fast object crossing in front of the host)"
SHORT_OF: dict[tuple[str, str], str] = {
    ("tpn", "guest"): _GUEST,
    ("tpn", "both"): "both ids drift",
    ("stm", "guest"): _GUEST,
    ("stm", "both"): "keeps the host's id, " + _GUEST.replace("loses", "loses the id of"),
}


def _cases(kinds: tuple[str, ...]) -> list:
    return [
        pytest.param(p, k, marks=pytest.mark.xfail(strict=True, reason=SHORT_OF[(p, k)]))
        if (p, k) in SHORT_OF
        else pytest.param(p, k)
        for p in PROPAGATORS
        for k in kinds
    ]


@pytest.mark.parametrize(("propagator", "case"), _cases(("empty",)))
def test_a_mask_on_an_empty_patch_does_not_turn_into_the_main_object(propagator, case, camel):
    frames, masks = camel
    patch = np.zeros(masks[0].shape, np.uint8)
    patch[10:55, 10:110] = 1  # sky and fence above the camel
    assert not (patch & (masks[0] > 0)).any()
    out = _last(propagator, frames, patch)
    assert _iou(out > 0, masks[-1] > 0) <= 0.2


@pytest.mark.parametrize(("propagator", "case"), _cases(("host", "guest")))
def test_marking_one_of_two_real_objects_gives_that_one(propagator, case, scene):
    other = "guest" if case == "host" else "host"
    truth = scene.truth(case)
    out = _last(propagator, scene.frames, truth[0]) > 0
    assert _iou(out, truth[-1] > 0) >= 0.6
    assert _iou(out, scene.truth(other)[-1] > 0) <= 0.1


@pytest.mark.parametrize(("propagator", "case"), _cases(("both",)))
def test_two_ids_stay_apart(propagator, case, scene):
    truth = scene.truth("both")
    out = _last(propagator, scene.frames, truth[0])
    for oid, other in ((1, 2), (2, 1)):
        assert _iou(out == oid, truth[-1] == oid) >= 0.6
        assert _iou(out == oid, truth[-1] == other) <= 0.1


@pytest.mark.parametrize(("propagator", "case"), _cases(("box-480p",)))
def test_a_box_on_the_background_of_the_full_size_clip_does_not_become_the_camel(propagator, case, real_davis_dir):
    """The project's before-stop probe: DAVIS camel at 480p, a box on the top-left background,
    selector "previous", 11 frames later."""
    from msn_core.evaluation.runs import read_sequence

    frames, gts = read_sequence(real_davis_dir, "camel", FRAMES + 1)
    box = np.zeros(gts[0].shape, np.uint8)
    box[20:120, 20:200] = 1
    assert not (box & (gts[0] > 0)).any()
    out = list(msn_core.load(propagator, selector="previous").propagate(frames, box))[-1].labels
    assert _iou(out > 0, gts[-1] > 0) <= 0.2
