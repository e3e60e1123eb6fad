"""Stage-2 sample mining (paper §3.3).

For a training frame t, the frozen propagator propagates every earlier frame p (each carrying the
label a real run would have given it: a previous-frame run's prediction, the annotation for frame
0) to x_t, and the result's quality against l_t (the task's own ``quality``: IoU for masks, PSNR of
ab for colour) labels p:
positive if quality in [Qmax - 0.05 Qmax, Qmax], negative if in [Qmin, Qmin + 0.15 Qmin], the rest
dropped. A candidate inside both ranges (a target whose qualities barely differ) is ambiguous and
dropped too.

``relative=True`` is a fallback for targets where that rule finds no positive or no negative (all
qualities within ~15 % of each other, which is what a propagator that has learnt its training
sequences gives): the same fractions are then taken of the quality range, positives in
[Qmax - 0.05 R, Qmax] and negatives in [Qmin, Qmin + 0.15 R] with R = Qmax - Qmin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from msn_core.annotations import next_correction
from msn_core.config import MemoryConfig
from msn_core.errors import InputError
from msn_core.flow import flow_from_gray
from msn_core.memory.pool import MemoryEntry, pool_history
from msn_core.metrics import db_eval_iou
from msn_core.propagators import FrameState
from msn_core.tasks import ColorTask

SIGMA_POS = 0.05
SIGMA_NEG = 0.15
POSITIVE, NEGATIVE, DROPPED = 1, 0, -1


def label_samples(
    qualities: Sequence[float],
    sigma_pos: float = SIGMA_POS,
    sigma_neg: float = SIGMA_NEG,
    relative: bool = False,
    min_range: float = 1e-3,
) -> np.ndarray:
    """Qualities of every candidate of one target -> labels 1 (positive), 0 (negative), -1 (dropped).
    ``relative``: the range-based fallback (module docstring) where the paper's rule finds no pair."""
    q = np.asarray(qualities, dtype=np.float64)
    if q.ndim != 1 or not np.isfinite(q).all():
        raise InputError(f"label_samples: expected a 1-D list of finite qualities, got {qualities!r}")
    if q.size == 0:
        return np.zeros(0, dtype=np.int64)
    qmax, qmin = q.max(), q.min()
    pos = q >= qmax - sigma_pos * qmax
    neg = q <= qmin + sigma_neg * qmin
    labels = np.full(q.shape, DROPPED, dtype=np.int64)
    labels[pos & ~neg] = POSITIVE
    labels[neg & ~pos] = NEGATIVE
    if (
        relative
        and not ((labels == POSITIVE).any() and (labels == NEGATIVE).any())
        and qmax - qmin > min_range
    ):
        spread = qmax - qmin
        labels[:] = DROPPED
        labels[q >= qmax - sigma_pos * spread] = POSITIVE
        labels[q <= qmin + sigma_neg * spread] = NEGATIVE
    return labels


def candidate_pools(
    n_frames: int, max_candidates: int | None, recent: int = MemoryConfig.recent, annotated=frozenset()
) -> list[list[int]]:
    """The candidates of every frame t < ``n_frames``: what a memory pool of ``max_candidates``
    frames (None: every earlier frame) with ``recent`` newest frames holds at t, by the pool's own
    eviction rule (``memory.pool.pool_history``; ``annotated`` frames are never evicted), so the
    mined pools are those MSN sees in a run."""
    if max_candidates is not None:
        recent = min(recent, max(1, max_candidates - 1))
    return pool_history(n_frames, MemoryConfig(budget=max_candidates, recent=recent), frozenset(annotated))


def candidates_for(t: int, max_candidates: int | None, recent: int = MemoryConfig.recent) -> list[int]:
    """Earlier frames a budgeted pool holds at t (see :func:`candidate_pools`)."""
    return candidate_pools(t + 1, max_candidates, recent)[t]


