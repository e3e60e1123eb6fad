"""Guide-frame selection strategies, each an object handed to the one propagation loop.

A selector sees a :class:`SelectionContext` (the target index, the candidate
frames in the pool and callables for the scores it may need) and returns a
:class:`Selection`: the chosen guide(s) and every candidate's score. Strategies
(paper Tables 4-6): previous frame, first frame, gap k, feature similarity with
and without the first-frame mask, MSN, top-K ensembles, and the oracle; and the
nearest annotated frame, for runs with masks on several frames.

Indices are positions along the loop's pass (``msn_core.passes``): the frame index
going forward, the distance from the pass's anchor going backward. A selector
reads "earlier", "previous" and "first" the same way in either direction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from msn_core.errors import InputError


@dataclass
class SelectionContext:
    """What a selector may look at for target frame ``t``.

    The callables are lazy: a selector that does not need MSN scores never
    causes them to be computed.
    """

    t: int
    candidates: list[int]  # frame indices in the memory pool, ascending
    annotated: frozenset[int] = frozenset()  # the candidates given by the user (trusted annotations)
    msn_scores: Callable[[list[int]], np.ndarray] | None = None  # -> sigmoid scores in [0, 1]
    similarity: Callable[[list[int], bool], np.ndarray] | None = None  # (cands, masked) -> cosine sims
    propagate: Callable[[int], Any] | None = None  # guide index -> prediction (oracle, audit; cached per frame)
    quality: Callable[[Any], float] | None = None  # prediction -> quality vs ground truth (oracle only)


@dataclass
class Selection:
    guides: list[int]  # chosen guide frames, best first
    scores: dict[int, float] = field(default_factory=dict)  # every candidate's score (higher = better)
    predictions: dict[int, Any] = field(default_factory=dict)  # predictions already computed (oracle)
    quality: dict[int, float] = field(default_factory=dict)  # every candidate's quality vs the truth (audit)

    @property
    def weights(self) -> list[float]:
        """Uniform weights: the K guides' predictions are averaged (paper Table 5)."""
        return [1.0 / len(self.guides)] * len(self.guides)


class Selector:
    """Base class. Subclasses rank the candidates; ``k`` picks the top K."""

    name = "selector"
    needs_msn = False
    needs_ground_truth = False

    def __init__(self, k: int = 1):
        if k < 1:
            raise InputError(f"top-K needs K >= 1, got {k}")
        self.k = k

    def rank(self, ctx: SelectionContext) -> tuple[list[int], dict[int, float]]:
        raise NotImplementedError

    def select(self, ctx: SelectionContext) -> Selection:
        if not ctx.candidates:
            raise InputError(
                f"frame {ctx.t}: the memory pool is empty, nothing to propagate from; "
                f"the first frame (with its mask) must be processed before any other"
            )
        order, scores = self.rank(ctx)
        return Selection(guides=order[: self.k], scores=scores)

    @property
    def label(self) -> str:
        return self.name if self.k == 1 else f"{self.name}-top{self.k}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


class PreviousFrame(Selector):
    """Frame-by-frame propagation: the most recent frame(s) (TPN-K ensembles the last K)."""

    name = "previous"

    def rank(self, ctx):
        order = sorted(ctx.candidates, reverse=True)
        return order, {c: float(c - ctx.t) for c in ctx.candidates}  # recency: -1 for t-1, ...


class FirstFrame(Selector):
    """Always the annotated frame the pass started from (frame 0 in a plain forward run)."""

    name = "first"

    def rank(self, ctx):
        order = sorted(ctx.candidates)
        return order, {c: float(c == order[0]) for c in ctx.candidates}


class Gap(Selector):
    """A fixed time-step gap: guide max(0, t - gap) (paper Table 4). When that frame
    has left a budgeted pool, the closest frame held is used."""

    def __init__(self, gap: int, k: int = 1):
        super().__init__(k)
        if gap < 1:
            raise InputError(f"gap must be >= 1, got {gap}")
        self.gap = gap
        self.name = f"gap{gap}"

    def rank(self, ctx):
        want = max(0, ctx.t - self.gap)
        order = sorted(ctx.candidates, key=lambda c: (abs(c - want), -c))
        return order, {c: -float(abs(c - want)) for c in ctx.candidates}


class NearestAnnotated(Selector):
    """The annotated frame nearest the target (ties: the more recent); with top-K, further
    annotated frames, then propagated frames by distance. Score 1 / (1 + distance) for an
    annotated frame, 0 for the others."""

    name = "nearest-annotated"

    def rank(self, ctx):
        marked = ctx.annotated
        order = sorted(ctx.candidates, key=lambda c: (c not in marked, abs(ctx.t - c), -c))
        return order, {c: 1.0 / (1 + abs(ctx.t - c)) if c in marked else 0.0 for c in ctx.candidates}


class FeatureSimilarity(Selector):
    """Cosine similarity of pooled backbone features (paper's VGG_select); ``masked``
    adds the similarity of the guide's object-masked features (VGG_mask_select)."""

    def __init__(self, masked: bool = False, k: int = 1):
        super().__init__(k)
        self.masked = masked
        self.name = "similarity-masked" if masked else "similarity"

    def rank(self, ctx):
        if ctx.similarity is None:
            raise InputError(
                f"selector {self.label!r} needs feature similarity, which this pipeline does not provide; "
                f"choose one that needs none (previous, first, gapK)"
            )
        sims = np.asarray(ctx.similarity(ctx.candidates, self.masked), dtype=np.float64)
        return _by_score(ctx.candidates, sims)


