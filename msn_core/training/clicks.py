"""Training ClickNet (``msn_core.clicks``) on exact masks: the training sequences' frames and the
synthetic world's clips (every object of a world clip has an exact visible mask), their backbone
features cached as for stage 1.

A sample is one frame and one of its objects. The first click is a positive one well inside the
object; then, as a user goes on:
- with ``SHOWN_P`` the object's mask so far is shown: a drifted copy of the truth (eroded, dilated,
  shifted, blotched) with a click at the centre of its largest error (``clicks.next_click``);
- in a share of the batches the net's own prediction is the mask so far, refined click by click
  for one or two rounds without gradients (as RITM trains), then learnt from;
- in ``zoom_share`` of the batches the net learns from the zoomed view it reads from the second click
  on (``clicks.zoom_view``), cut from the frame at its own size around the mask so far, as
  :class:`~msn_core.clicks.ClickSegmenter` cuts it (the view's features are computed as it goes).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from msn_core.clicks import ZOOM, ClickSegmenter, net_guidance, next_click, zoom_box, zoom_view
from msn_core.config import BackboneConfig, ClickConfig
from msn_core.errors import InputError
from msn_core.geometry import FrameGeometry
from msn_core.hub import load_into, load_named, save_weights
from msn_core.models.backbone import build_backbone
from msn_core.models.clicks import ClickNet, click_maps
from msn_core.training.augment import perturb_mask
from msn_core.training.data import TRAIN_MAX_SIDE, SequenceData, cached_features
from msn_core.training.losses import mask_loss
from msn_core.training.stage1 import load_training_sequences, weight_config, with_world
from msn_core.training.trainer import TrainConfig, setup_distributed, train_loop

SHOWN_P = 0.4  # samples whose mask so far is a drifted copy of the truth
SELF_P = 0.4  # batches refined by the net's own predictions first
ZOOM_ROUNDS = 2  # at most this many clicks refined by the net itself before a zoomed view is learnt from
MIN_AREA = 0.002  # of the frame: smaller objects are not drawn as targets


def interior_click(region: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """A point well inside ``region`` (bool): drawn among the pixels at least half as deep as the
    deepest, as a user clicks somewhere inside the object rather than at its exact centre."""
    dist = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    ys, xs = np.nonzero(dist >= 0.5 * dist.max())
    i = int(rng.integers(len(xs)))
    return int(xs[i]), int(ys[i])


def draw_target(seqs: list[SequenceData], p: np.ndarray, rng: np.random.Generator) -> tuple[int, int, np.ndarray]:
    """(sequence, frame, bool mask) of one object at least ``MIN_AREA`` large, the sequence drawn by ``p``."""
    for _ in range(100):
        k = int(rng.choice(len(seqs), p=p))
        t = int(rng.integers(len(seqs[k])))
        labels = seqs[k].masks[t]
        ids = [i for i in np.unique(labels) if i and (labels == i).mean() >= MIN_AREA]
        if ids:
            return k, t, labels == ids[int(rng.integers(len(ids)))]
    raise InputError("ClickSampler: no frame with an object large enough to click on")


class ClickSampler:
    """Random (frame, object, clicks) samples of cached sequences, drawn by ``weights``."""

    def __init__(self, seqs: list[SequenceData], feats: list[dict[int, Tensor]], weights: list[float] | None = None):
        if not seqs or len(seqs) != len(feats):
            raise InputError(f"ClickSampler: need one feature dict per sequence, got {len(seqs)} and {len(feats)}")
        self.seqs, self.feats = seqs, feats
        p = np.array(weights if weights is not None else [len(s) for s in seqs], np.float64)
        self.p = p / p.sum()

    def _target(self, rng: np.random.Generator) -> tuple[int, int, np.ndarray]:
        return draw_target(self.seqs, self.p, rng)

    def sample(self, batch: int, rng: np.random.Generator) -> dict:
        feats, truths, pos, neg, shown = [], [], [], [], []
        for _ in range(batch):
            k, t, truth = self._target(rng)
            p, n = [interior_click(truth, rng)], []
            current = np.zeros_like(truth)
            if rng.random() < SHOWN_P:
                current = perturb_mask(truth.astype(np.uint8), rng) > 0
                x, y, positive = next_click(current, truth)
                (p if positive else n).append((x, y))
            flip = rng.random() < 0.5
            f = {s: v[t].float() for s, v in self.feats[k].items()}
            if flip:
                w = truth.shape[1]
                f = {s: torch.flip(v, dims=[-1]) for s, v in f.items()}
                truth, current = truth[:, ::-1].copy(), current[:, ::-1].copy()
                p, n = [(w - 1 - x, y) for x, y in p], [(w - 1 - x, y) for x, y in n]
            feats.append(f)
            truths.append(truth)
            pos.append(p)
            neg.append(n)
            shown.append(current)
        stacked = {s: torch.stack([f[s] for f in feats]) for s in feats[0]}
        return {"feats": stacked, "truth": truths, "pos": pos, "neg": neg, "current": shown}


def _guidance(b: dict) -> Tensor:
    size = b["truth"][0].shape
    return torch.from_numpy(np.stack([click_maps(size, p, n, c) for p, n, c in zip(b["pos"], b["neg"], b["current"])]))


def zoom_loss(net: ClickNet, backbone, seqs: list[SequenceData], p: np.ndarray, batch: int, rng) -> Tensor:
    """The mean loss of ``batch`` zoomed views of full-size frames of ``seqs``: the mask so far a drifted
    copy of the truth with a click at its largest error, then up to ``ZOOM_ROUNDS`` clicks refined by
    the net as the user's tool refines them; the view cut around it as the tool cuts it."""
    side = net.cfg.max_side
    seg = ClickSegmenter(backbone, net)
    losses = []
    for _ in range(batch):
        k, t, truth = draw_target(seqs, p, rng)
        h, w = seqs[k].proc
        frame, truth = seqs[k].frames[t][:h, :w], truth[:h, :w]
        if rng.random() < 0.5:
            frame, truth = frame[:, ::-1], truth[:, ::-1]
        frame, truth = np.ascontiguousarray(frame), np.ascontiguousarray(truth)
        pos, neg = [interior_click(truth, rng)], []
        current = perturb_mask(truth.astype(np.uint8), rng) > 0
        rounds = int(rng.integers(1, ZOOM_ROUNDS + 1)) if rng.random() < SELF_P else 0
        for r in range(rounds + 1):
            if r:
                current = seg.object_mask(frame, pos, neg, current)
            x, y, positive = next_click(current, truth)
            (pos if positive else neg).append((x, y))
        roi = zoom_box(current, pos, ZOOM, side) or (0, 0, w, h)
        view, vpos, vneg, inner = zoom_view(frame, roi, side, pos, neg, current)
        vtruth = zoom_view(frame, roi, side, [], [], truth)[3]
        geometry = FrameGeometry(view.shape[:2], side)
        image = torch.from_numpy(np.ascontiguousarray(geometry.fit(view).transpose(2, 0, 1)))[None].float() / 255.0
        with torch.no_grad():
            feats = backbone(image)
        maps = torch.from_numpy(net_guidance(geometry, view.shape[:2], vpos, vneg, inner))[None]
        vh, vw = geometry.proc
        target = torch.from_numpy(geometry.fit_labels(vtruth)[:vh, :vw].astype(np.float32))[None, None]
        losses.append(mask_loss(net(feats, maps)[:, :, :vh, :vw], target))
    net.train()
    return torch.stack(losses).mean()


