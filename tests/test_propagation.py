"""The one propagation loop with tiny seeded models on real DAVIS frames."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

import msn_core
from msn_core import metrics
from msn_core.config import (
    COLOR_SIDES,
    DEFAULT_SIDES,
    BackboneConfig,
    MemoryConfig,
    MSNConfig,
    PipelineConfig,
    STMConfig,
    TPNConfig,
    from_dict,
    to_dict,
)
from msn_core.errors import InputError
from msn_core.io import davis_sequence, read_mask, resize_frame, resize_labels
from msn_core.memory.selectors import make_selector
from msn_core.pipeline import Pipeline, build
from msn_core.propagators import TPNPropagator

SEQ = "dog"
N = 8
SIZE = (120, 214)  # small frames keep the loop fast


def tiny_cfg(propagator="tpn", task="mask", budget=None) -> PipelineConfig:
    return PipelineConfig(
        propagator=propagator,
        task=task,
        backbone=BackboneConfig(name="tiny", pretrained=False),
        msn=MSNConfig(embed_dim=16, hidden=16),
        tpn=TPNConfig(width=8),
        stm=STMConfig(key_dim=16, value_dim=16, width=8),
        memory=MemoryConfig(budget=budget, recent=2) if budget else MemoryConfig(budget=None),
        max_side=None,
    )


def tiny_pipe(propagator="tpn", task="mask", selector="msn", seed=0, budget=None) -> Pipeline:
    return msn_core.load(propagator, task, selector, weights=None, config=tiny_cfg(propagator, task, budget), seed=seed)


@pytest.fixture(scope="module")
def clip(davis_dir):
    source, masks = davis_sequence(davis_dir, SEQ)
    frames = [resize_frame(f, SIZE) for f in itertools.islice(source, N)]
    labels = [resize_labels(read_mask(p), SIZE) for p in masks[:N]]
    return frames, labels


def _run(pipe, clip, selector=None, **kw):
    frames, labels = clip
    return list(pipe.propagate(frames, labels[0], selector=selector, **kw))


def _run_checking_predict(pipe, clip, cls, check, **kw) -> tuple[list, list[bool]]:
    """``_run`` (with ``kw``) with ``cls.predict`` wrapped: ``check(self, target, guide, refs, out)``
    judges every prediction; returns the results and the verdicts (one per prediction made)."""
    seen, original = [], cls.predict

    def spy(self, target, guide, refs):
        out = original(self, target, guide, refs)
        seen.append(check(self, target, guide, refs, out))
        return out

    cls.predict = spy
    try:
        return _run(pipe, clip, **kw), seen
    finally:
        cls.predict = original


def test_results_have_the_promised_shapes(clip):
    results = _run(tiny_pipe(), clip)
    assert [r.index for r in results] == list(range(N))
    assert results[0].guides == [] and results[0].candidates == []
    np.testing.assert_array_equal(results[0].labels, clip[1][0])  # the annotation is returned as given
    for r in results[1:]:
        assert r.labels.shape == SIZE and r.labels.dtype == np.uint8
        assert set(np.unique(r.labels)) <= {0, 1}
        assert r.candidates == list(range(r.index))  # unlimited pool: every previous frame
        assert len(r.guides) == 1 and r.guides[0] in r.candidates
        assert set(r.scores) == set(r.candidates)
        assert all(0.0 <= s <= 1.0 for s in r.scores.values())
        assert r.seconds > 0 and r.selector == "msn"


@pytest.mark.parametrize(
    "spec", ["previous", "first", "gap5", "similarity", "similarity-masked", "msn", "msn-top3", "previous-top3"]
)
@pytest.mark.parametrize("propagator", ["tpn", "stm"])
def test_every_selector_runs_through_the_one_loop(clip, spec, propagator):
    results = _run(tiny_pipe(propagator), clip, selector=spec)
    sel = make_selector(spec)
    for r in results[1:]:
        assert len(r.guides) == min(sel.k, r.index)
    if spec == "previous":
        assert [r.guide for r in results[1:]] == list(range(N - 1))
    if spec == "first":
        assert {r.guide for r in results[1:]} == {0}
    if spec == "gap5":
        assert [r.guide for r in results[1:]] == [max(0, t - 5) for t in range(1, N)]


def test_oracle_keeps_the_best_candidate(clip):
    frames, labels = clip
    results = list(tiny_pipe(selector="oracle").propagate(frames, labels[0], ground_truth=labels))
    for r in results[2:]:
        assert r.scores[r.guide] == max(r.scores.values())
    with pytest.raises(InputError, match="ground truth"):
        list(tiny_pipe(selector="oracle").propagate(frames, labels[0]))


def test_audit_scores_every_candidate_and_keeps_the_picks(clip):
    """audit=True leaves the selector's picks and masks as they are and adds each candidate's true
    quality; an audited oracle reads its own scores; selection_audit sums it up."""
    frames, labels = clip
    plain = _run(tiny_pipe(), clip)
    audited = _run(tiny_pipe(), clip, ground_truth=labels, audit=True)
    assert [r.guides for r in audited] == [r.guides for r in plain]
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(audited, plain))
    assert audited[0].quality == {} and plain[1].quality == {}
    for r in audited[1:]:
        assert sorted(r.quality) == r.candidates and all(0 <= q <= 1 for q in r.quality.values())
        assert r.selector == "msn" and set(r.scores) == set(r.candidates)
    oracle, made = _run_checking_predict(tiny_pipe(), clip, TPNPropagator, lambda *a: True, selector="oracle",
                                         ground_truth=labels, audit=True)  # fmt: skip
    assert all(r.quality == r.scores for r in oracle[1:])
    assert len(made) == sum(len(r.candidates) for r in oracle)  # each candidate propagated once per frame
    a, o = metrics.selection_audit(audited), metrics.selection_audit(oracle)
    assert a["frames"] == N - 1 and a["best"] >= max(a["chosen"], a["random"]) and 0 <= a["chosen_is_best"] <= 1
    assert o["chosen"] == pytest.approx(o["best"]) and o["chosen_is_best"] == 1.0 and o["rank_correlation"] > 0.99
    with pytest.raises(InputError, match="audit=True scores every candidate.*ground_truth"):
        _run(tiny_pipe(), clip, audit=True)
    with pytest.raises(InputError, match="no frame has candidate qualities"):
        metrics.selection_audit(plain)


def test_cpu_determinism_with_a_seed(clip):
    a = _run(tiny_pipe(seed=3), clip)
    b = _run(tiny_pipe(seed=3), clip)
    c = _run(tiny_pipe(seed=4), clip)
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.labels, rb.labels)
        assert ra.scores == rb.scores and ra.guides == rb.guides
    assert any(ra.scores != rc.scores for ra, rc in zip(a[1:], c[1:]))


def _to_tensor(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1], as the loop feeds the backbone."""
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None].float() / 255


