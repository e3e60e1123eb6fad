"""The one propagation loop (paper Fig. 2): extract, select, propagate, store.

``iter_propagate`` is a generator: it reads one frame, yields that frame's
result and keeps only the memory pool, so a 10 000-frame video never sits in
memory and a UI can stream progress. Every strategy is a selector object handed
to this loop; segmentation and colourization differ only in the task object.

Annotated frames (``{frame index: mask}``) are trusted pool entries, read as
memory by every frame of a pass, also before the pass reaches them; a backward
run is the same loop over the frames in reverse order (:mod:`msn_core.passes`,
:mod:`msn_core.annotations`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from msn_core.annotations import (
    as_annotations,
    check_direction,
    check_references,
    check_task_objects,
    fit_annotations,
)
from msn_core.config import MemoryConfig
from msn_core.errors import InputError
from msn_core.geometry import FrameGeometry
from msn_core.io import resize_frame
from msn_core.limits import Limits, resolve
from msn_core.memory.pool import MemoryEntry, MemoryPool
from msn_core.memory.selectors import Audited, Selection, SelectionContext, Selector
from msn_core.models.backbone import Backbone
from msn_core.models.selection import MSN
from msn_core.passes import Pass, Reader, check_frame, plan
from msn_core.propagators import FrameState
from msn_core.tasks import ColorTask, MaskTask, check_labels

__all__ = ["FrameResult", "VideoState", "check_frame", "iter_propagate"]


@dataclass
class FrameResult:
    """One frame's result, as the loop yields it. Frame indices are the video's, in any direction."""

    index: int
    frame: np.ndarray  # (H, W, 3) uint8 RGB, the input frame at its original size
    labels: np.ndarray | None  # (H, W) uint8 object ids (segmentation)
    colors: np.ndarray | None  # (H, W, 3) uint8 RGB (colourization)
    guides: list[int]  # the guide frame(s) used, best first ([] for an annotated frame)
    candidates: list[int]  # the frames in the memory pool the selector chose from, ascending
    scores: dict[int, float] = field(default_factory=dict)  # the selector's score per candidate
    quality: dict[int, float] = field(default_factory=dict)  # audited runs: each candidate's quality vs the truth
    selector: str = ""
    seconds: float = 0.0  # wall time spent on this frame
    annotated: bool = False  # the user's frame: its result is the annotation itself
    annotated_candidates: list[int] = field(default_factory=list)  # the candidates that are annotated frames

    @property
    def output(self) -> np.ndarray:
        return self.labels if self.labels is not None else self.colors  # type: ignore[return-value]

    @property
    def guide(self) -> int | None:
        return self.guides[0] if self.guides else None


class VideoState:
    """Per-pass state: the memory pool, the anchor's terms, the objects annotated so far and the
    sizes. Models stay stateless; everything a video accumulates lives here."""

    def __init__(self, size: tuple[int, int], max_side: int | None, memory: MemoryConfig, device, dtype):
        self.geometry = FrameGeometry(size, max_side)
        self.size, self.proc = self.geometry.size, self.geometry.proc  # original and processing (H, W)
        self.pool = MemoryPool(memory)  # InputError for a budget the pool cannot keep
        self.device, self.dtype = device, dtype
        self.e_a: torch.Tensor | None = None  # MSN embedding of the masked anchor (the first frame)
        self.known: torch.Tensor | None = None  # (O, 1, 1, 1): 1 for objects annotated so far in this pass
        self.ahead: dict[int, MemoryEntry] = {}  # position -> annotated frames the pass has not reached yet

    @property
    def references(self) -> list[MemoryEntry]:
        """What a propagation reads besides its guide: the pool's annotated frames, those ahead and
        the references from outside the frames (negative positions), in order of position."""
        return sorted(self.pool.references + list(self.ahead.values()), key=lambda e: e.index)

    def to_model(self, rgb: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """Original (or processing-size) frame -> (padded uint8 RGB, (1, 3, Hp, Wp) float tensor in [0, 1])."""
        padded = self.geometry.fit(rgb)
        image = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[None]
        return padded, image.to(self.device, self.dtype) / 255.0


def iter_propagate(
    frames: Iterable[np.ndarray],
    first,
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
    direction: str | None = None,
    references: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> Iterator[FrameResult]:
    """Propagate the annotations through ``frames``. ``first``: for masks, frame 0's object ids
    (H, W) or ``{frame index: object ids}`` (objects may first appear in any annotated frame);
    ignored for colour, where frame 0's own colours are propagated.

    Yields a :class:`FrameResult` per frame the ``direction`` covers ("forward", "backward",
    "both"; default "forward" when frame 0 is annotated, else "both"; the order is in
    :mod:`msn_core.annotations`), annotated frames included. ``ground_truth`` (one per frame of
    ``frames``, in order) is needed by the oracle selector and by ``audit``, which
    also scores every candidate against it (``FrameResult.quality``; one propagation per
    candidate) without changing the selector's picks. ``limits`` (default: from the
    environment) caps the frames, pixels per frame and objects. ``references``: (frame, object
    ids) pairs from outside ``frames`` that every frame reads as memory, as it reads the annotated
    frames (e.g. a video's other annotated frames when only a stretch of it is propagated again);
    they are never guides nor results, and mark no object the annotations do not.
    """
    if audit:
        if ground_truth is None:
            raise InputError("audit=True scores every candidate guide against the ground truth: give ground_truth=...")
        selector = Audited(selector)
    limits = resolve(limits)
    limits.check_objects(task.n_objects)
    annotations: dict[int, np.ndarray | None] = {0: None} if task.name == "color" else as_annotations(first)
    check_task_objects(annotations, task.object_ids)
    references = check_references(references, task)
    direction = check_direction(direction, annotations)
    if selector.needs_msn and msn is None:
        raise InputError(f"selector {selector.label!r} needs an MSN model; this pipeline has none")
    if not selector.needs_msn:
        msn = None  # baselines pay nothing for MSN: no embeddings, no cached terms
    if selector.needs_ground_truth and ground_truth is None:
        raise InputError(f"selector {selector.label!r} needs the ground truth of every frame")
    reader = Reader(frames, ground_truth, limits)
    parts = _Parts(backbone, propagator, task, selector, msn, memory or MemoryConfig())
    fitted: dict[int, np.ndarray | None] | None = None
    for run in plan(reader, list(annotations), direction, max_side, getattr(propagator, "reads_references", True)):
        state: VideoState | None = None
        for item in run.items:
            t0 = time.perf_counter()
            if state is None:
                state = VideoState(reader.size, max_side, parts.memory, device, dtype)
                fitted = fitted if fitted is not None else fit_annotations(annotations, state.size)
                with torch.inference_mode():
                    _read_ahead(run, fitted, state, parts, references)
            truth = _check_truth(item.truth, item.index, state, task) if item.truth is not None else None
            # the step runs under inference_mode; the yield stays outside so a consumer's own
            # autograd (training, mining) is never switched off by a suspended generator
            with torch.inference_mode():
                labels = fitted.get(item.index, _NOT_ANNOTATED)  # type: ignore[union-attr]
                s = run.position(item.index)
                label, selection, candidates = _step(s, item.frame, labels, truth, state, parts)
                if not run.yield_anchor and item.index == run.anchor:
                    continue  # given by the pass before
                with record_function("msn.output"):
                    frame, out = _output(task, label, state, item.frame, labels)
            yield _result(run, item.index, frame, out, labels is not _NOT_ANNOTATED, task, selection, candidates,
                          state, selector, t0)


_NOT_ANNOTATED = object()


@dataclass
class _Parts:
    backbone: Backbone
    propagator: object
    task: MaskTask | ColorTask
    selector: Selector
    msn: MSN | None
    memory: MemoryConfig


def _result(run: Pass, index, frame, out, annotated, task, selection: Selection, candidates, state, selector, t0):
    """The frame's result, with the pass's positions turned back into frame indices."""
    at = run.index
    held = state.pool.annotated_indices()
    return FrameResult(
        index=index,
        frame=frame,
        labels=out if task.name == "mask" else None,
        colors=out if task.name == "color" else None,
        guides=[at(g) for g in selection.guides],
        candidates=sorted(at(c) for c in candidates),
        scores={at(c): v for c, v in selection.scores.items()},
        quality={at(c): v for c, v in selection.quality.items()},
        selector=selector.label,
        seconds=time.perf_counter() - t0,
        annotated=annotated,
        annotated_candidates=sorted(at(c) for c in candidates if c in held),
    )


def _step(t, frame, labels, truth, state: VideoState, parts: _Parts):
    """Extract, select, propagate, store (paper Fig. 2) for the frame at position ``t``;
    an annotated frame (``labels`` not ``_NOT_ANNOTATED``) is stored as given."""
    task, msn, propagator, backbone = parts.task, parts.msn, parts.propagator, parts.backbone
    fs = _frame_state(t, frame, state, parts)
    image = fs.image
    annotated = labels is not _NOT_ANNOTATED
    if annotated:
        label = _reference(task, labels, frame, state)
        if task.name == "mask":
            marked = set(np.unique(labels).tolist())
            present = torch.tensor([float(i in marked) for i in task.object_ids], device=label.device, dtype=label.dtype)
            present = present[:, None, None, None]  # (O, 1, 1, 1): the objects this annotation marks
            state.known = present if state.known is None else torch.maximum(state.known, present)
        if msn is not None and not len(state.pool):  # the pass's anchor: the "first frame" of MSN
            masked = image * task.union(label)
            state.e_a = msn.embed(backbone(masked)[msn.cfg.feature_stride])
        selection, candidates, msn_t = Selection(guides=[]), [], None
    else:
        with record_function("msn.select"):
            msn_t = _msn_target(msn, fs, state) if msn is not None else None
            candidates = state.pool.indices()
            ctx = _context(t, candidates, fs, state, parts, msn_t, truth)
            selection = parts.selector.select(ctx)
        with record_function("msn.propagate"):
            preds = [
                selection.predictions[g]
                if g in selection.predictions
                else task.activate(propagator.predict(fs, state.pool[g], state.references))
                for g in selection.guides
            ]
            label = task.merge(preds, selection.weights)
            if state.known is not None:
                label = label * state.known  # an object appears from the frame that first marks it
    with record_function("msn.store"):
        _store(t, fs, label, state, parts, msn_t, annotated)
    return label, selection, candidates


# ---------------------------------------------------------------------------- steps


def _frame_state(t, frame, state: VideoState, parts: _Parts) -> FrameState:
    """The frame at position ``t`` through the backbone and the propagator's per-frame terms."""
    with record_function("msn.backbone"):
        model_rgb, image = state.to_model(parts.task.frame_for_model(frame))
        fs = FrameState(index=t, image=image, rgb=model_rgb, feats=parts.backbone(image))
    with record_function("msn.prepare"):
        parts.propagator.prepare(fs)
    return fs


def _read_ahead(run: Pass, fitted: dict, state: VideoState, parts: _Parts, references: list) -> None:
    """The memory entries of the annotated frames ``run`` reaches later, read by every frame before
    them (each is dropped when the pass stores the frame itself), and of the ``references`` from
    outside the frames (at negative positions, never reached)."""
    if not getattr(parts.propagator, "reads_references", True):
        return  # nothing would read them
    given = [(-1 - i, frame, labels) for i, (frame, labels) in enumerate(references)]
    for t, frame, labels in [(run.position(i), f, fitted[i]) for i, f in run.ahead.items()] + given:
        if t < 0:
            name = f"reference {-1 - t}"
            check_frame(frame, name, state.size)
            labels = fit_annotations({name: np.asarray(labels)}, state.size)[name]
        fs = _frame_state(t, frame, state, parts)
        label = _reference(parts.task, labels, frame, state)
        state.ahead[t] = MemoryEntry(index=t, data=parts.propagator.memorize(fs, label), annotated=True)


def _check_truth(truth, t: int, state: VideoState, task) -> np.ndarray:
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


def _reference(task, labels, frame, state: VideoState) -> torch.Tensor:
    """The annotated frame's label tensor: its mask one-hot, or (colour) its own colours."""
    if task.name == "color":
        return task.reference(state.geometry.pad(_resized(frame, state), mode="edge"), state.device, state.dtype)
    return task.reference(state.geometry.fit_labels(labels), state.device, state.dtype)


def _resized(frame: np.ndarray, state: VideoState) -> np.ndarray:
    return resize_frame(frame, state.proc) if state.proc != state.size else frame


def _msn_target(msn: MSN, fs: FrameState, state: VideoState) -> tuple[torch.Tensor, ...]:
    """The target's MSN embedding, its target terms and its memory terms (both from one
    correlation with the annotated object; the last two are reused when it enters the pool)."""
    e_t = msn.embed(fs.feats[msn.cfg.feature_stride])
    return (e_t, *msn.frame_terms(e_t, state.e_a))


def _context(t, candidates, fs, state, parts: _Parts, msn_t, truth) -> SelectionContext:
    pool, task, msn, propagator = state.pool, parts.task, parts.msn, parts.propagator

    def msn_scores(cands: list[int]) -> np.ndarray:
        terms = torch.cat([pool[c]["msn_terms"] for c in cands])
        embeds = torch.cat([pool[c]["msn_embed"] for c in cands])
        flags = torch.tensor([float(pool[c].annotated) for c in cands], device=terms.device)
        logits = msn.pair_scores(terms, embeds, msn_t[1], msn_t[0], flags)
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
            truth_t = task.reference(state.geometry.fit_labels(np.asarray(truth)), state.device, state.dtype)
        else:
            truth_t = task.reference(state.geometry.pad(_resized(np.asarray(truth), state), "edge"), state.device, state.dtype)

        made: dict[int, torch.Tensor] = {}  # an audited oracle asks twice for each candidate

        def propagate(c: int) -> torch.Tensor:
            if c not in made:
                made[c] = task.activate(propagator.predict(fs, pool[c], state.references))
            return made[c]

        def quality(label: torch.Tensor) -> float:
            return task.quality(label, truth_t)

    return SelectionContext(
        t=t,
        candidates=candidates,
        annotated=frozenset(pool.annotated_indices()),
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


def _store(t, fs, label, state: VideoState, parts: _Parts, msn_t, annotated: bool) -> None:
    task, msn = parts.task, parts.msn
    data = parts.propagator.memorize(fs, label)
    f32 = fs.feats[32]
    weight = F.interpolate(task.union(label).to(f32.dtype), size=f32.shape[-2:], mode="area")
    data["gvec"] = _global_vector(f32)
    data["gvec_masked"] = _global_vector(f32, weight)
    if msn is not None:
        if msn_t is None:  # an annotated frame: never a target
            e_p = msn.embed(fs.feats[msn.cfg.feature_stride])
            msn_t = (e_p, None, msn.memory_terms(e_p, state.e_a))
        data["msn_embed"] = msn_t[0]
        data["msn_terms"] = msn_t[2]
        if msn.cfg.label_aware:  # the frame read under its own label, known only now
            data["msn_terms"] = msn_t[2] + msn.label_terms(msn_t[0], state.e_a, task.union(label))
    state.pool.add(MemoryEntry(index=t, data=data, annotated=annotated))
    state.ahead.pop(t, None)


def _output(task, label, state: VideoState, frame: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """(the frame at the input size, its result there): an annotated frame's mask is the annotation."""
    frame = resize_frame(frame, state.size)  # a kept frame of a backward pass is at the processing size
    if task.name == "color":
        return frame, task.to_output(label, state.proc, state.size, frame)
    if labels is not _NOT_ANNOTATED:
        return frame, labels
    return frame, task.to_output(label, state.proc, state.size)
