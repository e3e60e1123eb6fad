"""The synthetic video world: exact masks, seeded clips, targets that only the annotation names.
Built from the bundled example clips (real frames and masks), so it runs on a lone clone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msn_core.errors import InputError
from msn_core.training.data import PairSampler, load_example
from msn_core.training.world import KINDS, MAX_OBJECTS, MIN_VISIBLE, SyntheticWorld, world_sequences

SEEDS = range(40)


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld([load_example(n, max_side=256) for n in ("dog", "camel")], length=8)


@pytest.fixture(scope="module")
def clips(world):
    return [world.clip(s) for s in SEEDS]


def test_a_seed_always_gives_the_same_clip(world, clips):
    again = world.clip(7)
    assert np.array_equal(again.frames, clips[7].frames)
    assert np.array_equal(again.labels(), clips[7].labels())
    assert (again.targets, again.depth, again.kinds) == (clips[7].targets, clips[7].depth, clips[7].kinds)
    assert not np.array_equal(clips[7].frames, clips[8].frames)


def test_visible_masks_are_shapes_minus_everything_in_front(clips):
    for clip in clips:
        vis = clip.visible()
        ids = clip.instance_ids()
        for rank, o in enumerate(clip.depth):
            in_front = clip.shapes[:, list(clip.depth[rank + 1 :])].any(1)
            assert np.array_equal(vis[:, o], clip.shapes[:, o] & ~in_front)
            assert np.array_equal(ids == o + 1, vis[:, o])  # the id map paints exactly the visible masks
        assert (vis.sum(1) <= 1).all()  # visible masks never overlap


def test_labels_are_the_marked_objects_only(clips):
    for clip in clips:
        lab, vis = clip.labels(), clip.visible()
        assert set(np.unique(lab)) <= set(range(len(clip.targets) + 1))
        for i, o in enumerate(clip.targets):
            assert np.array_equal(lab == i + 1, vis[:, o])
            assert vis[0, o].mean() >= MIN_VISIBLE  # every marked object is seen in the annotated frame
        unmarked = [o for o in range(clip.shapes.shape[1]) if o not in clip.targets]
        for o in unmarked:
            assert not (lab[vis[:, o]] > 0).any()


def test_the_world_has_what_makes_the_guide_necessary(clips):
    n_objects = [c.shapes.shape[1] for c in clips]
    assert min(n_objects) >= 1 and max(n_objects) <= MAX_OBJECTS
    assert sum(n > 1 for n in n_objects) > len(clips) // 2
    assert {k for c in clips for k in c.kinds} == set(KINDS)
    # unmarked objects, several marked ids, look-alikes, occlusion between objects
    assert sum(len(c.targets) < c.shapes.shape[1] for c in clips) > len(clips) // 3
    assert any(len(c.targets) > 1 for c in clips)
    assert any(o >= 0 for c in clips for o in c.copy_of)
    assert any((c.shapes.sum(1) > 1).any() for c in clips)
    # objects that leave the frame and come back
    def leaves_and_returns(clip, o):
        seen = clip.shapes[:, o].any((1, 2))
        gone = np.flatnonzero(~seen)
        return gone.size and seen[: gone[0]].any() and seen[gone[-1] :].any()

    assert any(leaves_and_returns(c, o) for c in clips for o in range(c.shapes.shape[1]))


def test_a_background_piece_is_invisible_without_the_annotation(clips):
    """A piece of the background moves with the camera: its pixels are the background's."""
    pieces = [(c, o) for c in clips for o, k in enumerate(c.kinds) if k == "background"]
    assert pieces
    for clip, o in pieces:
        assert clip.depth.index(o) < sum(k == "background" for k in clip.kinds)  # behind every moving object


def test_world_clips_train_like_real_sequences(world):
    seqs = world_sequences(world.seqs, 3, length=6)
    assert [len(s) for s in seqs] == [6, 6, 6] and len({s.name for s in seqs}) == 3
    assert np.array_equal(seqs[1].masks, SyntheticWorld(world.seqs, 6).clip(1).labels())
    hp, wp = seqs[0].frames.shape[1:3]
    feats = [{s: torch.zeros(6, 4, hp // s, wp // s) for s in (4, 8, 16, 32)} for _ in seqs]
    sampler = PairSampler(seqs, feats, crop=(128, 224), with_flow=False, max_objects=3, weights=[0, 0, 1])
    batch = sampler.sample(6, np.random.default_rng(0))
    assert batch.y_t.shape[1] == 3 and all(1 <= n <= 3 for n in batch.n_obj)
    for y, n in zip(batch.y_t, batch.n_obj):
        assert not y[n:].any()  # channels past the sample's objects are padding
    with pytest.raises(InputError):
        PairSampler(seqs, feats, crop=(128, 224), with_flow=False, weights=[0, 0, 0])


def test_bad_worlds_are_refused(world):
    with pytest.raises(InputError):
        SyntheticWorld([])
    with pytest.raises(InputError):
        SyntheticWorld(world.seqs, length=1)
    with pytest.raises(InputError):
        SyntheticWorld([world.seqs[0], load_example("dog", max_side=128)])
