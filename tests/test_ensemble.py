"""The TPN + STM-1 ensemble ("tpn+stm"): one propagator that reads each guide with both networks
and averages their logits; tiny seeded networks on real DAVIS frames, and the bundled weights."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import msn_core
import msn_core.training.adapt as training_adapt
from msn_core.adaptation import AdaptConfig, adapt
from msn_core.cli import main
from msn_core.errors import InputError
from msn_core.io import example_path
from msn_core.propagators import EnsemblePropagator
from tests.test_propagation import _run, _run_checking_predict, clip, tiny_pipe  # noqa: F401  (clip is a fixture)


def test_the_ensemble_averages_its_members_logits(clip):  # noqa: F811
    ens = tiny_pipe("tpn+stm", selector="previous")
    assert isinstance(ens.propagator, EnsemblePropagator) and ens.propagator.name == "tpn+stm"
    assert set(ens.model) == {"tpn", "stm"}
    members = ens.propagator.members

    def check(self, target, guide, refs, out):
        parts = [m.predict(target, guide, refs) for m in self.members]
        return torch.allclose(out, (parts[0] + parts[1]) / 2)

    results, seen = _run_checking_predict(ens, clip, EnsemblePropagator, check)
    assert len(seen) == len(results) - 1 and all(seen)
    assert [m.name for m in members] == ["tpn", "stm"]
    # the same networks alone give other masks: the ensemble is neither of them
    tpn = ens.with_parts(cfg=dataclasses.replace(ens.cfg, propagator="tpn"), model=ens.model["tpn"])
    alone = _run(tpn, clip)
    assert any((a.labels != b.labels).any() for a, b in zip(alone[1:], results[1:]))


def test_the_ensemble_loads_both_bundled_networks_and_stm_msn(offline_hub):
    ens = msn_core.load("tpn+stm")
    tpn, stm = msn_core.load("tpn"), msn_core.load("stm")
    for name, single in (("tpn", tpn), ("stm", stm)):
        for k, v in single.model.state_dict().items():
            assert torch.equal(ens.model[name].state_dict()[k], v), (name, k)
    for k, v in stm.msn.state_dict().items():
        assert torch.equal(ens.msn.state_dict()[k], v)
    info = ens.weights_info
    assert info["model"]["name"] == "tpn-mask+stm" and [m["name"] for m in info["model"]["members"]] == ["tpn-mask", "stm"]
    assert info["msn"]["name"] == "msn-stm"
    with pytest.raises(InputError, match=r"no pipeline for propagator='tpn\+stm', task='color'"):
        msn_core.load("tpn+stm", "color")
    with pytest.raises(InputError, match="masks only"):  # untrained too
        msn_core.build(dataclasses.replace(ens.cfg, task="color"))
    with pytest.raises(InputError, match="must name 2 file"):
        msn_core.load("tpn+stm", weights={"model": "tpn_mask.safetensors"})


def test_adapting_the_ensemble_tunes_both_networks(clip, monkeypatch):  # noqa: F811
    frames, labels = clip
    ens = tiny_pipe("tpn+stm", selector="previous")
    before = {k: v.clone() for k, v in ens.model.state_dict().items()}
    passes = []  # the backbone runs over the synthetic clips once, for both networks
    monkeypatch.setattr(training_adapt, "compute_features", counted(training_adapt.compute_features, passes))
    steps = []
    adapted = adapt(ens, frames[0], labels[0], AdaptConfig(steps=3, batch=2), on_step=lambda s, t, _: steps.append((s, t)))
    assert steps == [(s, 6) for s in range(1, 7)]  # one count over both networks' steps
    assert len(passes) == AdaptConfig().clips
    info = adapted.weights_info["adapted"]
    assert set(info["members"]) == {"tpn", "stm"}
    for name in ("tpn", "stm"):
        changed = any(not torch.equal(v, before[f"{name}.{k}"]) for k, v in adapted.model[name].state_dict().items())
        assert changed, name
    assert all(torch.equal(v, before[k]) for k, v in ens.model.state_dict().items())  # the original is untouched
    assert len(_run(adapted, clip)) == len(frames)


def counted(fn, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    return wrapper


def test_cli_propagates_with_the_ensemble(tmp_path):
    example = example_path("dog")
    out = tmp_path / "out"
    rc = main(["propagate", str(example), "--mask", str(example / "00000.png"), "--out", str(out),
               "--propagator", "tpn+stm", "--weights", "none", "--max-frames", "3", "--no-video",
               "--max-side", "128"])  # fmt: skip
    assert rc == 0
    record = json.loads((out / "propagation.json").read_text())
    assert record["propagator"] == "tpn+stm" and len(record["frames"]) == 3
    assert np.asarray(msn_core.read_mask(out / "00002.png")).max() >= 1