def _pad32(x: torch.Tensor, mode: str = "replicate") -> torch.Tensor:
    """Pad right and bottom to multiples of 32 as the loop does (frames: replicate; masks: zeros)."""
    return torch.nn.functional.pad(x, (0, (-x.shape[-1]) % 32, 0, (-x.shape[-2]) % 32), mode=mode)


def test_cached_msn_scores_equal_recomputing_from_scratch(clip):
    """The loop caches memory terms when a frame enters the pool; scoring each
    (memory, target) pair from raw features with MSN.forward must agree."""
    frames, labels = clip
    pipe = tiny_pipe()
    results = _run(pipe, clip)
    with torch.inference_mode():
        feats = [pipe.backbone(_pad32(_to_tensor(f)))[32] for f in frames]
        union = torch.from_numpy((labels[0] > 0).astype(np.float32))[None, None]
        union = _pad32(union, "constant")
        f_a = pipe.backbone(_pad32(_to_tensor(frames[0])) * union)[32]
        for r in results[1:]:
            logits = pipe.msn(torch.cat([feats[c] for c in r.candidates]), f_a, feats[r.index])
            fresh = torch.sigmoid(logits).numpy()
            cached = np.array([r.scores[c] for c in r.candidates])
            np.testing.assert_allclose(cached, fresh, atol=1e-5)


def test_msn_reads_which_candidates_the_user_annotated(clip):
    """With an MSN that has the annotated head, the loop hands it the flag of every candidate: the
    cached scores equal ``MSN.forward`` with those flags, and the head moves only the annotated ones."""
    frames, labels = clip
    cfg = dataclasses.replace(tiny_cfg(), msn=MSNConfig(embed_dim=16, hidden=16, annotated_head=True))
    pipe = msn_core.load("tpn", "mask", "msn", weights=None, config=cfg, seed=0)
    with torch.no_grad():
        pipe.msn.fc_annotated.weight.normal_()
        pipe.msn.fc_annotated.bias.fill_(1.0)
    results = list(pipe.propagate(frames, {0: labels[0], 3: labels[3]}))
    with torch.inference_mode():
        feats = [pipe.backbone(_pad32(_to_tensor(f)))[32] for f in frames]
        union = _pad32(torch.from_numpy((labels[0] > 0).astype(np.float32))[None, None], "constant")
        f_a = pipe.backbone(_pad32(_to_tensor(frames[0])) * union)[32]
        for r in results[4:]:
            assert r.annotated_candidates == [0, 3]
            flags = torch.tensor([float(c in (0, 3)) for c in r.candidates])
            f_p = torch.cat([feats[c] for c in r.candidates])
            flagged, plain = (torch.sigmoid(pipe.msn(f_p, f_a, feats[r.index], a)).numpy() for a in (flags, None))
            np.testing.assert_allclose([r.scores[c] for c in r.candidates], flagged, atol=1e-5)
            assert (np.abs(flagged - plain) > 1e-4).tolist() == [bool(f) for f in flags]


