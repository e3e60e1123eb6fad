"""End-to-end speed of ``msn propagate`` on a 1280x720, 30 fps H.264 "phone video", and where the
time goes: decoding, the propagation loop, writing the PNG masks, writing the overlay mp4.

    .venv/bin/python benchmarks/end_to_end.py [--frames 30] [--sequence dog] [--threads 1] [--repeats 2]

(On a machine whose cores are busy with other jobs pin ``--threads 1``: oversubscribed torch threads
spin, see BENCHMARKS.md.)

The video is made from a bundled example's real frames (msn_core/assets/examples), upscaled to
1280x720 and played forwards then backwards to the length asked for, written with PyAV into a temp
folder, with the example's first mask upscaled beside it. Then:

1. ``msn propagate VIDEO --mask M --out DIR`` runs as a separate process, timed end to end (start-up,
   loading the networks, decoding, propagating, writing); its ``propagation.json`` gives the loop's
   own seconds per frame. It runs with its frames written behind the loop (the default,
   ``WRITE_BEHIND``) and, alternating, written in the loop's own thread (``WRITE_BEHIND = 0``);
2. the same stages run in-process through the functions the command uses (``open_video``,
   ``pipe.propagate``, ``write_mask_png`` + ``restore_labels``, ``overlay_labels`` + ``VideoWriter``),
   each timed on its own: the split by stage.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

import msn_core
import msn_core.commands.propagate as command
from msn_core.io import (
    VideoWriter,
    example_sequence,
    open_video,
    overlay_labels,
    read_mask,
    restore_labels,
    write_mask_png,
)

from _common import parser, save, setup

WRITE_BEHIND = 4 if hasattr(command, "WRITE_BEHIND") else 0  # the depth compared; 0 before it existed (bd6655c)
SIZE = (720, 1280)  # (H, W)
FPS = 30


def make_video(folder: Path, sequence: str, n: int) -> tuple[Path, Path]:
    """A 1280x720, 30 fps H.264 mp4 of ``n`` frames of ``sequence`` (ping-pong) and its first mask."""
    source, masks = example_sequence(sequence)
    frames = [cv2.resize(f, SIZE[::-1], interpolation=cv2.INTER_CUBIC) for f in source]
    order = frames + frames[-2:0:-1]
    video = folder / f"{sequence}_720p.mp4"
    with VideoWriter(video, FPS, crf=23) as writer:  # PyAV, libx264, yuv420p
        for frame in itertools.islice(itertools.cycle(order), n):
            writer.write(frame)
    mask = folder / "first.png"
    write_mask_png(mask, cv2.resize(read_mask(masks[0]), SIZE[::-1], interpolation=cv2.INTER_NEAREST))
    return video, mask


CLI = ("import sys; import msn_core.commands.propagate as c; c.WRITE_BEHIND = int(sys.argv[1]); "
       "from msn_core.cli import main; sys.exit(main(sys.argv[2:]))")


def run_cli(video: Path, mask: Path, out: Path, args, depth: int) -> dict:
    """``msn propagate`` in its own process (``depth``: its WRITE_BEHIND, 0 = writing in the loop's
    thread): wall seconds, and the loop's seconds from its record."""
    cmd = [sys.executable, "-c", CLI, str(depth), "propagate", str(video), "--mask", str(mask), "--out", str(out),
           "--propagator", args.propagator, "--weights", args.weights, "--device", args.device]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    record = json.loads((out / "propagation.json").read_text())
    loop = sum(f["seconds"] for f in record["frames"])
    return {"write_behind": depth, "wall_s": wall, "frames": len(record["frames"]), "loop_s": loop}


class Timed:
    """Frames of ``source`` with the seconds spent decoding them added up in ``seconds``."""

    def __init__(self, source) -> None:
        self.source, self.seconds = source, 0.0

    def __iter__(self):
        frames = iter(self.source)
        while True:
            start = time.perf_counter()
            frame = next(frames, None)
            self.seconds += time.perf_counter() - start
            if frame is None:
                return
            yield frame


