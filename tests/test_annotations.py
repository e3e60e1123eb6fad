"""Masks on several frames and the three directions, through the one loop: tiny seeded models on
the bundled ``dog`` clip (real DAVIS frames)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import msn_core
from msn_core.config import BackboneConfig, MemoryConfig, MSNConfig, PipelineConfig, STMConfig, TPNConfig
from msn_core.errors import InputError
from msn_core.io import example_sequence, read_mask, resize_frame, resize_labels
from msn_core.memory.pool import MemoryEntry, MemoryPool
from msn_core.memory.selectors import NearestAnnotated, SelectionContext, make_selector
from msn_core.tasks import MaskTask

N = 12
SIZE = (120, 214)  # small frames keep the loop fast


def tiny_pipe(selector="msn", propagator="tpn", budget=None, max_side=None):
    cfg = PipelineConfig(
        propagator=propagator,
        backbone=BackboneConfig(name="tiny", pretrained=False),
        msn=MSNConfig(embed_dim=16, hidden=16),
        tpn=TPNConfig(width=8),
        stm=STMConfig(key_dim=16, value_dim=16, width=8),
        memory=MemoryConfig(budget=budget, recent=1) if budget else MemoryConfig(budget=None),
        max_side=max_side,
    )
    return msn_core.load(propagator, "mask", selector, weights=None, config=cfg)


@pytest.fixture(scope="module")
def clip():
    source, masks = example_sequence("dog", max_frames=N)
    frames = [resize_frame(f, SIZE) for f in source]
    labels = [resize_labels(read_mask(p), SIZE) for p in masks]
    return frames, labels


def halves(labels: np.ndarray) -> np.ndarray:
    """The object split in two: its left half stays 1, its right half becomes object 2."""
    out = labels.copy()
    mid = int(np.median(np.nonzero(labels)[1]))
    out[(labels > 0) & (np.arange(labels.shape[1])[None, :] >= mid)] = 2
    return out


def test_a_later_annotation_is_given_back_exactly_and_never_leaves_the_pool(clip):
    frames, labels = clip
    later = halves(labels[5])  # differs from anything the loop would predict
    results = list(tiny_pipe(budget=3).propagate(frames, {0: labels[0], 5: later}))
    assert [r.index for r in results] == list(range(N))  # frame 0 annotated: forward by default
    assert [r.annotated for r in results] == [i in (0, 5) for i in range(N)]
    np.testing.assert_array_equal(results[0].labels, labels[0])
    np.testing.assert_array_equal(results[5].labels, later)
    assert results[5].guides == [] and results[5].candidates == []
    for r in results[6:]:  # budget 3: the anchor, one recent frame, and frame 5 kept on top of them
        assert {0, 5} <= set(r.candidates) and r.annotated_candidates == [0, 5]
        assert len(r.candidates) <= 4 and set(r.scores) == set(r.candidates)
    for r in results[1:5]:
        assert r.annotated_candidates == [0]


def test_an_object_first_marked_later_appears_from_there_on(clip):
    frames, labels = clip
    later = halves(labels[4])
    results = list(tiny_pipe("previous").propagate(frames, {0: labels[0], 4: later}))
    for r in results[:4]:
        assert 2 not in np.unique(r.labels), r.index  # not known before frame 4
    np.testing.assert_array_equal(results[4].labels, later)
    for r in results[5:]:
        assert (r.labels == 2).sum() > 0 and (r.labels == 1).sum() > 0, r.index


def _stm_reads(frames, annotations, direction=None):
    """(position, guide, [positions of the references]) per propagated frame, and the results."""
    from msn_core.propagators import STMPropagator

    seen, original = [], STMPropagator.predict

    def spy(self, target, guide, refs):
        seen.append((target.index, guide.index, [r.index for r in refs]))
        return original(self, target, guide, refs)

    STMPropagator.predict = spy
    try:
        pipe = tiny_pipe("previous", propagator="stm", budget=3)
        results = list(pipe.propagate(frames, annotations, direction=direction))
    finally:
        STMPropagator.predict = original
    return seen, results


@pytest.mark.parametrize("one_shot", [False, True], ids=["list", "generator"])
def test_stm_reads_every_annotated_frame_beside_its_guide(clip, one_shot):
    """Every annotated frame is read as STM-1's memory beside the guide, also by the frames before
    it (read ahead, from a list or from a generator alike); the pool's budget never drops it."""
    frames, labels = clip
    annotations = {0: labels[0], 5: labels[5]}
    seen, results = _stm_reads((f for f in frames) if one_shot else frames, annotations)
    assert [t for t, _, _ in seen] == [i for i in range(1, N) if i != 5]
    for t, g, refs in seen:
        assert g == t - 1 and refs == [0, 5], (t, g, refs)
    if one_shot:
        _, from_list = _stm_reads(frames, annotations)
        for a, b in zip(results, from_list, strict=True):
            np.testing.assert_array_equal(a.labels, b.labels)
            np.testing.assert_array_equal(a.frame, b.frame)