def test_label_aware_msn_reads_each_memory_frame_under_its_label_in_the_loop(clip):
    """A label-aware MSN's cached terms include the memory frame read under the label it entered
    the pool with: frame 0's score at every target equals ``MSN.forward`` with the annotation as
    its label, and differs from the score with an empty label."""
    frames, labels = clip
    cfg = dataclasses.replace(tiny_cfg(), msn=MSNConfig(embed_dim=16, hidden=16, label_aware=True))
    pipe = msn_core.load("tpn", "mask", "msn", weights=None, config=cfg, seed=0)
    with torch.no_grad():  # a label path as strong as a trained one, not a fresh init's whisper
        pipe.msn.conv1_label_feat.weight.mul_(100.0)
    results = _run(pipe, clip)
    with torch.inference_mode():
        feats = [pipe.backbone(_pad32(_to_tensor(f)))[32] for f in frames]
        union = _pad32(torch.from_numpy((labels[0] > 0).astype(np.float32))[None, None], "constant")
        f_a = pipe.backbone(_pad32(_to_tensor(frames[0])) * union)[32]
        for r in results[1:]:
            with_label, empty = (
                torch.sigmoid(pipe.msn(feats[0], f_a, feats[r.index], None, m)).item()
                for m in (union, torch.zeros_like(union))
            )
            assert r.scores[0] == pytest.approx(with_label, abs=1e-5)
            assert abs(with_label - empty) > 1e-3


def test_budget_holds_inside_the_loop(clip):
    frames, labels = clip
    long_video = (frames[i % N] for i in range(60))
    pipe = tiny_pipe(budget=5)
    for r in pipe.propagate(long_video, labels[0], selector="msn"):
        assert len(r.candidates) <= 5
        if r.index > 5:
            assert r.candidates[0] == 0 and r.candidates[-1] == r.index - 1


def test_several_objects_stay_separate(clip):
    frames, labels = clip
    two = labels[0].copy()
    ys, xs = np.nonzero(two)
    mid = int(np.median(xs))
    two[(two > 0) & (np.arange(two.shape[1])[None, :] >= mid)] = 2  # left half object 1, right half object 2
    results = list(tiny_pipe(selector="previous").propagate(frames, two))
    for r in results[1:]:
        assert set(np.unique(r.labels)) <= {0, 1, 2}
        for oid in (1, 2):
            assert (r.labels == oid).sum() > 0, f"object {oid} vanished at frame {r.index}"
        x1 = np.nonzero(r.labels == 1)[1].mean()
        x2 = np.nonzero(r.labels == 2)[1].mean()
        assert x1 < x2  # left stays left, right stays right: ids never swap


def test_object_ids_are_kept(clip):
    frames, labels = clip
    relabel = np.where(labels[0] > 0, 7, 0).astype(np.uint8)
    results = _run(tiny_pipe(selector="previous"), (frames, [relabel]))
    assert set(np.unique(results[-1].labels)) <= {0, 7}


def test_colour_goes_through_the_same_loop(clip):
    frames, _ = clip
    results = list(tiny_pipe(task="color", selector="msn").propagate(frames, None))
    assert results[0].labels is None and results[0].colors.shape == (*SIZE, 3)
    # frame 0 gives its own colours back (up to Lab round-off)
    assert np.abs(results[0].colors.astype(int) - frames[0].astype(int)).mean() < 3
    for r in results[1:]:
        assert r.colors.dtype == np.uint8 and r.guides


