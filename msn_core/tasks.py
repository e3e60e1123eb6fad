"""What is propagated and how results are merged: the only difference between
segmentation and colourization in the propagation loop.

A task turns the first-frame annotation into a label tensor at the processing
resolution, turns a propagator's raw output into a label, merges the labels of
several guides (top-K ensembles) and maps a label back to the original frame.

Label tensors (processing resolution H, W, padded to a multiple of 32):
- masks: (O, 1, H, W) per-object probabilities (soft-aggregated, so with the
  background they sum to 1);
- colour: (1, 2, H, W) Lab ab / AB_SCALE.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from msn_core.colorspace import AB_SCALE, combine_l_ab, rgb_to_lab, to_gray_rgb
from msn_core.errors import InputError
from msn_core.models.common import soft_aggregate

VOID = 255


def weighted_average(labels: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Top-K ensembles: the guides' labels averaged (paper Table 5)."""
    out = labels[0] * weights[0]
    for lab, w in zip(labels[1:], weights[1:]):
        out = out + lab * w
    return out


class MaskTask:
    """Video object segmentation with one or several objects."""

    name = "mask"

    def __init__(self, object_ids: list[int]):
        if not object_ids:
            raise InputError("the first-frame mask has no object: mark at least one object (non-zero pixels)")
        self.object_ids = list(object_ids)

    @classmethod
    def from_labels(cls, labels: np.ndarray, max_objects: int = 20) -> MaskTask:
        ids = [int(i) for i in np.unique(labels) if i not in (0, VOID)]
        if len(ids) > max_objects:
            raise InputError(f"the first-frame mask has {len(ids)} objects; at most {max_objects} are supported")
        return cls(ids)

    @property
    def n_objects(self) -> int:
        return len(self.object_ids)

    def frame_for_model(self, rgb: np.ndarray) -> np.ndarray:
        return rgb

    def reference(self, labels: np.ndarray, device, dtype) -> torch.Tensor:
        """(H, W) object ids at the processing size -> (O, 1, H, W) one-hot."""
        lab = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
        return torch.stack([(lab == i) for i in self.object_ids])[:, None].to(dtype)

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """(O, 1, H, W) logits -> (O, 1, H, W) soft-aggregated probabilities."""
        return soft_aggregate(torch.sigmoid(raw))[1:, None]

    def merge(self, labels: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
        return weighted_average(labels, weights)

    def union(self, label: torch.Tensor) -> torch.Tensor:
        """(1, 1, H, W) probability that a pixel belongs to any object."""
        return label.sum(0, keepdim=True).clamp(0, 1)

    def to_output(self, label: torch.Tensor, crop: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        """Label at the padded processing size -> uint8 (H, W) object ids at ``size``."""
        h, w = crop
        fg = label[:, 0, :h, :w].float()  # (O, h, w)
        bg = (1 - fg.sum(0, keepdim=True)).clamp_min(0)
        probs = torch.cat([bg, fg])[None]  # (1, O+1, h, w)
        if (h, w) != tuple(size):
            probs = F.interpolate(probs, size=tuple(size), mode="bilinear", align_corners=False)
        arg = probs[0].argmax(0).cpu().numpy()
        lut = np.array([0, *self.object_ids], dtype=np.uint8)
        return lut[arg]

    def quality(self, label: torch.Tensor, truth: torch.Tensor) -> float:
        """Mean IoU over objects of the argmax of ``label`` against one-hot ``truth``."""
        fg = label[:, 0]
        bg = (1 - fg.sum(0, keepdim=True)).clamp_min(0)
        arg = torch.cat([bg, fg]).argmax(0)
        ious = []
        for o in range(fg.shape[0]):
            p, g = arg == o + 1, truth[o, 0] > 0.5
            union = (p | g).sum().item()
            ious.append(1.0 if union == 0 else (p & g).sum().item() / union)
        return float(np.mean(ious))


class ColorTask:
    """Colour propagation: the first frame's colours carried to greyscale frames."""

    name = "color"
    object_ids: list[int] = []
    n_objects = 1

    def frame_for_model(self, rgb: np.ndarray) -> np.ndarray:
        """The model only ever sees lightness: colour frames are turned grey first."""
        return to_gray_rgb(rgb)

    def reference(self, rgb: np.ndarray, device, dtype) -> torch.Tensor:
        """(H, W, 3) colour first frame at the processing size -> (1, 2, H, W) ab / AB_SCALE."""
        ab = rgb_to_lab(rgb)[..., 1:] / AB_SCALE
        return torch.from_numpy(np.ascontiguousarray(ab.transpose(2, 0, 1)))[None].to(device, dtype)

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.clamp(-1, 1)

    def merge(self, labels: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
        return weighted_average(labels, weights)

    def union(self, label: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(label[:1, :1])

    def to_output(
        self, label: torch.Tensor, crop: tuple[int, int], size: tuple[int, int], frame: np.ndarray
    ) -> np.ndarray:
        """ab at the processing size + the target's own lightness at full size -> uint8 RGB."""
        h, w = crop
        ab = label[:, :, :h, :w].float()
        if (h, w) != tuple(size):
            ab = F.interpolate(ab, size=tuple(size), mode="bilinear", align_corners=False)
        ab_np = ab[0].permute(1, 2, 0).cpu().numpy() * AB_SCALE
        return combine_l_ab(rgb_to_lab(frame)[..., 0], ab_np)

    def quality(self, label: torch.Tensor, truth: torch.Tensor) -> float:
        """Negative mean absolute ab error (higher is better)."""
        return -float((label - truth).abs().mean().item()) * AB_SCALE
