"""The one propagation loop (paper Fig. 2): extract, select, propagate, store.

``iter_propagate`` is a generator: it reads one frame, yields that frame's
result and keeps only the memory pool, so a 10 000-frame video never sits in
memory and a UI can stream progress. Every strategy is a selector object handed
to this loop; segmentation and colourization differ only in the task object.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from msn_core.config import MemoryConfig
from msn_core.errors import InputError
from msn_core.io import fit_size, resize_frame, resize_labels
from msn_core.limits import Limits, resolve
from msn_core.memory.pool import MemoryEntry, MemoryPool
from msn_core.memory.selectors import Audited, Selection, SelectionContext, Selector
from msn_core.models.backbone import Backbone
from msn_core.models.selection import MSN
from msn_core.propagators import FrameState
from msn_core.tasks import ColorTask, MaskTask, check_labels

PAD = 32


@dataclass
class FrameResult:
    """One frame's result, as the loop yields it."""

    index: int
    frame: np.ndarray  # (H, W, 3) uint8 RGB, the input frame at its original size
    labels: np.ndarray | None  # (H, W) uint8 object ids (segmentation)
    colors: np.ndarray | None  # (H, W, 3) uint8 RGB (colourization)
    guides: list[int]  # the guide frame(s) used, best first ([] for the annotated frame)
    candidates: list[int]  # the frames in the memory pool the selector chose from
    scores: dict[int, float] = field(default_factory=dict)  # the selector's score per candidate
    quality: dict[int, float] = field(default_factory=dict)  # audited runs: each candidate's quality vs the truth
    selector: str = ""
    seconds: float = 0.0  # wall time spent on this frame

    @property
    def output(self) -> np.ndarray:
        return self.labels if self.labels is not None else self.colors  # type: ignore[return-value]

    @property
    def guide(self) -> int | None:
        return self.guides[0] if self.guides else None


