"""Training data: the sequence split, sequences at the processing size, cached backbone features
and random guide/target pairs with joint frame + mask augmentation (torchvision ``transforms.v2``).

The backbone is frozen, so each training frame's features are computed once (at the processing
size, ``TRAIN_MAX_SIDE``) and cached on disk; augmentation then works on the cached maps and on the
guide side: horizontal flip and 32-pixel-aligned crops of target + guide together; an affine warp
(scale, rotation, shift, shear) and colour jitter of the guide frame and its label (the guide image
only reaches TPN through optical flow, so its warp imitates motion exactly); pairs made from a single
frame; and guide labels made imperfect (eroded, dilated, shifted, blotched) so the nets learn to
correct drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from msn_core.colorspace import AB_SCALE, rgb_to_lab, to_gray_rgb
from msn_core.errors import InputError
from msn_core.flow import flow_from_gray
from msn_core.geometry import FrameGeometry
from msn_core.io import davis_sequence, example_sequence, read_mask
from msn_core.training.augment import affine, blur_ab, jitter, perturb_mask

# The split is by sequence, never by frame. The bundled demo clips come from the validation part.
VAL_SEQUENCES: tuple[str, ...] = ("camel", "dog", "kite-surf", "horsejump-high", "soapbox")
TRAIN_SEQUENCES: tuple[str, ...] = (
    "bmx-trees",
    "breakdance",
    "car-roundabout",
    "cows",
    "drift-chicane",
    "drift-straight",
    "goat",
    "motocross-jump",
    "paragliding-launch",
    "parkour",
)
TRAIN_MAX_SIDE = 384  # frames are processed at most at this long side in training and evaluation
STRIDES = (4, 8, 16, 32)


@dataclass
class SequenceData:
    """One sequence at the padded processing size (as the propagation loop sees it)."""

    name: str
    frames: np.ndarray  # (T, Hp, Wp, 3) uint8 RGB, edge-padded
    masks: np.ndarray  # (T, Hp, Wp) uint8 {0, 1}, zero-padded
    proc: tuple[int, int]  # (h, w) before padding

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def gray(self) -> np.ndarray:
        """(T, Hp, Wp, 3) uint8: the frames as a colouriser sees them (lightness only)."""
        return np.stack([to_gray_rgb(f) for f in self.frames])

    def ab(self) -> np.ndarray:
        """(T, 2, Hp, Wp) float32 Lab ab / AB_SCALE of the frames."""
        return np.stack([rgb_to_lab(f)[..., 1:].transpose(2, 0, 1) / AB_SCALE for f in self.frames]).astype(
            np.float32
        )


def load_sequence(
    data_dir: str | Path, name: str, max_side: int | None = TRAIN_MAX_SIDE, max_frames: int | None = None
) -> SequenceData:
    """Read a DAVIS sequence and bring it to the padded processing size of the propagation loop."""

    return _to_sequence(name, *davis_sequence(data_dir, name, max_frames=max_frames), max_side, str(data_dir))


def load_example(name: str, max_side: int | None = TRAIN_MAX_SIDE) -> SequenceData:
    """A bundled example clip (``msn_core.io.list_examples``) as :func:`load_sequence` reads DAVIS."""

    return _to_sequence(name, *example_sequence(name), max_side, "the bundled examples")


def _to_sequence(name: str, source, mask_paths, max_side: int | None, data_dir: str) -> SequenceData:

    frames = list(source)
    if len(mask_paths) != len(frames):
        raise InputError(
            f"DAVIS sequence '{name}' in '{data_dir}': {len(frames)} frames but {len(mask_paths)} masks; "
            "training needs a mask for every frame"
        )
    geometry = FrameGeometry(frames[0].shape[:2], max_side)
    rgb = np.stack([geometry.fit(f) for f in frames])
    masks = np.stack([(geometry.fit_labels(read_mask(p)) > 0).astype(np.uint8) for p in mask_paths])
    return SequenceData(name=name, frames=rgb, masks=masks, proc=geometry.proc)


VIEWS = ("forward", "reverse", "mid-forward", "mid-reverse")
VIEW_SEP = "~"  # a view's name: "<sequence>~<view>"; the forward view keeps the plain name


def view_indices(n: int, view: str) -> np.ndarray:
    """Frame order of one view of an n-frame sequence: forward (0..n-1), reverse (n-1..0), or
    from the middle frame forwards / backwards. Its first frame plays the annotated frame."""
    mid = n // 2
    orders = {
        "forward": np.arange(n),
        "reverse": np.arange(n - 1, -1, -1),
        "mid-forward": np.arange(mid, n),
        "mid-reverse": np.arange(mid, -1, -1),
    }
    if view not in orders:
        raise InputError(f"sequence view {view!r} is not known; accepted: {', '.join(VIEWS)}")
    return orders[view]


def sequence_view(
    seq: SequenceData, feats: dict[int, Tensor], view: str
) -> tuple[SequenceData, dict[int, Tensor]]:
    """One view of a sequence with its cached features in the same order: more (annotated frame,
    later frames) situations from the same few training videos."""
    idx = view_indices(len(seq), view)
    if view == "forward":
        return seq, feats  # as it is, no copy
    name = f"{seq.name}{VIEW_SEP}{view}"
    out = SequenceData(name=name, frames=seq.frames[idx], masks=seq.masks[idx], proc=seq.proc)
    return out, {s: f[torch.from_numpy(idx)] for s, f in feats.items()}


def base_name(name: str) -> str:
    """The sequence a view was made from."""
    return name.split(VIEW_SEP, 1)[0]


def to_tensor_images(frames: np.ndarray) -> Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))).float() / 255.0


@torch.inference_mode()
def compute_features(
    backbone, frames: np.ndarray, batch: int = 4, device="cpu", dtype: torch.dtype = torch.float32
) -> dict[int, Tensor]:
    """Frozen-backbone features of (T, H, W, 3) uint8 frames -> {stride: (T, C, h, w) float16}
    on the CPU (the backbone runs on ``device`` in ``dtype``)."""
    out: dict[int, list[Tensor]] = {s: [] for s in STRIDES}
    for i in range(0, len(frames), batch):
        feats = backbone(to_tensor_images(frames[i : i + batch]).to(device, dtype))
        for s in STRIDES:
            out[s].append(feats[s].half().cpu())
    return {s: torch.cat(v) for s, v in out.items()}


def cached_features(
    cache_dir: str | Path, seq: SequenceData, backbone, kind: str = "rgb"
) -> dict[int, Tensor]:
    """``compute_features`` of a sequence (``kind`` "rgb" or "gray"), cached as safetensors."""
    from safetensors.torch import load_file, save_file

    if kind not in ("rgb", "gray"):
        raise InputError(f"feature kind {kind!r} is not known; accepted: rgb, gray")
    h, w = seq.frames.shape[1:3]
    tag = getattr(backbone, "tag", type(backbone).__name__.replace("Backbone", "").lower())
    path = Path(cache_dir) / f"feats_{seq.name}_{kind}_{h}x{w}_{len(seq)}_{tag}.safetensors"
    if path.is_file():
        return {int(k): v for k, v in load_file(str(path)).items()}
    feats = compute_features(backbone, seq.frames if kind == "rgb" else seq.gray)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")  # whole or absent: runs may share a cache
    save_file({str(k): v.contiguous() for k, v in feats.items()}, str(part))
    os.replace(part, path)
    return feats


# ------------------------------------------------------------------------------ pairs


@dataclass
class PairBatch:
    """A batch of (target, guide) pairs, cropped and flipped together.

    feats_t / feats_g hold backbone maps (B, C, H/s, W/s) as float32."""

    feats_t: dict[int, Tensor]
    feats_g: dict[int, Tensor]
    feats_a: dict[int, Tensor]  # the reference ("first") frame, for STM
    y_t: Tensor  # (B, Cy, H, W) target label: mask {0, 1} or ab / AB_SCALE
    y_g: Tensor  # (B, Cy, H, W) guide label, possibly imperfect and warped
    y_a: Tensor  # (B, Cy, H, W) reference label (exact)
    flow: Tensor  # (B, 2, H, W) target -> guide (DIS), zeros if not asked for
    same_as_ref: list[bool]  # guide is the reference frame itself (STM uses one memory frame)
    n_obj: list[int]  # masks: how many of the Cy channels are objects (the rest are zero padding)

    def to(self, device) -> PairBatch:
        """The batch with every tensor on ``device``."""
        move = lambda feats: {s: v.to(device) for s, v in feats.items()}  # noqa: E731
        return PairBatch(
            move(self.feats_t),
            move(self.feats_g),
            move(self.feats_a),
            self.y_t.to(device),
            self.y_g.to(device),
            self.y_a.to(device),
            self.flow.to(device),
            self.same_as_ref,
            self.n_obj,
        )


class PairSampler:
    """Random training pairs from cached sequences.

    ``task``: "mask" (labels are masks) or "color" (labels are ab). ``crop`` (H, W) must be
    multiples of 32 no larger than the padded frames. Masks are id maps (0 background, 1..k the
    marked objects): a pair carries up to ``max_objects`` of a sequence's objects, one channel
    each (zero-padded to ``max_objects``; TPN reads one object at a time, STM-1 several).
    ``weights``: how often each sequence is drawn, relative (default: by its length)."""

    def __init__(
        self,
        seqs: list[SequenceData],
        feats: list[dict[int, Tensor]],
        task: str = "mask",
        crop: tuple[int, int] = (192, 320),
        max_gap: int = 12,
        single_frame_p: float = 0.2,
        warp_p: float = 0.5,
        noisy_label_p: float = 0.5,
        with_flow: bool = True,
        ref_first_p: float = 0.5,
        max_objects: int = 1,
        weights: list[float] | None = None,
    ):
        if task not in ("mask", "color"):
            raise InputError(f"PairSampler task {task!r} is not known; accepted: mask, color")
        if not seqs or len(seqs) != len(feats):
            raise InputError(
                f"PairSampler: need one feature dict per sequence, got {len(seqs)} and {len(feats)}"
            )
        if max_gap < 1:
            raise InputError(f"PairSampler max_gap must be at least 1 frame, got {max_gap}")
        hp, wp = seqs[0].frames.shape[1:3]
        if crop[0] % 32 or crop[1] % 32 or crop[0] > hp or crop[1] > wp:
            raise InputError(
                f"PairSampler crop {crop}: must be multiples of 32 within the frames ({hp}x{wp})"
            )
        self.seqs, self.feats, self.task, self.crop = seqs, feats, task, crop
        self.max_gap, self.single_frame_p, self.warp_p = max_gap, single_frame_p, warp_p
        self.ref_first_p = ref_first_p  # STM: how often the reference is frame 0, as in a real run
        self.noisy_label_p, self.with_flow = noisy_label_p, with_flow
        self.labels = [s.ab() if task == "color" else s.masks for s in seqs]
        self.n_ids = [max(1, int(s.masks.max())) for s in seqs]
        self.max_objects = max_objects if task == "mask" else 1
        self.images = [s.gray if task == "color" else s.frames for s in seqs]
        sizes = np.array([len(s) for s in seqs] if weights is None else weights, dtype=np.float64)
        if len(sizes) != len(seqs) or (sizes < 0).any() or sizes.sum() <= 0:
            raise InputError(f"PairSampler weights: need {len(seqs)} non-negative numbers, not all zero")
        self.seq_p = sizes / sizes.sum()

    def sample(self, batch: int, rng: np.random.Generator) -> PairBatch:
        items = [self._one(rng) for _ in range(batch)]
        keys = items[0].keys()
        cat = {k: [it[k] for it in items] for k in keys}
        stack_feats = lambda name: {s: torch.stack([f[s] for f in cat[name]]) for s in STRIDES}  # noqa: E731
        return PairBatch(
            feats_t=stack_feats("feats_t"),
            feats_g=stack_feats("feats_g"),
            feats_a=stack_feats("feats_a"),
            y_t=torch.stack(cat["y_t"]),
            y_g=torch.stack(cat["y_g"]),
            y_a=torch.stack(cat["y_a"]),
            flow=torch.stack(cat["flow"]),
            same_as_ref=cat["same"],
            n_obj=cat["n_obj"],
        )

    def _one(self, rng: np.random.Generator) -> dict:
        k = int(rng.choice(len(self.seqs), p=self.seq_p))
        n = len(self.seqs[k])
        t = int(rng.integers(n))
        single = rng.random() < self.single_frame_p
        if single:
            g = t
        else:
            gap = int(rng.integers(1, min(3, self.max_gap) + 1)) if rng.random() < 0.6 else int(rng.integers(1, self.max_gap + 1))
            g = int(np.clip(t + gap * (1 if rng.random() < 0.5 else -1), 0, n - 1))
            g = g if g != t else (t - 1 if t > 0 else t + 1)
        a = int(rng.integers(n)) if rng.random() < 1.0 - self.ref_first_p else 0  # reference frame (STM)
        same = rng.random() < 0.15
        if same:
            g = a
        img_t, img_g = self.images[k][t], self.images[k][g]
        n_obj = 1
        if self.task == "mask":  # which of the sequence's objects this pair carries, one channel each
            ids = rng.permutation(np.arange(1, self.n_ids[k] + 1))[: self.max_objects]
            ids = np.sort(ids[: int(rng.integers(1, len(ids) + 1))])
            n_obj = len(ids)
            pad = np.zeros(self.max_objects - n_obj, np.int64) - 1  # never equal to an id: empty channels
            channels = np.concatenate([ids, pad])
            lab_t, lab_g, lab_a = (
                torch.from_numpy((self.labels[k][i][None] == channels[:, None, None]).astype(np.float32))
                for i in (t, g, a)
            )
        else:
            lab_t, lab_g, lab_a = (torch.from_numpy(self.labels[k][i]) for i in (t, g, a))
        img_g_t = torch.from_numpy(np.ascontiguousarray(img_g.transpose(2, 0, 1)))
        if (single or rng.random() < self.warp_p) and not same:
            img_g_t, lab_g = affine(img_g_t, lab_g, self.task, strong=single)
        if not same:
            img_g_t = jitter(img_g_t)
        if not same and self.task == "mask" and rng.random() < self.noisy_label_p:
            noisy = np.stack([perturb_mask(c, rng) for c in lab_g[:n_obj].numpy()])
            lab_g = torch.cat([torch.from_numpy(noisy), lab_g[n_obj:]])
        if not same and self.task == "color" and rng.random() < 0.3:
            lab_g = blur_ab(lab_g, rng)
        # joint crop (aligned to 32 px so the cached feature maps crop exactly) and flip
        hp, wp = img_t.shape[:2]
        ch, cw = self.crop
        y0 = 32 * int(rng.integers((hp - ch) // 32 + 1))
        x0 = 32 * int(rng.integers((wp - cw) // 32 + 1))
        flip = rng.random() < 0.5

        def crop_map(x: Tensor, s: int = 1) -> Tensor:
            x = x[..., y0 // s : (y0 + ch) // s, x0 // s : (x0 + cw) // s]
            return torch.flip(x, dims=[-1]) if flip else x

        feats = self.feats[k]
        out = {
            "feats_t": {s: crop_map(feats[s][t].float(), s) for s in STRIDES},
            "feats_g": {s: crop_map(feats[s][g].float(), s) for s in STRIDES},
            "feats_a": {s: crop_map(feats[s][a].float(), s) for s in STRIDES},
            "y_t": crop_map(lab_t),
            "y_g": crop_map(lab_g),
            "y_a": crop_map(lab_a),
            "same": same,
            "ref": a,
            "gap": abs(t - g),
            "n_obj": n_obj,
        }
        if self.task == "color" and flip:
            pass  # ab is a colour, not a direction: flipping the image keeps it as is
        if self.with_flow:

            gt_crop = crop_map(torch.from_numpy(np.ascontiguousarray(img_t.transpose(2, 0, 1)))).numpy()
            gg_crop = crop_map(img_g_t).numpy()
            gray_t = cv2.cvtColor(np.ascontiguousarray(gt_crop.transpose(1, 2, 0)), cv2.COLOR_RGB2GRAY)
            gray_g = cv2.cvtColor(np.ascontiguousarray(gg_crop.transpose(1, 2, 0)), cv2.COLOR_RGB2GRAY)
            flow = flow_from_gray(gray_t, gray_g, (ch, cw))
            out["flow"] = torch.from_numpy(flow).permute(2, 0, 1).contiguous()
        else:
            out["flow"] = torch.zeros(2, ch, cw)
        return out