@dataclass
class MinedTarget:
    seq: int
    t: int
    candidates: list[int]
    qualities: list[float]
    labels: list[int]
    annotated: list[int] = field(default_factory=list)  # the candidates that carry the user's (true) label


class SequenceRunner:
    """The frozen propagator over one cached sequence: frame states, a previous-frame run's
    labels and every candidate's propagation to a target."""

    def __init__(
        self, propagator, task, images: np.ndarray, feats: dict[int, torch.Tensor], truth: list, picker=None
    ):
        self.propagator, self.task, self.truth, self.picker = propagator, task, truth, picker
        self.states: list[FrameState] = []
        for i, rgb in enumerate(images):
            image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float() / 255.0
            fs = FrameState(
                index=i, image=image, rgb=rgb, feats={s: f[i : i + 1].float() for s, f in feats.items()}
            )
            propagator.prepare(fs)
            self.states.append(fs)
        self.entries: list[MemoryEntry] = []
        self.marked: dict[int, MemoryEntry] = {}  # the annotated frames' entries, by frame
        self.last_run: tuple[bool, frozenset, list[float]] | None = None  # (by self.propagator, annotated, qualities)

    @torch.inference_mode()
    def run_previous(self, run_propagator=None, annotated: tuple[int, ...] = (0,)) -> list[float]:
        """Propagation from the annotation of frame 0 (and of every other frame in ``annotated``,
        whose label is its truth, as a user's correction is), each frame from the previous one or,
        with a ``picker``, from the guide it picks; fills the memory entries with the labels this
        run gives. Returns the quality of each frame's label.

        ``run_propagator`` (same kind, e.g. the flow-warp TPN) makes the run that gives the guide
        labels; the frozen propagator still does every propagation that is scored."""
        run = run_propagator or self.propagator
        marked = set(annotated) | {0}
        self.entries, self.labels, qualities = [], [], []
        self.marked = {t: self._entry(t, self.truth[t], True) for t in sorted(marked)}  # read from frame 0 on
        pools = candidate_pools(len(self.states), self.picker.max_candidates, annotated=marked) if self.picker else None
        for t in range(len(self.states)):
            if t in marked:
                entry, label = self.marked[t], self.truth[t]
            else:
                guide = t - 1 if pools is None else self.picker.pick(t, pools[t], self.labels, marked, self.task)
                label = self.task.activate(run.predict(self.states[t], self.entries[guide], self.references(t)))
                entry = self._entry(t, label, False)
            self.entries.append(entry)
            self.labels.append(label)
            qualities.append(self._quality(label, t))
        self.last_run = (run is self.propagator, frozenset(marked), qualities)
        return qualities

    def references(self, t: int) -> list[MemoryEntry]:
        """What a propagation to frame t reads besides its guide: every annotated frame, also those
        after t (the loop's ``VideoState.references``)."""
        return list(self.marked.values())

    def _entry(self, t: int, label, annotated: bool) -> MemoryEntry:
        return MemoryEntry(t, self.propagator.memorize(self.states[t], label), annotated=annotated)

    @torch.inference_mode()
    def qualities(self, t: int, candidates: list[int]) -> list[float]:
        """Quality of propagating each candidate's label to frame t."""
        out = []
        for p in candidates:
            pred = self.task.activate(self.propagator.predict(self.states[t], self.entries[p], self.references(t)))
            out.append(self._quality(pred, t))
        return out

    def _quality(self, label: torch.Tensor, t: int) -> float:
        return self.task.quality(label, self.truth[t])


