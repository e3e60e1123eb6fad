"""MSN's training samples (stage 2): every play mined with the frozen propagator (paper §3.3),
cached as JSON next to the features, and balanced batches of MSN's inputs.

MSN's inputs are the frozen backbone's stride-32 maps of the candidate p, of the first frame with
its background masked out (a), and of the target t, exactly as the propagation loop feeds it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from msn_core.errors import InputError
from msn_core.tasks import ColorTask, MaskTask
from msn_core.training.data import SequenceData, to_tensor_images
from msn_core.training.frozen import WARP
from msn_core.training.mining import (
    NEGATIVE,
    POSITIVE,
    MinedTarget,
    SequenceRunner,
    corrected_run,
    label_samples,
    mine_sequence,
    mine_warp_sequence,
)


def _truth(seq: SequenceData, task_name: str) -> list[Tensor]:
    if task_name == "color":
        return [torch.from_numpy(a)[None] for a in seq.ab()]  # (1, 2, H, W)
    return [torch.from_numpy(m).float()[None, None] for m in seq.masks]  # (1, 1, H, W)


def _counts(mined: list[MinedTarget]) -> tuple[int, int]:
    return sum(m.labels.count(POSITIVE) for m in mined), sum(m.labels.count(NEGATIVE) for m in mined)


def mine(
    kind: str,
    seqs: list[SequenceData],
    feats: list[dict[int, Tensor]],
    propagator,
    cache_path: str | Path | None = None,
    target_step: int = 2,
    max_candidates: int = 24,
    log=None,
    corrections: int = 0,
    pickers: list | None = None,
    masks_path: str | Path | None = None,
    stride: int = 32,
) -> list[MinedTarget]:
    """Mine (or read back from ``cache_path``) the samples of every sequence. ``propagator``: one
    frozen propagator, ``"warp"``, or a dict sequence name -> propagator (cross-fitting); the
    candidates carry the labels of the propagator's own run (previous-frame, or as ``pickers`` pick). ``corrections``: the
    i-th sequence is mined after i mod (corrections + 1) simulated corrections
    (``mining.mine_sequence``), so pools with and without the user's later frames are mixed.
    ``pickers`` (one ``mining.MSNPicker`` per play): the runs pick their guides as that MSN does.
    ``masks_path``: also keep the labels of those runs as :func:`guide_masks` reads them (at the
    feature ``stride``), written there, so a label-aware MSN need not make the runs again."""

    if cache_path is not None and Path(cache_path).is_file():
        data = json.loads(Path(cache_path).read_text())
        return [MinedTarget(**d) for d in data["targets"]]
    task = ColorTask() if kind == "tpn-color" else MaskTask([1])
    out: list[MinedTarget] = []
    run_quality, labels_of = {}, {}
    for i, (seq, f) in enumerate(zip(seqs, feats)):
        if propagator == WARP and corrections:
            raise InputError("mining with corrections needs a network; the flow warp has no run to correct")
        if propagator == WARP:  # no network: the flow-warped annotation of each candidate
            import cv2

            gray = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in seq.frames])
            labels = seq.ab() if task.name == "color" else seq.masks[:, None].astype(np.float32)
            mined = mine_warp_sequence(gray, labels, i, task.name, target_step, max_candidates)
            out.extend(mined)
            if log is not None:
                n_pos, n_neg = _counts(mined)
                log(f"mined {seq.name} (flow warp of the annotation): {n_pos} pos, {n_neg} neg")
            continue
        images = seq.gray if kind == "tpn-color" else seq.frames
        net = propagator[seq.name] if isinstance(propagator, dict) else propagator
        runner = SequenceRunner(net, task, images, f, _truth(seq, task.name), pickers[i] if pickers else None)
        q = runner.run_previous()
        run_quality[seq.name] = float(np.mean(q[1:]))
        n_corr = i % (corrections + 1)
        mined = mine_sequence(runner, i, target_step, max_candidates, n_corr)
        out.extend(mined)
        if masks_path is not None and task.name == "mask":  # the labels of the run just mined
            labels_of[seq.name] = _run_labels(runner, task, f[stride].shape[-2:])
        if log is not None:
            n_pos, n_neg = _counts(mined)
            log(
                f"mined {seq.name}: {'MSN' if pickers else 'previous'}-run quality {run_quality[seq.name]:.3f}, "
                f"{n_corr} corrections, "
                f"{n_pos} pos, {n_neg} neg"
            )
    if cache_path is not None:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "kind": kind,
            "sequences": [s.name for s in seqs],
            "previous_run_quality": run_quality,
            "targets": [dataclasses.asdict(m) for m in out],
        }
        Path(cache_path).write_text(json.dumps(payload))
    if labels_of and len(labels_of) == len(seqs):
        _save_labels(masks_path, labels_of)
    return out


def _run_labels(runner: SequenceRunner, task: MaskTask, size) -> Tensor:
    """The labels of the runner's run as object probabilities, (T, 1, h, w) area-resized to ``size``."""
    return torch.cat([F.interpolate(task.union(lab).float(), size=size, mode="area") for lab in runner.labels]).clone()


def _save_labels(path: str | Path, labels_of: dict[str, Tensor]) -> None:
    from safetensors.torch import save_file

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({name: m.contiguous() for name, m in labels_of.items()}, str(path))


