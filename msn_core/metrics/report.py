"""DAVIS J and F of whole sequences and of a results folder, as the official
``davis2017-evaluation`` code computes them (``davis2017/evaluation.py``): the semi-supervised
protocol drops the first and the last frame, scores every object of the first ground-truth frame
(missing predicted objects are all background) and averages over objects. :class:`EvalReport` is
what ``msn evaluate-masks`` prints and writes.

Label arrays are ``uint8`` (H, W) object ids: 0 background, 1..K objects, 255 void.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msn_core.errors import InputError
from msn_core.io import VOID_LABEL, atomic_write, list_davis_sequences, read_mask
from msn_core.metrics.measures import db_eval_boundary, db_eval_iou, db_statistics, object_masks

# ------------------------------------------------------------------ sequence level


@dataclass
class SequenceScore:
    """J and F of one sequence. Means / recalls / decays are averaged over objects;
    per-frame arrays are (n_objects, n_frames - 2): the first and last frame are
    not scored."""

    name: str
    n_objects: int
    J_mean: float
    J_recall: float
    J_decay: float
    F_mean: float
    F_recall: float
    F_decay: float
    J_per_object: list[float]
    F_per_object: list[float]
    J_per_frame: np.ndarray
    F_per_frame: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def JF_mean(self) -> float:
        return (self.J_mean + self.F_mean) / 2

    def object_stats(self) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
        """Per object (mean, recall, decay) of J and of F."""
        return [db_statistics(v) for v in self.J_per_frame], [db_statistics(v) for v in self.F_per_frame]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "n_objects": self.n_objects,
            **{k: getattr(self, k) for k in _MEASURES},
            "J&F_mean": self.JF_mean,
            "J_per_object": list(self.J_per_object),
            "F_per_object": list(self.F_per_object),
            "J_per_frame": np.asarray(self.J_per_frame).tolist(),
            "F_per_frame": np.asarray(self.F_per_frame).tolist(),
        }


_MEASURES = ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay")


def evaluate_sequence(
    gt_labels: Sequence[np.ndarray],
    pred_labels: Sequence[np.ndarray],
    n_objects: int | None = None,
    *,
    name: str = "",
    exclude_void: bool = True,
) -> SequenceScore:
    """Score one sequence (all its frames, first and last included; they are dropped
    as in the official semi-supervised protocol).

    ``n_objects`` defaults to the largest object id of the first ground-truth frame.
    ``exclude_void``: ground-truth void pixels (255) are left out of J and F; with
    False they count as background, which is what the official code does."""
    if len(gt_labels) != len(pred_labels):
        raise InputError(
            f"evaluate_sequence{_named(name)}: {len(pred_labels)} predicted frames for "
            f"{len(gt_labels)} ground-truth frames; give one prediction per frame"
        )
    if len(gt_labels) < 3:
        raise InputError(
            f"evaluate_sequence{_named(name)}: {len(gt_labels)} frames; at least 3 are needed "
            "(the first and the last frame are not scored)"
        )
    if n_objects is None:
        n_objects = _objects_in_first_frame(np.asarray(gt_labels[0]), f"ground-truth frame 0{_named(name)}")
    pairs = ((gt_labels[i], pred_labels[i], f"frame {i}{_named(name)}") for i in range(1, len(gt_labels) - 1))
    return _score_pairs(name, pairs, n_objects, exclude_void)


def _score_pairs(name: str, pairs: Iterable, n_objects: int, exclude_void: bool) -> SequenceScore:
    """J and F of (gt, pred, where) frame pairs (the frames to score, in order)."""
    if n_objects < 1:
        raise InputError(f"sequence{_named(name)}: n_objects={n_objects}; expected at least 1 object")
    ids = range(1, n_objects + 1)
    j_frames, f_frames = [], []
    for gt, pred, where in pairs:
        gt, pred = _check_pair(gt, pred, n_objects, where)
        gt_obj, pred_obj = object_masks(gt, ids), object_masks(pred, ids)  # (K, H, W)
        void = np.broadcast_to(gt == VOID_LABEL, gt_obj.shape) if exclude_void else None
        j_frames.append(np.asarray(db_eval_iou(gt_obj, pred_obj, void), dtype=float))
        f_frames.append(db_eval_boundary(gt_obj, pred_obj, void))
    if not j_frames:
        raise InputError(f"sequence{_named(name)}: no frames to score (need at least 3 frames)")
    j_per_frame = np.stack(j_frames, axis=1)  # (K, T)
    f_per_frame = np.stack(f_frames, axis=1)
    j_stats = [db_statistics(v) for v in j_per_frame]
    f_stats = [db_statistics(v) for v in f_per_frame]
    jm, jr, jd = (float(np.mean(col)) for col in zip(*j_stats))
    fm, fr, fd = (float(np.mean(col)) for col in zip(*f_stats))
    return SequenceScore(
        name=name,
        n_objects=n_objects,
        J_mean=jm,
        J_recall=jr,
        J_decay=jd,
        F_mean=fm,
        F_recall=fr,
        F_decay=fd,
        J_per_object=[s[0] for s in j_stats],
        F_per_object=[s[0] for s in f_stats],
        J_per_frame=j_per_frame,
        F_per_frame=f_per_frame,
    )


def _check_pair(gt, pred, n_objects: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.ndim != 2 or pred.ndim != 2:
        raise InputError(
            f"{where}: label arrays must be (H, W) object ids; got ground truth {gt.shape}, "
            f"prediction {pred.shape}"
        )
    if gt.shape != pred.shape:
        raise InputError(
            f"{where}: prediction is {pred.shape[1]}x{pred.shape[0]} but the ground truth is "
            f"{gt.shape[1]}x{gt.shape[0]} (WxH); predict masks at the annotation's size"
        )
    top = int(pred.max()) if pred.size else 0
    if top > n_objects or (pred.size and int(pred.min()) < 0):
        raise InputError(
            f"{where}: prediction has object id {top} but the ground truth has {n_objects} object(s); "
            f"expected ids 0..{n_objects} (0/255 binary masks must be read as 0/1, e.g. with "
            "msn_core.io.read_mask)"
        )
    return gt, pred


def _objects_in_first_frame(gt0: np.ndarray, where: str) -> int:
    """Official rule: the number of objects is the largest id of the first
    ground-truth frame (void excluded)."""
    ids = gt0[gt0 != VOID_LABEL]
    n = int(ids.max()) if ids.size else 0
    if n < 1:
        raise InputError(
            f"{where} has no object (only 0 and void 255); expected ids 1..K "
            "(0/255 binary masks must be read as 0/1, e.g. with msn_core.io.read_mask)"
        )
    return n


def _named(name: str) -> str:
    return f" of '{name}'" if name else ""


# --------------------------------------------------------------------- dataset level


@dataclass
class EvalReport:
    """Per-sequence scores and the global numbers of the official code: each
    measure averaged over all objects of all sequences, J&F = (J mean + F mean) / 2."""

    sequences: list[SequenceScore]
    n_objects: int
    J_mean: float
    J_recall: float
    J_decay: float
    F_mean: float
    F_recall: float
    F_decay: float

    @property
    def JF_mean(self) -> float:
        return (self.J_mean + self.F_mean) / 2

    @classmethod
    def from_sequences(cls, sequences: list[SequenceScore]) -> EvalReport:
        j_all, f_all = [], []
        for s in sequences:
            j, f = s.object_stats()
            j_all += j
            f_all += f
        if not j_all:
            raise InputError("EvalReport: no sequences scored")
        jm, jr, jd = (float(np.mean(c)) for c in zip(*j_all))
        fm, fr, fd = (float(np.mean(c)) for c in zip(*f_all))
        return cls(list(sequences), len(j_all), jm, jr, jd, fm, fr, fd)

    def to_dict(self) -> dict:
        return {
            "global": {
                "n_objects": self.n_objects,
                "J&F_mean": self.JF_mean,
                **{k: getattr(self, k) for k in _MEASURES},
            },
            "sequences": [s.to_dict() for s in self.sequences],
        }

    def write_json(self, path: str | Path) -> Path:
        """Write the report as JSON atomically: a failed write (a full disk) leaves no partial file."""
        path = Path(path)
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=True) + "\n")
        return path

    def table(self) -> str:
        """Fixed-width table: one row per sequence and the global mean, 3 decimals."""
        cols = ("J mean", "J recall", "J decay", "F mean", "F recall", "F decay", "J&F")
        width = max([len("Global mean")] + [len(s.name) for s in self.sequences])
        head = f"{'Sequence':<{width}}  " + "  ".join(f"{c:>8}" for c in cols)

        def row(label: str, obj) -> str:
            vals = [getattr(obj, k) for k in _MEASURES] + [obj.JF_mean]
            return f"{label:<{width}}  " + "  ".join(f"{round(v, 3) + 0.0:>8.3f}" for v in vals)  # no -0.000

        lines = [head, "-" * len(head)]
        lines += [row(s.name, s) for s in self.sequences]
        lines += ["-" * len(head), row("Global mean", self)]
        return "\n".join(lines)


def evaluate_davis(
    pred_dir: str | Path,
    data_dir: str | Path,
    sequences: Sequence[str] | None = None,
    *,
    exclude_void: bool = True,
) -> EvalReport:
    """Score ``pred_dir/<sequence>/<frame>.png`` against ``data_dir/Annotations/480p``.

    ``sequences=None`` scores every sequence folder of ``pred_dir`` that DAVIS has.
    As in the official code the first and last frame need no prediction; every
    other frame's PNG must exist (DAVIS palette or 0/255 binary)."""
    pred_dir, data_dir = Path(pred_dir), Path(data_dir)
    if not pred_dir.is_dir():
        raise InputError(
            f"prediction folder '{pred_dir}' does not exist; expected PRED_DIR/<sequence>/00000.png ..."
        )
    ann_root = data_dir / "Annotations" / "480p"
    if not ann_root.is_dir():
        raise InputError(f"'{data_dir}' has no Annotations/480p/ folder; pass the DAVIS root as data_dir")
    known = set(list_davis_sequences(data_dir)) | {p.name for p in ann_root.iterdir() if p.is_dir()}
    if sequences is None:
        names = sorted(p.name for p in pred_dir.iterdir() if p.is_dir() and p.name in known)
        if not names:
            raise InputError(
                f"prediction folder '{pred_dir}' has no DAVIS sequence folder; expected folders named like "
                f"{', '.join(sorted(known)[:5])}, ... holding 00000.png ..."
            )
    else:
        names = list(sequences)
        if not names:
            raise InputError("sequences: empty list; give at least one sequence name or None for all")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InputError(
                f"sequences {unknown} are not in '{data_dir}'; available: {', '.join(sorted(known))}"
            )
    return EvalReport.from_sequences(
        [_evaluate_folder(pred_dir, ann_root / n, n, exclude_void) for n in names]
    )


def _evaluate_folder(pred_dir: Path, ann_dir: Path, name: str, exclude_void: bool) -> SequenceScore:
    gt_paths = sorted(p for p in ann_dir.glob("*.png") if not p.name.startswith("."))
    if len(gt_paths) < 3:
        raise InputError(
            f"'{ann_dir}' has {len(gt_paths)} annotation PNGs; at least 3 are needed "
            "(the first and last frame are not scored)"
        )
    seq_dir = pred_dir / name
    if not seq_dir.is_dir():
        raise InputError(f"prediction folder '{seq_dir}' for sequence '{name}' does not exist")
    n_objects = _objects_in_first_frame(read_mask(gt_paths[0]), f"'{gt_paths[0]}'")

    def pairs():
        for gt_path in gt_paths[1:-1]:
            pred_path = seq_dir / gt_path.name
            if not pred_path.is_file():
                raise InputError(
                    f"missing prediction '{pred_path}' for frame {gt_path.stem} of '{name}'; "
                    "every frame except the first and last needs a PNG mask"
                )
            yield read_mask(gt_path), read_mask(pred_path), f"'{pred_path}'"

    return _score_pairs(name, pairs(), n_objects, exclude_void)

