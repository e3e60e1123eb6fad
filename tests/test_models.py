"""Shapes, determinism, gradients and the cached MSN path of the stateless networks; the real
EfficientNet-Lite0 weights on a real DAVIS frame (the bundled clip's without DAVIS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from davis_data import frame_path, mask_path
from PIL import Image

from msn_core.config import BackboneConfig, MSNConfig, STMConfig, TPNConfig
from msn_core.errors import InputError
from msn_core.flow import compute_flow, flow_to_tensor
from msn_core.io import read_mask
from msn_core.models import (
    MSN,
    STM,
    TPN,
    build_backbone,
    imagenet_normalize,
    pad_to_multiple,
    soft_aggregate,
    unpad,
    warp,
)
from msn_core.models.backbone import efficientnet_lite_classifier, efficientnet_lite_weights_path

SMALL_MSN = MSNConfig(embed_dim=16, hidden=16)
SMALL_TPN = TPNConfig(width=8)
SMALL_STM = STMConfig(key_dim=8, value_dim=16, width=8)


def _image(seq: str, idx: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(1, 3, H, W) float RGB in [0, 1] of a DAVIS frame, optionally resized to size=(H, W)."""
    path: Path = frame_path(seq, idx)
    if not path.exists():
        pytest.skip(f"DAVIS frame {path} not available")
    img = Image.open(path).convert("RGB")
    if size is not None:
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0


def _mask(seq: str, idx: int, size: tuple[int, int]) -> torch.Tensor:
    path = mask_path(seq, idx)
    if not path.exists():
        pytest.skip(f"DAVIS mask {path} not available")
    img = Image.fromarray((read_mask(path) > 0).astype(np.uint8)).resize((size[1], size[0]), Image.NEAREST)
    return torch.from_numpy(np.array(img).astype(np.float32))[None, None]


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum().clamp(min=1))


@pytest.fixture(scope="module")
def tiny():
    return build_backbone(BackboneConfig(name="tiny"))


@pytest.fixture(scope="module")
def feats(tiny):
    torch.manual_seed(0)
    with torch.no_grad():
        return tiny(torch.rand(1, 3, 64, 96))


# ---------------------------------------------------------------------------- common


def test_pad_unpad_roundtrip() -> None:
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    y, pad = pad_to_multiple(x, 4)
    assert y.shape == (2, 3, 8, 8) and pad == (0, 1, 0, 3)
    assert torch.equal(y[..., 4, :7], x[..., 4, :]) and torch.equal(y[..., 7, 7], x[..., 4, 6])  # replicate
    assert torch.equal(unpad(y, pad), x)
    same, pad0 = pad_to_multiple(torch.zeros(1, 1, 32, 64))
    assert pad0 == (0, 0, 0, 0) and same.shape == (1, 1, 32, 64)
    with pytest.raises(InputError):
        pad_to_multiple(torch.zeros(3, 5, 7))


def test_warp_shift_and_broadcast() -> None:
    x = torch.randn(3, 2, 6, 8)
    torch.testing.assert_close(warp(x, torch.zeros(1, 2, 6, 8)), x)
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # out(y, x) = x(y - 1, x + 2)
    out = warp(x, flow)
    torch.testing.assert_close(out[:, :, 1:, :6], x[:, :, :5, 2:])
    torch.testing.assert_close(out[:, :, 0, :6], x[:, :, 0, 2:])  # border padding
    assert warp(x[:1], torch.zeros(3, 2, 6, 8)).shape == (3, 2, 6, 8)


def test_soft_aggregate_sums_to_one_and_keeps_order() -> None:
    p = torch.zeros(3, 1, 4, 5)
    p[0, :, :, :2] = 0.9
    p[1, :, :, 2:4] = 0.8
    p[2, :, :, 4] = 0.95
    agg = soft_aggregate(p)
    assert agg.shape == (4, 4, 5)
    torch.testing.assert_close(agg.sum(0), torch.ones(4, 5))
    label = agg.argmax(0)
    assert (label[:, :2] == 1).all() and (label[:, 2:4] == 2).all() and (label[:, 4] == 3).all()
    # one object: softmax of [logit(1 - p), logit(p)] = p^2 / (p^2 + (1 - p)^2), as in STM
    single = soft_aggregate(torch.full((1, 1, 2, 2), 0.7))
    torch.testing.assert_close(single[1], torch.full((2, 2), 0.49 / (0.49 + 0.09)))