class MSNSelector(Selector):
    """The Memory Selection Network's score for every candidate; top-K ensembles.

    ``near``: a candidate scored within ``near`` of the best counts as good as the best, and the
    nearest of those (the most recent along the pass) comes first. MSN learns which guides fall in
    the band of the best quality (``training.mining``), not an order inside it, so its small score
    differences there are read as a tie, broken as the previous-frame selector would. Not the
    default: results/evaluation.md, 'Round 18', says what it changed and why."""

    name = "msn"
    needs_msn = True

    def __init__(self, k: int = 1, near: float = 0.0):
        super().__init__(k)
        if not 0.0 <= near <= 1.0:
            raise InputError(f"msn's near margin is a score difference in [0, 1], got {near}")
        self.near = near
        if near:
            self.name = f"msn-near{near:g}"

    def rank(self, ctx):
        if ctx.msn_scores is None:
            raise InputError(
                f"selector {self.label!r} needs an MSN model and this pipeline has none: load one "
                f"(msn_core.load(..., selector='msn')) or choose a selector that needs none "
                f"(previous, first, gapK, similarity, similarity-masked, oracle)"
            )
        order, scores = _by_score(ctx.candidates, np.asarray(ctx.msn_scores(ctx.candidates), dtype=np.float64))
        if self.near:
            band = sorted((c for c in order if scores[c] >= scores[order[0]] - self.near), reverse=True)
            order = band + [c for c in order if c not in band]
        return order, scores


class Oracle(Selector):
    """Upper bound (paper Table 6): propagate from every candidate and keep the one
    whose result is best against the ground truth. Needs the ground truth."""

    name = "oracle"
    needs_ground_truth = True

    def select(self, ctx):
        if ctx.propagate is None or ctx.quality is None:
            raise InputError("the oracle selector needs the ground truth of every frame (ground_truth=...)")
        preds = {c: ctx.propagate(c) for c in ctx.candidates}
        scores = {c: float(ctx.quality(p)) for c, p in preds.items()}
        order = sorted(ctx.candidates, key=lambda c: (-scores[c], -c))
        guides = order[: self.k]
        return Selection(guides=guides, scores=scores, predictions={g: preds[g] for g in guides})


class Audited(Selector):
    """Any selector, plus every candidate's quality against the ground truth (the candidate's
    propagation scored as the oracle scores it): how good the guide it picked really was, and how
    well its scores order the candidates. The picks are the wrapped selector's own; the audit costs
    one propagation per candidate and needs the ground truth."""

    needs_ground_truth = True

    def __init__(self, inner: Selector):
        if isinstance(inner, Audited):
            inner = inner.inner
        super().__init__(inner.k)
        self.inner = inner
        self.name = inner.name
        self.needs_msn = inner.needs_msn

    @property
    def label(self) -> str:
        return self.inner.label

    def select(self, ctx):
        if ctx.propagate is None or ctx.quality is None:
            raise InputError("auditing the selection needs the ground truth of every frame (ground_truth=...)")
        chosen = self.inner.select(ctx)
        preds = {c: ctx.propagate(c) for c in ctx.candidates}  # ctx caches: what the selector propagated is reused
        quality = {c: float(ctx.quality(p)) for c, p in preds.items()}
        return Selection(
            guides=chosen.guides,
            scores=chosen.scores,
            predictions={g: preds[g] for g in chosen.guides},
            quality=quality,
        )


def _by_score(candidates: list[int], scores: np.ndarray) -> tuple[list[int], dict[int, float]]:
    """Order best first; ties go to the more recent frame."""
    s = {c: float(v) for c, v in zip(candidates, scores)}
    return sorted(candidates, key=lambda c: (-s[c], -c)), s


# --------------------------------------------------------------------------- parsing

SELECTOR_HELP = (
    "previous | first | gapK (e.g. gap5) | similarity | similarity-masked | nearest-annotated | msn | "
    "msn-nearD (e.g. msn-near0.1: the nearest guide scored within D of MSN's best) | oracle, "
    "each optionally with -topK (e.g. msn-top3, previous-top5)"
)


def make_selector(spec: str | Selector) -> Selector:
    """Build a selector from a short name such as ``"msn"``, ``"gap10"`` or ``"msn-top3"``."""
    if isinstance(spec, Selector):
        return spec
    m = re.fullmatch(
        r"\s*([a-z]+(?:-masked|-annotated)?)(\d*)(?:-near(\d*\.?\d+))?(?:-top(\d+))?\s*", str(spec).lower()
    )
    if not m:
        raise InputError(f"unknown selector {spec!r}; accepted: {SELECTOR_HELP}")
    base, num, near, k = m.group(1), m.group(2), m.group(3), int(m.group(4) or 1)
    if near is not None and base != "msn":
        raise InputError(f"unknown selector {spec!r}: only msn takes -nearD; accepted: {SELECTOR_HELP}")
    if base == "gap" and num:
        return Gap(int(num), k=k)
    if num:
        raise InputError(f"unknown selector {spec!r}; accepted: {SELECTOR_HELP}")
    table: dict[str, Callable[[], Selector]] = {
        "previous": lambda: PreviousFrame(k),
        "first": lambda: FirstFrame(k),
        "similarity": lambda: FeatureSimilarity(False, k),
        "similarity-masked": lambda: FeatureSimilarity(True, k),
        "nearest-annotated": lambda: NearestAnnotated(k),
        "msn": lambda: MSNSelector(k, near=float(near or 0)),
        "oracle": lambda: Oracle(k),
    }
    if base not in table:
        raise InputError(f"unknown selector {spec!r}; accepted: {SELECTOR_HELP}")
    return table[base]()
