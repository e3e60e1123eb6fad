"""``msn train tpn-mask|tpn-color|stm|msn|click ...``: stage 1 (propagation nets), stage 2 (MSN) and
the click-to-mask net of the demo's annotation tool."""

from __future__ import annotations

from pathlib import Path

from msn_core.config import BackboneConfig, default_data_dir
from msn_core.errors import InputError

KINDS = ("tpn-mask", "tpn-color", "stm", "msn", "click")


def register(sub, add_data_dir) -> None:
    p = sub.add_parser(
        "train",
        help="train a propagation network (stage 1) or MSN on mined samples (stage 2)",
        description="Stage 1: 'tpn-mask', 'tpn-color' or 'stm' on random frame pairs of the training "
        "sequences. Stage 2: 'msn --propagator tpn-mask|tpn-color|stm --propagator-weights FILE' mines "
        "good/bad guides with the frozen propagator (paper §3.3) and trains MSN with BCE. "
        "'click': the click-to-mask net (msn_core.clicks) on the same frames and world. "
        "Runs under torchrun for DDP (gloo on CPU, nccl on GPU).",
    )
    p.add_argument("kind", choices=KINDS, help="what to train")
    add_data_dir(p)
    p.add_argument("--out", required=True, help="weights file to write (.safetensors)")
    p.add_argument("--work-dir", default="runs/train", help="feature cache, mined samples, checkpoints")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=32, help="stage 1: base channel width")
    p.add_argument("--crop", default="192x320", help="stage 1: training crop HxW (multiples of 32)")
    p.add_argument(
        "--init",
        default=None,
        help="stage 1 and click: start from these weights of the same kind and width (fine-tuning), not from scratch",
    )
    p.add_argument(
        "--backbone",
        default="efficientnet_lite0",
        choices=["efficientnet_lite0", "efficientnet_lite2"],
        help="the frozen feature extractor (an MSN must learn on its propagation net's)",
    )
    p.add_argument(
        "--zoom-share",
        type=float,
        default=0.0,
        help="click: fraction of the batches that learn from the zoomed view the tool reads from the second "
        "click on, cut from the frames at their own size (their features computed as it goes)",
    )
    p.add_argument(
        "--max-gap",
        type=int,
        default=12,
        help="stage 1: the largest frame distance between guide and target in a pair (most pairs stay within 3 frames)",
    )
    p.add_argument(
        "--ref-first-p",
        type=float,
        default=0.5,
        help="stage 1, stm: probability that the reference memory frame is frame 0 (as in a real run) "
        "rather than a random frame of the clip",
    )
    p.add_argument(
        "--world",
        type=int,
        default=0,
        help="add this many clips of the synthetic world (objects cut from the training sequences, the "
        "target a random subset of them) to the real sequences: stage 1 trains on them, stage 2 mines them",
    )
    p.add_argument(
        "--world-share", type=float, default=0.7, help="stage 1: fraction of the pairs drawn from the world's clips"
    )
    p.add_argument(
        "--world-length", type=int, default=24, help="stage 2: frames per clip of the world mined (with --world)"
    )
    p.add_argument("--max-side", type=int, default=None, help="processing long side (default 384)")
    p.add_argument("--max-frames", type=int, default=None, help="use at most this many frames per sequence")
    p.add_argument(
        "--sequences", default=None, help="comma-separated training sequences (default: the split)"
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --work-dir")
    p.add_argument("--propagator", choices=("tpn-mask", "tpn-color", "stm"), help="stage 2: the frozen net")
    p.add_argument(
        "--propagator-weights",
        default=None,
        help="stage 2: its weights file (default: bundled); 'warp' mines with the untrained, flow-warp TPN; "
        "A,B (several files): cross-fitted mining, each sequence mined by a net not trained on it",
    )
    p.add_argument("--target-step", type=int, default=2, help="stage 2: mine every N-th target frame")
    p.add_argument("--max-candidates", type=int, default=24, help="stage 2: candidate guides per target")
    p.add_argument(
        "--corrections",
        type=int,
        default=0,
        help="stage 2: mine clip i after i mod (N+1) simulated corrections (its worst frame given its truth), "
        "and give MSN a head that reads which candidates the user annotated",
    )
    p.add_argument(
        "--relative-thresholds",
        action="store_true",
        help="stage 2: where the paper's thresholds find no positive/negative pair, take them of the quality range",
    )
    p.add_argument(
        "--views",
        default="forward",
        help="stage 2: comma-separated plays of each sequence to mine, each starting from its own annotated "
        "frame: forward, reverse, mid-forward, mid-reverse (default forward)",
    )
    p.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="stage 2: also mine N clips per sequence made from one of its frames moved along a random "
        "camera path (an object that keeps its look; default 0)",
    )
    p.add_argument("--synthetic-length", type=int, default=40, help="stage 2: frames per synthetic clip")
    p.add_argument(
        "--guide-msn",
        default=None,
        help="stage 2: an MSN weights file whose picks make the mined runs, so the candidates carry the "
        "labels a run with that MSN gives them (default: previous-frame runs)",
    )
    p.add_argument(
        "--label-aware",
        action="store_true",
        help="stage 2 (masks): MSN also reads each candidate under its own label, the mask its run gave it",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _crop(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--crop {text!r}: expected HxW such as 192x320") from None
    if h % 32 or w % 32 or h <= 0 or w <= 0:
        raise InputError(f"--crop {text!r}: H and W must be positive multiples of 32")
    return h, w


def run(args) -> int:
    import torch

    from msn_core.training.data import TRAIN_MAX_SIDE, TRAIN_SEQUENCES
    from msn_core.training.trainer import TrainConfig, cleanup_distributed

    torch.set_num_threads(args.threads)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    seqs = (
        tuple(s.strip() for s in args.sequences.split(",") if s.strip())
        if args.sequences
        else TRAIN_SEQUENCES
    )
    if not seqs:
        raise InputError("--sequences: no sequence names given")
    work = Path(args.work_dir)
    max_side = args.max_side or TRAIN_MAX_SIDE
    cfg = TrainConfig(
        steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, progress=not args.no_progress
    )
    tag = args.kind if args.kind != "msn" else f"msn-{args.propagator}"
    ckpt = work / f"{tag}.ckpt"
    if not args.resume and ckpt.exists():
        ckpt.unlink()
    log_path = work / f"{tag}.log"
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        with open(log_path, "a") as f:
            f.write(msg + "\n")

    shared = dict(  # what stage 1 and the click net take alike
        cache_dir=work,
        sequences=seqs,
        width=args.width,
        max_side=max_side,
        max_frames=args.max_frames,
        ckpt_path=ckpt,
        log=log,
        world=args.world,
        world_share=args.world_share,
        backbone_cfg=BackboneConfig(name=args.backbone),
    )
    try:
        if args.kind == "msn":
            if args.propagator is None:
                raise InputError("msn train needs --propagator tpn-mask|tpn-color|stm (the frozen network)")
            from msn_core.config import MSNConfig
            from msn_core.training.stage2 import MiningConfig, train_msn

            mining = MiningConfig(
                propagator_weights=args.propagator_weights,
                views=tuple(v.strip() for v in args.views.split(",") if v.strip()),
                synthetic=args.synthetic,
                synthetic_length=args.synthetic_length,
                world=args.world,
                world_length=args.world_length,
                target_step=args.target_step,
                max_candidates=args.max_candidates,
                relative=args.relative_thresholds,
                corrections=args.corrections,
                guide_msn=args.guide_msn,
            )
            summary = train_msn(
                args.propagator,
                data_dir,
                args.out,
                cfg,
                cache_dir=work,
                sequences=seqs,
                mining=mining,
                msn_cfg=MSNConfig(annotated_head=args.corrections > 0, label_aware=args.label_aware),
                max_side=max_side,
                max_frames=args.max_frames,
                ckpt_path=ckpt,
                log=log,
                backbone_cfg=shared["backbone_cfg"],
            )
        elif args.kind == "click":
            from msn_core.training.clicks import train_clicks

            summary = train_clicks(data_dir, args.out, cfg, **shared, init=args.init, zoom_share=args.zoom_share)
        else:
            from msn_core.training.stage1 import train_stage1

            summary = train_stage1(
                args.kind,
                data_dir,
                args.out,
                cfg,
                crop=_crop(args.crop),
                ref_first_p=args.ref_first_p,
                max_gap=args.max_gap,
                init=args.init,
                **shared,
            )
    finally:
        cleanup_distributed()
    if "sha256" in summary:
        losses = summary["losses"]
        print(
            f"wrote {args.out} (sha256 {summary['sha256']}); {summary['steps']} steps in {summary['seconds']:.0f}s, "
            f"loss {sum(losses[:20]) / max(len(losses[:20]), 1):.4f} -> {sum(losses[-20:]) / max(len(losses[-20:]), 1):.4f}"
        )
    return 0