def test_imagenet_normalize() -> None:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    torch.testing.assert_close(imagenet_normalize(mean), torch.zeros(1, 3, 2, 2))


# -------------------------------------------------------------------------- backbones


@pytest.mark.parametrize("name", ["tiny", "vgg16", "efficientnet_lite0"])
def test_backbone_shapes(name: str) -> None:
    bb = build_backbone(BackboneConfig(name=name))
    with torch.no_grad():
        out = bb(torch.rand(2, 3, 64, 96))
    assert sorted(out) == [4, 8, 16, 32]
    for s, f in out.items():
        assert f.shape == (2, bb.channels[s], 64 // s, 96 // s) and f.dtype == torch.float32
    expected = {
        "tiny": [8, 16, 32, 32],
        "vgg16": [128, 256, 512, 512],
        "efficientnet_lite0": [24, 40, 112, 320],
    }
    assert [bb.channels[s] for s in (4, 8, 16, 32)] == expected[name]


def test_backbone_errors() -> None:
    with pytest.raises(InputError, match="not known"):
        build_backbone(BackboneConfig(name="resnet"))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="multiples of 32"):
        build_backbone(BackboneConfig(name="tiny"))(torch.rand(1, 3, 40, 64))


def test_frozen_backbone_stays_eval_without_grads() -> None:
    bb = build_backbone(BackboneConfig(name="efficientnet_lite0"))
    bb.train()
    assert not bb.training and not any(m.training for m in bb.modules())
    assert not any(p.requires_grad for p in bb.parameters())
    x = torch.rand(2, 3, 64, 64)
    before = bb(x)
    bb(torch.rand(2, 3, 64, 64))  # nothing (no BatchNorm statistic) changes between calls
    after = bb(x)
    assert all(torch.equal(before[s], after[s]) for s in before)
    live = build_backbone(BackboneConfig(name="tiny", frozen=False))
    live.train()
    assert live.training and all(p.requires_grad for p in live.parameters())


def test_tiny_backbone_is_seeded() -> None:
    torch.manual_seed(123)
    a = build_backbone(BackboneConfig(name="tiny"))
    torch.manual_seed(456)
    b = build_backbone(BackboneConfig(name="tiny"))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_efficientnet_lite_real_weights_classify_davis(variant) -> None:
    """The packaged ImageNet weights load strictly and recognise real DAVIS content."""
    net = efficientnet_lite_classifier(variant, pretrained=True).eval()  # strict load inside
    state = torch.load(efficientnet_lite_weights_path(variant), map_location="cpu", weights_only=True)
    assert set(state) == set(net.state_dict())
    from torchvision.models import ResNet50_Weights

    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    with torch.no_grad():
        camel = net((_image("camel", 0, (224, 224)) * 255 - 127) / 128).softmax(1)[0]
        dog = net((_image("dog", 10, (224, 224)) * 255 - 127) / 128).softmax(1)[0]
    assert categories[int(camel.argmax())] == "Arabian camel" and camel.max() > 0.5
    assert 151 <= int(dog.argmax()) <= 268  # one of ImageNet's dog breeds
    # the backbone carries those weights (not a fresh init)
    # the frozen backbone (BatchNorm folded into its convs for speed) gives the features of the
    # unfused network that carries those weights
    bb = build_backbone(BackboneConfig(name=f"efficientnet_{variant}"))
    unfused = build_backbone(BackboneConfig(name=f"efficientnet_{variant}", frozen=False)).eval()
    assert bb.channels == {"lite0": {4: 24, 8: 40, 16: 112, 32: 320}, "lite2": {4: 24, 8: 48, 16: 120, 32: 352}}[variant]
    torch.testing.assert_close(unfused.stem[0].weight, state["_conv_stem.weight"])
    x = _image("dog", 10, (224, 384))
    with torch.no_grad():
        a, b = unfused(x), bb(x)
    for s in (4, 8, 16, 32):
        torch.testing.assert_close(b[s], a[s], atol=1e-3, rtol=1e-4)


# -------------------------------------------------------------------------------- MSN


