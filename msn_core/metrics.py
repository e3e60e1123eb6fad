"""DAVIS region similarity J and boundary accuracy F, PSNR and L1 for colours.

J, F and their statistics follow the official ``davis2017-evaluation`` code
(``davis2017/metrics.py``, ``utils.py``, ``evaluation.py``) step by step, so the
numbers agree with it: J is the IoU per frame (an empty union counts 1); F is
the F-measure of 1-pixel boundary maps matched within ``ceil(0.008 * image
diagonal)`` pixels (a disk); the semi-supervised protocol drops the first and
the last frame, scores every object of the first ground-truth frame (missing
predicted objects are all background) and averages over objects.

Label arrays are ``uint8`` (H, W) object ids: 0 background, 1..K objects, 255 void.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from msn_core.errors import InputError
from msn_core.io import atomic_write, list_davis_sequences, read_mask

VOID_LABEL = 255
BOUND_TH = 0.008  # boundary tolerance, fraction of the image diagonal

__all__ = [
    "EvalReport",
    "SequenceScore",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "evaluate_colour",
    "evaluate_davis",
    "evaluate_sequence",
    "mean_abs_error",
    "psnr",
]


# ------------------------------------------------------------------------------- J


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{name_a} {a.shape} and {name_b} {b.shape} must have the same shape")


def db_eval_iou(annotation, segmentation, void_pixels=None) -> np.ndarray | float:
    """Jaccard index over the last two axes: (..., H, W) masks -> (...) IoU.

    Non-zero = foreground; ``void_pixels`` are removed from both; an empty
    union scores 1. A single (H, W) pair gives a float."""
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    _same_shape(annotation, segmentation, "annotation", "segmentation")
    annotation, segmentation = annotation.astype(bool), segmentation.astype(bool)
    inters = segmentation & annotation
    union = segmentation | annotation
    if void_pixels is not None:
        void_pixels = np.asarray(void_pixels)
        _same_shape(annotation, void_pixels, "annotation", "void_pixels")
        keep = ~void_pixels.astype(bool)
        inters &= keep
        union &= keep
    inters = inters.sum(axis=(-2, -1))
    union = union.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inters / union
    if np.ndim(j) == 0:
        return 1.0 if union == 0 else float(j)
    j[union == 0] = 1
    return j


# ------------------------------------------------------------------------------- F


def db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th=BOUND_TH) -> np.ndarray | float:
    """Boundary F-measure per frame: (H, W) -> float, (N, H, W) -> (N,) array.

    ``bound_th`` < 1 is a fraction of the frame diagonal, >= 1 a pixel count."""
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    _same_shape(annotation, segmentation, "annotation", "segmentation")
    if void_pixels is not None:
        void_pixels = np.asarray(void_pixels)
        _same_shape(annotation, void_pixels, "annotation", "void_pixels")
    if annotation.ndim not in (2, 3):
        raise InputError(
            f"db_eval_boundary: masks have {annotation.ndim} dimensions; expected (H, W) or (N, H, W)"
        )
    f = _f_measure(segmentation, annotation, void_pixels, bound_th)
    return float(f) if annotation.ndim == 2 else f


def _f_measure(foreground_mask, gt_mask, void_pixels, bound_th) -> np.ndarray:
    """Official ``f_measure`` on (..., H, W) stacks at once (boundaries, disk
    dilation, precision / recall with the empty-boundary rules)."""
    fg = foreground_mask.astype(bool)
    gt = gt_mask.astype(bool)
    if void_pixels is not None:
        keep = ~void_pixels.astype(bool)
        fg, gt = fg & keep, gt & keep
    frame_hw = fg.shape[-2:]
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(frame_hw))
    kernel = _disk(bound_pix)

    fg_boundary = _seg2bmap(fg)
    gt_boundary = _seg2bmap(gt)
    fg_dil = _dilate(fg_boundary, kernel)
    gt_dil = _dilate(gt_boundary, kernel)

    n_fg = fg_boundary.sum(axis=(-2, -1))
    n_gt = gt_boundary.sum(axis=(-2, -1))
    fg_match = (fg_boundary & gt_dil).sum(axis=(-2, -1))
    gt_match = (gt_boundary & fg_dil).sum(axis=(-2, -1))

    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_fg > 0, fg_match / np.maximum(n_fg, 1).astype(float), 1.0)
        recall = np.where(n_gt > 0, gt_match / np.maximum(n_gt, 1).astype(float), 1.0)
        # one boundary empty: precision 1 / recall 0 (no prediction) or 0 / 1 (no truth)
        precision = np.where((n_fg > 0) & (n_gt == 0), 0.0, precision)
        recall = np.where((n_fg == 0) & (n_gt > 0), 0.0, recall)
        denom = precision + recall
        f = np.where(denom == 0, 0.0, 2 * precision * recall / denom)
    return np.asarray(f, dtype=float)


def _seg2bmap(seg, width=None, height=None) -> np.ndarray:
    """1-pixel boundary map of (..., H, W) masks: a pixel is on the boundary when
    it differs from its right, bottom or bottom-right neighbour (last row: right
    only; last column: bottom only; the corner pixel never). Only the same-size
    output of the official code is supported."""
    seg = np.asarray(seg).astype(bool)
    h, w = seg.shape[-2:]
    if (width is not None and width != w) or (height is not None and height != h):
        raise InputError(
            f"_seg2bmap: a {width}x{height} boundary map of a {w}x{h} mask is not supported; "
            "only the mask's own size is"
        )
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[..., :, :-1] = seg[..., :, 1:]
    s[..., :-1, :] = seg[..., 1:, :]
    se[..., :-1, :-1] = seg[..., 1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[..., -1, :] = seg[..., -1, :] ^ e[..., -1, :]
    b[..., :, -1] = seg[..., :, -1] ^ s[..., :, -1]
    b[..., -1, -1] = False
    return b


def _disk(radius) -> np.ndarray:
    """skimage ``morphology.disk``: ``x**2 + y**2 <= r**2`` on ``arange(-r, r + 1)``."""
    grid = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(grid, grid)
    return (x**2 + y**2 <= radius**2).astype(np.uint8)


def _dilate(masks: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.dilate`` of every (H, W) slice of a (..., H, W) bool stack."""
    flat = masks.reshape(-1, *masks.shape[-2:]).astype(np.uint8)
    out = np.empty(flat.shape, dtype=bool)
    for i, m in enumerate(flat):
        out[i] = cv2.dilate(m, kernel) > 0
    return out.reshape(masks.shape)


