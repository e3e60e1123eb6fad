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

import cv2
import numpy as np
import torch

from msn_core.colorspace import AB_SCALE, combine_l_ab, rgb_to_lab, to_gray_rgb
from msn_core.errors import InputError
from msn_core.io import VOID_LABEL as VOID
from msn_core.limits import resolve
from msn_core.metrics import db_eval_iou, psnr_of_mse
from msn_core.models.common import soft_aggregate

COLOUR_PSNR_CAP = 99.0  # dB: a perfect colour prediction scores this, not inf


def check_labels(labels, what: str = "the first-frame mask") -> np.ndarray:
    """An (H, W) array of object ids (0 background, 1..254 objects, 255 void) as uint8.

    Integer and bool arrays are accepted, and float arrays holding whole numbers;
    anything else (another shape, fractions, NaN, values outside 0..255) raises."""
    try:
        arr = np.asarray(labels)
    except Exception as exc:  # ragged nested lists and the like
        raise InputError(f"{what} is not an array of object ids ({exc})") from None
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(
            f"{what} must be a non-empty (H, W) array of object ids, got shape {arr.shape}; "
            "read colour or palette masks with msn_core.read_mask"
        )
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{what} must hold integer object ids 0..255, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(f"{what} has NaN or infinite values; give integer object ids 0..255")
        if (arr != np.round(arr)).any():
            raise InputError(
                f"{what} has fractional values (e.g. {arr[arr != np.round(arr)].flat[0]:g}); give integer "
                "object ids 0..255 (threshold a soft mask first)"
            )
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 255:
        raise InputError(
            f"{what} has values {lo:g}..{hi:g}; object ids must be in 0..255 (0 background, 255 void)"
        )
    return arr.astype(np.uint8, copy=False)


def _upsample(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (h, w) or (h, w, C<=4) float32 to size=(H, W) (half-pixel centres,
    as torch's align_corners=False)."""
    return cv2.resize(np.ascontiguousarray(a, dtype=np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


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
        bad = [i for i in object_ids if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 < i < VOID]
        if bad:
            raise InputError(f"object ids must be integers in 1..254, got {bad[:5]}")
        self.object_ids = [int(i) for i in object_ids]

    @classmethod
    def from_labels(cls, labels: np.ndarray, max_objects: int | None = None) -> MaskTask:
        """The task for a first-frame id map (see :func:`check_labels`); at most
        ``max_objects`` objects (default: ``Limits.from_env().max_objects``, 20)."""
        ids = [int(i) for i in np.unique(check_labels(labels)) if i not in (0, VOID)]
        if max_objects is None:
            resolve(None).check_objects(len(ids))
        elif len(ids) > max_objects:
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
        """Label at the padded processing size -> uint8 (H, W) object ids at ``size``: the
        class probabilities are upsampled bilinearly, then the most likely class wins."""
        h, w = crop
        fg = label[:, 0, :h, :w].float().cpu().numpy()  # (O, h, w)
        bg = np.clip(1.0 - fg.sum(0), 0.0, None)
        if (h, w) != tuple(size):
            fg = np.stack([_upsample(c, size) for c in fg])
            bg = _upsample(bg, size)
        out = np.zeros(fg.shape[1:], np.uint8)
        best = bg
        for oid, prob in zip(self.object_ids, fg):  # a running argmax: ties go to the lower class
            win = prob > best
            out[win] = oid
            best = np.maximum(best, prob)
        return out

    def quality(self, label: torch.Tensor, truth: torch.Tensor) -> float:
        """Mean IoU (DAVIS J) over objects of the argmax of ``label`` against one-hot ``truth``."""
        fg = label[:, 0]
        bg = (1 - fg.sum(0, keepdim=True)).clamp_min(0)
        arg = torch.cat([bg, fg]).argmax(0)  # (H, W): 0 background, o + 1 for the o-th object
        ids = torch.arange(1, fg.shape[0] + 1, device=arg.device)[:, None, None]
        pred = (arg[None] == ids).cpu().numpy()  # (O, H, W)
        return float(np.mean(db_eval_iou((truth[:, 0] > 0.5).cpu().numpy(), pred)))


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
        ab_np = label[0, :, :h, :w].float().cpu().numpy().transpose(1, 2, 0) * AB_SCALE  # (h, w, 2)
        if (h, w) != tuple(size):
            ab_np = _upsample(ab_np, size)
        return combine_l_ab(rgb_to_lab(frame)[..., 0], ab_np)

    def quality(self, label: torch.Tensor, truth: torch.Tensor) -> float:
        """PSNR (dB) of ab against the truth's, in Lab units with a peak of 255 (the paper's colour
        measure), at most ``COLOUR_PSNR_CAP``: higher is better, always positive."""
        mse = float(((label.float() - truth.float()) * AB_SCALE).pow(2).mean().item())
        return min(COLOUR_PSNR_CAP, psnr_of_mse(mse))