def test_msn_cached_path_equals_forward(tiny, feats) -> None:
    torch.manual_seed(0)
    msn = MSN(SMALL_MSN, tiny.channels[32]).eval()
    c, h, w = feats[32].shape[1:]
    f_p = torch.randn(5, c, h, w).relu()
    f_a, f_t = torch.randn(1, c, h, w).relu(), feats[32]
    with torch.no_grad():
        full = msn(f_p, f_a, f_t)
        e_p, e_a, e_t = msn.embed(f_p), msn.embed(f_a), msn.embed(f_t)
        mem = torch.cat(
            [msn.memory_terms(e_p[i : i + 1], e_a) for i in range(5)]
        )  # cached one frame at a time
        tgt = msn.target_terms(e_t, e_a)
        cached = msn.pair_scores(mem, e_p, tgt, e_t)
        both = msn.frame_terms(e_p[1:2], e_a)  # the loop's one-correlation path
    assert full.shape == (5,) and full.dtype == torch.float32
    assert mem.shape == (5, msn.memory_channels, h, w) and tgt.shape == (1, msn.memory_channels, h, w)
    torch.testing.assert_close(cached, full, rtol=0, atol=1e-5)
    torch.testing.assert_close(both[1], mem[1:2], rtol=0, atol=0)
    torch.testing.assert_close(both[0], msn.target_terms(e_p[1:2], e_a), rtol=0, atol=0)
    assert full.std() > 0  # candidates are told apart
    # batch of 1 gives the same score as inside the batch of 5
    torch.testing.assert_close(msn(f_p[2:3], f_a, f_t), full[2:3], rtol=0, atol=1e-5)


def test_msn_annotated_head_reads_the_flag_and_starts_as_the_plain_msn(tiny, feats) -> None:
    """With ``annotated_head`` a flagged candidate's logit gains a second FC of its vector: zero at
    first (so the head starts as the plain MSN), then only flagged rows move; the cached path and
    ``forward`` agree with flags too."""
    import dataclasses

    torch.manual_seed(0)
    plain = MSN(SMALL_MSN, tiny.channels[32]).eval()
    msn = MSN(dataclasses.replace(SMALL_MSN, annotated_head=True), tiny.channels[32]).eval()
    msn.load_state_dict({**plain.state_dict(), **{k: v for k, v in msn.state_dict().items() if "annotated" in k}})
    c, h, w = feats[32].shape[1:]
    f_p, f_a, f_t = torch.randn(4, c, h, w).relu(), torch.randn(1, c, h, w).relu(), feats[32]
    flags = torch.tensor([1.0, 0.0, 1.0, 0.0])
    with torch.no_grad():
        torch.testing.assert_close(msn(f_p, f_a, f_t, flags), plain(f_p, f_a, f_t), rtol=0, atol=0)
        msn.fc_annotated.weight.normal_()
        msn.fc_annotated.bias.fill_(2.0)
        flagged, unflagged = msn(f_p, f_a, f_t, flags), msn(f_p, f_a, f_t)
        e_p, e_a, e_t = msn.embed(f_p), msn.embed(f_a), msn.embed(f_t)
        cached = msn.pair_scores(msn.memory_terms(e_p, e_a), e_p, msn.target_terms(e_t, e_a), e_t, flags)
    torch.testing.assert_close(unflagged, plain(f_p, f_a, f_t), rtol=0, atol=1e-6)
    moved = (flagged - unflagged).abs() > 1e-4
    assert moved.tolist() == [True, False, True, False]
    torch.testing.assert_close(cached, flagged, rtol=0, atol=1e-5)
    with pytest.raises(InputError, match="annotated flags"):
        msn(f_p, f_a, f_t, torch.ones(3))
    assert plain.fc_annotated is None and "fc_annotated.weight" not in plain.state_dict()


