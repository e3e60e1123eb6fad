"""Test-time flip (``PipelineConfig.test_flip``, ``--flip``): every guide is read as given and
mirrored left-right, and the mirrored logits are flipped back and averaged in; adaptation then
shows the network the mirrored frame too. Tiny seeded
networks on real DAVIS frames; the evaluation with the bundled weights on a few frames."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from msn_core.cli import main
from msn_core.io import example_path
from msn_core.memory.pool import MemoryEntry
from msn_core.propagators import EnsemblePropagator, FlipPropagator, FrameState
from tests.test_propagation import _run, _run_checking_predict, clip, tiny_pipe  # noqa: F401  (clip is a fixture)


def test_load_takes_test_flip():
    import msn_core

    assert msn_core.load("stm", weights=None, test_flip=True).propagator.name == "stm+flip"
    assert msn_core.load("stm", weights=None).propagator.name == "stm"


def _flipped(pipe):
    return pipe.with_parts(cfg=dataclasses.replace(pipe.cfg, test_flip=True))


def test_flip_averages_the_plain_and_the_mirrored_reading(clip):  # noqa: F811
    plain = tiny_pipe("tpn+stm", selector="previous")
    flip = _flipped(plain)
    assert isinstance(flip.propagator, FlipPropagator) and flip.propagator.name == "tpn+stm+flip"
    assert isinstance(flip.propagator.inner, EnsemblePropagator)

    def check(self, target, guide, refs, out):
        a = self.inner.predict(target, guide, refs)
        b = self.inner.predict(target.extra["mirrored"], guide["mirrored"], [r["mirrored"] for r in refs])
        # the mirrored reading really is of the mirrored frame and label
        assert torch.equal(target.extra["mirrored"].image, target.image.flip(-1))
        assert torch.equal(guide["mirrored"]["label"], guide["label"].flip(-1))
        return torch.allclose(out, (a + b.flip(-1)) / 2) and not torch.allclose(a, b.flip(-1))

    results, seen = _run_checking_predict(flip, clip, FlipPropagator, check)
    assert len(seen) == len(results) - 1 and all(seen)
    alone = _run(plain, clip)
    assert any((a.labels != b.labels).any() for a, b in zip(alone[1:], results[1:]))


def _state(pipe, rgb: np.ndarray, index: int) -> FrameState:
    image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float() / 255
    fs = FrameState(index, image, rgb, pipe.backbone(image))
    pipe.propagator.prepare(fs)
    return fs


@torch.inference_mode()
def test_the_flip_reading_of_a_mirrored_video_is_the_mirror_of_its_reading(clip):  # noqa: F811
    """f(x) + flip(f(flip(x))) is symmetric: mirroring the input mirrors the output (STM-1 has no
    optical flow, and a 96 x 192 frame needs no padding, so this holds to float precision),
    which the network alone does not do."""
    frames, labels = clip
    pipe = _flipped(tiny_pipe("stm", selector="previous"))
    task_label = lambda lab: torch.from_numpy((lab == 1).astype(np.float32))[None, None]  # noqa: E731  (O, 1, H, W)

    def read(mirror: bool) -> tuple[torch.Tensor, torch.Tensor]:
        flip = (lambda a: np.ascontiguousarray(a[:, ::-1])) if mirror else (lambda a: a)
        states = [_state(pipe, flip(frames[i][:96, :192]), i) for i in (0, 3)]
        entry = MemoryEntry(0, pipe.propagator.memorize(states[0], task_label(flip(labels[0][:96, :192]))))
        both = pipe.propagator.predict(states[1], entry, [entry])
        alone = pipe.propagator.inner.predict(states[1], entry, [entry])
        return both, alone

    both, alone = read(False)
    both_m, alone_m = read(True)
    assert torch.allclose(both_m, both.flip(-1), atol=1e-5)
    assert not torch.allclose(alone_m, alone.flip(-1), atol=1e-3)


def test_cli_propagate_with_flip_records_it(tmp_path):
    example = example_path("dog")
    out = tmp_path / "out"
    rc = main(["propagate", str(example), "--mask", str(example / "00000.png"), "--out", str(out),
               "--weights", "none", "--max-frames", "3", "--no-video", "--max-side", "128", "--flip"])  # fmt: skip
    assert rc == 0
    record = json.loads((out / "propagation.json").read_text())
    assert record["test_flip"] is True and len(record["frames"]) == 3


@pytest.mark.usefixtures("one_thread", "offline_hub")
def test_evaluate_with_flip_records_it_and_changes_the_scores(davis_dir, tmp_path):
    args = ["evaluate", "--data-dir", str(davis_dir), "--sequences", "dog", "--propagators", "stm",
            "--selectors", "previous", "--max-side", "160", "--max-frames", "5", "--threads", "1"]  # fmt: skip
    res = {}
    for name, extra in (("plain", []), ("flip", ["--flip"])):
        assert main([*args, "--out-dir", str(tmp_path / name), *extra]) == 0
        res[name] = json.loads((tmp_path / name / "evaluation.json").read_text())
    assert res["flip"]["test_flip"] is True and res["plain"]["test_flip"] is False
    assert "Test-time flip" in (tmp_path / "flip" / "evaluation.md").read_text()
    jf = [res[n]["masks"]["stm"]["summary"]["previous"]["J&F"] for n in ("plain", "flip")]
    assert jf[0] != jf[1]


def test_a_flipping_pipeline_is_adapted_on_the_mirrored_frame_too(clip):  # noqa: F811
    from msn_core.adaptation import AdaptConfig, adapt, annotation_clips

    frames, labels = clip
    cfg = AdaptConfig(steps=2, batch=2, clips=2, clip_length=3)
    plain = annotation_clips(frames[0], labels[0], [1], None, cfg)
    both = annotation_clips(frames[0], labels[0], [1], None, cfg, mirrored=True)
    assert len(both) == 2 * len(plain) and all(c.name.endswith("-mirrored") for c in both[2:])
    np.testing.assert_array_equal(both[2].frames[0], both[0].frames[0][:, ::-1])  # same path, mirrored frame
    pipe = _flipped(tiny_pipe("stm", selector="previous"))
    adapted = adapt(pipe, frames[0], labels[0], cfg)
    assert adapted.cfg.test_flip and isinstance(adapted.propagator, FlipPropagator)
    assert len(_run(adapted, clip)) == len(frames)
