"""Training: losses go down, checkpoints resume exactly, §3.3 mining thresholds, DDP over two CPU
processes (torchrun, gloo). Tiny seeded models on a few real DAVIS frames (the bundled clips'
without DAVIS)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from davis_data import real_davis

from msn_core.config import BackboneConfig, FlowConfig
from msn_core.models.backbone import build_backbone
from msn_core.training.data import TRAIN_SEQUENCES, VAL_SEQUENCES, PairSampler, cached_features, load_sequence
from msn_core.training.mining import candidate_pools, candidates_for, label_samples
from msn_core.training.stage1 import build_stage1, make_loss_fn
from msn_core.training.trainer import TrainConfig, load_checkpoint, poly_lr, train_loop

CROP = (128, 224)
# the training sequence read: bmx-trees in DAVIS; without DAVIS the davis_dir fixture holds the bundled
# clips and camel stands in (a validation clip, which is fine for tests of the mechanics)
SEQ = "bmx-trees" if real_davis() else "camel"


@pytest.fixture(scope="module")
def tiny_data(davis_dir, tmp_path_factory):
    """Six real frames of a training sequence at max side 256, with tiny-backbone features."""
    backbone = build_backbone(BackboneConfig(name="tiny"))
    seq = load_sequence(davis_dir, SEQ, max_side=256, max_frames=6)
    feats = cached_features(tmp_path_factory.mktemp("cache"), seq, backbone)
    return seq, feats, backbone


def _sampler(tiny_data, task="mask", with_flow=True):
    seq, feats, _ = tiny_data
    return PairSampler([seq], [feats], task=task, crop=CROP, max_gap=3, with_flow=with_flow)


def test_feature_cache_is_written_whole_and_read_back(tiny_data, tmp_path):
    seq, feats, backbone = tiny_data
    again = cached_features(tmp_path, seq, backbone)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].endswith(".safetensors")  # no partial file left beside it
    assert all(torch.equal(again[s], feats[s]) for s in feats)
    reread = cached_features(tmp_path, seq, backbone)  # from the file this time
    assert all(torch.equal(reread[s], feats[s]) for s in feats)


def test_split_is_by_sequence_and_complete():
    assert not set(TRAIN_SEQUENCES) & set(VAL_SEQUENCES)
    assert len(TRAIN_SEQUENCES) == 10 and len(VAL_SEQUENCES) == 5


def test_mining_labels_follow_section_3_3():
    # IoUmax = 1.0 -> positives in [0.95, 1.0]; IoUmin = 0.2 -> negatives in [0.2, 0.23]
    ious = [1.0, 0.96, 0.949, 0.7, 0.5, 0.231, 0.229, 0.2]
    assert label_samples(ious).tolist() == [1, 1, -1, -1, -1, -1, 0, 0]
    # every candidate within both ranges: no signal, everything dropped
    assert label_samples([0.90, 0.91, 0.92]).tolist() == [-1, -1, -1]
    # colour quality (PSNR dB): 40 -> positives >= 38; 30 -> negatives <= 34.5
    assert label_samples([40.0, 38.5, 37.9, 34.4, 30.0]).tolist() == [1, 1, -1, 0, 0]
    with pytest.raises(ValueError):
        label_samples([0.5, float("nan")])


def test_relative_fallback_only_where_the_paper_rule_finds_no_pair():
    # range 0.02: positives >= 0.92 - 0.001, negatives <= 0.90 + 0.003
    assert label_samples([0.90, 0.91, 0.92], relative=True).tolist() == [0, -1, 1]
    ious = [1.0, 0.96, 0.949, 0.7, 0.5, 0.231, 0.229, 0.2]
    assert label_samples(ious, relative=True).tolist() == label_samples(ious).tolist()
    assert label_samples([0.5, 0.5], relative=True).tolist() == [-1, -1]


def test_warp_quality_of_real_frames(tiny_data):
    import cv2

    from msn_core.training.mining import mine_warp_sequence, warp_qualities

    seq, _, _ = tiny_data
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in seq.frames])
    masks = seq.masks[:, None].astype(np.float32)
    q = warp_qualities(gray, masks, 5, [0, 4, 5], "mask")
    assert q[2] == pytest.approx(1.0) and 0.3 < q[0] <= q[1] + 0.05 and q[1] < 1.0
    mined = mine_warp_sequence(gray, masks, 0, "mask", target_step=1)
    assert [m.t for m in mined] == [2, 3, 4, 5] and all(len(m.qualities) == m.t for m in mined)


def test_candidates_mimic_a_budgeted_pool():
    assert candidates_for(5, 24) == [0, 1, 2, 3, 4]
    c = candidates_for(80, 24)
    assert len(c) == 24 and c[0] == 0 and c[-6:] == list(range(74, 80)) and c == sorted(set(c))


def test_mined_candidates_are_the_pools_a_run_offers(tiny_data):
    """Mining's candidates come from the memory pool's own eviction rule: frame by frame they are
    the candidates a budgeted run hands its selector."""
    import msn_core
    from msn_core.config import MemoryConfig, PipelineConfig

    seq, _, _ = tiny_data
    frames = [seq.frames[i % len(seq.frames)] for i in range(20)]
    cfg = PipelineConfig(backbone=BackboneConfig(name="tiny", pretrained=False), max_side=None,
                         memory=MemoryConfig(budget=6, recent=2))  # fmt: skip
    pipe = msn_core.load("tpn", "mask", weights=None, config=cfg, seed=0)
    run = [r.candidates for r in pipe.propagate(frames, seq.masks[0], selector="previous")]
    assert run == candidate_pools(20, 6, recent=2)
    assert all(candidates_for(t, 6, recent=2) == run[t] for t in range(20))


def test_mining_with_corrections_flags_the_worst_frames_as_the_user_would(tiny_data):
    """``mine_sequence(corrections=2)``: the worst frame of the run so far is given its truth, twice,
    as a user corrects; the run after it re-anchors there, those frames are never targets, stay in
    every later pool (even a budgeted one) and are flagged in the mined samples."""
    from msn_core.config import FlowConfig, MemoryConfig
    from msn_core.memory.pool import pool_history
    from msn_core.propagators import TPNPropagator
    from msn_core.tasks import MaskTask
    from msn_core.training.mining import SequenceRunner, mine_sequence
    from msn_core.training.samples import _truth

    seq, feats, backbone = tiny_data
    torch.manual_seed(0)
    net = TPNPropagator(build_stage1("tpn-mask", backbone.channels, width=8).eval(), FlowConfig())
    runner = SequenceRunner(net, MaskTask([1]), seq.frames, feats, _truth(seq, "mask"))
    plain = runner.run_previous()
    first = min(range(1, len(plain) - 1), key=lambda i: plain[i])
    calls, run = [], runner.run_previous
    runner.run_previous = lambda **kw: calls.append(kw) or run(**kw)
    mined = mine_sequence(runner, 0, target_step=1, max_candidates=24, corrections=2)
    assert len(calls) == 2  # the plain run made before is reused; one run after each correction
    marked = sorted({0, *[p for m in mined for p in m.annotated]})
    assert len(marked) == 3 and first in marked and len(seq.frames) - 1 not in marked
    assert [e.index for e in runner.entries if e.annotated] == marked
    assert [e.index for e in runner.references(1)] == marked  # every annotated frame, read ahead as the loop does
    for m in mined:
        assert m.t not in marked and m.candidates == list(range(m.t))
        assert m.annotated == [p for p in m.candidates if p in marked]
    again = runner.run_previous(annotated=tuple(marked))
    assert all(again[i] == pytest.approx(1.0) for i in marked)  # an annotated frame carries its truth
    # a budget evicts predicted frames only
    held = pool_history(30, MemoryConfig(budget=4, recent=1), annotated={5, 9})
    assert all({5, 9} <= set(h) for h in held[10:]) and all(len(h) <= 5 for h in held)


def test_poly_decay():
    assert poly_lr(0, 100, 0.9) == 1.0 and poly_lr(100, 100, 0.9) == 0.0
    assert poly_lr(50, 100, 1.0) == pytest.approx(0.5)


def test_pairs_have_consistent_shapes(tiny_data):
    b = _sampler(tiny_data).sample(3, np.random.default_rng(0))
    assert b.y_t.shape == b.y_g.shape == (3, 1, *CROP) and b.flow.shape == (3, 2, *CROP)
    assert b.feats_t[4].shape[-2:] == (CROP[0] // 4, CROP[1] // 4)
    assert set(torch.unique(b.y_t).tolist()) <= {0.0, 1.0} and b.y_t.sum() > 0
    c = _sampler(tiny_data, task="color").sample(2, np.random.default_rng(1))
    assert c.y_t.shape == (2, 2, *CROP) and c.y_t.abs().max() <= 1.0


def test_stm_reference_is_frame_0_as_often_as_asked(tiny_data):
    seq, feats, _ = tiny_data
    rng = np.random.default_rng(0)
    for p, lo, hi in ((1.0, 1.0, 1.0), (0.5, 0.45, 0.75), (0.0, 0.0, 0.35)):
        sampler = PairSampler([seq], [feats], crop=CROP, with_flow=False, ref_first_p=p)
        share = np.mean([sampler._one(rng)["ref"] == 0 for _ in range(200)])
        assert lo <= share <= hi, (p, share)  # p = 0: frame 0 only by chance (1 of 6 frames)


def test_max_gap_bounds_the_guide_distance(tiny_data):
    from msn_core.errors import InputError

    seq, feats, _ = tiny_data
    rng = np.random.default_rng(0)
    gaps = {}
    for m in (1, 3, 5):
        sampler = PairSampler([seq], [feats], crop=CROP, with_flow=False, max_gap=m)
        pairs = [sampler._one(rng) for _ in range(300)]
        gaps[m] = [p["gap"] for p in pairs if not p["same"]]  # "same": the guide is the reference frame
    assert max(gaps[1]) == 1 and max(gaps[3]) == 3 and max(gaps[5]) == 5  # 6 frames: a gap of 5 is frame 0 against frame 5
    with pytest.raises(InputError, match="max_gap must be at least 1"):
        PairSampler([seq], [feats], crop=CROP, max_gap=0)


@pytest.mark.parametrize("kind", ["tpn-mask", "tpn-color", "stm"])
def test_a_few_steps_reduce_the_loss(tiny_data, kind):
    _, _, backbone = tiny_data
    torch.manual_seed(0)
    net = build_stage1(kind, backbone.channels, width=8)
    sampler = _sampler(tiny_data, task="color" if kind == "tpn-color" else "mask", with_flow=kind != "stm")
    fixed = np.random.default_rng(3)
    state = fixed.bit_generator.state
    inner = make_loss_fn(kind, sampler, 2)

    def loss_fn(model, rng):  # the same batch every step: the loss must fall
        fixed.bit_generator.state = state
        return inner(model, fixed)

    from msn_core.training.stage1 import STMTrainer

    model = STMTrainer(net) if kind == "stm" else net
    lr = 3e-4 if kind == "tpn-color" else 3e-3  # colour starts near the flow-warped guide: small steps
    out = train_loop(model, loss_fn, TrainConfig(steps=12, lr=lr, progress=False))
    end = min(out["losses"][-4:]) if kind == "tpn-color" else np.mean(out["losses"][-3:])
    assert end < (0.95 if kind == "tpn-color" else 0.9) * out["losses"][0], out["losses"]


class _Stop(Exception):
    pass


def test_checkpoint_resume_continues_from_the_same_step(tiny_data, tmp_path):
    _, _, backbone = tiny_data
    sampler = _sampler(tiny_data)
    cfg = TrainConfig(steps=6, batch=2, lr=1e-3, ckpt_every=3, progress=False, seed=5)

    def fresh():
        torch.manual_seed(0)
        return build_stage1("tpn-mask", backbone.channels, width=8)

    full = fresh()
    ref = train_loop(full, make_loss_fn("tpn-mask", sampler, 2), cfg)

    inner = make_loss_fn("tpn-mask", sampler, 2)
    calls = {"n": 0}

    def crashing(model, rng):
        calls["n"] += 1
        if calls["n"] == 5:  # dies during step 5, after the checkpoint at step 3
            raise _Stop
        return inner(model, rng)

    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(_Stop):
        train_loop(fresh(), crashing, cfg, ckpt_path=ckpt)
    probe = fresh()
    step, losses = load_checkpoint(ckpt, probe, torch.optim.Adam(probe.parameters()))
    assert step == 3 and losses == pytest.approx(ref["losses"][:3])

    resumed = fresh()
    out = train_loop(resumed, make_loss_fn("tpn-mask", sampler, 2), cfg, ckpt_path=ckpt)
    assert out["resumed_from"] == 3
    assert out["losses"] == pytest.approx(ref["losses"], rel=1e-5)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    from msn_core.config import BackboneConfig
    from msn_core.models.backbone import build_backbone
    from msn_core.training.data import PairSampler, cached_features, load_sequence
    from msn_core.training.stage1 import build_stage1, make_loss_fn
    from msn_core.training.trainer import TrainConfig, setup_distributed, train_loop

    torch.set_num_threads(1)
    data_dir, cache, out, name = sys.argv[1:5]
    rank, world = setup_distributed()
    assert world == 2 and dist.get_backend() == "gloo"
    backbone = build_backbone(BackboneConfig(name="tiny"))
    seq = load_sequence(data_dir, name, max_side=256, max_frames=4)
    feats = cached_features(cache + f"/r{rank}", seq, backbone)
    sampler = PairSampler([seq], [feats], crop=(128, 224), max_gap=2)
    torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
    net = build_stage1("tpn-mask", backbone.channels, width=8)
    train_loop(net, make_loss_fn("tpn-mask", sampler, 2), TrainConfig(steps=3, lr=1e-3, progress=False))
    torch.save(net.state_dict(), f"{out}/rank{rank}.pt")
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(davis_dir, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(davis_dir),
        str(tmp_path),
        str(tmp_path),
        SEQ,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    torch.manual_seed(0)
    start = build_stage1(
        "tpn-mask", build_backbone(BackboneConfig(name="tiny")).channels, width=8
    ).state_dict()
    assert any(not torch.equal(a[k], start[k]) for k in a)  # it trained
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_load_rebuilds_networks_from_the_config_in_their_weight_files(tmp_path, davis_dir):
    """A TPN of width 8 on the tiny backbone and a small MSN load through msn_core.load."""
    import msn_core
    from msn_core.config import MSNConfig
    from msn_core.hub import save_weights
    from msn_core.models.selection import MSN
    from msn_core.training.stage1 import weight_config

    bcfg = BackboneConfig(name="tiny")
    channels = build_backbone(bcfg).channels
    tpn = build_stage1("tpn-mask", channels, width=8)
    msn = MSN(MSNConfig(embed_dim=16, hidden=16), channels[32])
    paths = {"model": tmp_path / "tpn.safetensors", "msn": tmp_path / "msn.safetensors"}
    save_weights(tpn.state_dict(), paths["model"], weight_config("tpn-mask", tpn.cfg, bcfg), name="tpn-mask")
    save_weights(msn.state_dict(), paths["msn"], weight_config("msn", msn.cfg, bcfg), name="msn-tpn")
    pipe = msn_core.load("tpn", weights=paths)
    assert pipe.cfg.backbone.name == "tiny" and pipe.model.cfg.width == 8 and pipe.msn.cfg.hidden == 16
    seq = load_sequence(davis_dir, "dog", max_side=128, max_frames=3)
    frames = [f for f in seq.frames]
    out = list(pipe.propagate(frames, seq.masks[0], selector="msn"))
    assert len(out) == 3 and out[2].guide in (0, 1)


def test_an_stm_on_lite2_features_loads_with_its_backbone_and_refuses_a_lite0_msn(tmp_path, davis_dir):
    """Weight files name their backbone: an STM-1 and MSN made on EfficientNet-Lite2 features run on
    Lite2 (its channels, not Lite0's), and a Lite0 MSN beside that STM-1 is refused."""
    import msn_core
    from msn_core.config import MSNConfig, STMConfig
    from msn_core.errors import WeightsError
    from msn_core.hub import save_weights
    from msn_core.models.selection import MSN
    from msn_core.models.stm import STM
    from msn_core.training.stage1 import weight_config

    paths = {"model": tmp_path / "stm.safetensors", "msn": tmp_path / "msn.safetensors"}
    for name in ("efficientnet_lite2", "efficientnet_lite0"):
        bcfg = BackboneConfig(name=name)
        channels = build_backbone(bcfg).channels
        msn = MSN(MSNConfig(embed_dim=16, hidden=16), channels[32])
        save_weights(msn.state_dict(), paths["msn"], weight_config("msn", msn.cfg, bcfg), name="msn-stm")
        if name == "efficientnet_lite2":
            stm = STM(STMConfig(key_dim=16, value_dim=16, width=8), channels)
            save_weights(stm.state_dict(), paths["model"], weight_config("stm", stm.cfg, bcfg), name="stm")
            pipe = msn_core.load("stm", weights=paths)
            assert pipe.cfg.backbone.name == "efficientnet_lite2" and pipe.backbone.channels[16] == 120
            seq = load_sequence(davis_dir, "dog", max_side=128, max_frames=3)
            out = list(pipe.propagate([f for f in seq.frames], seq.masks[0], selector="msn"))
            assert len(out) == 3 and out[0].labels.shape == seq.masks[0].shape
    with pytest.raises(WeightsError, match="different backbones"):
        msn_core.load("stm", weights=paths)


def test_cross_fitted_mining_picks_the_net_not_trained_on_each_sequence(tmp_path):
    from msn_core.config import TPNConfig
    from msn_core.errors import InputError
    from msn_core.hub import load_named, save_weights
    from msn_core.training.frozen import held_out_propagators
    from msn_core.training.stage1 import weight_config

    channels = build_backbone(BackboneConfig(name="tiny")).channels
    paths = []
    for half, seqs in (("a", ["bmx-trees", "cows"]), ("b", ["goat"])):
        torch.manual_seed(len(seqs))
        net = build_stage1("tpn-mask", channels)
        cfg = weight_config("tpn-mask", TPNConfig(), BackboneConfig(name="tiny"), {"sequences": seqs})
        save_weights(net.state_dict(), tmp_path / f"{half}.safetensors", cfg, name="tpn-mask")
        paths.append(str(tmp_path / f"{half}.safetensors"))
    nets = held_out_propagators("tpn-mask", channels, paths, ["bmx-trees", "cows", "goat", "goat~reverse"])
    assert nets["bmx-trees"] is nets["cows"] and nets["goat"] is not nets["cows"]
    assert nets["goat~reverse"] is nets["goat"]  # a view of a sequence is held out with it

    def same(net, path):
        loaded = load_named("tpn-mask", path)[0]
        return all(torch.equal(v, loaded[k]) for k, v in net.model.state_dict().items())

    assert same(nets["bmx-trees"], paths[1])  # held out of "a": the "b" net
    assert same(nets["goat"], paths[0]) and not same(nets["goat"], paths[1])
    with pytest.raises(InputError, match="trained on 'goat'"):
        held_out_propagators("tpn-mask", channels, paths[1:], ["goat"])


def test_sequence_views_replay_frames_masks_and_features_in_order(tiny_data):
    from msn_core.errors import InputError
    from msn_core.training.data import base_name, sequence_view
    from msn_core.training.samples import first_frame_features

    seq, feats, backbone = tiny_data
    n = len(seq)
    for view, order in (
        ("forward", list(range(n))),
        ("reverse", list(range(n - 1, -1, -1))),
        ("mid-forward", list(range(n // 2, n))),
        ("mid-reverse", list(range(n // 2, -1, -1))),
    ):
        v, f = sequence_view(seq, feats, view)
        assert base_name(v.name) == seq.name and (v.name == seq.name) == (view == "forward")
        assert np.array_equal(v.frames, seq.frames[order]) and np.array_equal(v.masks, seq.masks[order])
        for s in feats:
            assert torch.equal(f[s], feats[s][order])
    # the reverse view's annotated frame is the sequence's last frame, with its mask
    rev, _ = sequence_view(seq, feats, "reverse")
    last = type(seq)(name="x", frames=seq.frames[-1:], masks=seq.masks[-1:], proc=seq.proc)
    assert torch.equal(
        first_frame_features(backbone, rev, "tpn-mask"), first_frame_features(backbone, last, "tpn-mask")
    )
    with pytest.raises(InputError, match="accepted: forward, reverse"):
        sequence_view(seq, feats, "sideways")


def test_synthetic_clip_moves_one_frame_and_its_mask_together(tiny_data):
    from msn_core.errors import InputError
    from msn_core.training.data import base_name
    from msn_core.training.world import synthetic_clip

    seq, _, _ = tiny_data
    clip = synthetic_clip(seq, 2, 12, seed=3)
    assert base_name(clip.name) == seq.name and len(clip) == 12
    assert clip.frames.shape[1:] == seq.frames.shape[1:] and clip.masks.shape[1:] == seq.masks.shape[1:]
    assert np.array_equal(clip.frames[0], seq.frames[2]) and np.array_equal(clip.masks[0], seq.masks[2])
    assert set(np.unique(clip.masks)) <= {0, 1}
    # it moves: later frames differ from the first, the mask's centre travels with the picture
    assert not np.array_equal(clip.masks[-1], clip.masks[0])
    assert np.abs(clip.frames[-1].astype(int) - clip.frames[0]).mean() > 1
    # the path is bounded: the object is never pushed out of the frame
    area = clip.masks.reshape(12, -1).sum(1)
    assert area.min() > 0.5 * area[0]
    again = synthetic_clip(seq, 2, 12, seed=3)
    assert np.array_equal(again.frames, clip.frames)  # seeded
    with pytest.raises(InputError, match="length"):
        synthetic_clip(seq, 0, 1, seed=0)


def test_train_msn_mines_caches_and_writes_an_msn_the_loop_runs(tmp_path, davis_dir):
    """``train_msn`` with a ``MiningConfig``: the plays it names are mined once (a second run reads
    the cache), the weights file records how, and the trained MSN loads and runs in the loop."""
    import json

    import msn_core
    from msn_core.config import MSNConfig
    from msn_core.hub import load_named, save_weights
    from msn_core.training.stage1 import weight_config
    from msn_core.training.stage2 import MiningConfig, train_msn

    bcfg = BackboneConfig(name="tiny", pretrained=False)
    channels = build_backbone(bcfg).channels
    torch.manual_seed(0)
    tpn = build_stage1("tpn-mask", channels, width=8)
    tpn_path = tmp_path / "tpn.safetensors"
    save_weights(tpn.state_dict(), tpn_path, weight_config("tpn-mask", tpn.cfg, bcfg), name="tpn-mask")
    mining = MiningConfig(propagator_weights=tpn_path, views=("forward", "reverse"), relative=True)
    assert mining.tag() == "trained-forward+reverse" and mining.paths == [str(tpn_path)]
    kw = dict(
        cache_dir=tmp_path, sequences=[SEQ], mining=mining, msn_cfg=MSNConfig(embed_dim=16, hidden=16),
        backbone_cfg=bcfg, max_side=128, max_frames=8,
    )  # fmt: skip
    cfg = TrainConfig(steps=3, batch=4, progress=False, ckpt_every=10**9)
    out = tmp_path / "msn.safetensors"
    summary = train_msn("tpn-mask", davis_dir, out, cfg, **kw)
    assert len(summary["losses"]) == 3 and np.isfinite(summary["losses"]).all()
    (cache,) = tmp_path.glob("mined_*.json")
    assert cache.name.startswith(f"mined_tpn-mask_trained-forward+reverse_{SEQ}_8_s2_w")
    assert json.loads(cache.read_text())["sequences"] == [SEQ, f"{SEQ}~reverse"]
    _, config = load_named("msn-tpn", out)
    record = config["training"]
    assert record["mined_with"] == "trained-forward+reverse" and record["views"] == ["forward", "reverse"]
    assert record["relative_fallback"] and record["mining_weights"] == ["tpn.safetensors"]
    before = cache.stat().st_mtime_ns  # the second run reads the cache back, mines nothing again
    again = train_msn("tpn-mask", davis_dir, tmp_path / "again.safetensors", cfg, **kw)
    assert cache.stat().st_mtime_ns == before and again["losses"] == summary["losses"]
    seq = load_sequence(davis_dir, SEQ, max_side=128, max_frames=8)
    pipe = msn_core.load("tpn", weights={"model": tpn_path, "msn": out})
    results = list(pipe.propagate(list(seq.frames[:4]), seq.masks[0], selector="msn"))
    assert len(results) == 4 and all(np.isfinite(list(r.scores.values())).all() for r in results[1:])


def test_label_aware_msn_learns_from_the_labels_its_candidates_carried(tmp_path, davis_dir):
    """``MSNConfig.label_aware``: stage 2 reads every memory frame's label in the run the mining
    made (the annotation for frame 0, a prediction after it), caches them next to the samples, and
    the trained MSN loads as label-aware and runs in the loop."""
    from safetensors.torch import load_file

    import msn_core
    from msn_core.config import MSNConfig
    from msn_core.hub import load_named, save_weights
    from msn_core.training.stage1 import weight_config
    from msn_core.training.stage2 import MiningConfig, train_msn

    bcfg = BackboneConfig(name="tiny", pretrained=False)
    torch.manual_seed(0)
    tpn = build_stage1("tpn-mask", build_backbone(bcfg).channels, width=8)
    tpn_path = tmp_path / "tpn.safetensors"
    save_weights(tpn.state_dict(), tpn_path, weight_config("tpn-mask", tpn.cfg, bcfg), name="tpn-mask")
    out = tmp_path / "msn.safetensors"

    def train():
        train_msn(
            "tpn-mask", davis_dir, out, TrainConfig(steps=2, batch=4, progress=False, ckpt_every=10**9),
            cache_dir=tmp_path, sequences=[SEQ], backbone_cfg=bcfg, max_side=128, max_frames=6,
            mining=MiningConfig(propagator_weights=tpn_path, relative=True, corrections=1),
            msn_cfg=MSNConfig(embed_dim=16, hidden=16, label_aware=True),
        )  # fmt: skip

    train()  # the mining keeps its runs' labels as it goes
    (cache,) = tmp_path.glob("guidemasks_*.safetensors")
    masks = load_file(str(cache))[SEQ]
    cache.unlink()
    train()  # samples read back from their cache: the runs are made again for their labels
    torch.testing.assert_close(load_file(str(cache))[SEQ], masks)
    seq = load_sequence(davis_dir, SEQ, max_side=128, max_frames=6)
    h, w = seq.masks.shape[1:]
    assert masks.shape == (6, 1, -(-h // 32), -(-w // 32)) and 0 <= masks.min() and masks.max() <= 1
    first = torch.nn.functional.interpolate(
        torch.from_numpy(seq.masks[:1]).float()[None], size=masks.shape[-2:], mode="area"
    )
    torch.testing.assert_close(masks[:1], first)  # frame 0 carries its annotation
    _, config = load_named("msn-tpn", out)
    assert config["config"]["label_aware"]
    pipe = msn_core.load("tpn", weights={"model": tpn_path, "msn": out})
    assert pipe.msn.cfg.label_aware
    results = list(pipe.propagate(list(seq.frames[:4]), seq.masks[0], selector="msn"))
    assert len(results) == 4 and all(np.isfinite(list(r.scores.values())).all() for r in results[1:])


def test_label_aware_colour_msn_is_refused_before_any_mining(tmp_path, davis_dir):
    """Colour runs carry no object masks: ``train_msn`` says so at once, before it reads features or mines."""
    from msn_core.config import MSNConfig
    from msn_core.errors import InputError
    from msn_core.training.stage2 import train_msn

    with pytest.raises(InputError, match="label-aware MSN reads object masks"):
        train_msn(
            "tpn-color", davis_dir, tmp_path / "msn.safetensors", TrainConfig(steps=1, batch=2, progress=False),
            cache_dir=tmp_path, sequences=[SEQ], backbone_cfg=BackboneConfig(name="tiny", pretrained=False),
            msn_cfg=MSNConfig(embed_dim=16, hidden=16, label_aware=True),
        )  # fmt: skip
    assert not list(tmp_path.iterdir())  # nothing cached, nothing mined


def test_msn_picker_makes_the_mined_run_pick_as_its_msn_does(davis_dir):
    """``MSNPicker``: the mined run takes each frame's guide where the MSN scores best (most recent
    on a tie), from the pool the loop would hold, reading the candidates' labels when label-aware."""
    from msn_core.config import MSNConfig
    from msn_core.models.selection import MSN
    from msn_core.propagators import TPNPropagator
    from msn_core.tasks import MaskTask
    from msn_core.training.mining import MSNPicker, SequenceRunner
    from msn_core.training.samples import _truth

    bb = build_backbone(BackboneConfig(name="tiny", pretrained=False))
    seq = load_sequence(davis_dir, SEQ, max_side=128, max_frames=6)
    with torch.inference_mode():
        feats = {s: f for s, f in bb(torch.from_numpy(seq.frames).permute(0, 3, 1, 2).float() / 255).items()}
    torch.manual_seed(0)
    tpn = TPNPropagator(build_stage1("tpn-mask", bb.channels, width=8).eval(), FlowConfig())
    msn = MSN(MSNConfig(embed_dim=16, hidden=16, label_aware=True), bb.channels[32]).eval()
    picker = MSNPicker(msn, feats[32], feats[32][:1], max_candidates=24)
    picked = []
    original = picker.pick

    def spy(t, candidates, labels, marked, task):
        g = original(t, candidates, labels, marked, task)
        with torch.no_grad():
            m_p = torch.cat([task.union(labels[c]) for c in candidates])
            scores = msn(feats[32][candidates], feats[32][:1], feats[32][t : t + 1], None, m_p)
        assert candidates == list(range(t)) and g == candidates[int(scores.argmax())]
        picked.append(g)
        return g

    picker.pick = spy
    runner = SequenceRunner(tpn, MaskTask([1]), seq.frames, feats, _truth(seq, "mask"), picker)
    runner.run_previous()
    assert len(picked) == 5 and len(runner.labels) == 6


def test_stage1_init_fine_tunes_from_given_weights(tmp_path, davis_dir):
    """``train_stage1(init=...)`` starts from those weights (checked), keeps the sequences they were
    trained on listed (cross-fitting reads that list), and refuses weights of another width."""
    from msn_core.errors import InputError
    from msn_core.hub import load_named, save_weights
    from msn_core.training.stage1 import train_stage1, weight_config

    bcfg = BackboneConfig(name="tiny", pretrained=False)
    torch.manual_seed(5)
    start = build_stage1("tpn-mask", build_backbone(bcfg).channels, width=8)
    init = tmp_path / "init.safetensors"
    save_weights(
        start.state_dict(),
        init,
        weight_config("tpn-mask", start.cfg, bcfg, {"sequences": ["goat"]}),
        name="tpn-mask",
    )
    kw = dict(
        cache_dir=tmp_path, sequences=[SEQ], backbone_cfg=bcfg, crop=(64, 96), max_side=128, max_frames=4
    )
    cfg = TrainConfig(steps=1, batch=1, lr=1e-7, progress=False, ckpt_every=10**9)
    train_stage1("tpn-mask", davis_dir, tmp_path / "ft.safetensors", cfg, width=8, init=init, **kw)
    sd, config = load_named("tpn-mask", tmp_path / "ft.safetensors")
    for k, v in start.state_dict().items():
        torch.testing.assert_close(sd[k].float(), v.float(), atol=1e-5, rtol=0)  # one tiny step from init
    assert (
        config["training"]["sequences"] == [SEQ, "goat"] and config["training"]["init"] == "init.safetensors"
    )
    train_stage1("tpn-mask", davis_dir, tmp_path / "fresh.safetensors", cfg, width=8, **kw)
    fresh, _ = load_named("tpn-mask", tmp_path / "fresh.safetensors")
    assert any((fresh[k].float() - v.float()).abs().max() > 1e-3 for k, v in start.state_dict().items())
    with pytest.raises(InputError, match="has width 8, not 16"):
        train_stage1("tpn-mask", davis_dir, tmp_path / "bad.safetensors", cfg, width=16, init=init, **kw)


def test_mined_sample_caches_are_named_by_the_weights_that_mined_them(tmp_path):
    """A cache of mined samples is only read back by a run with the same frozen weights."""
    from msn_core.training.frozen import weights_tag

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert weights_tag("tpn-mask", [str(a)]) == weights_tag("tpn-mask", [str(a)])
    assert weights_tag("tpn-mask", [str(a)]) != weights_tag("tpn-mask", [str(b)])
    assert weights_tag("tpn-mask", [str(a), str(b)]) != weights_tag("tpn-mask", [str(b), str(a)])
    assert weights_tag("tpn-mask", []).startswith("_w") and weights_tag("tpn-mask", ["warp"]) == ""


def test_a_local_training_run_never_joins_ddp(monkeypatch, tiny_data):
    """``train_loop(local=True)`` (a per-video adaptation on one rank) trains in this process even
    under torchrun's environment; without it the loop would try to join the process group."""
    _, _, backbone = tiny_data
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    net = build_stage1("tpn-mask", backbone.channels, width=8)
    loss_fn = make_loss_fn("tpn-mask", _sampler(tiny_data), 1)
    out = train_loop(net, loss_fn, TrainConfig(steps=2, progress=False), local=True)
    assert len(out["losses"]) == 2
    with pytest.raises(ValueError):  # the environment is incomplete: joining fails at once
        train_loop(net, loss_fn, TrainConfig(steps=1, progress=False))



def test_pair_batches_are_balanced_and_mirror_each_flipped_row_whole():
    """``PairSet.sample`` is ``draw`` then ``batch``: half positives, half negatives, and a flipped row
    mirrors its candidate, target, annotated frame and label together."""
    from msn_core.training.mining import MinedTarget
    from msn_core.training.samples import PairSet

    gen = torch.Generator().manual_seed(0)
    f32 = [torch.randn(6, 4, 3, 5, generator=gen) for _ in range(2)]
    f_a = [torch.randn(1, 5, 3, 5, generator=gen) for _ in range(2)]
    masks = [torch.rand(6, 1, 3, 5, generator=gen) for _ in range(2)]
    targets = [MinedTarget(s, 5, [0, 2, 3, 4], [0.9, 0.2, 0.5, 0.85], [], [0]) for s in range(2)]
    pairs = PairSet(targets, f32, f_a, masks=masks)
    rows, flip = pairs.draw(8, np.random.default_rng(3))
    assert [r[3] for r in rows] == [1] * 4 + [0] * 4 and flip.any() and not flip.all()
    f_p, fa, f_t, annotated, labels, m_p = pairs.batch(rows, flip)
    assert labels.tolist() == [1.0] * 4 + [0.0] * 4
    for i, (seq, t, p, _, ann) in enumerate(rows):
        mirror = (lambda x: x.flip(-1)) if flip[i] else (lambda x: x)
        assert torch.equal(f_p[i], mirror(f32[seq][p])) and torch.equal(f_t[i], mirror(f32[seq][t]))
        assert torch.equal(fa[i], mirror(f_a[seq][0])) and torch.equal(m_p[i], mirror(masks[seq][p]))
        assert annotated[i] == float(ann) == float(p == 0)
    again = pairs.sample(8, np.random.default_rng(3))
    assert all(torch.equal(a, b) for a, b in zip(again, (f_p, fa, f_t, annotated, labels, m_p)))
