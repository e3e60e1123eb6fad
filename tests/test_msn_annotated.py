"""The shipped mask MSNs (STM-1's and TPN's) read which candidates the user annotated: on real frames
(the bundled kite-surf clip, a validation sequence) with frame 0 and a corrected middle frame, the
flag raises the annotated candidates' scores and the user's frames become the guides of the frames after
the correction (STM-1's MSN: the corrected frame; TPN's: the corrected frame for the frame right after it,
and one of the two annotated frames throughout), where the same MSN blind to the flag picks others."""

from __future__ import annotations

import copy

import pytest
import torch

import msn_core
from msn_core.io import example_sequence, read_mask

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
CORRECTED = 15


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MSN_WEIGHTS_DIR", raising=False)


@pytest.mark.parametrize(
    "propagator, min_lift",
    [("stm", 0.02), ("tpn", 0.0)],
)
def test_the_shipped_msn_prefers_the_frames_the_user_annotated(propagator, min_lift):
    source, masks = example_sequence("kite-surf")
    frames, truth = list(source), [read_mask(p) for p in masks]
    annotations = {0: truth[0], CORRECTED: truth[CORRECTED]}
    pipe = msn_core.load(propagator, "mask")  # the network and its MSN, the bundled weights
    assert pipe.msn.cfg.annotated_head and pipe.msn.fc_annotated.weight.abs().sum() > 0
    blind = copy.deepcopy(pipe.msn)  # the same MSN with the flag read as 0
    with torch.no_grad():
        blind.fc_annotated.weight.zero_()
        blind.fc_annotated.bias.zero_()
    runs = [list(p.propagate(frames, annotations, selector="msn")) for p in (pipe, pipe.with_parts(msn=blind))]
    later = [(r, b) for r, b in zip(*runs) if r.index > CORRECTED]
    assert len(later) == len(frames) - CORRECTED - 1
    lifts = []
    for r, b in zip(*runs):
        assert r.annotated_candidates == b.annotated_candidates
        lifts += [r.scores[c] - b.scores[c] for c in r.annotated_candidates]
    assert lifts and min(lifts) > min_lift and sum(lifts) / len(lifts) > 0.01  # the flag adds to every annotated candidate
    picked_blind = sum(b.guide == CORRECTED for _, b in later)
    if propagator == "stm":
        picked = sum(r.guide == CORRECTED for r, _ in later)
    else:  # a short-range propagator: the correction guides its next frames, then either user frame may
        assert later[0][0].guide == CORRECTED
        picked = sum(r.guide in annotations for r, _ in later)
    assert picked >= 0.8 * len(later) and picked > picked_blind