def test_a_frame_read_ahead_is_the_entry_stored_on_reaching_it(clip):
    """Frames before an annotated frame read the same key and value that the pass stores when it
    reaches that frame; a backward pass reads its earlier annotated frames ahead the same way."""
    from msn_core.propagators import STMPropagator

    frames, labels = clip
    read, original = {}, STMPropagator.predict

    def spy(self, target, guide, refs):
        read[target.index] = {r.index: (r["stm_key"].clone(), r["stm_value"].clone()) for r in refs}
        return original(self, target, guide, refs)

    STMPropagator.predict = spy
    try:
        list(tiny_pipe("previous", propagator="stm").propagate(frames, {0: labels[0], 5: labels[5]}))
    finally:
        STMPropagator.predict = original
    for ahead, stored in zip(read[4][5], read[6][5], strict=True):
        assert torch.equal(ahead, stored)
    seen, back = _stm_reads(frames, {0: labels[0], 5: labels[5]}, direction="backward")
    assert [t for t, _, _ in seen] == [1, 2, 3, 4]  # positions along the backward pass: frames 4..1
    assert all(refs == [0, 5] for _, _, refs in seen)  # frame 5 (its anchor) and frame 0, ahead
    assert sorted(r.index for r in back) == list(range(6))


def test_backward_from_the_last_frame_covers_every_frame(clip):
    frames, labels = clip
    results = list(tiny_pipe("previous").propagate(frames, {N - 1: labels[N - 1]}, direction="backward"))
    assert [r.index for r in results] == list(range(N - 1, -1, -1))
    np.testing.assert_array_equal(results[0].labels, labels[N - 1])
    assert [r.guide for r in results[1:]] == list(range(N - 1, 0, -1))  # "previous" is the next frame going back
    for r in results[1:]:
        assert r.labels.shape == SIZE and r.candidates == list(range(r.index + 1, N))
        assert (r.labels > 0).sum() > 0
    assert list(tiny_pipe("previous").propagate(frames, {N - 1: labels[N - 1]}))[-1].index == 0  # "both" by default


def test_backward_reads_a_lazy_video_once_and_keeps_it_at_the_processing_size(clip):
    source, masks = example_sequence("dog", max_frames=N)
    mask = read_mask(masks[N - 1])
    pipe = tiny_pipe("previous", max_side=64)
    seen = []
    pipe.backbone.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    results = list(pipe.propagate(source, {N - 1: mask}, direction="backward"))
    assert [r.index for r in results] == list(range(N - 1, -1, -1))
    for r in results:  # back at the video's size, frame and mask alike
        assert r.frame.shape == (*source.size, 3) and r.labels.shape == source.size
    assert all(max(s) == 64 for s in seen)
    np.testing.assert_array_equal(results[0].labels, mask)
    whole = example_sequence("dog")[0]  # a DAVIS-style folder: its PNGs are masks named by frame index
    results = list(pipe.propagate(whole, whole.path))
    assert [r.index for r in results] == list(range(30)) and all(r.annotated for r in results)