def staged(pipe, video: Path, mask: Path, out: Path) -> dict:
    """The command's stages in-process, each timed: seconds per stage and frames."""
    source = open_video(video)
    first = read_mask(mask)
    timed = Timed(source)
    png = mp4 = 0.0
    start = time.perf_counter()
    results = pipe.propagate(timed, {0: first})
    n = 0
    with VideoWriter(out / "overlay.mp4", source.fps) as writer:
        for r in results:
            t0 = time.perf_counter()
            write_mask_png(out / f"{r.index:05d}.png", restore_labels(r.labels, source.size))
            t1 = time.perf_counter()
            writer.write(overlay_labels(r.frame, r.labels))
            t2 = time.perf_counter()
            png, mp4, n = png + t1 - t0, mp4 + t2 - t1, n + 1
        t3 = time.perf_counter()
    mp4 += time.perf_counter() - t3  # the encoder's last frames and the file's index, on close
    total = time.perf_counter() - start
    loop = total - png - mp4 - timed.seconds
    return {"frames": n, "total_s": total, "decode_s": timed.seconds, "loop_s": loop, "png_s": png, "mp4_s": mp4}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--sequence", default="dog", help=f"bundled example ({', '.join(msn_core.list_examples())})")
    p.add_argument("--propagator", default="tpn", choices=["tpn", "stm"])
    p.add_argument("--repeats", type=int, default=1, help="command runs of each writing mode, alternating")
    args = p.parse_args()
    setup(args)
    with tempfile.TemporaryDirectory(prefix="msn_e2e_") as tmp:
        tmp = Path(tmp)
        video, mask = make_video(tmp, args.sequence, args.frames)
        print(f"made {video.name}: {args.frames} frames, {SIZE[1]}x{SIZE[0]}, {FPS} fps, "
              f"{video.stat().st_size / 2**20:.1f} MB")  # fmt: skip
        runs = []
        for k, depth in enumerate([WRITE_BEHIND, 0] * args.repeats):  # alternating: the machine's load drifts
            runs.append(run_cli(video, mask, tmp / f"cli{k}", args, depth))
        pipe = msn_core.load(args.propagator, "mask", "msn", weights=None if args.weights == "none" else "auto",
                             device=args.device)  # fmt: skip
        warm = open_video(video, max_frames=3)
        list(pipe.propagate(warm, {0: read_mask(mask)}))  # warm-up
        (tmp / "staged").mkdir()
        st = staged(pipe, video, mask, tmp / "staged")
    n = st["frames"]
    print(f"\nmsn propagate ({args.propagator} + msn, processed at max side {pipe.cfg.max_side}), own process, "
          "start-up and loading included:")  # fmt: skip
    for cli in runs:
        how = f"writing behind the loop ({cli['write_behind']} frames)" if cli["write_behind"] else "writing in the loop"
        print(f"  {how:36s} {cli['frames']} frames in {cli['wall_s']:.2f} s = {cli['frames'] / cli['wall_s']:.2f} fps "
              f"end to end; its loop (propagation.json) {cli['frames'] / cli['loop_s']:.2f} fps")  # fmt: skip
    print(f"\nthe same stages in-process ({n} frames, networks loaded and warm):")
    for key, what in (("decode_s", "decode 1280x720 H.264 -> RGB"), ("loop_s", "propagation loop"),
                      ("png_s", "PNG masks at 1280x720"), ("mp4_s", "overlay + H.264 mp4 at 1280x720")):  # fmt: skip
        print(f"  {what:34s} {st[key] / n * 1000:7.1f} ms/frame  {st[key] / st['total_s'] * 100:5.1f} %")
    print(f"  {'total':34s} {st['total_s'] / n * 1000:7.1f} ms/frame = {n / st['total_s']:.2f} fps "
          f"(loop only: {n / st['loop_s']:.2f} fps)")  # fmt: skip
    save(f"end_to_end_{args.propagator}", {
        "frames": n, "video": f"{SIZE[1]}x{SIZE[0]} {FPS} fps H.264 ({args.sequence}, upscaled)",
        "max_side": pipe.cfg.max_side, "threads": torch.get_num_threads(), "cli_runs": runs,
        "cli_fps_end_to_end": {str(d): [r["frames"] / r["wall_s"] for r in runs if r["write_behind"] == d]
                               for d in (WRITE_BEHIND, 0)},
        "staged_ms_per_frame": {k[:-2]: st[k] / n * 1000 for k in ("decode_s", "loop_s", "png_s", "mp4_s", "total_s")},
        "staged_fps": n / st["total_s"], "staged_fps_loop": n / st["loop_s"],
    })  # fmt: skip


if __name__ == "__main__":
    main()
