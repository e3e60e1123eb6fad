"""Online adaptation to the annotated frame (msn_core.adaptation): tiny seeded networks for the
mechanics, the shipped TPN on a real validation clip for the gain."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

import msn_core
from msn_core.adaptation import AdaptConfig, adapt, annotation_clips
from msn_core.cli import main
from msn_core.config import ADAPTED_MAX_SIDE, default_max_side
from msn_core.errors import InputError
from msn_core.io import davis_sequence, example_path, read_mask, resize_frame, resize_labels
from msn_core.metrics import evaluate_sequence
from tests.test_propagation import tiny_pipe

pytestmark = pytest.mark.usefixtures("one_thread", "offline_hub")
SIZE = (120, 214)


@pytest.fixture(scope="module")
def dog(davis_dir):
    source, masks = davis_sequence(davis_dir, "dog")
    frames = [resize_frame(f, SIZE) for f in itertools.islice(source, 4)]
    labels = [resize_labels(read_mask(p), SIZE) for p in masks[:4]]
    return frames, labels


def _params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("propagator,task", [("tpn", "mask"), ("stm", "mask"), ("tpn", "color")])
def test_adapt_trains_a_copy_and_the_copy_propagates(dog, propagator, task):
    frames, labels = dog
    pipe = tiny_pipe(propagator, task, selector="previous")
    before = _params(pipe.model)
    steps = []
    first = labels[0] if task == "mask" else None
    cfg = AdaptConfig(steps=3, batch=2, clips=2, clip_length=3)
    adapted = adapt(pipe, frames[0], first, cfg, on_step=lambda s, n, loss: steps.append((s, n, loss)))
    assert [s for s, _, _ in steps] == [1, 2, 3] and all(n == 3 and np.isfinite(x) for _, n, x in steps)
    # the given pipeline (which a demo shares between users) is untouched; the copy moved
    assert all(torch.equal(a, b) for a, b in zip(before, pipe.model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before, adapted.model.parameters()))
    assert adapted.backbone is pipe.backbone and adapted.msn is pipe.msn and not adapted.model.training
    info = adapted.weights_info["adapted"]
    assert info["steps"] == 3 and info["seconds"] > 0 and np.isfinite(info["loss_last"])
    results = list(adapted.propagate(frames, first))
    assert len(results) == len(frames)


def test_every_object_gets_its_own_clips(dog):
    frame, labels = dog[0][0], dog[1][0]
    two = labels.copy()
    two[:, : SIZE[1] // 2][two[:, : SIZE[1] // 2] == 1] = 2  # the dog's left half becomes object 2
    clips = annotation_clips(frame, two, [1, 2], None, AdaptConfig(clips=3, clip_length=2))
    assert len(clips) == 3 and [c.name.split("~")[0] for c in clips] == ["annotation1", "annotation2", "annotation1"]
    for clip, obj in zip(clips, (1, 2, 1)):
        # frame 0 of each clip is the annotated frame with that object's mask, at the padded size
        assert clip.frames.shape[1:3] == (128, 224) and clip.masks.shape == (2, 128, 224)
        np.testing.assert_array_equal(clip.masks[0, : SIZE[0], : SIZE[1]], (two == obj).astype(np.uint8))
    many = annotation_clips(frame, two, [1, 2], None, AdaptConfig(clips=1, clip_length=2))
    assert len(many) == 2  # at least one clip per object


def test_bad_adaptation_input_is_a_clear_error(dog):
    frames, labels = dog
    pipe = tiny_pipe()
    with pytest.raises(InputError, match="needs the first-frame mask"):
        adapt(pipe, frames[0], None)
    with pytest.raises(InputError, match="first-frame mask is 10x10"):
        adapt(pipe, frames[0], np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="steps must be >= 1"):
        AdaptConfig(steps=0)
    with pytest.raises(InputError, match="expected a uint8"):
        adapt(pipe, frames[0].astype(np.float32), labels[0])


@pytest.mark.slow
def test_adapting_the_shipped_tpn_improves_a_validation_clip():
    """kite-surf (a validation sequence, never trained on): 40 steps on its annotated frame."""
    source, masks = msn_core.example_sequence("kite-surf", max_frames=20)
    frames, gts = list(source), [read_mask(p) for p in masks]
    pipe = msn_core.load("tpn", selector="previous")

    def jf(p) -> float:
        return evaluate_sequence(gts, [r.labels for r in p.propagate(frames, gts[0])], name="kite-surf").JF_mean

    base = jf(pipe)
    adapted = adapt(pipe, frames[0], gts[0], AdaptConfig(steps=40))
    gain = jf(adapted) - base
    assert adapted.weights_info["adapted"]["loss_last"] < adapted.weights_info["adapted"]["loss_first"]
    assert gain > 0.02, f"J&F {base:.3f} -> {base + gain:.3f}"
    assert jf(pipe) == base  # the shipped pipeline is unchanged


def test_cli_propagate_adapts_first_and_records_it(tmp_path, capsys):
    example = example_path("dog")
    out = tmp_path / "out"
    rc = main([
        "propagate", str(example), "--mask", str(example / "00000.png"), "--out", str(out),
        "--weights", "none", "--max-frames", "3", "--no-video", "--adapt-steps", "2", "--max-side", "160",
    ])  # fmt: skip
    assert rc == 0
    record = json.loads((out / "propagation.json").read_text())
    assert record["adapted"]["steps"] == 2 and len(record["frames"]) == 3
    assert record["max_side"] == 160  # as asked
    for steps, side in (("1", ADAPTED_MAX_SIDE), ("0", default_max_side("stm"))):  # the default follows adaptation
        rc = main(["propagate", str(example), "--mask", str(example / "00000.png"), "--out", str(tmp_path / steps),
                   "--weights", "none", "--max-frames", "2", "--no-video", "--adapt-steps", steps])  # fmt: skip
        assert rc == 0 and json.loads((tmp_path / steps / "propagation.json").read_text())["max_side"] == side
    rc = main(["propagate", str(example), "--mask", str(example / "00000.png"), "--out", str(tmp_path / "x"),
               "--adapt-steps", "-5"])  # fmt: skip
    assert rc != 0 and "--adapt-steps must be 0 (off) or a positive number" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written