def test_both_from_the_middle_covers_every_frame_once(clip):
    frames, labels = clip
    mid = N // 2
    results = list(tiny_pipe("previous").propagate(iter(frames), {mid: labels[mid]}))  # "both" by default
    assert [r.index for r in results] == [*range(mid, -1, -1), *range(mid + 1, N)]
    guides = {r.index: r.guide for r in results}
    assert guides[mid] is None and all(guides[i] == i + 1 for i in range(mid))
    assert all(guides[i] == i - 1 for i in range(mid + 1, N))  # the forward half starts from the annotation
    assert [r.annotated for r in results].count(True) == 1
    forward = list(tiny_pipe("previous").propagate(frames, {mid: labels[mid]}, direction="forward"))
    assert [r.index for r in forward] == list(range(mid, N))  # forward from the earliest annotation only


def test_msn_and_audit_read_the_backward_pass_in_frame_indices(clip):
    frames, labels = clip
    results = list(tiny_pipe().propagate(frames[:6], {5: labels[5]}, ground_truth=labels[:6], audit=True))
    assert [r.index for r in results] == [5, 4, 3, 2, 1, 0]
    for r in results[1:]:
        assert r.candidates == list(range(r.index + 1, 6)) and r.guide in r.candidates
        assert set(r.scores) == set(r.quality) == set(r.candidates) and r.annotated_candidates == [5]


def test_nearest_annotated_picks_the_nearest_annotated_frame(clip):
    sel = make_selector("nearest-annotated")
    assert isinstance(sel, NearestAnnotated) and make_selector("nearest-annotated-top2").k == 2
    ctx = lambda t: SelectionContext(t=t, candidates=list(range(t)), annotated=frozenset({0, 6}))  # noqa: E731
    assert sel.select(ctx(10)).guides == [6]
    assert sel.select(ctx(2)).guides == [0]
    assert sel.select(ctx(9)).scores[6] == 0.25 and sel.select(ctx(9)).scores[8] == 0.0
    assert make_selector("nearest-annotated-top3").select(ctx(10)).guides == [6, 0, 9]  # then the nearest others
    frames, labels = clip
    results = list(tiny_pipe("nearest-annotated").propagate(frames, {0: labels[0], 3: labels[3], 8: labels[8]}))
    assert [r.guide for r in results] == [None, 0, 0, None, 3, 3, 3, 3, None, 8, 8, 8]


def test_annotated_frames_stay_in_a_full_pool():
    pool = MemoryPool(MemoryConfig(budget=4, recent=2))
    for i in range(40):
        pool.add(MemoryEntry(index=i, annotated=i in (0, 7, 15)))
        assert {0, 7, 15} & set(range(i + 1)) <= set(pool.indices())
    assert pool.annotated_indices() == [0, 7, 15] and len(pool) == 5  # the budget, plus what it cannot evict
    assert pool.indices()[-2:] == [38, 39]