def test_label_aware_msn_reads_each_candidate_under_its_own_label(tiny, feats) -> None:
    """A label-aware MSN adds the candidate read under its label (any size, area-resized) to its
    cached memory terms: the cached path equals ``forward``, a candidate's score moves only with its
    own label, and a missing label or a plain MSN asked for label terms is refused."""
    import dataclasses

    torch.manual_seed(0)
    msn = MSN(dataclasses.replace(SMALL_MSN, label_aware=True), tiny.channels[32]).eval()
    c, h, w = feats[32].shape[1:]
    f_p, f_a, f_t = torch.randn(4, c, h, w).relu(), torch.randn(1, c, h, w).relu(), feats[32]
    m_p = torch.rand(4, 1, 4 * h, 4 * w)
    with torch.no_grad():
        full = msn(f_p, f_a, f_t, None, m_p)
        e_p, e_a, e_t = msn.embed(f_p), msn.embed(f_a), msn.embed(f_t)
        mem = msn.memory_terms(e_p, e_a) + msn.label_terms(e_p, e_a, m_p)
        cached = msn.pair_scores(mem, e_p, msn.target_terms(e_t, e_a), e_t)
        other = m_p.clone()
        other[2] = 1.0 - other[2]
        moved = (msn(f_p, f_a, f_t, None, other) - full).abs() > 1e-5
    torch.testing.assert_close(cached, full, rtol=0, atol=1e-5)
    assert moved.tolist() == [False, False, True, False]
    with pytest.raises(InputError, match="needs every candidate's label"):
        msn(f_p, f_a, f_t)
    with pytest.raises(InputError, match="not label-aware"):
        MSN(SMALL_MSN, tiny.channels[32]).label_terms(e_p, e_a, m_p)
    with pytest.raises(InputError, match="3 labels for 4"):
        msn.label_terms(e_p, e_a, m_p[:3])


def test_msn_default_config_shapes() -> None:
    msn = MSN(MSNConfig(), 320)
    with torch.no_grad():
        out = msn(torch.rand(3, 320, 2, 3), torch.rand(1, 320, 2, 3), torch.rand(1, 320, 2, 3))
    assert out.shape == (3,)
    assert sum(p.numel() for p in msn.parameters()) < 2_000_000


# -------------------------------------------------------------------------------- TPN


@pytest.mark.parametrize("task,cy", [("mask", 1), ("color", 2)])
@pytest.mark.parametrize("objects", [1, 3])
def test_tpn_shapes(tiny, feats, task: str, cy: int, objects: int) -> None:
    torch.manual_seed(0)
    tpn = TPN(TPNConfig(task=task, width=8), tiny.channels)
    assert tpn.out_channels == cy
    y = torch.rand(objects, cy, 64, 96) * (2 if task == "color" else 1) - (1 if task == "color" else 0)
    out = tpn(feats, y, torch.randn(1, 2, 64, 96))
    assert out.shape == (objects, cy, 64, 96) and out.dtype == torch.float32
    if task == "color":
        assert out.abs().max() <= 1.0


def test_tpn_errors(tiny, feats) -> None:
    tpn = TPN(SMALL_TPN, tiny.channels)
    with pytest.raises(InputError, match="1 channels"):
        tpn(feats, torch.rand(1, 2, 64, 96), torch.zeros(1, 2, 64, 96))
    with pytest.raises(InputError, match="processing size"):
        tpn(feats, torch.rand(1, 1, 32, 48), torch.zeros(1, 2, 32, 48))
    with pytest.raises(InputError, match="not known"):
        TPN(TPNConfig(task="depth"), tiny.channels)  # type: ignore[arg-type]