def make_click_loss(sampler: ClickSampler, batch: int, zoom: tuple | None = None, zoom_share: float = 0.0):
    """loss_fn(model, rng) for ``train_loop``; ``zoom``: (backbone, full-size sequences, their draw
    weights) for :func:`zoom_loss` in ``zoom_share`` of the batches."""

    def loss_fn(model: ClickNet, rng: np.random.Generator) -> Tensor:
        if zoom is not None and rng.random() < zoom_share:
            return zoom_loss(getattr(model, "module", model), zoom[0], zoom[1], zoom[2], batch, rng)
        b = sampler.sample(batch, rng)
        if rng.random() < SELF_P:
            with torch.no_grad():
                for _ in range(int(rng.integers(1, 3))):
                    pred = (model(b["feats"], _guidance(b))[:, 0] > 0).numpy()
                    for i, truth in enumerate(b["truth"]):
                        x, y, positive = next_click(pred[i], truth)
                        (b["pos"] if positive else b["neg"])[i].append((x, y))
                        b["current"][i] = pred[i]
        target = torch.from_numpy(np.stack(b["truth"]).astype(np.float32))[:, None]
        return mask_loss(model(b["feats"], _guidance(b)), target)

    return loss_fn


def train_clicks(
    data_dir: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    *,
    cache_dir: str | Path,
    sequences: tuple[str, ...] | list[str],
    width: int = 32,
    max_side: int = TRAIN_MAX_SIDE,
    max_frames: int | None = None,
    ckpt_path: str | Path | None = None,
    log=None,
    world: int = 0,
    world_share: float = 0.7,
    backbone_cfg: BackboneConfig | None = None,
    init: str | Path | None = None,
    zoom_share: float = 0.0,
    zoom_world: int = 100,
) -> dict:
    """Train ClickNet and write its ``click`` weights to ``out``; returns the loop's summary plus
    ``sha256``. ``world``: clips of the synthetic world beside the real sequences (``world_share``
    of the samples). ``init``: click weights to start from. ``zoom_share``: batches of zoomed views,
    cut from the real sequences and ``zoom_world`` world clips at their own size."""
    if not 0.0 <= zoom_share <= 1.0:
        raise InputError(f"zoom_share must be in 0..1, got {zoom_share}")
    torch.manual_seed(cfg.seed)
    backbone_cfg = backbone_cfg or BackboneConfig()
    backbone = build_backbone(backbone_cfg)
    seqs, weights = with_world(load_training_sequences(data_dir, sequences, max_side, max_frames), world, world_share)
    feats = [cached_features(cache_dir, s, backbone) for s in seqs]
    net = ClickNet(ClickConfig(width=width, max_side=max_side), backbone.channels)
    if init is not None:
        load_into(net, load_named("click", init)[0])
    zoom = None
    if zoom_share > 0:
        full, full_weights = with_world(load_training_sequences(data_dir, sequences, None, max_frames), zoom_world, world_share)
        p = np.array(full_weights if full_weights is not None else [len(s) for s in full], np.float64)
        zoom = (backbone.eval(), full, p / p.sum())
    loss_fn = make_click_loss(ClickSampler(seqs, feats, weights), cfg.batch, zoom, zoom_share)
    summary = train_loop(net, loss_fn, cfg, ckpt_path, desc="click", log=log)
    if setup_distributed()[0] == 0:
        training = {
            **dataclasses.asdict(cfg),
            "sequences": list(sequences),
            "world": world,
            "world_share": world_share if world else 0.0,
            "init": Path(init).name if init is not None else None,
            "zoom_share": zoom_share,
            "zoom_world": zoom_world if zoom_share else 0,
            "final_loss": float(np.mean(summary["losses"][-50:])),
        }
        summary["sha256"] = save_weights(
            net.state_dict(), out, weight_config("click", net.cfg, backbone_cfg, training), name="click"
        )
    return summary