def test_bad_annotations_are_refused_clearly(clip):
    frames, labels = clip
    pipe = tiny_pipe("previous")
    cases = [
        ({0: labels[0], 20: labels[1]}, {}, "frame 20 is annotated but the video has 12 frames"),
        ({20: labels[1]}, {}, "frame 20 is annotated but the video has 12 frames"),
        ({0: labels[0], 3: labels[3][:50]}, {}, "the mask of frame 3 is 214x50 but the frames are 214x120"),
        ({0: labels[0]}, {"direction": "sideways"}, "direction must be one of forward, backward, both"),
        ({-1: labels[0]}, {}, "keyed by frame index"),
        ({}, {}, "no annotated frame"),
        ({0: np.zeros(SIZE, np.uint8), 4: np.zeros(SIZE, np.uint8)}, {}, "the annotated masks have no object"),
    ]
    for masks, kw, message in cases:
        with pytest.raises(InputError, match=message):
            list(pipe.propagate(frames, masks, **kw))
    read, stm = [], tiny_pipe("previous", propagator="stm")  # STM-1 reads annotated frames ahead: refused
    with pytest.raises(InputError, match="frame 20 is annotated but the video has 12 frames"):  # before any result
        next(iter(stm.propagate((read.append(t) or f for t, f in enumerate(frames)), {0: labels[0], 20: labels[1]})))
    assert read == list(range(12))
    task = MaskTask([1])  # a task that does not know object 2
    with pytest.raises(InputError, match=r"marks object\(s\) \[2\]"):
        list(msn_core.iter_propagate(frames, {0: halves(labels[0])}, backbone=pipe.backbone, propagator=pipe.propagator,
                                     task=task, selector=pipe.selector))  # fmt: skip


def test_one_mask_and_a_frame_0_dict_give_the_same_run(clip):
    frames, labels = clip
    a = list(tiny_pipe().propagate(frames[:5], labels[0]))
    b = list(tiny_pipe().propagate(frames[:5], {0: labels[0]}, direction="both"))
    for ra, rb in itertools.zip_longest(a, b):
        assert ra.index == rb.index and ra.guides == rb.guides and ra.scores == rb.scores
        np.testing.assert_array_equal(ra.labels, rb.labels)


def test_the_next_correction_is_the_worst_open_frame_inside_the_clip():
    from msn_core.annotations import next_correction

    scores = [0.0, 0.9, 0.2, 0.5, 0.1]  # the last frame is worst but never corrected (DAVIS skips it)
    assert next_correction(scores, [0]) == 2
    assert next_correction(scores, [0, 2]) == 3
    assert next_correction(scores, [0, 1, 2, 3]) is None


def test_references_from_outside_the_frames_are_read_as_annotated_frames_are(clip):
    """A stretch propagated again from its annotated frame 5, with frame 0 and its mask given as a
    reference, gives what the whole run with both frames annotated gives there."""
    frames, labels = clip
    _, whole = _stm_reads(frames, {0: labels[0], 5: labels[5]})
    from msn_core.propagators import STMPropagator

    seen, original = [], STMPropagator.predict
    STMPropagator.predict = lambda self, target, guide, refs: seen.append([r.index for r in refs]) or original(
        self, target, guide, refs
    )
    try:
        pipe = tiny_pipe("previous", propagator="stm", budget=3)
        stretch = list(pipe.propagate(frames[5:], {0: labels[5]}, references=[(frames[0], labels[0])]))
    finally:
        STMPropagator.predict = original
    assert seen and all(refs == [-1, 0] for refs in seen)  # the reference, then the stretch's own annotation
    for a, b in zip(stretch, whole[5:], strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.guides == [g - 5 for g in b.guides]
    assert pipe.reads_references and not tiny_pipe(propagator="tpn").reads_references  # TPN reads its guide only


def test_bad_references_are_refused_clearly(clip):
    frames, labels = clip
    pipe = tiny_pipe("previous", propagator="stm")
    cases = [
        ([frames[0]], "reference 0 must be a \\(frame, mask\\) pair"),
        ([(frames[0], labels[0][:50])], "the mask of reference 0 is 214x50 but the frames are 214x120"),
        ([(frames[0][:50], labels[0])], "reference 0 is 214x50 but frame 0 is 214x120"),
        ([(frames[0], halves(labels[0]))], r"the mask of reference 0 marks object\(s\) \[2\]"),
        ([(frames[0], np.full(SIZE, 0.5))], "the mask of reference 0"),
    ]
    for refs, message in cases:
        with pytest.raises(InputError, match=message):
            list(pipe.propagate(frames[5:], {0: labels[5]}, references=refs))