class MSNPicker:
    """Picks each frame's guide in a mining run as a trained MSN would in the loop (its own run,
    not the previous frame's): the best-scored candidate of the frame's pool, the most recent on a
    tie, read with the candidates' annotated flags and, for a label-aware MSN, their labels.
    f32: the sequence's (T, C, h, w) stride-32 maps; f_a: the first frame's, background masked out."""

    def __init__(self, msn, f32: torch.Tensor, f_a: torch.Tensor, max_candidates: int | None = 24):
        self.msn, self.f32, self.f_a, self.max_candidates = msn, f32.float(), f_a.float(), max_candidates

    def pick(self, t: int, candidates: list[int], labels: list[torch.Tensor], marked, task) -> int:
        flags = torch.tensor([float(c in marked) for c in candidates])
        m_p = None
        if self.msn.cfg.label_aware:
            m_p = torch.cat([task.union(labels[c]).float() for c in candidates])
        scores = self.msn(self.f32[candidates], self.f_a, self.f32[t : t + 1], flags, m_p)
        best = scores.max()
        return max(c for c, s in zip(candidates, scores) if s >= best)


def corrected_run(runner: SequenceRunner, corrections: int) -> list[int]:
    """Make the runner's run (previous-frame, or its picker's) after ``corrections`` simulated
    corrections (each time the worst frame so far, ``annotations.next_correction``, annotated with its
    truth and the run made again); returns the annotated frames. The runner's entries and labels are
    that run's."""
    last = runner.last_run
    if not runner.entries or (corrections and (last is None or last[:2] != (True, frozenset({0})))):
        runner.run_previous()  # entries made otherwise are kept (e.g. a flow-warp TPN's run)
    quality = runner.last_run[2] if corrections else None
    marked = [0]
    for _ in range(corrections):
        worst = next_correction(quality, marked)
        if worst is None:
            break
        marked.append(worst)
        quality = runner.run_previous(annotated=tuple(marked))
    return marked


def mine_sequence(
    runner: SequenceRunner, seq_index: int, target_step: int = 2, max_candidates: int = 24, corrections: int = 0
) -> list[MinedTarget]:
    """Mine every ``target_step``-th frame (t >= 2, not annotated) of one sequence, after
    ``corrections`` simulated corrections: each time the worst frame of the run so far
    (``annotations.next_correction``) is annotated with its truth and the run is made again, as a
    user of the tool corrects. The annotated frames stay in every later pool, flagged."""
    marked = corrected_run(runner, corrections)
    n = len(runner.states)
    out = []
    pools = candidate_pools(n, max_candidates, annotated=marked)
    for t in range(2, n, target_step):
        if t in marked:
            continue
        cands = pools[t]
        q = runner.qualities(t, cands)
        flagged = [p for p in cands if p in marked]
        out.append(MinedTarget(seq_index, t, cands, q, label_samples(q).tolist(), flagged))
    return out


def warp_qualities(
    gray: np.ndarray, labels: np.ndarray, t: int, candidates: list[int], task: str
) -> list[float]:
    """Quality of the flow-warped annotation of each candidate on frame t (no network): IoU for
    masks, ab PSNR for colour (``ColorTask.quality``). gray (T, H, W) uint8; labels (T, C, H, W)
    float32."""
    import cv2


    h, w = gray.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for p in candidates:
        flow = flow_from_gray(gray[t], gray[p], (h, w))  # target -> guide
        mx, my = xs + flow[..., 0], ys + flow[..., 1]
        moved = np.stack(
            [cv2.remap(c, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for c in labels[p]]
        )
        if task == "color":
            out.append(ColorTask().quality(torch.from_numpy(moved), torch.from_numpy(labels[t])))
        else:
            out.append(float(db_eval_iou(labels[t][0] > 0.5, moved[0] > 0.5)))
    return out


def mine_warp_sequence(
    gray: np.ndarray,
    labels: np.ndarray,
    seq_index: int,
    task: str,
    target_step: int = 2,
    max_candidates: int = 24,
) -> list[MinedTarget]:
    """Like ``mine_sequence`` with the flow-warped annotation as the propagation (paper Fig. 3b's
    similarity measure): cheap, and free of what a network learnt about its training sequences."""
    out = []
    pools = candidate_pools(len(gray), max_candidates)
    for t in range(2, len(gray), target_step):
        cands = pools[t]
        q = warp_qualities(gray, labels, t, cands, task)
        out.append(MinedTarget(seq_index, t, cands, q, label_samples(q).tolist()))
    return out
