"""How sure is a difference between two selectors? Paired comparisons over sequences.

An evaluation scores each selector on a handful of validation sequences, and "the best heuristic" is
the heuristic with the highest mean on those same sequences. Two things make a small difference in
such a table hard to read:

- the sequences are few, and frames within a sequence are not independent, so the unit of the
  bootstrap is the sequence (resampled with replacement), not the frame;
- picking the best of several heuristics on the very sequences it is scored on favours it (the
  winner's curse: with eight heuristics within half a point of one another, the best of them is
  partly the luckiest). The leave-one-out gap scores each sequence with the heuristic that was best
  on the *other* sequences, the choice a user could have made without seeing that sequence.

``per_seq`` is an evaluation's ``per_sequence`` table: ``{selector: {sequence: {metric: value}}}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from msn_core.errors import InputError


def _matrix(per_seq: dict, selectors: Sequence[str], metric: str) -> tuple[np.ndarray, list[str]]:
    """(len(selectors), n_sequences) values of ``metric``, over the sequences every selector has."""
    missing = [s for s in selectors if s not in per_seq]
    if missing:
        raise InputError(f"the evaluation has no row for selector(s) {', '.join(missing)}; it has {', '.join(per_seq)}")
    seqs = [n for n in per_seq[selectors[0]] if all(n in per_seq[s] for s in selectors)]
    if not seqs:
        raise InputError(f"selectors {', '.join(selectors)} share no sequence")
    return np.array([[per_seq[s][n][metric] for n in seqs] for s in selectors], dtype=np.float64), seqs


def gap_to_best(
    per_seq: dict,
    selector: str,
    rivals: Sequence[str],
    metric: str = "J&F",
    resamples: int = 20000,
    seed: int = 0,
    higher_is_better: bool = True,
) -> dict:
    """``selector`` minus the best of ``rivals`` (best = highest mean ``metric``; lowest where
    ``higher_is_better`` is False, e.g. L1), signed so that > 0 means ``selector`` is better.

    Returns the observed gap, the rival it was measured against (the best on all sequences), the
    per-sequence gaps (wins, ties within 0.05, losses), a 95 % percentile interval of the gap to that
    rival from a paired bootstrap over sequences, the share of resamples where ``selector`` is ahead,
    and the leave-one-sequence-out gap (each sequence scored against the rival best on the others)."""
    rivals = [r for r in rivals if r != selector]
    if not rivals:
        raise InputError("gap_to_best needs at least one rival selector")
    values, seqs = _matrix(per_seq, [selector, *rivals], metric)
    sign = 1.0 if higher_is_better else -1.0
    values = sign * values  # from here on, higher is better
    own, riv = values[0], values[1:]
    n = len(seqs)

    best = int(np.argmax(riv.mean(axis=1)))
    per_sequence = own - riv[best]

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))  # (R, n) resampled sequence indices
    boot = per_sequence[idx].mean(axis=1)  # (R,) the paired gap in each resample

    loo = []
    if n > 1:
        for i in range(n):
            others = np.delete(np.arange(n), i)
            pick = int(np.argmax(riv[:, others].mean(axis=1)))
            loo.append(own[i] - riv[pick, i])

    return {
        "selector": selector,
        "metric": metric,
        "best_rival": rivals[best],
        "sequences": seqs,
        "gap": float(per_sequence.mean()),
        "per_sequence": {s: float(g) for s, g in zip(seqs, per_sequence)},
        "wins": int((per_sequence > 0.05).sum()),
        "ties": int((np.abs(per_sequence) <= 0.05).sum()),
        "losses": int((per_sequence < -0.05).sum()),
        "ci95": (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))),
        "p_ahead": float((boot > 0).mean()),
        "loo_gap": float(np.mean(loo)) if loo else float("nan"),
        "resamples": resamples,
    }


def describe(g: dict) -> str:
    """One line for a Markdown report."""
    lo, hi = g["ci95"]
    return (
        f"{g['selector']} - best heuristic ({g['best_rival']}): {g['gap']:+.2f} {g['metric']} "
        f"(95 % interval {lo:+.2f} to {hi:+.2f}, ahead in {100 * g['p_ahead']:.0f} % of resamples; "
        f"sequences won / tied / lost {g['wins']} / {g['ties']} / {g['losses']}; "
        f"against the heuristic picked on the other sequences {g['loo_gap']:+.2f})"
    )
