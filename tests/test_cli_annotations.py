"""``msn propagate --masks DIR --direction ...`` end to end on the bundled ``dog`` clip (seeded
untrained networks, processed at a 96 px long side to stay fast)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from msn_core.cli import main
from msn_core.io import example_path, open_video, read_mask, write_mask_png

pytestmark = pytest.mark.usefixtures("one_thread", "offline_hub")

FRAMES = 8


def masks_dir(tmp_path, *indices: int, name: str = "masks"):
    """A DAVIS-style folder holding the example's own masks of ``indices``."""
    folder = tmp_path / name
    folder.mkdir()
    for i in indices:
        shutil.copyfile(example_path("dog") / f"{i:05d}.png", folder / f"{i:05d}.png")
    return folder


def run(argv, capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("msn propagate")]
    return rc, "\n".join(lines)


def propagate(tmp_path, capsys, *extra, out="out"):
    rc, err = run(["propagate", example_path("dog"), "--out", tmp_path / out, "--weights", "none",
                   "--max-frames", FRAMES, "--max-side", 96, "--selector", "previous", *extra], capsys)  # fmt: skip
    assert rc == 0, err
    return tmp_path / out, json.loads((tmp_path / out / "propagation.json").read_text())


@pytest.mark.parametrize(
    "annotated,direction,order",
    [
        ((0, 5), None, list(range(FRAMES))),
        ((3,), None, [3, 2, 1, 0, 4, 5, 6, 7]),  # both ways by default when frame 0 is not annotated
        ((7,), "backward", list(range(7, -1, -1))),
        ((2, 7), "both", [2, 1, 0, 3, 4, 5, 6, 7]),
    ],
)
def test_masks_and_direction_write_every_frame_and_the_record(tmp_path, capsys, annotated, direction, order):
    folder = masks_dir(tmp_path, *annotated)
    out, record = propagate(tmp_path, capsys, "--masks", folder, *(["--direction", direction] if direction else []))
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}.png" for i in range(FRAMES)]
    for i in annotated:  # an annotated frame's result is its annotation
        np.testing.assert_array_equal(read_mask(out / f"{i:05d}.png"), read_mask(folder / f"{i:05d}.png"))
    assert record["direction"] == (direction or ("forward" if 0 in annotated else "both"))
    assert record["annotated"] == list(annotated)
    assert [f["index"] for f in record["frames"]] == list(range(FRAMES))  # in frame order, whatever the direction
    assert [f["annotated"] for f in record["frames"]] == [i in annotated for i in range(FRAMES)]
    guides = {f["index"]: f["guides"] for f in record["frames"]}
    for i in order:  # "previous": the neighbour on the side the frame was propagated from
        assert guides[i] == ([] if i in annotated else [i + 1 if i < order[0] else i - 1]), (i, guides)
    assert sum(1 for _ in open_video(out / "overlay.mp4")) == FRAMES  # made in frame order at the end


def test_backward_from_a_middle_annotation_writes_the_frames_up_to_it(tmp_path, capsys):
    out, record = propagate(tmp_path, capsys, "--masks", masks_dir(tmp_path, 4), "--direction", "backward")
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}.png" for i in range(5)]
    assert [f["index"] for f in record["frames"]] == list(range(5))


def test_bad_masks_folders_exit_2_with_one_line(tmp_path, capsys):
    ok = masks_dir(tmp_path, 0, 3)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no masks here")
    named = masks_dir(tmp_path, 0, name="named")
    shutil.copyfile(named / "00000.png", named / "first.png")
    beyond = masks_dir(tmp_path, 0, name="beyond")
    shutil.copyfile(beyond / "00000.png", beyond / "00040.png")
    sizes = masks_dir(tmp_path, 0, name="sizes")
    Image.fromarray(np.ones((100, 100), np.uint8) * 255).save(sizes / "00003.png")
    twice = masks_dir(tmp_path, 3, name="twice")
    shutil.copyfile(twice / "00003.png", twice / "3.png")
    blank = tmp_path / "blank"
    blank.mkdir()
    write_mask_png(blank / "00000.png", np.zeros((240, 428), np.uint8))
    write_mask_png(blank / "00002.png", np.zeros((240, 428), np.uint8))
    cases = [
        (["--masks", empty], "holds no PNG mask"),
        (["--masks", named], "'first.png' is not named by a frame index"),
        (["--masks", beyond], "'00040.png' annotates frame 40 but the video (cut by --max-frames) has 8 frames"),
        (["--masks", sizes], "00003.png' is 100x100 but the video's frames are 428x240"),
        (["--masks", twice], "both annotate frame 3"),
        (["--masks", blank], "the annotated masks have no object"),
        (["--masks", tmp_path / "missing"], "is not a folder"),
        (["--masks", ok, "--mask", ok / "00000.png"], "not both"),
        (["--masks", ok, "--task", "color"], "--masks and --direction are for --task mask"),
        (["--masks", ok, "--direction", "sideways"], "invalid choice"),
    ]
    for extra, message in cases:
        out = tmp_path / "o"
        try:
            rc, err = run(["propagate", example_path("dog"), "--out", out, "--weights", "none",
                           "--max-frames", FRAMES, *extra], capsys)  # fmt: skip
        except SystemExit as exc:  # argparse's own refusals
            rc, err = exc.code, capsys.readouterr().err
        assert rc == 2 and message in err, (extra, err)
        assert len([line for line in err.splitlines() if "error" in line]) == 1, err
        assert not out.exists()  # nothing written for a run that could not start


def test_the_masks_given_are_never_replaced(tmp_path, capsys):
    """--out may not be the --masks folder: a run writes 00000.png ... there (even with --overwrite)."""
    folder = masks_dir(tmp_path, 0, 3)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for extra in ([], ["--overwrite"]):
        rc, err = run(["propagate", example_path("dog"), "--masks", folder, "--out", folder, "--weights", "none",
                       "--max-frames", FRAMES, *extra], capsys)  # fmt: skip
        assert rc == 2 and "which is an input of this run" in err and "00000.png" in err, err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
