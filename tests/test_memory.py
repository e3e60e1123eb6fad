"""Memory pool budget and every selector on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from msn_core.config import MemoryConfig
from msn_core.errors import InputError
from msn_core.memory.pool import MemoryEntry, MemoryPool
from msn_core.memory.selectors import (
    FeatureSimilarity,
    FirstFrame,
    Gap,
    MSNSelector,
    Oracle,
    PreviousFrame,
    SelectionContext,
    make_selector,
)


def _fill(pool: MemoryPool, n: int) -> None:
    for i in range(n):
        pool.add(MemoryEntry(index=i, data={"x": i}))


def test_unlimited_pool_keeps_every_frame():
    pool = MemoryPool(MemoryConfig(budget=None))
    _fill(pool, 50)
    assert pool.indices() == list(range(50))


def test_budget_holds_on_a_1000_frame_video():
    cfg = MemoryConfig(budget=16, recent=4)
    pool = MemoryPool(cfg)
    for i in range(1000):
        pool.add(MemoryEntry(index=i))
        assert len(pool) <= 16
    idx = pool.indices()
    assert len(idx) == 16
    assert idx[0] == 0  # the annotated frame is never dropped
    assert idx[-4:] == [996, 997, 998, 999]  # the recent block
    older = np.diff(idx[:-4])
    # older frames stay spread over the whole video, not bunched at one end
    assert idx[1] < 250 and idx[-5] > 750
    assert older.max() <= 4 * older.min() + 8
    assert pool.evicted_total == 1000 - 16


def test_pool_rejects_out_of_order_and_bad_budget():
    pool = MemoryPool(MemoryConfig(budget=4, recent=2))
    pool.add(MemoryEntry(index=3))
    with pytest.raises(InputError, match="increasing order: got 2 after 3"):
        pool.add(MemoryEntry(index=2))
    with pytest.raises(InputError, match=r"budget must be >= 2 .* got 1"):
        MemoryPool(MemoryConfig(budget=1, recent=1))
    with pytest.raises(InputError, match=r"'recent' must be in \[1, budget-1\] = \[1, 3\], got 4"):
        MemoryPool(MemoryConfig(budget=4, recent=4))
    with pytest.raises(InputError, match=r"frame 0 is not in the memory pool; held: \[3\]") as missing:
        pool[0]
    # one error family for the user, and still the errors Python code expects of a lookup / a bad value
    assert isinstance(missing.value, KeyError) and str(missing.value).startswith("frame 0")
    with pytest.raises(ValueError):
        MemoryPool(MemoryConfig(budget=0))


def _ctx(t, cands, **kw):
    return SelectionContext(t=t, candidates=cands, **kw)


def test_previous_first_and_gap():
    cands = [0, 3, 5, 8, 9]
    assert PreviousFrame().select(_ctx(10, cands)).guides == [9]
    assert PreviousFrame(k=3).select(_ctx(10, cands)).guides == [9, 8, 5]
    assert FirstFrame().select(_ctx(10, cands)).guides == [0]
    assert Gap(5).select(_ctx(10, cands)).guides == [5]
    assert Gap(20).select(_ctx(10, cands)).guides == [0]  # max(0, t - k)
    # t-k = 6 left a budgeted pool: closest held frame, the later one on ties
    assert Gap(4).select(_ctx(10, cands)).guides == [5]
    assert Gap(3).select(_ctx(10, [0, 6, 8, 9])).guides == [8]


def test_similarity_and_msn_pick_the_best_scores():
    cands = [0, 1, 2, 3]
    sims = {False: np.array([0.1, 0.9, 0.3, 0.2]), True: np.array([0.1, 0.2, 1.5, 0.2])}
    ctx = _ctx(4, cands, similarity=lambda c, masked: sims[masked][: len(c)])
    assert FeatureSimilarity().select(ctx).guides == [1]
    assert FeatureSimilarity(masked=True).select(ctx).guides == [2]
    msn = _ctx(4, cands, msn_scores=lambda c: np.array([0.2, 0.7, 0.9, 0.1]))
    sel = MSNSelector(k=2).select(msn)
    assert sel.guides == [2, 1]
    assert sel.scores == {0: pytest.approx(0.2), 1: pytest.approx(0.7), 2: pytest.approx(0.9), 3: pytest.approx(0.1)}
    assert sel.weights == [0.5, 0.5]
    with pytest.raises(InputError, match="'msn-top2' needs an MSN model and this pipeline has none"):
        MSNSelector(k=2).select(_ctx(4, cands))
    with pytest.raises(InputError, match="'similarity-masked' needs feature similarity"):
        FeatureSimilarity(masked=True).select(_ctx(4, cands))
    with pytest.raises(InputError, match="memory pool is empty"):
        PreviousFrame().select(_ctx(0, []))


def test_ties_go_to_the_more_recent_frame():
    ctx = _ctx(3, [0, 1, 2], msn_scores=lambda c: np.ones(len(c)))
    assert MSNSelector().select(ctx).guides == [2]


def test_msn_near_takes_the_nearest_guide_scored_close_to_the_best():
    scores = np.array([0.9, 0.95, 0.86, 0.5])
    ctx = _ctx(10, [0, 3, 7, 9], msn_scores=lambda c: scores)
    assert MSNSelector().select(ctx).guides == [3]
    assert MSNSelector(near=0.1).select(ctx).guides == [7]  # 0.86 is within 0.1 of 0.95; 0.5 is not
    assert MSNSelector(near=0.1, k=3).select(ctx).guides == [7, 3, 0]  # the band nearest first, then by score
    assert MSNSelector(near=0.5).select(ctx).guides == [9]
    assert MSNSelector(near=0.1).select(ctx).scores == MSNSelector().select(ctx).scores
    with pytest.raises(InputError, match="in \\[0, 1\\]"):
        MSNSelector(near=1.5)


def test_oracle_propagates_from_every_candidate_and_keeps_the_best():
    calls = []

    def propagate(c):
        calls.append(c)
        return f"pred{c}"

    quality = {"pred0": 0.5, "pred1": 0.9, "pred2": 0.7}.__getitem__
    sel = Oracle().select(_ctx(3, [0, 1, 2], propagate=propagate, quality=quality))
    assert sel.guides == [1] and sel.predictions == {1: "pred1"}
    assert sorted(calls) == [0, 1, 2]
    with pytest.raises(InputError, match="ground truth"):
        Oracle().select(_ctx(3, [0, 1, 2]))


def test_oracle_qualities_are_the_metrics_rules():
    """The oracle, the audit and stage-2 mining rank candidates by the task's quality: the DAVIS J
    of msn_core.metrics for masks, the PSNR of ab (the paper's colour measure) for colour."""
    import torch

    from msn_core.colorspace import AB_SCALE
    from msn_core.metrics import mean_iou, psnr_of_mse
    from msn_core.tasks import ColorTask, MaskTask

    truth = np.zeros((16, 16), np.uint8)
    truth[2:9, 3:10], truth[10:14, 1:6] = 1, 2
    pred = np.zeros_like(truth)
    pred[3:9, 3:12], pred[10:15, 1:6] = 1, 2

    def one_hot(ids: np.ndarray) -> torch.Tensor:  # (O, 1, H, W), what a mask run's labels are
        return torch.stack([torch.from_numpy(ids == o) for o in (1, 2)])[:, None].float()

    assert MaskTask([1, 2]).quality(one_hot(pred), one_hot(truth)) == pytest.approx(mean_iou(truth, pred, [1, 2]))
    ab = torch.zeros(1, 2, 8, 8)
    colour = ColorTask()
    assert colour.quality(ab + 0.1, ab) == pytest.approx(psnr_of_mse((0.1 * AB_SCALE) ** 2), rel=1e-5)
    assert colour.quality(ab, ab) == 99.0 > colour.quality(ab + 0.05, ab) > colour.quality(ab + 0.1, ab) > 0


@pytest.mark.parametrize(
    "spec,cls,k",
    [("previous", PreviousFrame, 1), ("first", FirstFrame, 1), ("gap10", Gap, 1), ("msn-top3", MSNSelector, 3),
     ("similarity-masked", FeatureSimilarity, 1), ("previous-top5", PreviousFrame, 5), ("oracle", Oracle, 1),
     ("msn-near0.1", MSNSelector, 1), ("msn-near0.05-top2", MSNSelector, 2)],
)
def test_make_selector(spec, cls, k):
    sel = make_selector(spec)
    assert isinstance(sel, cls) and sel.k == k
    assert sel.label == spec


@pytest.mark.parametrize("bad", ["nearest", "gap", "previous5", "", "msn-top-1", "previous-near0.1", "msn-near", "msn5-near0.1"])
def test_make_selector_rejects_unknown_names(bad):
    with pytest.raises(InputError, match="accepted"):
        make_selector(bad)


def test_top_zero_is_refused():
    with pytest.raises(InputError, match="K >= 1"):
        make_selector("msn-top0")
