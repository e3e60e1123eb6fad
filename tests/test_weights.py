"""The bundled, trained weights: present, pinned, strict to load, and better than no training."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hubserver import isolate_hub_env

import msn_core
from msn_core.config import PipelineConfig
from msn_core.errors import WeightsError
from msn_core.hub import WEIGHTS, load_named, load_weights, sha256_file
from msn_core.pipeline import WEIGHT_NAMES

BUNDLED = Path(msn_core.__file__).resolve().parent / "weights"
NAMES = sorted({name for pair in WEIGHT_NAMES.values() for part in pair for name in part.split("+")})
PIPELINES = [key for key in WEIGHT_NAMES if "+" not in key[0]]  # the tpn+stm ensemble: tests/test_ensemble.py


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """The bundled copies, never the network, whatever the caller exported (MSN_WEIGHTS_DIR,
    MSN_HUB_REPO, a Hub cache holding other files...)."""
    isolate_hub_env(monkeypatch, tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_every_bundled_file_exists_is_pinned_and_small():
    total = 0
    for name in NAMES:
        spec = WEIGHTS[name]
        path = BUNDLED / spec.filename
        assert path.is_file(), f"{path} missing"
        assert spec.sha256 is not None and sha256_file(path) == spec.sha256, name
        total += path.stat().st_size
    assert total <= 60 * 2**20


@pytest.mark.parametrize("propagator,task", PIPELINES)
def test_pipelines_load_the_bundled_weights_strictly(propagator, task):
    pipe = msn_core.load(propagator, task, weights="auto")
    model_name, msn_name = WEIGHT_NAMES[(propagator, task)]
    for module, name in ((pipe.model, model_name), (pipe.msn, msn_name)):
        sd, config = load_weights(BUNDLED / WEIGHTS[name].filename)
        own = module.state_dict()
        assert set(own) == set(sd)
        assert all(torch.equal(own[k], sd[k]) for k in own)
        assert config["kind"] in ("tpn-mask", "tpn-color", "stm", "msn")
        assert config["training"]["sequences"] and "dog" not in config["training"]["sequences"]


def test_a_corrupted_bundled_file_is_refused(tmp_path, monkeypatch):
    spec = WEIGHTS["msn-tpn"]
    copy = tmp_path / spec.filename
    shutil.copy(BUNDLED / spec.filename, copy)
    data = bytearray(copy.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setenv("MSN_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match="sha256"):
        load_named("msn-tpn")


def _j_previous(pipe, frames, gts) -> float:
    from msn_core.metrics import evaluate_sequence

    labels = [r.labels for r in pipe.propagate(frames, gts[0], selector="previous")]
    return evaluate_sequence(gts, labels).J_mean


@pytest.mark.slow
def test_trained_tpn_beats_the_untrained_one_on_a_validation_clip():
    """Real frames of 'dog' (a validation sequence): previous-frame propagation over its 30 bundled
    frames, at TPN's default max side (480: the bundled 428x240 frames as they are)."""
    from msn_core.io import example_sequence, read_mask

    source, masks = example_sequence("dog", max_frames=30)
    frames = list(source)
    gts = [read_mask(p) for p in masks]
    cfg = PipelineConfig()
    trained = _j_previous(msn_core.load("tpn", weights="auto", config=cfg), frames, gts)
    untrained = _j_previous(msn_core.load("tpn", weights=None, config=cfg), frames, gts)
    assert np.isfinite(trained) and trained > untrained + 0.01, (trained, untrained)


def test_vgg16_configuration_loads_its_weights_from_the_weights_folder(tmp_path, monkeypatch):
    """The paper's VGG16 F is a configuration: the architecture is ours, the weights come from the
    Hub / the weights folder; without them the error says which file is missing."""
    from msn_core.config import BackboneConfig
    from msn_core.hub import save_weights
    from msn_core.models.backbone import build_backbone
    from msn_core.pipeline import build

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MSN_WEIGHTS_DIR", str(tmp_path))
    cfg = dataclasses.replace(PipelineConfig(), backbone=BackboneConfig(name="vgg16", pretrained=True))
    with pytest.raises(WeightsError, match="vgg16"):
        build(cfg)
    source = build_backbone(BackboneConfig(name="vgg16", pretrained=False))
    save_weights(source.state_dict(), tmp_path / "vgg16.safetensors", {"kind": "vgg16"}, name="vgg16", half=True)
    backbone, _, _ = build(cfg)
    torch.testing.assert_close(backbone.features[0].weight, source.features[0].weight, atol=1e-3, rtol=1e-3)


def test_bf16_autocast_agrees_with_fp32():
    """Mixed precision (what the GPU benchmark uses) changes the masks only a little: checked here with
    CPU bf16 autocast on real frames and the trained weights."""
    from msn_core.io import example_sequence, read_mask
    from msn_core.metrics import db_eval_iou

    source, masks = example_sequence("dog", max_frames=8)
    frames = list(source)
    first = read_mask(masks[0])
    pipe = msn_core.load("tpn", weights="auto")
    full = [r.labels for r in pipe.propagate(frames, first)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = [r.labels for r in pipe.propagate(frames, first)]
    agreement = np.mean([db_eval_iou(a > 0, b > 0) for a, b in zip(full[1:], half[1:])])
    assert agreement > 0.85, agreement
