"""The demo's state and messages: a failed or removed upload leaves no clip behind, the Compare tab's
"your video" refuses the bundled clip, messages carry no errno noise, the comparison video's titles
are drawable, the flip default is the CLI's, and the network help follows the choice.
What a user sees of the same in a real browser: test_demo_browser_state.py."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from demo_server import serve_demo
from prose import MEASURED

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio")

import gradio as gr  # noqa: E402

from demos import common, compare, segment  # noqa: E402
from demos.app import build_demo  # noqa: E402
from demos.common import PROPAGATORS, open_example, propagator_help, scrub  # noqa: E402
from demos.limits import Limits  # noqa: E402
from msn_core.config import PipelineConfig  # noqa: E402
from msn_core.viz.images import _font  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:::gradio.queueing"), pytest.mark.usefixtures("offline_hub")]

LIMITS = Limits(max_frames=6, default_frames=4, max_side=214, process_side=214, max_upload_mb=5)
EXAMPLE = "dog"
AppError = gradio_client.exceptions.AppError


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_demo(LIMITS, tmp_path_factory.mktemp("sessions")) as url:
        yield url


@pytest.fixture
def client(server):
    return gradio_client.Client(server, verbose=False)


@pytest.fixture
def holiday(tmp_path):
    """Random bytes named like a video: PyAV's "invalid data" error."""
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    return gradio_client.handle_file(str(bad))


def error_of(client, *args, api_name: str) -> str:
    with pytest.raises(AppError) as err:
        client.predict(*args, api_name=api_name)
    return str(err.value)


def test_a_failed_upload_leaves_no_clip_to_propagate(client, holiday):
    client.predict(EXAMPLE, api_name="/segment_load_example")  # the page opens on an example
    msg = error_of(client, holiday, api_name="/segment_load_upload")
    assert "'holiday.mp4' is not a readable video" in msg
    msg = error_of(client, "tpn", "msn", 3, api_name="/segment_run")  # not the example left behind
    assert "no usable video: 'holiday.mp4' could not be read" in msg, msg
    msg = error_of(client, compare.SEGMENT_SOURCE, "tpn", "previous", 3, api_name="/compare_run")
    assert "Segment tab has no video" in msg, msg


def test_removing_the_upload_resets_the_tab(client, tmp_video):
    info, view, _, _, note = client.predict(gradio_client.handle_file(str(tmp_video)), api_name="/segment_load_upload")
    assert "**dog**" in info and view is not None and "No object marked yet" in note
    info, view, editor, _, note = client.predict(api_name="/segment_remove_upload")
    assert view is None and editor is None
    assert "upload a video" in info and "pick a bundled example" in info and note == info
    assert "load a video first" in error_of(client, 5, 5, 1, "positive", api_name="/segment_click")
    assert "load a video first" in error_of(client, "tpn", "msn", 3, api_name="/segment_run")


def test_compare_your_video_refuses_the_bundled_clip(client):
    client.predict(EXAMPLE, api_name="/segment_load_example")  # what the Segment tab opens on
    msg = error_of(client, compare.SEGMENT_SOURCE, "tpn", "previous", 3, api_name="/compare_run")
    assert "nothing was uploaded" in msg and f"pick '{EXAMPLE}' in the Video list" in msg, msg


def test_compare_your_video_runs_an_upload():
    example = open_example(EXAMPLE, LIMITS)
    s = segment.Session(clip=dataclasses.replace(example, example=None, truth=[]))  # as an upload
    s.labels = example.truth_labels(1)[0]
    *_, final = compare.run(s, compare.SEGMENT_SOURCE, "tpn", "previous", 3, LIMITS)
    assert "Done" in final[0]


def test_messages_are_one_sentence_without_errno(client, holiday):
    msg = error_of(client, holiday, api_name="/segment_load_upload")
    assert "Errno" not in msg and "1094995529" not in msg and msg.count("holiday.mp4") == 1, msg
    assert "(invalid data found when processing input)" in msg, msg
    assert scrub("'/tmp/gradio/ab12/clip.mp4' is not a readable video") == "'clip.mp4' is not a readable video"
    assert scrub("OSError: [Errno 28] No space left on device") == "OSError: no space left on device"
    assert scrub("[Errno 2] No such file or directory: '/a/b.txt'") == "no such file or directory: 'b.txt'"