def test_fresh_tpn_outputs_the_warped_guide_mask(tiny) -> None:
    """On real frames with real flow, a fresh TPN's mask is the flow-warped guide mask."""
    size = (224, 384)
    x_t, x_g = _image("dog", 12, size), _image("dog", 10, size)
    y_g, l_t = _mask("dog", 10, size), _mask("dog", 12, size)
    to_u8 = lambda x: (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    flow = flow_to_tensor(compute_flow(to_u8(x_t), to_u8(x_g)))
    torch.manual_seed(0)
    tpn = TPN(TPNConfig(), tiny.channels)
    with torch.no_grad():
        out = tpn(tiny(x_t), y_g, flow)
    pred = out.sigmoid() > 0.5
    warped = warp(y_g, flow) > 0.5
    assert _iou(pred, warped) > 0.9
    assert _iou(pred, l_t > 0.5) > _iou(y_g > 0.5, l_t > 0.5)  # the motion moved it towards the target

    tpn_c = TPN(TPNConfig(task="color"), tiny.channels)
    ab = torch.rand(1, 2, *size) * 1.6 - 0.8
    with torch.no_grad():
        torch.testing.assert_close(tpn_c(tiny(x_t), ab, flow), warp(ab, flow), rtol=0, atol=1e-4)


# -------------------------------------------------------------------------------- STM


@pytest.mark.parametrize("objects", [1, 3])
def test_stm_shapes(tiny, feats, objects: int) -> None:
    torch.manual_seed(0)
    stm = STM(SMALL_STM, tiny.channels)
    masks = torch.rand(objects, 1, 64, 96)
    key, qval = stm.encode_key(feats)
    assert key.shape == (1, 8, 4, 6) and qval.shape == (1, 16, 4, 6)
    val = stm.encode_value(feats, masks)
    assert val.shape == (objects, 16, 4, 6)
    m_keys = torch.cat([key, key])  # T = 2: first frame + guide
    m_values = torch.stack([val, val], 1)  # (O, 2, Cv, h, w)
    readout = stm.read(key, m_keys, m_values)
    assert readout.shape == (objects, 16, 4, 6)
    logits = stm.decode(readout, qval, feats)
    assert logits.shape == (objects, 1, 64, 96) and logits.dtype == torch.float32
    full = stm(feats, [feats, feats], [masks, masks])
    torch.testing.assert_close(full, logits)


def test_stm_read_is_a_softmax_average() -> None:
    stm = STM(SMALL_STM, {4: 8, 8: 16, 16: 32, 32: 32})
    q = torch.randn(1, 8, 3, 4)
    keys = torch.randn(2, 8, 3, 4)
    const = torch.full((2, 2, 16, 3, 4), 0.5)
    torch.testing.assert_close(stm.read(q, keys, const), torch.full((2, 16, 3, 4), 0.5))
    # a memory key equal to a scaled query position dominates the read
    values = torch.randn(1, 2, 16, 3, 4)
    keys = torch.zeros(2, 8, 3, 4)
    keys[1, :, 2, 3] = q[0, :, 1, 1] * 50
    out = stm.read(q, keys, values)
    torch.testing.assert_close(out[0, :, 1, 1], values[0, 1, :, 2, 3], rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- determinism, gradients


def _run_all(tiny, feats) -> list[torch.Tensor]:
    torch.manual_seed(7)
    msn, tpn, stm = MSN(SMALL_MSN, 32), TPN(SMALL_TPN, tiny.channels), STM(SMALL_STM, tiny.channels)
    g = torch.Generator().manual_seed(1)
    y = torch.rand(2, 1, 64, 96, generator=g)
    flow = torch.randn(1, 2, 64, 96, generator=g)
    with torch.no_grad():
        return [
            msn(torch.rand(3, 32, 2, 3, generator=g), feats[32], feats[32]),
            tpn(feats, y, flow),
            stm(feats, [feats], [y]),
        ]


def test_deterministic_with_seed(tiny, feats) -> None:
    for a, b in zip(_run_all(tiny, feats), _run_all(tiny, feats)):
        assert torch.equal(a, b)


def test_gradients_reach_heads_not_frozen_backbone(tiny) -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 96)
    f = tiny(x)
    msn, tpn, stm = MSN(SMALL_MSN, 32), TPN(SMALL_TPN, tiny.channels), STM(SMALL_STM, tiny.channels)
    y = torch.rand(2, 1, 64, 96)
    flow = torch.randn(1, 2, 64, 96)
    opt = torch.optim.SGD([*msn.parameters(), *tpn.parameters(), *stm.parameters()], lr=0.1)
    for _ in range(2):  # TPN's zero-initialised head passes gradients back from the second step on
        opt.zero_grad()
        loss = (
            msn(torch.rand(3, 32, 2, 3), f[32], f[32]).sum()
            + tpn(f, y, flow).mean()
            + stm(f, [f], [y]).mean()
        )
        loss.backward()
        opt.step()
    for name, module in (("msn", msn), ("tpn", tpn), ("stm", stm)):
        for pname, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname} got no gradient"
    assert all(p.grad is None for p in tiny.parameters())


def test_msn_trains_after_running_in_inference_mode(tiny, feats) -> None:
    """Scoring in inference mode (the loop) and then training on maps of the same size (a notebook
    that propagates, then trains) share the correlation's cached index: it must stay trainable."""
    torch.manual_seed(0)
    msn = MSN(SMALL_MSN, tiny.channels[32])
    f = torch.rand(2, feats[32].shape[1], 3, 5)  # a map size no other test uses
    with torch.inference_mode():
        msn(f, f[:1], f[:1])
    msn(f, f[:1], f[:1]).sum().backward()
    assert msn.fc.weight.grad is not None and msn.fc.weight.grad.abs().sum() > 0