def test_bad_input_is_refused_clearly(clip):
    frames, labels = clip
    pipe = tiny_pipe()
    with pytest.raises(InputError, match="no object"):
        list(pipe.propagate(frames, np.zeros(SIZE, np.uint8)))
    with pytest.raises(InputError, match="mask is 10x10"):
        list(pipe.propagate(frames, np.ones((10, 10), np.uint8)))
    with pytest.raises(InputError, match="frame 1 is"):
        list(pipe.propagate([frames[0], frames[1][:50]], labels[0]))
    with pytest.raises(InputError, match="no frames"):
        list(pipe.propagate([], labels[0]))
    with pytest.raises(InputError, match="uint8"):
        list(pipe.propagate([frames[0].astype(np.float32)], labels[0]))
    with pytest.raises(InputError, match="STM-1 propagates masks only"):
        build(dataclasses.replace(tiny_cfg("stm"), task="color"))


def test_the_consumer_keeps_autograd_between_frames(clip):
    """The loop runs each step under inference_mode but must not leave it switched on
    while suspended at a yield (training and mining consume this generator)."""
    for _ in tiny_pipe().propagate(clip[0][:3], clip[1][0]):
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def test_load_takes_the_processing_size(clip):
    """``load(max_side=...)``: frames are processed at that long side (results come back at the
    input size either way); a bad size is a clear error."""
    frames, labels = clip
    pipe = msn_core.load("tpn", "mask", "previous", weights=None, config=tiny_cfg("tpn", "mask", None), max_side=64)
    assert pipe.cfg.max_side == 64 and pipe.cfg.tpn.width == 8  # the rest of the config is kept
    seen = []
    pipe.backbone.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    results = list(pipe.propagate(frames[:2], labels[0]))
    assert results[1].labels.shape == labels[0].shape  # back at the input size
    assert seen and all(max(s) == 64 for s in seen), seen  # processed at long side 64 (padded to 32s)
    for bad in (1, 0, "384", 384.0, True):
        with pytest.raises(msn_core.InputError, match="max_side must be"):
            msn_core.load("tpn", weights=None, max_side=bad)


def test_each_network_processes_at_its_own_side_unless_told():
    """Masks are processed at 480 by each network, TPN's colour at 384 (config.DEFAULT_SIDES,
    COLOR_SIDES); a side given is kept, None means frames as they are, and a resolved config
    round-trips as it is."""
    assert PipelineConfig(propagator="stm").max_side == 480 == DEFAULT_SIDES["stm"] == PipelineConfig().max_side
    assert PipelineConfig(propagator="tpn", task="color").max_side == 384 == COLOR_SIDES["tpn"]
    assert msn_core.load("tpn", "color", weights=None).cfg.max_side == 384
    assert PipelineConfig(propagator="stm", max_side=256).max_side == 256
    assert PipelineConfig(propagator="stm", max_side=None).max_side is None
    cfg = PipelineConfig(propagator="stm")
    assert from_dict(PipelineConfig, to_dict(cfg)) == cfg
    assert msn_core.load("stm", weights=None).cfg.max_side == 480
    assert msn_core.load("stm", weights=None, max_side=300).cfg.max_side == 300
    with pytest.raises(InputError, match="no pipeline for propagator='vgg'"):
        PipelineConfig(propagator="vgg")  # type: ignore[arg-type]


def test_config_from_dict_round_trips_and_refuses_unknown_keys():
    with pytest.raises(InputError, match=r"unknown config keys \['widht'\]; accepted: \[.*'budget'"):
        from_dict(MemoryConfig, {"budget": 8, "widht": 3})
    assert from_dict(MemoryConfig, to_dict(MemoryConfig(budget=8, recent=3))) == MemoryConfig(budget=8, recent=3)


def test_config_from_dict_reads_label_aware_msns():
    """Files written before MSNConfig had ``label_aware`` load as plain MSNs; a stored value is kept."""
    stored = to_dict(MSNConfig(embed_dim=16))
    del stored["label_aware"]
    assert from_dict(MSNConfig, stored) == MSNConfig(embed_dim=16)
    assert from_dict(MSNConfig, {**stored, "label_aware": True}).label_aware


def test_with_parts_shares_everything_but_the_change():
    pipe = tiny_pipe()
    other = tiny_pipe(seed=1)
    swapped = pipe.with_parts(msn=other.msn, selector="first")
    assert swapped.msn is other.msn and swapped.selector.name == "first"
    assert swapped.backbone is pipe.backbone and swapped.model is pipe.model and swapped.cfg is pipe.cfg
    assert pipe.msn is not other.msn and pipe.selector.name != "first"  # the original is untouched
    with pytest.raises(InputError, match=r"unknown part\(s\) \['modle'\]; accepted: cfg, backbone, model"):
        pipe.with_parts(modle=pipe.model)