def test_comparison_video_titles_are_drawable(monkeypatch):
    titles: list[str] = []
    side_by_side = compare.viz.side_by_side

    def spy(images, names=None, **kw):
        titles.extend(names or [])
        return side_by_side(images, names, **kw)

    monkeypatch.setattr(compare.viz, "side_by_side", spy)
    list(compare.run(None, EXAMPLE, "tpn", "previous", 3, LIMITS))
    assert any(re.fullmatch(r"MSN · frame 2, guide \d+", t) for t in titles), titles  # whichever guide MSN picks
    font = _font(20)
    missing = list(font.getmask("\ue000"))  # a private-use character: the font's "no glyph" box
    undrawable = {c for t in titles for c in t if c != " " and list(font.getmask(c)) == missing}
    assert not undrawable, undrawable
    assert list(font.getmask("←")) == missing  # what the titles used to hold


def test_flip_starts_as_the_cli_default(monkeypatch):
    def flips():
        demo = build_demo(LIMITS)
        return [b.value for b in demo.blocks.values() if str(getattr(b, "label", "")).startswith("Test-time flip")]

    assert flips() == [PipelineConfig.test_flip] * 2 == [False, False]  # Segment and Compare, off as `--flip`
    monkeypatch.setattr(PipelineConfig, "test_flip", True)  # read from there, not copied
    assert flips() == [True, True]


def test_network_help_describes_the_selected_network():
    for label, key in PROPAGATORS:
        text = propagator_help(key)
        assert text.startswith(f"{label}:"), text
        others = [lab for lab, k in PROPAGATORS if k != key and lab not in label]
        assert not any(f"{o}:" in text for o in others), text
    demo = build_demo(Limits(default_adapt_steps=0))
    radio = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "seg-propagator")
    assert radio.info == propagator_help(radio.value)


def test_demo_hints_hold_no_measured_figures():
    """The adaptation, flip and network hints point to results/evaluation.md instead of quoting figures."""
    for hint in (common.adapt_help(Limits()), common.FLIP_HELP):
        assert "results/evaluation.md" in hint and not MEASURED.search(hint), hint
    for hint in common.PROPAGATOR_HELP.values():
        assert not MEASURED.search(hint), hint
    assert MEASURED.search("from about 60 to about 78; on a CPU a step takes about 0.3 s")


def test_a_failed_upload_never_changes_a_loaded_session_in_place():
    s = segment.load_example(EXAMPLE, LIMITS)[0]
    updates = segment.load_upload(None, LIMITS)
    emptied = next(updates)
    assert emptied[0] is not s and emptied[0].clip is None and s.clip is not None
    with pytest.raises(gr.Error, match="no file was uploaded"):
        next(updates)


def test_clicks_of_one_session_apply_one_at_a_time(monkeypatch):
    """Two clicks of one session processed at once (a queue with concurrency > 1): both count, and the
    mask is the one of both clicks, not of whichever finished last."""
    import threading
    import time

    from demos import annotate

    cut = annotate.labels_from_clicks

    def slow(frame, clicks):
        n = len(clicks)
        time.sleep(0.6 if n == 1 else 0.05)  # without the lock the first click's mask lands last
        return cut(frame, clicks)

    monkeypatch.setattr(annotate, "labels_from_clicks", slow)
    s = segment.load_example(EXAMPLE, LIMITS)[0]
    h, w = s.clip.out_size
    clicks = [(w // 2, h // 2), (w // 3, h // 2)]
    threads = [threading.Thread(target=segment.add_click, args=(s, x, y, 1, "positive")) for x, y in clicks]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert len(s.clicks) == 2 and "from 2 clicks" in segment.describe_annotation(s)
    np.testing.assert_array_equal(s.labels, cut(s.clip.first, s.clicks))


def test_a_box_is_two_clicks_in_box_mode():
    from demos import annotate

    clicks, corner = annotate.add_point([], None, 30, 40, 2, "box")
    assert clicks == [] and corner == (30, 40)
    clicks, corner = annotate.add_point(clicks, corner, 10, 90, 2, "box")
    assert clicks == [(10, 40, 30, 90, 2)] and corner is None  # corners in either order
    clicks, corner = annotate.add_point(clicks, (5, 5), 7, 7, 1, True)  # a click drops a waiting corner
    assert clicks[-1] == (7, 7, 1, True) and corner is None
    with pytest.raises(segment.InputError, match="too thin"):
        annotate.add_point(clicks, (5, 5), 6, 80, 1, "box")
    assert annotate.count_marks(clicks) == "1 box and 1 click" and annotate.count_marks([]) == "0 clicks"