@torch.no_grad()  # not inference mode: training reads these tensors
def guide_masks(
    seqs: list[SequenceData],
    feats: list[dict[int, Tensor]],
    propagator,
    cache_path: str | Path | None = None,
    corrections: int = 0,
    stride: int = 32,
    log=None,
    pickers: list | None = None,
) -> list[Tensor]:
    """What a label-aware MSN reads of every memory frame of a mask play: its label in the run
    :func:`mine` made of that play (the same run after i mod (corrections + 1) simulated corrections;
    the truth for the annotated frames), as (T, 1, h, w) object probabilities at the
    feature stride, one tensor per play. Read back from / written to ``cache_path`` (safetensors,
    keyed by play name; :func:`mine` writes it as it goes), else the runs are made again."""
    from safetensors.torch import load_file

    if propagator == WARP:
        raise InputError("a label-aware MSN reads the labels of a network's run; the flow warp makes none")
    if cache_path is not None and Path(cache_path).is_file():
        cached = load_file(str(cache_path))
        if all(s.name in cached for s in seqs):
            return [cached[s.name] for s in seqs]
    task, out = MaskTask([1]), []
    for i, (seq, f) in enumerate(zip(seqs, feats)):
        net = propagator[seq.name] if isinstance(propagator, dict) else propagator
        runner = SequenceRunner(net, task, seq.frames, f, _truth(seq, task.name), pickers[i] if pickers else None)
        corrected_run(runner, i % (corrections + 1))
        out.append(_run_labels(runner, task, f[stride].shape[-2:]))
        if log is not None:
            log(f"labels of {seq.name}'s run read ({i + 1}/{len(seqs)})")
    if cache_path is not None:
        _save_labels(cache_path, {s.name: m for s, m in zip(seqs, out)})
    return out


@torch.inference_mode()
def first_frame_features(backbone, seq: SequenceData, kind: str) -> Tensor:
    """Stride-32 map of the first frame with its background masked out (colour: the whole grey frame)."""
    if kind == "tpn-color":
        img = to_tensor_images(seq.gray[:1])
    else:
        img = to_tensor_images(seq.frames[:1]) * torch.from_numpy(seq.masks[:1]).float()[:, None]
    return backbone(img)[32].float()  # (1, C, h, w)


class PairSet:
    """Balanced batches of mined (p, a, t) stride-32 triples with the candidate's annotated flag
    and the label; ``masks`` (``guide_masks``): the candidates' own labels too."""

    def __init__(
        self,
        targets: list[MinedTarget],
        f32: list[Tensor],
        f_a: list[Tensor],
        relative: bool = False,
        masks: list[Tensor] | None = None,
    ):
        self.targets, self.f32, self.f_a, self.masks = targets, f32, f_a, masks
        rows = [
            (m.seq, m.t, p, int(lab), p in m.annotated)
            for m in targets
            for p, lab in zip(m.candidates, label_samples(m.qualities, relative=relative))
            if lab >= 0
        ]
        self.pos = [r for r in rows if r[3] == POSITIVE]
        self.neg = [r for r in rows if r[3] == NEGATIVE]
        if not self.pos or not self.neg:
            raise InputError(
                f"mining gave {len(self.pos)} positives and {len(self.neg)} negatives; need both"
            )

    def draw(self, batch: int, rng: np.random.Generator) -> tuple[list[tuple], Tensor]:
        """Rows (seq, t, p, label, annotated), half positives and half negatives, and whether each is
        flipped (batch,), drawn at random."""
        half = batch // 2
        rows = [self.pos[i] for i in rng.integers(len(self.pos), size=half)]
        rows += [self.neg[i] for i in rng.integers(len(self.neg), size=batch - half)]
        return rows, torch.from_numpy(rng.random(batch) < 0.5)

    def batch(self, rows: list[tuple], flip: Tensor) -> tuple[Tensor, ...]:
        """(f_p, f_a, f_t, annotated, labels, m_p) of ``rows`` (seq, t, p, label, annotated), the rows
        where ``flip`` is set mirrored; ``annotated`` (N,) flags the candidates that carry the user's
        label; m_p (N, 1, h, w): their own labels (None without ``masks``)."""
        f_p = torch.stack([self.f32[r[0]][r[2]] for r in rows]).float()
        f_t = torch.stack([self.f32[r[0]][r[1]] for r in rows]).float()
        f_a = torch.cat([self.f_a[r[0]] for r in rows])
        labels = torch.tensor([r[3] for r in rows], dtype=torch.float32)
        annotated = torch.tensor([float(r[4]) for r in rows])
        m_p = None if self.masks is None else torch.stack([self.masks[r[0]][r[2]] for r in rows])
        f_p, f_a, f_t = (torch.where(flip[:, None, None, None], f.flip(-1), f) for f in (f_p, f_a, f_t))
        if m_p is not None:
            m_p = torch.where(flip[:, None, None, None], m_p.flip(-1), m_p)
        return f_p, f_a, f_t, annotated, labels, m_p

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[Tensor, ...]:
        """A random balanced batch (:meth:`draw`, then :meth:`batch`)."""
        return self.batch(*self.draw(batch, rng))