class VideoState:
    """Per-video state: the memory pool, the first-frame terms and the sizes.
    Models stay stateless; everything a video accumulates lives here."""

    def __init__(self, size: tuple[int, int], max_side: int | None, memory: MemoryConfig, device, dtype):
        self.size = size  # original (H, W)
        self.proc = fit_size(size, max_side) if max_side else size  # processing (h, w) before padding
        h, w = self.proc
        self.padded = (h + (-h) % PAD, w + (-w) % PAD)
        self.pool = MemoryPool(memory)  # InputError for a budget the pool cannot keep
        self.device, self.dtype = device, dtype
        self.e_a: torch.Tensor | None = None  # MSN embedding of the masked first frame

    def to_model(self, rgb: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """Original frame -> (padded uint8 RGB, (1, 3, Hp, Wp) float tensor in [0, 1])."""
        small = resize_frame(rgb, self.proc) if self.proc != self.size else rgb
        padded = self.pad(small, mode="edge")
        image = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[None]
        return padded, image.to(self.device, self.dtype) / 255.0

    def labels_to_model(self, labels: np.ndarray) -> np.ndarray:
        small = resize_labels(labels, self.proc) if self.proc != self.size else labels
        return self.pad(small, mode="constant")

    def pad(self, arr: np.ndarray, mode: str) -> np.ndarray:
        h, w = arr.shape[:2]
        widths = [(0, self.padded[0] - h), (0, self.padded[1] - w)] + [(0, 0)] * (arr.ndim - 2)
        return np.pad(arr, widths, mode=mode)


def check_frame(frame: np.ndarray, t: int, size: tuple[int, int] | None) -> None:
    """Refuse frame ``t`` unless it is a uint8 (H, W, 3) RGB array of ``size`` (H, W; None: any)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = getattr(frame, "shape", type(frame).__name__), getattr(frame, "dtype", "")
        raise InputError(f"frame {t}: expected a uint8 (H, W, 3) RGB array, got {got}")
    if size is not None and frame.shape[:2] != size:
        raise InputError(f"frame {t} is {frame.shape[1]}x{frame.shape[0]} but frame 0 is {size[1]}x{size[0]}")


def iter_propagate(
    frames: Iterable[np.ndarray],
    first: np.ndarray,
    *,
    backbone: Backbone,
    propagator,
    task: MaskTask | ColorTask,
    selector: Selector,
    msn: MSN | None = None,
    memory: MemoryConfig | None = None,
    max_side: int | None = 480,
    ground_truth: Iterable[np.ndarray] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    limits: Limits | None = None,
    audit: bool = False,
) -> Iterator[FrameResult]:
    """Propagate ``first`` (object ids (H, W) for masks; ignored for colour, where
    frame 0's own colours are propagated) through ``frames``.

    Yields a :class:`FrameResult` per frame, frame 0 included. ``ground_truth``
    (same length as ``frames``) is needed by the oracle selector and by ``audit``, which
    also scores every candidate against it (``FrameResult.quality``; one propagation per
    candidate) without changing the selector's picks. ``limits`` (default: from the
    environment) caps the frames, pixels per frame and objects.
    """
    if audit:
        if ground_truth is None:
            raise InputError("audit=True scores every candidate guide against the ground truth: give ground_truth=...")
        selector = Audited(selector)
    limits = resolve(limits)
    limits.check_objects(task.n_objects)
    try:
        frames = iter(frames)
    except TypeError:
        raise InputError(
            f"frames must be an iterable of uint8 (H, W, 3) arrays, got {type(frames).__name__}"
        ) from None
    if selector.needs_msn and msn is None:
        raise InputError(f"selector {selector.label!r} needs an MSN model; this pipeline has none")
    if not selector.needs_msn:
        msn = None  # baselines pay nothing for MSN: no embeddings, no cached terms
    if selector.needs_ground_truth and ground_truth is None:
        raise InputError(f"selector {selector.label!r} needs the ground truth of every frame")
    truth_iter = iter(ground_truth) if ground_truth is not None else None
    state: VideoState | None = None
    for t, frame in enumerate(frames):
        t0 = time.perf_counter()
        if limits.max_frames is not None and t >= limits.max_frames:
            limits.check_frame_count(t + 1, "the video", exact=False)
        check_frame(frame, t, state.size if state else None)
        if state is None:
            limits.check_pixels(frame.shape[:2], "frame 0")
            state = VideoState(frame.shape[:2], max_side, memory or MemoryConfig(), device, dtype)
        truth = _next_truth(truth_iter, t, state, task) if truth_iter is not None else None
        # the step runs under inference_mode; the yield stays outside so a consumer's own
        # autograd (training, mining) is never switched off by a suspended generator
        with torch.inference_mode():
            label, selection, candidates = _step(t, frame, first, truth, state, backbone, propagator, task,
                                                 selector, msn)
            with record_function("msn.output"):
                out = _output(task, label, state, frame)
        yield FrameResult(
            index=t,
            frame=frame,
            labels=out if task.name == "mask" else None,
            colors=out if task.name == "color" else None,
            guides=list(selection.guides),
            candidates=candidates,
            scores=selection.scores,
            quality=selection.quality,
            selector=selector.label,
            seconds=time.perf_counter() - t0,
        )
    if state is None:
        raise InputError("the video has no frames")


def _next_truth(truth_iter: Iterator, t: int, state: VideoState, task) -> np.ndarray:
    truth = next(truth_iter, None)
    if truth is None:
        raise InputError(f"ground_truth ended before frame {t}; give one mask (or colour frame) per frame")
    truth = np.asarray(truth)
    if truth.shape[:2] != state.size:
        raise InputError(
            f"ground_truth {t} is {truth.shape[1]}x{truth.shape[0]} but the frames are "
            f"{state.size[1]}x{state.size[0]}; give ground truth at the frames' size"
        )
    if task.name == "mask":
        return check_labels(truth, f"ground_truth {t}")
    if truth.ndim != 3 or truth.shape[2] != 3 or truth.dtype != np.uint8:
        raise InputError(f"ground_truth {t}: expected a uint8 (H, W, 3) RGB frame, got {truth.shape} {truth.dtype}")
    return truth


def _step(t, frame, first, truth, state: VideoState, backbone, propagator, task, selector, msn):
    """Extract, select, propagate, store (paper Fig. 2) for frame ``t``."""
    with record_function("msn.backbone"):
        model_rgb, image = state.to_model(task.frame_for_model(frame))
        fs = FrameState(index=t, image=image, rgb=model_rgb, feats=backbone(image))
    with record_function("msn.prepare"):
        propagator.prepare(fs)
    if t == 0:
        label = _reference(task, first, frame, state)
        if msn is not None:
            masked = image * task.union(label)
            state.e_a = msn.embed(backbone(masked)[msn.cfg.feature_stride])
        selection, candidates, msn_t = Selection(guides=[]), [], None
    else:
        with record_function("msn.select"):
            msn_t = _msn_target(msn, fs, state) if msn is not None else None
            candidates = state.pool.indices()
            ctx = _context(t, candidates, fs, state, propagator, task, msn, msn_t, truth)
            selection = selector.select(ctx)
        with record_function("msn.propagate"):
            preds = [
                selection.predictions[g]
                if g in selection.predictions
                else task.activate(propagator.predict(fs, state.pool[g], state.pool.first))
                for g in selection.guides
            ]
            label = task.merge(preds, selection.weights)
    with record_function("msn.store"):
        _store(t, fs, label, state, propagator, task, msn, msn_t)
    return label, selection, candidates


# ---------------------------------------------------------------------------- steps


def _reference(task, first, frame, state: VideoState) -> torch.Tensor:
    if task.name == "color":
        return task.reference(state.pad(_resized(frame, state), mode="edge"), state.device, state.dtype)
    if first is None:
        raise InputError("segmentation needs a first-frame mask")
    first = check_labels(first)
    if first.shape != state.size and all(m - f in (0, 1) and f % 2 == 0 for m, f in zip(first.shape, state.size)):
        first = resize_labels(first, state.size)  # an odd-sized video's mask; open_video reads it 1 px smaller
    if first.shape[:2] != state.size:
        raise InputError(
            f"the first-frame mask is {first.shape[1]}x{first.shape[0]} but the frames are "
            f"{state.size[1]}x{state.size[0]}; give a mask of the frame's size"
        )
    return task.reference(state.labels_to_model(first), state.device, state.dtype)


def _resized(frame: np.ndarray, state: VideoState) -> np.ndarray:
    return resize_frame(frame, state.proc) if state.proc != state.size else frame


def _msn_target(msn: MSN, fs: FrameState, state: VideoState) -> tuple[torch.Tensor, ...]:
    """The target's MSN embedding, its target terms and its memory terms (both from one
    correlation with the annotated object; the last two are reused when it enters the pool)."""
    e_t = msn.embed(fs.feats[msn.cfg.feature_stride])
    return (e_t, *msn.frame_terms(e_t, state.e_a))


def _context(t, candidates, fs, state, propagator, task, msn, msn_t, truth) -> SelectionContext:
    pool = state.pool

    def msn_scores(cands: list[int]) -> np.ndarray:
        terms = torch.cat([pool[c]["msn_terms"] for c in cands])
        embeds = torch.cat([pool[c]["msn_embed"] for c in cands])
        logits = msn.pair_scores(terms, embeds, msn_t[1], msn_t[0])
        return torch.sigmoid(logits).float().cpu().numpy()

    g_t = _global_vector(fs.feats[32])

    def similarity(cands: list[int], masked: bool) -> np.ndarray:
        sims = torch.stack([(pool[c]["gvec"] * g_t).sum() for c in cands])
        if masked:
            sims = sims + torch.stack([(pool[c]["gvec_masked"] * g_t).sum() for c in cands])
        return sims.float().cpu().numpy()

    propagate = quality = None
    if truth is not None:
        if task.name == "mask":
            truth_t = task.reference(state.labels_to_model(np.asarray(truth)), state.device, state.dtype)
        else:
            truth_t = task.reference(state.pad(_resized(np.asarray(truth), state), "edge"), state.device, state.dtype)

        made: dict[int, torch.Tensor] = {}  # an audited oracle asks twice for each candidate

        def propagate(c: int) -> torch.Tensor:
            if c not in made:
                made[c] = task.activate(propagator.predict(fs, pool[c], pool.first))
            return made[c]

        def quality(label: torch.Tensor) -> float:
            return task.quality(label, truth_t)

    return SelectionContext(
        t=t,
        candidates=candidates,
        msn_scores=msn_scores if msn is not None else None,
        similarity=similarity,
        propagate=propagate,
        quality=quality,
    )


def _global_vector(f: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """L2-normalised (weighted) spatial mean of a (1, C, h, w) feature map -> (C,)."""
    if weight is None:
        v = f.mean(dim=(0, 2, 3))
    else:
        v = (f * weight).sum(dim=(0, 2, 3)) / weight.sum().clamp_min(1e-6)
    return v / v.norm().clamp_min(1e-6)


def _store(t, fs, label, state: VideoState, propagator, task, msn, msn_t) -> None:
    data = propagator.memorize(fs, label)
    f32 = fs.feats[32]
    weight = F.interpolate(task.union(label).to(f32.dtype), size=f32.shape[-2:], mode="area")
    data["gvec"] = _global_vector(f32)
    data["gvec_masked"] = _global_vector(f32, weight)
    if msn is not None:
        if msn_t is None:  # the annotated frame: never a target
            e_p = msn.embed(fs.feats[msn.cfg.feature_stride])
            msn_t = (e_p, None, msn.memory_terms(e_p, state.e_a))
        data["msn_embed"] = msn_t[0]
        data["msn_terms"] = msn_t[2]
    state.pool.add(MemoryEntry(index=t, data=data))


def _output(task, label, state: VideoState, frame: np.ndarray) -> np.ndarray:
    if task.name == "color":
        return task.to_output(label, state.proc, state.size, frame)
    return task.to_output(label, state.proc, state.size)
