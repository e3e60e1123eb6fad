"""Clips where the annotation decides what is segmented, built from two real clips: a *guest*
object, cut out frame after frame from one clip (so it keeps its articulation), moves through a
*host* clip in front of everything.

- ``second``: the guest walks across the scene; mark the host object, the guest, or both;
- ``occlusion``: the guest sweeps in front of the host object mid-clip and leaves again; the host's
  ground truth excludes it.

The id maps hold 1 for the host object where it is seen and 2 for the guest. ``truth(which)`` gives
the ground truth for marking the host alone, the guest alone, or both as two ids.
``benchmarks/built_clips.py`` writes such clips, made from validation sequences only, in the DAVIS
layout, so ``msn evaluate --data-dir`` scores every selector on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from msn_core.errors import InputError

SCENE_KINDS = ("second", "occlusion")
MARKS = ("host", "guest", "both")


@dataclass
class Scene:
    """A built clip: frames and id maps (0 background, 1 host object, 2 guest object)."""

    name: str
    frames: list[np.ndarray]  # (H, W, 3) uint8
    ids: list[np.ndarray]  # (H, W) uint8

    def truth(self, which: str = "both") -> list[np.ndarray]:
        """Ground truth id maps for marking ``which`` of ``MARKS`` (one object gets id 1)."""
        if which not in MARKS:
            raise InputError(f"scene truth {which!r} is not known; accepted: {', '.join(MARKS)}")
        if which == "both":
            return [m.copy() for m in self.ids]
        keep = 1 if which == "host" else 2
        return [(m == keep).astype(np.uint8) for m in self.ids]


def build_scene(
    kind: str,
    host: tuple[list[np.ndarray], list[np.ndarray]],
    guest: tuple[list[np.ndarray], list[np.ndarray]],
    seed: int = 0,
    name: str | None = None,
) -> Scene:
    """``host`` and ``guest``: (frames, masks) of two real clips (masks: any non-zero is the
    object). The scene has the host's length and frame size; the guest's frames play forwards
    and back as often as needed."""
    if kind not in SCENE_KINDS:
        raise InputError(f"scene kind {kind!r} is not known; accepted: {', '.join(SCENE_KINDS)}")
    (hf, hm), (gf, gm) = host, guest
    if len(hf) < 2 or len(hf) != len(hm) or not gf or len(gf) != len(gm):
        raise InputError("build_scene: each clip needs frames and one mask per frame (the host at least 2)")
    rng = np.random.default_rng(seed)
    n = len(hf)
    h, w = hf[0].shape[:2]
    cycle = list(range(len(gf))) + list(range(len(gf) - 2, 0, -1)) or [0]
    order = [cycle[i % len(cycle)] for i in range(n)]
    g_masks = [gm[i] > 0 for i in order]
    if not g_masks[0].any():
        raise InputError("build_scene: the guest object is not in its first frame")
    ys, xs = np.nonzero(g_masks[0])
    frac = rng.uniform(0.45, 0.6) if kind == "occlusion" else rng.uniform(0.3, 0.45)
    scale = frac * h / max(1, ys.max() - ys.min() + 1)
    # the path of the guest's centre: from one side to the other; across the host mid-clip for
    # an occlusion, anywhere in the lower two thirds for a second object
    left_to_right = rng.random() < 0.5
    x0, x1 = (0.12 * w, 0.88 * w) if left_to_right else (0.88 * w, 0.12 * w)
    if kind == "occlusion":
        host_ys, host_xs = np.nonzero(hm[n // 2] > 0)
        cx, cy = (host_xs.mean(), host_ys.mean()) if host_xs.size else (w / 2, h / 2)
        xs_path = np.interp(np.arange(n), [0, n // 2, n - 1], [x0, cx, x1])
        ys_path = np.full(n, cy)
    else:
        xs_path = np.linspace(x0, x1, n)
        ys_path = np.full(n, rng.uniform(0.45, 0.75) * h) + rng.uniform(-0.05, 0.05) * h * np.sin(np.arange(n) / 3)
    frames, ids = [], []
    for t in range(n):
        gy, gx = np.nonzero(g_masks[t])
        anchor = (gx.mean(), gy.mean()) if gx.size else (0.0, 0.0)
        m = np.array([[scale, 0.0, xs_path[t] - scale * anchor[0]], [0.0, scale, ys_path[t] - scale * anchor[1]]])
        shape = cv2.warpAffine(g_masks[t].astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST) > 0
        pix = cv2.warpAffine(gf[order[t]], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame = hf[t].copy()
        frame[shape] = pix[shape]
        idm = np.where(hm[t] > 0, 1, 0).astype(np.uint8)
        idm[shape] = 2
        frames.append(frame)
        ids.append(idm)
    if not (ids[0] == 1).any():
        raise InputError("build_scene: the guest hides the host object in the first frame; try another seed")
    return Scene(name or f"{kind}-{seed}", frames, ids)
