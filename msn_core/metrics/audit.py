"""How good a selector's guides were: an audited run (every candidate scored against the ground
truth, ``FrameResult.quality``) summed up, and the rank correlation of scores with qualities."""

from __future__ import annotations

import numpy as np

from msn_core.errors import InputError


def rank_correlation(a, b) -> float:
    """Spearman's rho of two equal-length sequences (ties share their mean rank); NaN when either
    is constant or has fewer than 3 values."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InputError(f"rank_correlation: two 1-d sequences of one length, got {a.shape} and {b.shape}")
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")

    def ranks(x: np.ndarray) -> np.ndarray:
        r = np.empty(len(x))
        r[np.argsort(x, kind="mergesort")] = np.arange(len(x))
        for v in np.unique(x):
            same = x == v
            if same.sum() > 1:
                r[same] = r[same].mean()
        return r

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def selection_audit(results) -> dict:
    """How good the guides of an audited run were (``Pipeline.propagate(..., audit=True)``), from
    every frame's ``quality`` (each candidate's quality against the ground truth: mean IoU over
    objects for masks) and the selector's ``scores``. Means over the frames that have candidates:

    - ``chosen``, ``best``, ``random``: the quality of the guide used (the first, for top-K), of the
      best candidate and of a candidate drawn at random (the mean over candidates);
    - ``chosen_is_best``: the share of frames whose guide was the best candidate;
    - ``rank_correlation``: Spearman's rho between the selector's scores and the qualities (frames
      with at least 3 candidates whose scores and qualities both vary; NaN when there are none).
    """
    rows = [r for r in results if getattr(r, "quality", None) and r.guides]
    if not rows:
        raise InputError("selection_audit: no frame has candidate qualities; run with audit=True and ground_truth")
    chosen, best, rand, top, rho = [], [], [], [], []
    for r in rows:
        cands = list(r.quality)
        q = np.array([r.quality[c] for c in cands])
        chosen.append(r.quality[r.guides[0]])
        best.append(q.max())
        rand.append(q.mean())
        top.append(chosen[-1] >= best[-1] - 1e-9)
        if all(c in r.scores for c in cands):
            rho.append(rank_correlation([r.scores[c] for c in cands], q))
    finite = [x for x in rho if np.isfinite(x)]
    return {
        "frames": len(rows),
        "chosen": float(np.mean(chosen)),
        "best": float(np.mean(best)),
        "random": float(np.mean(rand)),
        "chosen_is_best": float(np.mean(top)),
        "rank_correlation": float(np.mean(finite)) if finite else float("nan"),
    }
