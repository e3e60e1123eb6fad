"""``msn propagate VIDEO --mask first.png --out DIR``: masks or colours through a video."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from msn_core.memory.selectors import SELECTOR_HELP


def register(sub, add_data_dir) -> None:
    p = sub.add_parser(
        "propagate",
        help="propagate a first-frame mask (or colours) through a video",
        description="Propagate the first frame's mask (segmentation) or colours (colourization) through a "
        "video, writing one DAVIS palette PNG (or colour JPEG) per frame as it goes, an overlay mp4 "
        "and a JSON record of the guide frame chosen for every frame and every candidate's score.",
    )
    p.add_argument("video", help="video file (mp4, webm, mov, avi, mkv, gif), folder of frames, or zip of frames")
    p.add_argument("--mask", help="first-frame mask PNG (binary or DAVIS palette); needed for --task mask")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--task", choices=["mask", "color"], default="mask", help="what to propagate (default: mask)")
    p.add_argument("--propagator", choices=["tpn", "stm"], default="tpn", help="propagation network (default: tpn)")
    p.add_argument("--selector", default="msn", help=f"guide selection (default: msn): {SELECTOR_HELP}")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--max-side", type=int, default=None, help="process frames at most this long side (default 480)")
    p.add_argument("--budget", type=int, default=None, help="memory pool candidates (0 = every previous frame)")
    p.add_argument(
        "--weights",
        default="auto",
        help="'auto' (Hub, else bundled), 'none' (untrained seeded networks), or MODEL.safetensors[,MSN.safetensors]",
    )
    p.add_argument("--no-video", action="store_true", help="do not write the overlay mp4")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.set_defaults(func=run)


def _weights_arg(value: str):
    if value == "auto":
        return "auto"
    if value == "none":
        return None
    parts = value.split(",")
    return {"model": parts[0], **({"msn": parts[1]} if len(parts) > 1 else {})}


def run(args) -> int:
    import dataclasses

    from tqdm import tqdm

    import msn_core
    from msn_core.config import MemoryConfig, PipelineConfig
    from msn_core.errors import InputError
    from msn_core.io import VideoWriter, open_video

    cfg = PipelineConfig(propagator=args.propagator, task=args.task)
    if args.max_side is not None:
        cfg = dataclasses.replace(cfg, max_side=args.max_side)
    if args.budget is not None:
        budget = None if args.budget == 0 else args.budget
        recent = min(cfg.memory.recent, budget - 1) if budget else cfg.memory.recent
        cfg = dataclasses.replace(cfg, memory=MemoryConfig(budget=budget, recent=recent))
    if args.task == "mask" and not args.mask:
        raise InputError("--mask FIRST.png is required for --task mask")
    selector = msn_core.make_selector(args.selector)  # a bad name fails before any loading
    source = open_video(args.video, max_frames=args.max_frames)
    pipe = msn_core.load(
        args.propagator, args.task, selector, weights=_weights_arg(args.weights), device=args.device, config=cfg
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"video": str(args.video), "selector": pipe.selector.label, "propagator": args.propagator, "frames": []}
    total = source.num_frames if args.max_frames is None else min(args.max_frames, source.num_frames or 10**9)
    done = 0
    with contextlib.ExitStack() as stack:
        writer = None if args.no_video else stack.enter_context(VideoWriter(out / "overlay.mp4", source.fps))
        bar = stack.enter_context(
            tqdm(pipe.propagate(source, args.mask), total=total, unit="frame", desc="propagating")
        )
        try:
            for r in bar:
                _write_frame(out, r, writer)
                record["frames"].append(
                    {"index": r.index, "guides": r.guides, "scores": {str(k): v for k, v in r.scores.items()},
                     "seconds": round(r.seconds, 4)}
                )
                done += 1
                bar.set_postfix(guide=r.guide if r.guide is not None else "-")
        except KeyboardInterrupt:
            record["interrupted_at"] = done
            (out / "propagation.json").write_text(json.dumps(record, indent=1))
            print(f"\ninterrupted after {done} frames; frames 0..{done - 1} are complete in {out}", file=sys.stderr)
            return 130
    (out / "propagation.json").write_text(json.dumps(record, indent=1))
    secs = sum(f["seconds"] for f in record["frames"])
    print(f"wrote {done} frames to {out} ({secs / max(done, 1):.3f} s/frame, selector {pipe.selector.label})")
    return 0


def _write_frame(out: Path, r, writer) -> None:
    from PIL import Image

    from msn_core.io import atomic_write, overlay_labels, write_mask_png

    name = f"{r.index:05d}"
    if r.labels is not None:
        write_mask_png(out / f"{name}.png", r.labels)
        vis = overlay_labels(r.frame, r.labels)
    else:
        with atomic_write(out / f"{name}.jpg") as tmp:
            Image.fromarray(r.colors).save(tmp, format="JPEG", quality=95)
        vis = r.colors
    if writer is not None:
        writer.write(vis)
