"""Masks from clicks: :class:`ClickSegmenter` cuts an object out of a frame from the user's positive
and negative clicks with :class:`~msn_core.models.clicks.ClickNet` on the frozen backbone's
features (computed once per frame, then each click costs one small decoder pass).

:func:`next_click` is the simulated user of the standard click measure (NoC): a click at the
centre of the largest error region; :func:`click_curve` replays it click after click.
``benchmarks/clicks.py`` measures with it, and ClickNet's training places its later clicks with it too.

    seg = msn_core.clicks.load_clicker()
    labels = seg.labels(frame, [(120, 80, 1, True), (300, 90, 1, False)])  # (x, y, object, positive), in order
    labels = seg.labels(frame, [(40, 20, 200, 160, 1), (300, 90, 1, False)])  # a box (x0, y0, x1, y1, object) first

A box is read as a positive click at its centre whose result is kept inside the box
(``experiments/box_variants.py`` compared this with GrabCut and with the box as the mask so far).

From the second click on, the net looks at a zoomed view: the box around the object's mask so far
and its positive clicks, grown ``ZOOM`` times, cut out at the net's size (RITM's zoom-in), so thin
parts are seen at up to the frame's own resolution (``experiments/click_zoom.py`` chose it on the
training sequences' frames; results/evaluation.md, "Clicks", measures it).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from msn_core.annotations import Box, Click, is_box
from msn_core.config import BackboneConfig, ClickConfig
from msn_core.errors import InputError
from msn_core.geometry import FrameGeometry
from msn_core.hub import load_into, load_named
from msn_core.models.backbone import build_backbone
from msn_core.models.clicks import ClickNet, click_maps

ZOOM = 1.4  # the zoomed view's box: the object's box grown this many times (RITM's expansion ratio)
CACHED_VIEWS = 24  # backbone maps kept (1.7 MB each): the frame's and its zoomed views', reused by a replay


def next_click(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, bool]:
    """(x, y, positive): the pixel farthest inside the largest error region of the bool mask
    ``pred`` against ``truth`` (positive where the object is missed, negative where background
    is taken); the image border counts as a region's border."""
    best = (-1.0, 0, 0, True)
    for positive, err in ((True, truth & ~pred), (False, pred & ~truth)):
        dist = cv2.distanceTransform(np.pad(err, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        y, x = np.unravel_index(int(dist.argmax()), dist.shape)
        if dist[y, x] > best[0]:
            best = (float(dist[y, x]), int(x), int(y), positive)
    return best[1], best[2], best[3]


def user_box(truth: np.ndarray, margin: float = 0.05) -> Box:
    """The simulated user's box around the bool mask ``truth``: its bounding box grown by ``margin`` of
    its size on each side, cut to the frame, as object 1's box."""
    ys, xs = np.nonzero(truth)
    mx, my = margin * (xs.max() - xs.min() + 1), margin * (ys.max() - ys.min() + 1)
    box = (xs.min() - mx, ys.min() - my, xs.max() + mx, ys.max() + my, 1)
    return clamp_box(tuple(int(v) for v in box), truth.shape[:2])  # type: ignore[arg-type]


def click_curve(frame: np.ndarray, truth: np.ndarray, max_clicks: int, tool, box: bool = False) -> list[float]:
    """IoU after each of ``max_clicks`` simulated interactions on one object (NoC's user, with
    :func:`next_click`; ``box``: the first one draws :func:`user_box`); ``tool(frame, clicks)`` -> labels."""
    clicks: list = []
    ious, pred = [], np.zeros_like(truth)
    for i in range(max_clicks):
        if box and i == 0:
            clicks.append(user_box(truth))
        else:
            x, y, positive = next_click(pred, truth)
            clicks.append((x, y, 1, positive))
        pred = tool(frame, clicks) == 1
        union = (pred | truth).sum()
        ious.append(float((pred & truth).sum() / union) if union else 1.0)
    return ious


class ClickSegmenter:
    """Object masks from clicks on frames of any size (processed at ``net.cfg.max_side``)."""

    def __init__(
        self, backbone: torch.nn.Module, net: ClickNet, device="cpu", weights_info: dict | None = None,
        zoom: float | None = ZOOM,
    ):  # fmt: skip
        self.backbone, self.net, self.device = backbone.eval(), net.eval(), torch.device(device)
        self.weights_info = weights_info or {}
        self.zoom = zoom
        self._cache: tuple = ()  # (key, maps) pairs, newest first; read and replaced whole (safe across threads)

    @torch.inference_mode()
    def _features(self, frame: np.ndarray, geometry: FrameGeometry) -> dict[int, torch.Tensor]:
        """The backbone's maps of ``frame``, kept for the next click on the same frame."""
        key = (frame.shape, hash(frame[:: max(1, frame.shape[0] // 32)].tobytes()))
        cached = self._cache
        for k, maps in cached:
            if k == key:
                return maps
        padded = geometry.fit(frame)
        image = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[None].float() / 255.0
        feats = self.backbone(image.to(self.device))
        self._cache = ((key, feats),) + cached[: CACHED_VIEWS - 1]
        return feats

    def object_mask(
        self,
        frame: np.ndarray,
        positives: Sequence[tuple[int, int]],
        negatives: Sequence[tuple[int, int]] = (),
        current: np.ndarray | None = None,
        box: Box | None = None,
    ) -> np.ndarray:
        """One object's (H, W) bool mask from clicks (x, y) on ``frame`` (uint8 RGB); ``current``:
        the object's mask so far, which the clicks refine (None: none yet). Once there is a mask so
        far, the net looks again at a zoomed view of the object (:func:`zoom_box`) that holds the
        user's ``box`` around it, if any."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError(f"clicks: the frame must be a uint8 (H, W, 3) RGB array, got {getattr(frame, 'shape', frame)}")
        if not positives:
            return np.zeros(frame.shape[:2], bool)
        roi = None
        if current is not None and self.zoom:
            corners = [] if box is None else [(box[0], box[1]), (box[2], box[3])]
            roi = zoom_box(current, [*positives, *corners], self.zoom, self.net.cfg.max_side)
        if roi is None:
            return self._prob(frame, positives, negatives, current) > 0.5
        view, vpos, vneg, inner = zoom_view(frame, roi, self.net.cfg.max_side, positives, negatives, current)
        prob = self._prob(view, vpos, vneg, inner)
        x0, y0, x1, y1 = roi
        out = np.zeros(frame.shape[:2], bool)
        out[y0:y1, x0:x1] = cv2.resize(prob, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) > 0.5
        return out

    @torch.inference_mode()
    def _prob(self, frame: np.ndarray, positives, negatives, current: np.ndarray | None) -> np.ndarray:
        """The net's (H, W) object probability on ``frame``, clicks (x, y) at its size."""
        geometry = FrameGeometry(frame.shape[:2], self.net.cfg.max_side)
        feats = self._features(frame, geometry)
        maps = net_guidance(geometry, frame.shape[:2], positives, negatives, current)
        logits = self.net(feats, torch.from_numpy(maps)[None].to(self.device))
        h, w = geometry.proc
        prob = torch.sigmoid(logits[0, 0, :h, :w]).cpu().numpy()
        if (h, w) != frame.shape[:2]:
            prob = cv2.resize(prob, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR)
        return prob

    def labels(self, frame: np.ndarray, clicks: Sequence[Click | Box]) -> np.ndarray:
        """Object ids from clicks and boxes, in the order they were made: each object's mask is
        refined click by click (the mask so far is the net's input, as when the user clicked), other
        objects' positive clicks (and box centres) counting as its negatives. A box acts as a positive
        click at its centre whose result is kept inside it; the centre stays the object's positive
        click only until the user gives one (it may lie off the object). A later object id paints
        over an earlier one. The result depends only on the list, so undoing a click is dropping it."""
        labels = np.zeros(frame.shape[:2], np.uint8)
        for obj in sorted({entry_object(c) for c in clicks}):
            mask, pos, neg = None, [], []
            centre = drawn = None  # the object's last box, and its centre: a positive click until it has one of its own
            for c in clicks:
                own, box = entry_object(c) == obj, clamp_box(c, frame.shape[:2]) if is_box(c) else None
                x, y, positive = (*box_centre(box), True) if box else (c[0], c[1], bool(c[3]))
                if own and box:
                    centre, drawn = (x, y), box
                elif own:
                    (pos if positive else neg).append((x, y))
                elif positive:
                    neg.append((x, y))
                else:
                    continue
                if pos or centre:
                    mask = self.object_mask(frame, pos or [centre], neg, mask, drawn)
                    if box is not None and own:
                        mask = inside(mask, box)
            if mask is not None:
                labels[mask] = obj
        return labels


def net_guidance(
    geometry: FrameGeometry, size: tuple[int, int], positives, negatives, current: np.ndarray | None
) -> np.ndarray:
    """ClickNet's guidance maps at ``geometry``'s padded size for clicks (x, y) on a frame of ``size``
    (H, W) and the mask so far there (None: none)."""
    sy, sx = geometry.proc[0] / size[0], geometry.proc[1] / size[1]
    scale = lambda pts: [(x * sx, y * sy) for x, y in pts]  # noqa: E731
    small = None if current is None else geometry.fit_labels(np.asarray(current).astype(np.uint8))
    return click_maps(geometry.padded, scale(positives), scale(negatives), small)


def zoom_view(
    frame: np.ndarray, roi: tuple[int, int, int, int], side: int, positives, negatives, current: np.ndarray
) -> tuple[np.ndarray, list, list, np.ndarray]:
    """(view, positives, negatives, mask so far) of ``frame``'s box ``roi`` (:func:`zoom_box`) scaled
    to ``side`` pixels on its long side, clicks moved into it; ``current`` may be any array the size
    of the frame (the truth, in training)."""
    x0, y0, x1, y1 = roi
    h, w = y1 - y0, x1 - x0
    scale = side / max(h, w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    view = cv2.resize(frame[y0:y1, x0:x1], size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    move = lambda pts: [((x - x0 + 0.5) * scale - 0.5, (y - y0 + 0.5) * scale - 0.5) for x, y in pts]  # noqa: E731
    inner = cv2.resize(np.asarray(current, np.uint8)[y0:y1, x0:x1], size, interpolation=cv2.INTER_NEAREST)
    return view, move(positives), move(negatives), inner


def zoom_box(
    current: np.ndarray, positives: Sequence[tuple[int, int]], expand: float, min_side: int
) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), end exclusive: the box around the mask so far and the positive clicks,
    grown ``expand`` times about its centre and to at least ``min_side`` pixels a side (the net's
    own size, so a view is never finer than the frame), cut to the frame; None when that is the
    whole frame or there is no mask so far (as RITM's zoom-in)."""
    h, w = current.shape[:2]
    ys, xs = np.nonzero(current)
    if not len(xs):
        return None
    px, py = [p[0] for p in positives], [p[1] for p in positives]
    lo_x, hi_x = min(xs.min(), *px), max(xs.max(), *px) + 1
    lo_y, hi_y = min(ys.min(), *py), max(ys.max(), *py) + 1
    cx, cy = (lo_x + hi_x) / 2, (lo_y + hi_y) / 2
    half_w = max((hi_x - lo_x) * expand, min_side) / 2
    half_h = max((hi_y - lo_y) * expand, min_side) / 2
    box = (max(0, int(cx - half_w)), max(0, int(cy - half_h)), min(w, int(np.ceil(cx + half_w))), min(h, int(np.ceil(cy + half_h))))
    return None if box == (0, 0, w, h) else box


def entry_object(entry: Click | Box) -> int:
    """The object id of a click (x, y, object, positive) or a box (x0, y0, x1, y1, object)."""
    return int(entry[4] if is_box(entry) else entry[2])


def clamp_box(box: Box, size: tuple[int, int]) -> Box:
    """``box`` cut to a frame of ``size`` (H, W)."""
    h, w = size
    x0, y0, x1, y1, obj = (int(v) for v in box)
    x0, x1 = sorted((min(max(x0, 0), w - 1), min(max(x1, 0), w - 1)))
    y0, y1 = sorted((min(max(y0, 0), h - 1), min(max(y1, 0), h - 1)))
    return x0, y0, x1, y1, obj


def box_centre(box: Box) -> tuple[int, int]:
    return (box[0] + box[2]) // 2, (box[1] + box[3]) // 2


def inside(mask: np.ndarray, box: Box) -> np.ndarray:
    """``mask`` with everything outside ``box`` removed."""
    x0, y0, x1, y1, _ = box
    out = np.zeros_like(mask)
    out[y0 : y1 + 1, x0 : x1 + 1] = mask[y0 : y1 + 1, x0 : x1 + 1]
    return out


def load_clicker(weights: str | None = "auto", device="cpu") -> ClickSegmenter:
    """The shipped ClickNet (``"auto"``: Hub, then the bundled file; or a path to a ``click``
    weights file) on the frozen backbone its file names (the shipped one: EfficientNet-Lite2);
    ``None``: untrained on Lite0 (tests)."""
    if weights is None:
        backbone = build_backbone(BackboneConfig())
        return ClickSegmenter(backbone, ClickNet(ClickConfig(), backbone.channels), device)
    sd, meta = load_named("click", None if weights == "auto" else weights)
    cfg = ClickConfig(**meta.get("config", {}))
    backbone = build_backbone(BackboneConfig(**meta.get("backbone", {})))
    net = ClickNet(cfg, backbone.channels)
    load_into(net, sd)
    return ClickSegmenter(backbone.to(device), net.to(device), device, {"name": "click", **meta})
