"""FlowCorr: the vectorised cost volume against the loop reference, and a known shift."""

from __future__ import annotations

import pytest
import torch

from msn_core.config import CorrConfig
from msn_core.errors import InputError
from msn_core.models.correlation import (
    FlowCorr,
    _corr_band,
    _corr_dense,
    displacements,
    flow_corr,
    flow_corr_naive,
)


@pytest.mark.parametrize(
    "md,stride,shape",
    [
        (4, 1, (2, 5, 7, 9)),
        (2, 1, (1, 3, 5, 5)),
        (4, 2, (2, 4, 9, 11)),
        (5, 2, (1, 3, 6, 7)),
        (3, 3, (1, 2, 5, 8)),
        (0, 1, (2, 3, 4, 4)),
        (4, 1, (1, 3, 1, 3)),
        (6, 1, (1, 2, 3, 5)),
    ],
)
def test_matches_naive(md: int, stride: int, shape: tuple[int, int, int, int]) -> None:
    g = torch.Generator().manual_seed(md * 10 + stride)
    f1, f2 = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    out = flow_corr(f1, f2, md, stride)
    r = md // stride
    assert out.shape == (shape[0], (2 * r + 1) ** 2, *shape[2:])
    want = flow_corr_naive(f1, f2, md, stride)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    for path in (_corr_dense, _corr_band):  # flow_corr picks one by size; both must agree
        torch.testing.assert_close(path(f1, f2, shape[0], r, stride), want, rtol=1e-5, atol=1e-6)


def test_large_maps_take_the_banded_path_and_agree() -> None:
    g = torch.Generator().manual_seed(3)
    f1, f2 = torch.randn(2, 3, 16, 30, generator=g), torch.randn(1, 3, 16, 30, generator=g)
    torch.testing.assert_close(flow_corr(f1, f2), _corr_dense(f1, f2, 2, 4, 1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(flow_corr(f1, f2), _corr_band(f1, f2, 2, 4, 1), rtol=1e-5, atol=1e-6)


def test_batch_broadcast_both_ways() -> None:
    g = torch.Generator().manual_seed(1)
    many, one = torch.randn(3, 4, 6, 7, generator=g), torch.randn(1, 4, 6, 7, generator=g)
    for f1, f2 in ((many, one), (one, many)):
        out = flow_corr(f1, f2)
        assert out.shape == (3, 81, 6, 7)
        torch.testing.assert_close(out, flow_corr_naive(f1, f2), rtol=1e-5, atol=1e-6)
    # each broadcast row equals the unbatched call
    torch.testing.assert_close(flow_corr(many, one)[1:2], flow_corr(many[1:2], one))


def test_channel_order_and_values() -> None:
    """out[k] holds mean_c f1(y, x) * f2(y+dy, x+dx) for the k-th (dy, dx), zero outside."""
    g = torch.Generator().manual_seed(2)
    f1, f2 = torch.randn(1, 3, 6, 6, generator=g), torch.randn(1, 3, 6, 6, generator=g)
    out = flow_corr(f1, f2, 2, 1)
    disp = displacements(2, 1)
    assert disp[0] == (-2, -2) and disp[1] == (-2, -1) and disp[12] == (0, 0)
    k = disp.index((1, -2))
    assert torch.isclose(out[0, k, 3, 4], (f1[0, :, 3, 4] * f2[0, :, 4, 2]).mean())
    assert out[0, k, 5, 4] == 0 and out[0, k, 3, 1] == 0  # y+1 and x-2 fall outside
    torch.testing.assert_close(out[:, 12], (f1 * f2).mean(1))


@pytest.mark.parametrize("dy,dx", [(2, -3), (-4, 1), (0, 0)])
def test_known_shift_gives_argmax(dy: int, dx: int) -> None:
    """f2(y + dy, x + dx) = f1(y, x): interior pixels peak at channel (dy, dx)."""
    g = torch.Generator().manual_seed(3)
    f1 = torch.randn(1, 32, 16, 18, generator=g)
    f1 = f1 / f1.norm(dim=1, keepdim=True)  # unit vectors: self-correlation is the maximum
    f2 = torch.roll(f1, shifts=(dy, dx), dims=(2, 3))
    out = flow_corr(f1, f2, 4, 1)
    best = out.argmax(dim=1)[0, 4:-4, 4:-4]
    assert (best == displacements(4, 1).index((dy, dx))).all()


def test_module_and_errors() -> None:
    corr = FlowCorr(CorrConfig(max_displacement=4, stride=2))
    assert corr.out_channels == 25
    assert corr(torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)).shape == (2, 25, 5, 5)
    with pytest.raises(InputError, match="same channels"):
        flow_corr(torch.randn(1, 3, 5, 5), torch.randn(1, 4, 5, 5))
    with pytest.raises(InputError, match="broadcast"):
        flow_corr(torch.randn(2, 3, 5, 5), torch.randn(3, 3, 5, 5))
    with pytest.raises(InputError, match="stride"):
        flow_corr(torch.randn(1, 3, 5, 5), torch.randn(1, 3, 5, 5), 4, 0)


def test_gradients_match_naive() -> None:
    g = torch.Generator().manual_seed(4)
    a = torch.randn(2, 3, 5, 6, generator=g, requires_grad=True)
    b = torch.randn(1, 3, 5, 6, generator=g, requires_grad=True)
    w = torch.randn(2, 25, 5, 6, generator=g)
    ga = torch.autograd.grad((flow_corr(a, b, 2) * w).sum(), (a, b))
    gn = torch.autograd.grad((flow_corr_naive(a, b, 2) * w).sum(), (a, b))
    for x, y in zip(ga, gn):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
