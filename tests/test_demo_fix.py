"""Correcting a frame after a Segment run and propagating again from it (demos.corrections,
demos.segment_fix): which frames each direction recomputes, on which slice, and undo.
The slicing runs on a recording stand-in pipeline (instant); one run goes through the served
demo with the real networks (gradio_client). In a real browser: test_demo_browser_fix.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from demo_server import serve_demo
from PIL import Image
from prose import MEASURED

from demos import corrections
from demos.corrections import RunResult, span
from msn_core.errors import InputError

N = 20  # frames of the stand-in run


class CopyPipe:
    """Propagates by copying the anchor's mask; records each call's slice and annotation."""

    def __init__(self):
        self.calls: list[tuple[int, int, list[int], str]] = []
        self.references: list[list[int]] = []  # per call, the frames given as references

    def propagate(self, frames, annotations, direction, selector, ground_truth=None, references=()):
        lo = int(frames[0][0, 0, 0])  # each frame holds its index
        (anchor, mask), = annotations.items()
        self.calls.append((lo, lo + len(frames), [lo + a for a in annotations], direction))
        self.references.append([int(f[0, 0, 0]) for f, _ in references])
        order = {"forward": range(anchor, len(frames)), "backward": range(anchor, -1, -1),
                 "both": range(len(frames))}[direction]  # fmt: skip
        for i in order:
            yield SimpleNamespace(index=i, labels=mask.copy())


def mask(value: int) -> np.ndarray:
    m = np.zeros((4, 4), np.uint8)
    m[1:3, 1:3] = value
    return m


@pytest.fixture
def frames() -> list[np.ndarray]:
    return [np.full((4, 4, 3), t, np.uint8) for t in range(N)]


@pytest.fixture
def result(tmp_path) -> RunResult:
    run = SimpleNamespace(pipe=CopyPipe(), truth=[])
    base = mask(1)
    return RunResult(run, "msn", [base.copy() for _ in range(N)], [0] * N, {0: base}, tmp_path, "clip", 24.0)


def changed(result: RunResult, value: int) -> list[int]:
    return [t for t, m in enumerate(result.masks) if (m == value).any()]


def test_span_of_each_direction():
    assert span([0], 10, "forward", N) == (10, N)
    assert span([0, 15], 10, "forward", N) == (10, 15)
    assert span([0], 10, "backward", N) == (1, 11)
    assert span([], 10, "backward", N) == (0, 11)
    assert span([0, 5, 15], 10, "both", N) == (6, 15)
    with pytest.raises(InputError, match="direction must be one of"):
        span([0], 10, "sideways", N)


def test_forward_recomputes_from_the_frame_to_the_end(result, frames):
    assert corrections.correct(result, frames, 10, mask(2), "forward") == list(range(10, N))
    assert result.run.pipe.calls == [(10, N, [10], "forward")]
    assert changed(result, 2) == list(range(10, N)) and changed(result, 1) == list(range(10))


def test_forward_stops_before_the_next_corrected_frame(result, frames):
    corrections.correct(result, frames, 15, mask(3), "forward")
    assert corrections.correct(result, frames, 10, mask(2), "forward") == list(range(10, 15))
    assert result.run.pipe.calls[-1] == (10, 15, [10], "forward")
    assert result.run.pipe.references[-1] == [0, 15]  # every other annotated frame is read on the way
    assert changed(result, 3) == list(range(15, N))


def test_backward_recomputes_after_the_previous_annotated_frame(result, frames):
    assert corrections.correct(result, frames, 10, mask(2), "backward") == list(range(1, 11))
    assert result.run.pipe.calls == [(1, 11, [10], "backward")]
    assert changed(result, 1) == [0, *range(11, N)]


def test_both_recomputes_between_the_neighbouring_annotated_frames(result, frames):
    corrections.correct(result, frames, 5, mask(3), "forward")
    corrections.correct(result, frames, 15, mask(4), "forward")
    assert corrections.correct(result, frames, 10, mask(2), "both") == list(range(6, 15))
    assert result.run.pipe.calls[-1] == (6, 15, [10], "both")
    assert changed(result, 3) == [5] and changed(result, 4) == list(range(15, N))


def test_a_new_object_may_first_appear_on_a_corrected_frame(result, frames):
    two = mask(1)
    two[0, 0] = 2  # object 2 appears on frame 10
    corrections.correct(result, frames, 10, two, "forward")
    assert [t for t, m in enumerate(result.masks) if (m == 2).any()] == list(range(10, N))


def test_undo_restores_the_earlier_result(result, frames):
    before = [m.copy() for m in result.masks]
    corrections.correct(result, frames, 10, mask(2), "forward")
    assert corrections.undo(result, frames, 10) == list(range(10, N))
    assert result.run.pipe.calls[-1] == (0, N, [0], "forward")  # from the run's own annotation again
    assert all((a == b).all() for a, b in zip(result.masks, before)) and result.owner == [0] * N
    assert not result.fixes


def test_undo_gives_frames_back_to_their_earlier_owner(result, frames):
    corrections.correct(result, frames, 15, mask(3), "forward")  # 15..19
    corrections.correct(result, frames, 10, mask(2), "both")  # 1..14
    assert corrections.undo(result, frames, 10) == list(range(1, 15))
    assert changed(result, 1) == list(range(15)) and changed(result, 3) == list(range(15, N))
    corrections.correct(result, frames, 10, mask(2), "forward")  # 10..14, taken from frame 0
    corrections.undo(result, frames, 15)  # 15..19 go back to frame 0's forward run (its owner before)
    assert result.run.pipe.calls[-1] == (0, N, [0], "forward")
    assert changed(result, 2) == list(range(10, 15)) and changed(result, 1) == [*range(10), *range(15, N)]


def test_undo_of_a_gone_owner_takes_the_nearest_annotated_frame(result, frames):
    corrections.correct(result, frames, 10, mask(2), "forward")  # 10..19, from frame 0
    corrections.correct(result, frames, 15, mask(3), "backward")  # 11..15, from frame 10
    corrections.correct(result, frames, 18, mask(4), "backward")  # 16..18, from frame 10
    corrections.undo(result, frames, 10)  # 10 and 19 back to frame 0
    assert changed(result, 1) == [*range(11), 19] and changed(result, 3) == list(range(11, 16))
    corrections.undo(result, frames, 15)  # 11..15 were frame 10's: each from the nearest annotated frame
    assert result.run.pipe.calls[-1] == (11, 19, [18], "backward")  # 18 is nearer than 0
    assert changed(result, 4) == list(range(11, 19)) and changed(result, 1) == [*range(11), 19]


def test_bad_corrections_are_refused_in_one_line(result, frames):
    with pytest.raises(InputError, match=r"frame 20 is out of range: this run has frames 0–19"):
        corrections.correct(result, frames, 20, mask(2), "forward")
    with pytest.raises(InputError, match="marks no object"):
        corrections.correct(result, frames, 3, np.zeros((4, 4), np.uint8), "forward")
    with pytest.raises(InputError, match=r"frame 3 has no correction to undo \(corrected frames: none\)"):
        corrections.undo(result, frames, 3)
    assert not result.run.pipe.calls


def test_outputs_are_rewritten_from_the_stored_masks(result, tmp_path):
    frames = [np.full((16, 16, 3), t, np.uint8) for t in range(N)]
    result.masks = [np.pad(m, 6) for m in result.masks]
    files, shown = corrections.write_outputs(result, frames, list(range(N)), show=10)
    assert shown.shape == (16, 16, 3) and (shown[6:10, 6:10] != 10).any()  # frame 10 with its mask drawn
    assert [Path(f).name for f in files] == ["clip_masks.zip", "overlay.mp4", "clip_cutouts.zip"]
    assert np.asarray(Image.open(tmp_path / "masks" / "00010.png")).max() == 1


def test_ranges_reads_as_text():
    assert corrections.ranges([3, 4, 5, 9]) == "3–5, 9" and corrections.ranges([]) == "none"


# ------------------------------------------------------------------- the served demo

LIMITS = dict(max_frames=8, default_frames=8, max_side=214, process_side=214, max_upload_mb=5)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    gradio_client = pytest.importorskip("gradio_client")
    from demos.limits import Limits

    with serve_demo(Limits(**LIMITS), tmp_path_factory.mktemp("sessions")) as url:
        yield gradio_client.Client(url, verbose=False)


def zip_masks(files, folder: Path) -> list[np.ndarray]:
    import zipfile

    import msn_core

    with zipfile.ZipFile(next(f for f in files if f.endswith("masks.zip"))) as zf:
        names = sorted(zf.namelist())
        zf.extractall(folder)
    return [msn_core.read_mask(folder / n) for n in names]


@pytest.mark.filterwarnings("ignore:::gradio.queueing")
def test_correct_a_frame_propagate_forward_and_undo_through_the_api(client, tmp_path):
    import gradio_client

    AppError = gradio_client.exceptions.AppError
    client.predict("dog", api_name="/segment_load_example")
    with pytest.raises(AppError, match="there is no run to correct yet: press Propagate first"):
        client.predict(3, api_name="/segment_fix_frame")
    status, _, _, files = client.predict("tpn", "msn", 8, api_name="/segment_run")
    assert "Done" in status and "correct it" in status
    before = zip_masks(files, tmp_path / "before")
    with pytest.raises(AppError, match="frame 8 is out of range: this run has frames 0–7|greater than maximum value 7"):
        client.predict(8, api_name="/segment_fix_frame")  # the slider's own bound (the run's frames) or ours
    view, note, _, _ = client.predict(5, api_name="/segment_fix_frame")
    assert "Frame 5" in note and "propagated from the annotation of frame 0" in note
    h, w = before[0].shape
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((h, w), np.uint8)).save(empty)
    with pytest.raises(AppError, match="has no object"):
        client.predict(gradio_client.handle_file(str(empty)), api_name="/segment_fix_mask")
    fix = np.zeros((h, w), np.uint8)
    fix[: h // 3, : w // 3] = 1  # a box in the corner: nothing like the dog
    fix[-h // 4 :, -w // 4 :] = 2  # and a new object
    Image.fromarray(fix).save(tmp_path / "fix.png")
    with pytest.raises(AppError, match="frame 4 has no correction yet"):
        client.predict(4, "forward", api_name="/segment_fix_propagate")
    client.predict(gradio_client.handle_file(str(tmp_path / "fix.png")), api_name="/segment_fix_mask")
    status, live, video, files, *_ = client.predict(5, "forward", api_name="/segment_fix_propagate")
    assert "Frame 5 corrected" in status and "frames 5–7 propagated forward" in status
    assert Path(live).is_file()  # the live preview shows the last frame propagated, not the old run's
    after = zip_masks(files, tmp_path / "after")
    np.testing.assert_array_equal(after[5], fix)
    assert (after[6] == 2).any() and (after[7] == 2).any()  # the new object goes on
    for t in range(5):
        np.testing.assert_array_equal(after[t], before[t])
    status, live, video, files, *_ = client.predict(5, api_name="/segment_fix_undo")
    assert "Correction of frame 5 undone" in status and "frames 5–7 recomputed" in status
    undone = zip_masks(files, tmp_path / "undone")
    for t in range(8):
        np.testing.assert_array_equal(undone[t], before[t])
    with pytest.raises(AppError, match="there is no correction to undo"):
        client.predict(None, api_name="/segment_fix_undo")


def test_the_panel_help_has_no_measured_figures():
    segment_fix = pytest.importorskip("demos.segment_fix")
    texts = [segment_fix.HELP, segment_fix.CLICK_HINT, *(label for label, _ in segment_fix.DIRECTION_CHOICES)]
    assert not any(MEASURED.search(t) for t in texts), texts


def test_clicks_on_a_frame_then_propagate_backward_through_the_handlers(tmp_path):
    pytest.importorskip("gradio")
    from demos import segment_fix
    from demos.common import open_example
    from demos.limits import Limits
    from demos.segment_state import Session

    clip = open_example("dog", Limits(**LIMITS))
    n = clip.count()
    run = SimpleNamespace(pipe=CopyPipe(), truth=[], j=lambda t, labels: None)
    h, w = clip.out_size
    base = np.zeros((h, w), np.uint8)
    base[:10, :10] = 1
    (tmp_path / "masks").mkdir()
    s = Session(clip=clip, result=RunResult(run, "msn", [base.copy() for _ in range(n)], [0] * n, {0: base},
                                            tmp_path, "dog", clip.fps))  # fmt: skip
    with pytest.raises(Exception, match="frame 3 has no correction yet"):
        segment_fix.propagate_fix(s, 3, "backward")
    segment_fix.show_frame(s, 3)
    _, note = segment_fix.fix_click(s, w // 2, h // 2, 2, "positive")  # a new object on frame 3
    assert "objects 1, 2" in note and (s.result.draft[:10, :10] == 1).all()  # object 1 kept
    with pytest.raises(Exception, match="outside the"):
        segment_fix.fix_click(s, w + 5, 0, 2, "positive")
    status, live, video, files, *_ = segment_fix.propagate_fix(s, 3, "backward")
    assert "frames 1–3 propagated backward" in status and Path(video).is_file() and len(files) == 3
    assert live.shape[:2] == (h, w)  # the live preview: frame 1, where the backward pass ended
    ((lo, hi, (anchor,), direction),) = run.pipe.calls  # (real frames: lo is not the index here)
    assert (hi - lo, anchor - lo, direction) == (3, 2, "backward")  # frames 1..3, the correction last
    assert [t for t, m in enumerate(s.result.masks) if (m == 2).any()] == [1, 2, 3]
    # a box on frame 5 replaces object 1 there by what the click net finds inside it
    segment_fix.show_frame(s, 5)
    _, note = segment_fix.fix_click(s, 1, 1, 1, "box")
    assert "click the opposite corner" in note and s.result.draft is None
    _, note = segment_fix.fix_click(s, w // 2, h // 2, 1, "box")
    assert "Correction drawn (clicks" in note and s.result.clicks == [(1, 1, w // 2, h // 2, 1)]
    assert not (s.result.draft[h // 2 + 1 :] == 1).any() and not (s.result.draft[:, w // 2 + 1 :] == 1).any()
