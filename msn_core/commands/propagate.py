"""``msn propagate VIDEO --mask first.png --out DIR``: masks or colours through a video.

``--masks DIR`` gives masks on several frames instead (PNGs named by frame index, as in DAVIS:
``00000.png``, ``00040.png``); ``--direction`` runs forward, backward or both ways from them
(:mod:`msn_core.annotations`). Going backward, frames are written in the order they are
propagated and the overlay video is made once every frame is written.

Frames are written (PNG, overlay) in the loop's thread, or with ``WRITE_BEHIND`` > 0 in a thread of
their own while the next ones are propagated (off: on a CPU with no core to spare it was slower;
BENCHMARKS.md, 'End to end'). Every file is written to a temporary name and renamed when complete. Ctrl-C (SIGINT)
or SIGTERM stops once the frames already propagated are written: the frames so far, the overlay video
and ``propagation.json`` (with ``interrupted_at``) are complete, and the command says
where it stopped and exits 130 (143 for SIGTERM). A second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
from pathlib import Path

import msn_core
from msn_core.commands.propagate_files import (
    StopOnSignal,
    WriteBehind,
    drop_unrecorded,
    say_stopped,
    span,
    stopped,
    write_overlay,
    write_record,
)
from msn_core.config import ADAPTED_MAX_SIDE, MemoryConfig, PipelineConfig, default_propagator
from msn_core.errors import InputError, MSNError
from msn_core.memory.selectors import SELECTOR_HELP

# what a run writes into --out (an earlier run's files are only replaced with --overwrite)
_OUTPUT = re.compile(r"^(\d{5}\.(png|jpg)|overlay\.mp4|propagation\.json)$")
# frames waiting to be written (PNG, overlay) in a thread of their own while the next ones are
# propagated; 0 writes each frame in the loop's thread (the outputs are the same either way; 0 was
# faster on the 2-core machine measured, BENCHMARKS.md)
WRITE_BEHIND = 0


def register(sub, add_data_dir) -> None:
    p = sub.add_parser(
        "propagate",
        help="propagate a first-frame mask (or colours) through a video",
        description="Propagate the first frame's mask (segmentation) or colours (colourization) through a "
        "video, writing one DAVIS palette PNG (or colour JPEG) per frame as it goes, an overlay mp4 "
        "and a JSON record of the guide frame chosen for every frame and every candidate's score.",
    )
    p.add_argument("video", help="video file (mp4, webm, mov, avi, mkv, gif), folder of frames, or zip of frames")
    p.add_argument("--mask", help="first-frame mask PNG (binary or DAVIS palette); --task mask needs it or --masks")
    p.add_argument(
        "--masks",
        metavar="DIR",
        help="folder of mask PNGs named by the frame they annotate, as in DAVIS (00000.png, 00040.png): every "
        "one is kept as given and guides the others; an object may first appear in any of them",
    )
    p.add_argument(
        "--direction",
        choices=["forward", "backward", "both"],
        default=None,
        help="forward from the earliest annotated frame, backward from the latest, or both ways from the "
        "earliest (default: forward when frame 0 is annotated, else both; backward keeps the frames it "
        "needs in memory at the processing size)",
    )
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--task", choices=["mask", "color"], default="mask", help="what to propagate (default: mask)")
    p.add_argument(
        "--propagator",
        choices=["tpn", "stm", "tpn+stm"],
        default=None,
        help="propagation network (default: stm for masks, tpn for colour, the only colour network); tpn+stm "
        "runs both on each guide and averages them (masks; best with --adapt-steps)",
    )
    p.add_argument("--selector", default="msn", help=f"guide selection (default: msn): {SELECTOR_HELP}")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument(
        "--max-side",
        type=int,
        default=None,
        help="process frames at most this long side (default: the network's own, 480 for masks and 384 for "
        "colour, where each scored best; with --adapt-steps and --task mask the default is 854, where adapted "
        "networks are much better: see results/evaluation.md)",
    )
    p.add_argument("--budget", type=int, default=None, help="memory pool candidates (0 = every previous frame)")
    p.add_argument(
        "--weights",
        default="auto",
        help="'auto' (Hub, else bundled), 'none' (untrained seeded networks), or MODEL.safetensors[,MSN.safetensors] "
        "(tpn+stm: TPN.safetensors+STM.safetensors[,MSN.safetensors])",
    )
    p.add_argument(
        "--adapt-steps",
        type=int,
        default=0,
        help="first fine-tune the propagation network on the annotated frame for this many steps "
        "(online adaptation; 300, at the 854 side it brings, is what was measured: much better masks, "
        "slow on a CPU, see results/evaluation.md; default 0: off)",
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="test-time flip: read each guide also mirrored left-right and average the two (slower, more "
        "accurate on the validation videos: results/evaluation.md, Test-time flip)",
    )
    p.add_argument("--no-video", action="store_true", help="do not write the overlay mp4")
    p.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.set_defaults(func=run)


def _weights_arg(value: str, propagator: str):
    if value == "auto":
        return "auto"
    if value == "none":
        return None
    parts = value.split(",")
    model = parts[0].split("+") if "+" in propagator else parts[0]
    return {"model": model, **({"msn": parts[1]} if len(parts) > 1 else {})}


def _check_args(args) -> None:
    """Flag values checked before anything is read or loaded."""
    if args.task == "mask" and not args.mask and not args.masks:
        raise InputError("--mask FIRST.png is required for --task mask (or --masks DIR, one PNG per annotated frame)")
    if args.mask and args.masks:
        raise InputError("give --mask (frame 0) or --masks (a folder of masks by frame index), not both")
    if args.task == "color" and (args.masks or args.direction not in (None, "forward")):
        raise InputError("colourization propagates frame 0's colours forward: --masks and --direction are for --task mask")
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be a positive integer, got {args.max_frames}")
    if args.max_side is not None and args.max_side < 2:
        raise InputError(f"--max-side must be at least 2 pixels, got {args.max_side}")
    if args.adapt_steps < 0:
        raise InputError(f"--adapt-steps must be 0 (off) or a positive number of steps, got {args.adapt_steps}")
    if args.budget is not None and (args.budget < 0 or args.budget == 1):
        raise InputError(f"--budget must be 0 (every previous frame) or at least 2, got {args.budget}")
    from msn_core.pipeline import check_device

    check_device(args.device, "--device")


def _check_out(out: Path, inputs: list[str], overwrite: bool) -> list[Path]:
    """Refuse an --out that is a file or the input folder, or holds an earlier run's results
    (without --overwrite), or holds a file this run reads (whatever --overwrite says: no input is
    ever replaced); the earlier results to remove before writing. ``inputs``: the video, the mask."""
    video = inputs[0]
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file; give a folder (it is created if missing)")
    if out.is_dir() and Path(video).is_dir() and out.resolve() == Path(video).resolve():
        raise InputError(f"--out '{out}' is the input folder; give another folder so no input is overwritten")
    old = sorted(p.name for p in out.iterdir() if _OUTPUT.match(p.name)) if out.is_dir() else []
    for name in old:
        for given in inputs:
            if Path(given).is_file() and _same_file(out / name, Path(given)):
                raise InputError(
                    f"--out '{out}' holds '{name}', which is an input of this run ({given}); a run writes "
                    "that name, and inputs are never replaced (not even with --overwrite): give another --out"
                )
    if old and not overwrite:
        raise InputError(
            f"--out '{out}' already holds the results of a run ({', '.join(old[:3])}{', ...' if len(old) > 3 else ''}); "
            "give an empty or new folder, or pass --overwrite to replace them"
        )
    return [out / name for name in old]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _annotations(args, source) -> tuple[dict, list[str]]:
    """{frame index: object ids} from --mask (frame 0) or --masks, checked against the video before
    loading any network, and the mask files read (inputs a run never replaces)."""
    from msn_core.annotations import annotation_task, mask_dir

    if args.mask:
        return {0: _first_mask(args, source)}, [args.mask]
    paths = mask_dir(args.masks)
    count = source.num_frames
    annotations = {}
    for index, path in paths.items():
        if count is not None and index >= count:
            cut = " (cut by --max-frames)" if args.max_frames is not None else ""
            raise InputError(
                f"--masks: '{path.name}' annotates frame {index} but the video{cut} has {count} frames (0..{count - 1})"
            )
        annotations[index] = _read_mask_at(path, source)
    annotation_task(annotations)  # object ids and the object cap
    return annotations, [str(p) for p in paths.values()]


def _read_mask_at(path, source):
    """One mask of --masks as object ids at the size the video is read at."""
    from msn_core.io import read_mask, resize_labels

    labels = read_mask(path)
    if labels.shape != source.size:
        raise InputError(
            f"--masks: '{path}' is {labels.shape[1]}x{labels.shape[0]} but the video's frames are "
            f"{source.size[1]}x{source.size[0]}; every mask must have the frames' size"
        )
    return resize_labels(labels, source.out_size)  # odd sizes are read at the even size just below


def _first_mask(args, source):
    """The --mask read as object ids and checked against the video before loading any network."""
    from msn_core.io import check_mask, read_mask, resize_labels
    from msn_core.tasks import MaskTask

    labels = read_mask(args.mask)
    if labels.shape != source.size:
        check_mask(labels, source.size, args.mask)  # names both sizes
    if source.out_size != source.size:  # odd sizes are read at the even size just below
        labels = resize_labels(labels, source.out_size)
    check_mask(labels, source.out_size, args.mask)
    MaskTask.from_labels(labels)  # object ids and the object cap
    return labels


def run(args) -> int:
    from tqdm import tqdm

    from msn_core.annotations import check_direction
    from msn_core.io import VideoWriter, open_video

    _check_args(args)
    args.propagator = args.propagator or default_propagator(args.task)
    cfg = PipelineConfig(propagator=args.propagator, task=args.task, test_flip=args.flip)
    if args.max_side is not None:
        cfg = dataclasses.replace(cfg, max_side=args.max_side)
    elif args.adapt_steps and args.task == "mask":
        cfg = dataclasses.replace(cfg, max_side=ADAPTED_MAX_SIDE)
    if args.budget is not None:
        budget = None if args.budget == 0 else args.budget
        recent = min(cfg.memory.recent, budget - 1) if budget else cfg.memory.recent
        cfg = dataclasses.replace(cfg, memory=MemoryConfig(budget=budget, recent=recent))
    selector = msn_core.make_selector(args.selector)  # a bad name fails before any loading
    if selector.needs_ground_truth:
        raise InputError(
            f"--selector {args.selector} needs the ground truth of every frame, which msn propagate does not "
            "take; use it with msn evaluate, or choose another selector"
        )
    source = open_video(args.video, max_frames=args.max_frames)
    annotations, mask_files = _annotations(args, source) if args.task == "mask" else (None, [])
    annotated = sorted(annotations) if annotations else [0]
    direction = check_direction(args.direction, annotated)
    out = Path(args.out)
    stale = _check_out(out, [args.video, *mask_files], args.overwrite)
    pipe = msn_core.load(
        args.propagator, args.task, selector, weights=_weights_arg(args.weights, args.propagator), device=args.device, config=cfg
    )
    if args.adapt_steps:
        from msn_core.adaptation import AdaptConfig, adapt

        start = annotated[0]  # the earliest annotated frame (frame 0 unless --masks says otherwise)
        mask = annotations[start] if annotations else None
        frame = source.first_frame() if start == 0 else _frame_at(source, start)
        pipe = adapt(pipe, frame, mask, AdaptConfig(steps=args.adapt_steps), progress=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path in stale:  # --overwrite: an earlier run's frames must not pass for this run's
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise InputError(f"cannot prepare the output folder '{out}' ({exc})") from exc
    record = {
        "video": str(args.video),
        "selector": pipe.selector.label,
        "propagator": args.propagator,
        "max_side": pipe.cfg.max_side,
        "test_flip": pipe.cfg.test_flip,
        "direction": direction,
        "annotated": annotated,
        "frames": [],
    }
    if "adapted" in pipe.weights_info:
        record["adapted"] = pipe.weights_info["adapted"]
    total = _expected(source, args.max_frames, annotated, direction)
    written: list[int] = []
    signum, video = None, not args.no_video
    streamed = direction == "forward"  # frames come in order: the overlay is written as they come
    try:
        with contextlib.ExitStack() as stack:
            writer = stack.enter_context(VideoWriter(out / "overlay.mp4", source.fps)) if video and streamed else None
            results = pipe.propagate(source, annotations, direction=direction)
            stack.callback(results.close)
            bar = stack.enter_context(tqdm(results, total=total, unit="frame", desc="propagating"))
            stop = stack.enter_context(StopOnSignal())

            def write(r) -> None:  # in the writer's thread: a frame is recorded once it is complete
                try:
                    _write_frame(out, r, writer, source.size)
                except BaseException:
                    drop_unrecorded(out, r.index)
                    raise
                record["frames"].append(
                    {"index": r.index, "annotated": r.annotated, "guides": r.guides,
                     "scores": {str(k): v for k, v in r.scores.items()}, "seconds": round(r.seconds, 4)}
                )  # fmt: skip
                written.append(r.index)

            writes = stack.enter_context(WriteBehind(write, WRITE_BEHIND))
            for r in bar:
                writes.put(r)
                bar.set_postfix(guide=r.guide if r.guide is not None else "-")
                if stop.signum is not None:
                    signum = stop.signum
                    break
    except KeyboardInterrupt:  # a second signal: the writers dropped their temp files, no overlay is left
        signum, video = signal.SIGINT, False  # (a frame whose write was cut off is not in the record)
    except (MSNError, OSError) as exc:  # a corrupt frame half-way, a full disk: keep what is complete, say so
        if isinstance(exc, OSError):  # writing failed (the inputs were checked before)
            exc = InputError(f"cannot write to '{out}': {exc.strerror or exc}")
        if not written:
            raise exc from None
        record.update(failed_at=len(written), error=str(exc))
        try:
            write_record(out, record)
            where = f"{span(written)} are complete in {out}, recorded in propagation.json"
        except OSError:
            where = f"{span(written)} are complete in {out}; propagation.json could not be written"
        raise type(exc)(f"{exc} ({stopped(written)}; {where})") from None
    if signum is not None:
        record["interrupted_at"] = len(written)
        write_record(out, record)
        say_stopped(out, written, video and streamed)
        return 128 + int(signum)
    if video and not streamed:
        write_overlay(out, source, set(written))
    write_record(out, record)
    secs = sum(f["seconds"] for f in record["frames"])
    done = len(written)
    print(f"wrote {done} frames to {out} ({secs / max(done, 1):.3f} s/frame, selector {pipe.selector.label})")
    return 0


def _expected(source, max_frames, annotated: list[int], direction: str) -> int | None:
    """How many results the run gives (for the progress bar; None when the length is unknown)."""
    n = source.num_frames if max_frames is None else min(max_frames, source.num_frames or 10**9)
    if direction == "backward":
        return annotated[-1] + 1
    if n is None or direction == "both":
        return n
    return n - annotated[0]


def _frame_at(source, index: int):
    """Frame ``index`` of the video (read from the start)."""
    import itertools

    for frame in itertools.islice(source, index, index + 1):
        return frame
    raise InputError(f"'{source.path}' has no frame {index}")


def _write_frame(out: Path, r, writer, size: tuple[int, int]) -> None:
    """Frame ``r`` as a PNG mask (or colour JPEG) at the video's own ``size`` (H, W), and into the overlay."""
    from PIL import Image

    from msn_core.io import atomic_write, overlay_labels, resize_frame, restore_labels, write_mask_png

    name = f"{r.index:05d}"
    if r.labels is not None:
        write_mask_png(out / f"{name}.png", restore_labels(r.labels, size))
        vis = overlay_labels(r.frame, r.labels)
    else:
        with atomic_write(out / f"{name}.jpg") as tmp:
            Image.fromarray(resize_frame(r.colors, size)).save(tmp, format="JPEG", quality=95)
        vis = r.colors
    if writer is not None:
        writer.write(vis)
