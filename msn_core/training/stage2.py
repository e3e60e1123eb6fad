"""Stage 2: MSN on samples mined with the frozen propagator (paper §3.3), BCE loss.

MSN's inputs are the frozen backbone's stride-32 maps of the candidate p, of the first frame with
its background masked out (a), and of the target t, exactly as the propagation loop feeds it.
Mined samples (targets, candidates, qualities, labels) are cached as JSON next to the features.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msn_core.config import BackboneConfig, FlowConfig, MSNConfig
from msn_core.errors import InputError
from msn_core.models.backbone import build_backbone
from msn_core.models.selection import MSN
from msn_core.training.data import (
    TRAIN_MAX_SIDE,
    SequenceData,
    base_name,
    cached_features,
    sequence_view,
    to_tensor_images,
)
from msn_core.training.losses import msn_listwise_loss, msn_loss
from msn_core.training.mining import (
    NEGATIVE,
    POSITIVE,
    MinedTarget,
    SequenceRunner,
    label_samples,
    mine_sequence,
    mine_warp_sequence,
)
from msn_core.training.trainer import TrainConfig, setup_distributed, train_loop
from msn_core.training.world import MINING_SEEDS, synthetic_clip, world_sequences

PROPAGATORS = ("tpn-mask", "tpn-color", "stm")
MSN_LOSSES = ("bce", "listwise")
MSN_NAMES = {"tpn-mask": "msn-tpn", "tpn-color": "msn-tpn-color", "stm": "msn-stm"}


def load_propagator(
    kind: str, backbone_channels: dict[int, int], path: str | Path | None = None, loaded: tuple | None = None
):
    """The frozen stage-1 network (from ``path`` or the bundled weights; ``loaded``: the
    (state dict, config) of ``path`` already read) wrapped as a propagator.

    ``path="warp"`` (TPN only) gives the untrained TPN, whose zero-initialised correction makes it
    exactly the flow-warped guide label: a propagator that has not memorised the training sequences."""
    from msn_core.hub import load_into, load_named
    from msn_core.propagators import STMPropagator, TPNPropagator
    from msn_core.training.stage1 import build_stage1

    if kind not in PROPAGATORS:
        raise InputError(f"unknown propagator {kind!r}; accepted: {', '.join(PROPAGATORS)}")
    if str(path) == "warp":
        if not kind.startswith("tpn"):
            raise InputError("--propagator-weights warp (the flow-warp propagator) exists for TPN only")
        net = build_stage1(kind, backbone_channels)
    else:
        sd, config = loaded or load_named(kind, path)
        width = int(config.get("config", {}).get("width", 32))
        net = build_stage1(kind, backbone_channels, width)
        load_into(net, sd)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return TPNPropagator(net, FlowConfig()) if kind.startswith("tpn") else STMPropagator(net)


def held_out_propagators(kind: str, backbone_channels: dict[int, int], paths: list[str], sequences) -> dict:
    """Cross-fitting: for every mined sequence, the frozen net (of ``paths``) that was *not* trained
    on it, read from the training sequences each weights file records. Labels mined this way show
    how the net behaves on unseen video (drift, failures), not on video it has memorised."""
    from msn_core.hub import load_named

    loaded = {path: load_named(kind, path) for path in paths}
    trained_on = {}
    for path, (_, config) in loaded.items():
        seqs = config.get("training", {}).get("sequences")
        if not seqs:
            raise InputError(f"{path}: the weights file does not record its training sequences")
        trained_on[path] = set(seqs)
    out = {}
    for name in sequences:  # views of a sequence ("goat~reverse") go with the sequence
        free = [p for p in paths if base_name(name) not in trained_on[p]]
        if not free:
            raise InputError(
                f"cross-fitted mining: every weights file in {', '.join(paths)} was trained on {name!r}; "
                "give one trained without it"
            )
        out[name] = free[0]
    nets = {p: load_propagator(kind, backbone_channels, p, loaded[p]) for p in set(out.values())}
    return {name: nets[p] for name, p in out.items()}


def _weights_tag(kind: str, paths: list[str]) -> str:
    """Which frozen weights mined a cache, in its name: other weights never read stale samples.
    ``paths``: the files given (empty: the bundled or Hub weights of ``kind``; ``warp``: none)."""
    import hashlib

    from msn_core.hub import get_spec, sha256_file

    if paths == ["warp"]:
        return ""
    digests = [sha256_file(p) for p in paths] if paths else [get_spec(kind).sha256 or "unpinned"]
    return "_w" + hashlib.sha256("".join(digests).encode()).hexdigest()[:8]


class AdaptedPropagators(dict):
    """Sequence (play) name -> its frozen propagator adapted to the play's annotated frame
    (``training.adapt``), made on first use: mining then labels candidates as the propagator
    that runs after ``msn_core.adapt`` would, and a cached mining adapts nothing."""

    def __init__(self, base, kind: str, backbone, seqs: list[SequenceData], cfg, log=None):
        super().__init__()
        self.base, self.kind, self.backbone, self.cfg, self.log = base, kind, backbone, cfg, log
        self.seqs = {s.name: s for s in seqs}

    def __missing__(self, name: str):
        import copy

        from msn_core.training.adapt import adapt_network, frame_clips

        frozen = self.base[name] if isinstance(self.base, dict) else self.base
        seq = self.seqs[name]
        small = None if self.kind == "tpn-color" else seq.masks[0]
        clips = frame_clips(seq.frames[0], small, [] if small is None else [1], seq.proc, self.cfg)
        net, info = adapt_network(frozen.model, self.kind, self.backbone, clips, self.cfg)
        prop = copy.copy(frozen)  # same kind and settings, the adapted network
        prop.model = net
        self[name] = prop
        if self.log is not None:
            self.log(
                f"adapted to {name}'s annotated frame in {info['seconds']:.0f} s "
                f"(loss {info['loss_first']:.3f} -> {info['loss_last']:.3f})"
            )
        return prop


def _truth(seq: SequenceData, task_name: str) -> list[Tensor]:
    if task_name == "color":
        return [torch.from_numpy(a)[None] for a in seq.ab()]  # (1, 2, H, W)
    return [torch.from_numpy(m).float()[None, None] for m in seq.masks]  # (1, 1, H, W)


def mine(
    kind: str,
    seqs: list[SequenceData],
    feats: list[dict[int, Tensor]],
    propagator,
    cache_path: str | Path | None = None,
    target_step: int = 2,
    max_candidates: int = 24,
    log=None,
    guide_run=None,
) -> list[MinedTarget]:
    """Mine (or read back from ``cache_path``) the samples of every sequence. ``propagator``: one
    frozen propagator, ``"warp"``, or a dict sequence name -> propagator (cross-fitting).
    ``guide_run``: the propagator of the previous-frame run that gives the candidates their labels
    (default: the same)."""
    from msn_core.tasks import ColorTask, MaskTask

    if cache_path is not None and Path(cache_path).is_file():
        data = json.loads(Path(cache_path).read_text())
        return [MinedTarget(**d) for d in data["targets"]]
    task = ColorTask() if kind == "tpn-color" else MaskTask([1])
    out: list[MinedTarget] = []
    run_quality = {}
    for i, (seq, f) in enumerate(zip(seqs, feats)):
        if propagator == "warp":  # no network: the flow-warped annotation of each candidate
            import cv2

            gray = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in seq.frames])
            labels = seq.ab() if task.name == "color" else seq.masks[:, None].astype(np.float32)
            mined = mine_warp_sequence(gray, labels, i, task.name, target_step, max_candidates)
            out.extend(mined)
            if log is not None:
                n_pos = sum(m.labels.count(POSITIVE) for m in mined)
                n_neg = sum(m.labels.count(NEGATIVE) for m in mined)
                log(f"mined {seq.name} (flow warp of the annotation): {n_pos} pos, {n_neg} neg")
            continue
        images = seq.gray if kind == "tpn-color" else seq.frames
        net = propagator[seq.name] if isinstance(propagator, dict) else propagator
        runner = SequenceRunner(net, task, images, f, _truth(seq, task.name))
        q = runner.run_previous(guide_run)
        run_quality[seq.name] = float(np.mean(q[1:]))
        mined = mine_sequence(runner, i, target_step, max_candidates)
        out.extend(mined)
        if log is not None:
            n_pos = sum(m.labels.count(POSITIVE) for m in mined)
            n_neg = sum(m.labels.count(NEGATIVE) for m in mined)
            log(
                f"mined {seq.name}: previous-run quality {run_quality[seq.name]:.3f}, {n_pos} pos, {n_neg} neg"
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
    return out


@torch.no_grad()  # not inference mode: training reads these tensors
def guide_masks(
    kind: str,
    seqs: list[SequenceData],
    feats: list[dict[int, Tensor]],
    propagator,
    cache_path: str | Path | None = None,
    guide_run=None,
    stride: int = 32,
) -> list[Tensor]:
    """What a label-aware MSN reads of every memory frame: the label a previous-frame run gives
    it (the annotation for frame 0), as (T, 1, h, w) object probabilities at the feature stride,
    one tensor per sequence. ``propagator`` and ``guide_run`` as in :func:`mine`, whose candidates
    carry exactly these labels (``"warp"`` mining propagates the annotations: those are returned).
    Read back from / written to ``cache_path`` (safetensors, keyed by sequence name)."""
    from safetensors.torch import load_file, save_file

    from msn_core.tasks import MaskTask

    if kind == "tpn-color":
        raise InputError("a label-aware MSN reads object masks; colour propagation has none (use it for masks)")
    if cache_path is not None and Path(cache_path).is_file():
        cached = load_file(str(cache_path))
        if all(s.name in cached for s in seqs):
            return [cached[s.name] for s in seqs]
    task = MaskTask([1])
    out = []
    for seq, f in zip(seqs, feats):
        size = f[stride].shape[-2:]
        if propagator == "warp":
            labels = [torch.from_numpy(m).float()[None, None] for m in seq.masks]
        else:
            net = propagator[seq.name] if isinstance(propagator, dict) else propagator
            runner = SequenceRunner(net, task, seq.frames, f, _truth(seq, task.name))
            runner.run_previous(guide_run)
            labels = [task.union(entry["label"]) for entry in runner.entries]  # each frame's label in that run
        maps = torch.cat([F.interpolate(lab.float(), size=size, mode="area") for lab in labels])
        out.append(maps.clone())  # the run's labels are inference tensors; training needs plain ones
    if cache_path is not None:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        save_file({s.name: m.contiguous() for s, m in zip(seqs, out)}, str(cache_path))
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
    """Balanced batches of mined (p, a, t) stride-32 triples with their labels."""

    def __init__(
        self,
        targets: list[MinedTarget],
        f32: list[Tensor],
        f_a: list[Tensor],
        relative: bool = False,
        masks: list[Tensor] | None = None,
    ):
        self.f32, self.f_a, self.masks = f32, f_a, masks
        rows = [
            (m.seq, m.t, p, int(lab))
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

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """(f_p, f_a, f_t, labels, m_p): half positives, half negatives, each row flipped at random;
        m_p (the candidates' own labels) is None without ``masks``."""
        half = batch // 2
        rows = [self.pos[i] for i in rng.integers(len(self.pos), size=half)]
        rows += [self.neg[i] for i in rng.integers(len(self.neg), size=batch - half)]
        f_p = torch.stack([self.f32[s][p] for s, _, p, _ in rows]).float()
        f_t = torch.stack([self.f32[s][t] for s, t, _, _ in rows]).float()
        f_a = torch.cat([self.f_a[s] for s, _, _, _ in rows])
        labels = torch.tensor([lab for *_, lab in rows], dtype=torch.float32)
        flip = torch.from_numpy(rng.random(batch) < 0.5)
        maps = [f_p, f_a, f_t]
        if self.masks is not None:
            maps.append(torch.stack([self.masks[s][p] for s, _, p, _ in rows]).float())
        maps = [torch.where(flip[:, None, None, None], f.flip(-1), f) for f in maps]
        return maps[0], maps[1], maps[2], labels, maps[3] if self.masks is not None else None


class TargetSet:
    """Mined targets with all their candidates, for the listwise loss: every candidate of a
    target is scored and ranked against the others (dropped ones included: their quality is known)."""

    def __init__(
        self,
        targets: list[MinedTarget],
        f32: list[Tensor],
        f_a: list[Tensor],
        min_spread: float = 1e-3,
        masks: list[Tensor] | None = None,
    ):
        self.f32, self.f_a, self.masks = f32, f_a, masks
        self.targets = [m for m in targets if len(m.candidates) > 1 and np.ptp(m.qualities) > min_spread]
        if not self.targets:
            raise InputError("mining gave no target whose candidates differ in quality; nothing to rank")

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[Tensor, ...]:
        """(f_p, f_a, f_t, qualities, groups, m_p): ``batch`` targets with all their candidates;
        m_p is None without ``masks``."""
        rows = [self.targets[i] for i in rng.integers(len(self.targets), size=batch)]
        flips = rng.random(batch) < 0.5
        f_p, f_a, f_t, m_p, q, g = [], [], [], [], [], []
        for k, (m, flip) in enumerate(zip(rows, flips)):
            n = len(m.candidates)
            maps = [
                self.f32[m.seq][m.candidates].float(),
                self.f_a[m.seq].expand(n, -1, -1, -1),
                self.f32[m.seq][m.t : m.t + 1].float().expand(n, -1, -1, -1),
            ]
            if self.masks is not None:
                maps.append(self.masks[m.seq][m.candidates].float())
            if flip:
                maps = [f.flip(-1) for f in maps]
            for out, f in zip((f_p, f_a, f_t, m_p), maps):
                out.append(f)
            q.append(torch.tensor(m.qualities, dtype=torch.float32))
            g.append(torch.full((n,), k, dtype=torch.long))
        masks = torch.cat(m_p) if m_p else None
        return torch.cat(f_p), torch.cat(f_a), torch.cat(f_t), torch.cat(q), torch.cat(g), masks


def train_msn(
    propagator_kind: str,
    data_dir: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    *,
    cache_dir: str | Path,
    sequences: tuple[str, ...] | list[str],
    propagator_weights: str | Path | None = None,
    msn_cfg: MSNConfig | None = None,
    backbone_cfg: BackboneConfig | None = None,
    max_side: int = TRAIN_MAX_SIDE,
    max_frames: int | None = None,
    target_step: int = 2,
    max_candidates: int = 24,
    ckpt_path: str | Path | None = None,
    relative: bool = False,
    guide_run: str | None = None,
    views: tuple[str, ...] = ("forward",),
    loss: str = "bce",
    synthetic: int = 0,
    synthetic_length: int = 40,
    world: int = 0,
    world_length: int = 24,
    adapt=None,
    log=None,
) -> dict:
    """Mine with the frozen propagator, then train MSN (BCE, or listwise); writes ``out`` on rank 0.
    ``relative``: the range-based labelling fallback of ``mining.label_samples``.
    ``guide_run="warp"``: the candidates' labels come from a flow-warp previous-frame run (labels
    that drift as a real run drifts on unseen video) instead of the frozen net's own run.
    ``views``: which plays of every sequence are mined (``data.VIEWS``: forward, reverse, from the
    middle forwards / backwards), each with its own first frame as the annotated frame.
    ``loss``: "bce" (paper: positives against negatives) or "listwise" (softmax over each target's
    candidates against a soft target on the best ones, ``losses.msn_listwise_loss``).
    ``synthetic``: clips per training sequence made from one of its frames moved along a random
    camera path (``world.synthetic_clip``), mined like the real ones.
    ``world``: clips of the synthetic world (``training.world``, seeds from ``MINING_SEEDS`` on, which
    stage 1 never draws) of ``world_length`` frames, their marked objects as one, mined likewise; with
    one trained propagator (not cross-fitted) only they are mined, as only they are new to it.
    ``adapt`` (a ``training.adapt.AdaptConfig``): each play is mined by the frozen net adapted to
    the play's annotated frame first, as ``msn_core.adapt`` adapts it before a real run."""
    from msn_core.hub import save_weights
    from msn_core.training.stage1 import load_training_sequences, weight_config

    if loss not in MSN_LOSSES:
        raise InputError(f"MSN loss {loss!r} is not known; accepted: {', '.join(MSN_LOSSES)}")
    backbone_cfg = backbone_cfg or BackboneConfig()
    msn_cfg = msn_cfg or MSNConfig()
    backbone = build_backbone(backbone_cfg)
    seqs = load_training_sequences(data_dir, sequences, max_side, max_frames)
    kind = "gray" if propagator_kind == "tpn-color" else "rgb"
    feats = [cached_features(cache_dir, s, backbone, kind) for s in seqs]
    paths = [p for p in str(propagator_weights).split(",") if p] if propagator_weights else []
    # a single trained net has learnt the real clips, so its runs on them are too good to teach MSN
    # which guides fail: with world clips (which stage 1 never drew) it mines those alone
    held_out_only = world > 0 and len(paths) == 1 and paths[0] != "warp"
    viewed = [] if held_out_only else [sequence_view(s, f, v) for v in views for s, f in zip(seqs, feats)]
    for k in range(synthetic):  # frames spread over each sequence, path k seeded by k (the mined
        for s in seqs:  # samples are cached by name, so the clips must not depend on the run's seed)
            clip = synthetic_clip(s, (len(s) - 1) * k // synthetic, synthetic_length, k)
            viewed.append((clip, cached_features(cache_dir, clip, backbone, kind)))
    for clip in world_sequences(seqs, world, world_length, first=MINING_SEEDS, union=True):
        viewed.append((clip, cached_features(cache_dir, clip, backbone, kind)))
    seqs, feats = [s for s, _ in viewed], [f for _, f in viewed]
    rank, _ = setup_distributed()
    tag = "-".join(sorted(sequences)) if len(sequences) < 4 else f"{len(sequences)}seq"
    crossfit = len(paths) > 1
    mined_by = "warp" if str(propagator_weights) == "warp" else "crossfit" if crossfit else "trained"
    if guide_run == "warp":
        mined_by += "-warpguides"
    if tuple(views) != ("forward",):
        mined_by += "-" + "+".join(views)
    if synthetic:
        mined_by += f"-synth{synthetic}x{synthetic_length}"
    if world:
        mined_by += f"-world{world}x{world_length}" + ("only" if held_out_only else "")
    if adapt is not None:
        mined_by += f"-adapt{adapt.steps}"
    cache = (
        Path(cache_dir)
        / f"mined_{propagator_kind}_{mined_by}_{tag}_{max_frames or 'all'}_s{target_step}{_weights_tag(propagator_kind, paths)}.json"
    )
    if rank != 0:  # rank 0 mines and writes the cache; the others wait and read it
        torch.distributed.barrier()
    if str(propagator_weights) == "warp":
        propagator = "warp"
    elif crossfit:
        propagator = held_out_propagators(propagator_kind, backbone.channels, paths, [s.name for s in seqs])
    else:
        propagator = load_propagator(propagator_kind, backbone.channels, propagator_weights)
    if adapt is not None:
        if propagator == "warp":
            raise InputError("--adapt-steps needs a trained propagator to adapt, not the flow warp")
        propagator = AdaptedPropagators(propagator, propagator_kind, backbone, seqs, adapt, log)
    run_prop = load_propagator(propagator_kind, backbone.channels, "warp") if guide_run == "warp" else None
    targets = mine(
        propagator_kind, seqs, feats, propagator, cache, target_step, max_candidates, log, run_prop
    )
    masks = None
    if msn_cfg.label_aware:  # the candidates' own labels, from the same runs that mining made
        # (like the mined samples: rank 0 writes the cache before the others read it)
        masks = guide_masks(
            propagator_kind,
            seqs,
            feats,
            propagator,
            cache.with_name(cache.stem.replace("mined_", "guidemasks_", 1) + ".safetensors"),
            run_prop,
            msn_cfg.feature_stride,
        )
    if rank == 0 and torch.distributed.is_initialized():
        torch.distributed.barrier()
    f_a = [first_frame_features(backbone, s, propagator_kind) for s in seqs]
    pairs = PairSet(targets, [f[32] for f in feats], f_a, relative=relative, masks=masks)
    torch.manual_seed(cfg.seed)
    msn = MSN(msn_cfg, backbone.channels[msn_cfg.feature_stride])

    ranked = TargetSet(targets, [f[32] for f in feats], f_a, masks=masks) if loss == "listwise" else None

    def loss_fn(model: nn.Module, rng: np.random.Generator) -> Tensor:
        if ranked is not None:
            f_p, f_a_b, f_t, q, groups, m_p = ranked.sample(cfg.batch, rng)
            return msn_listwise_loss(model(f_p, f_a_b, f_t, m_p), q, groups)
        f_p, f_a_b, f_t, labels, m_p = pairs.sample(cfg.batch, rng)
        return msn_loss(model(f_p, f_a_b, f_t, m_p), labels)

    summary = train_loop(msn, loss_fn, cfg, ckpt_path, desc=MSN_NAMES[propagator_kind], log=log)
    summary["positives"], summary["negatives"] = len(pairs.pos), len(pairs.neg)
    if log is not None:
        log(f"{len(pairs.pos)} positives / {len(pairs.neg)} negatives from {len(seqs)} sequence views")
    if rank == 0:
        training = {
            **dataclasses.asdict(cfg),
            "propagator": propagator_kind,
            "mined_with": mined_by,
            "mining_weights": [Path(p).name for p in paths],
            "relative_fallback": relative,
            "guide_run": guide_run or "self",
            "views": list(views),
            "synthetic_clips": synthetic,
            "synthetic_length": synthetic_length,
            "world_clips": world,
            "world_length": world_length,
            "adapt": None if adapt is None else dataclasses.asdict(adapt),
            "loss": loss,
            "sequences": list(sequences),
            "max_side": max_side,
            "target_step": target_step,
            "max_candidates": max_candidates,
            "positives": len(pairs.pos),
            "negatives": len(pairs.neg),
            "final_loss": float(np.mean(summary["losses"][-50:])),
        }
        name = MSN_NAMES[propagator_kind]
        summary["sha256"] = save_weights(
            msn.state_dict(), out, weight_config("msn", msn_cfg, backbone_cfg, training), name=name
        )
    return summary