# ------------------------------------------------------------------------ statistics


def db_statistics(per_frame_values) -> tuple[float, float, float]:
    """(mean, recall, decay) of per-frame scores as the official ``db_statistics``:
    mean = nanmean; recall = fraction of frames > 0.5; decay = mean of the first
    quarter minus mean of the last (4 bins ``round(linspace(1, n, 5)) - 1``, each
    bin including its right edge)."""
    values = np.asarray(per_frame_values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise InputError(f"db_statistics: expected a non-empty 1-D list of scores, got shape {values.shape}")
    n_bins = 4
    # official: .astype(np.uint8), identical for up to 256 frames (it wraps beyond)
    ids = (np.round(np.linspace(1, len(values), n_bins + 1) + 1e-10) - 1).astype(np.int64)
    bins = [values[ids[i] : ids[i + 1] + 1] for i in range(n_bins)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
        decay = np.nanmean(bins[0]) - np.nanmean(bins[-1])
    return float(mean), float(recall), float(decay)


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
    ids = np.arange(1, n_objects + 1, dtype=np.int64)[:, None, None]
    j_frames, f_frames = [], []
    for gt, pred, where in pairs:
        gt, pred = _check_pair(gt, pred, n_objects, where)
        gt_obj = gt[None] == ids  # (K, H, W); void 255 is never an object id
        pred_obj = pred[None] == ids
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


# ----------------------------------------------------------------------- colour


def _rgb_pair(pred_rgb, gt_rgb, what: str) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred_rgb), np.asarray(gt_rgb)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise InputError(
            f"{what}: prediction {pred.shape} and ground truth {gt.shape} must be the same (H, W, 3) RGB size"
        )
    for arr, label in ((pred, "prediction"), (gt, "ground truth")):
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise InputError(f"{what}: {label} has dtype {arr.dtype}; expected RGB values 0-255")
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255):
            raise InputError(f"{what}: {label} has values outside 0-255; expected RGB on the 0-255 scale")
    return pred.astype(np.float64), gt.astype(np.float64)


def psnr(pred_rgb, gt_rgb) -> float:
    """PSNR in dB of RGB images on the 0-255 scale: 20*log10(255 / RMSE); inf if identical."""
    pred, gt = _rgb_pair(pred_rgb, gt_rgb, "psnr")
    mse = float(np.mean((pred - gt) ** 2))
    return math.inf if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def mean_abs_error(pred_rgb, gt_rgb) -> float:
    """Mean |pred - gt| over pixels and channels, 0-255 scale (the paper's L1)."""
    pred, gt = _rgb_pair(pred_rgb, gt_rgb, "mean_abs_error")
    return float(np.mean(np.abs(pred - gt)))


def evaluate_colour(pred_frames: Iterable, gt_frames: Iterable, first_n: int = 25) -> dict:
    """VPN protocol: PSNR and L1 of frames 1..first_n-1 (frame 0 is the given colour
    frame). Returns the means and per-frame lists: ``{"psnr", "l1", "frames",
    "psnr_per_frame", "l1_per_frame"}``. Frames may be generators (read lazily)."""
    if not isinstance(first_n, int) or first_n < 2:
        raise InputError(f"evaluate_colour: first_n={first_n!r}; expected an integer >= 2")
    gt_it, pred_it = iter(gt_frames), iter(pred_frames)
    frames, psnrs, l1s = [], [], []
    for i in range(first_n):
        gt = next(gt_it, None)
        if gt is None:
            break
        pred = next(pred_it, None)
        if pred is None:
            raise InputError(
                f"evaluate_colour: the prediction has {i} frames but the ground truth has more; "
                f"give a prediction for each of the first {first_n} frames"
            )
        if i == 0:
            continue
        frames.append(i)
        psnrs.append(psnr(pred, gt))
        l1s.append(mean_abs_error(pred, gt))
    if not frames:
        raise InputError("evaluate_colour: fewer than 2 frames; frame 0 is the given one, nothing to score")
    return {
        "psnr": float(np.mean(psnrs)),
        "l1": float(np.mean(l1s)),
        "frames": frames,
        "psnr_per_frame": psnrs,
        "l1_per_frame": l1s,
    }


# ------------------------------------------------------------------ selection audit


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
