"""The Gradio demo, driven end to end through ``gradio_client`` on the bundled examples.

The app runs in-process on a free port with small limits (10 frames; 384 px, the demo's default and the
scale the bundled weights were trained at) so each tab's run takes seconds, with the bundled weights
(without them the untrained seeded nets run: TPN is then flow warping, so masks still follow the object).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from demo_server import serve_demo
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio")

import gradio as gr  # noqa: E402

import msn_core  # noqa: E402
from demos import annotate, common, compare, segment  # noqa: E402
from demos.app import build_demo  # noqa: E402
from demos.common import UNTRAINED_NOTICE, get_pipeline, open_example, sides_text  # noqa: E402
from demos.limits import Limits  # noqa: E402
from msn_core.io import resize_labels  # noqa: E402
from msn_core.metrics import db_eval_iou  # noqa: E402

# gradio 6.31 calls pandas APIs that pandas 3 deprecates; not ours to fix
pytestmark = [pytest.mark.filterwarnings("ignore:::gradio.queueing"), pytest.mark.usefixtures("offline_hub")]

LIMITS = Limits(max_frames=10, default_frames=8, max_side=384, max_upload_mb=5)
EXAMPLE = "dog"
OUT_SIZE = (216, 384)  # dog (240x428) downscaled to a 384 px long side



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_demo(LIMITS, tmp_path_factory.mktemp("sessions")) as url:
        yield url


@pytest.fixture
def client(server):
    return gradio_client.Client(server, verbose=False)


@pytest.fixture(scope="module")
def truth() -> list[np.ndarray]:
    _, masks = msn_core.example_sequence(EXAMPLE)
    return [resize_labels(msn_core.read_mask(p), OUT_SIZE) for p in masks[:10]]


def plot_data(value) -> list[dict]:
    assert value["type"] == "plotly"
    return json.loads(value["plot"])["data"]


def read_zip_masks(path: str, tmp_path: Path) -> list[np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        zf.extractall(tmp_path)
    return [msn_core.read_mask(tmp_path / n) for n in names]


# --------------------------------------------------------------------------- build


def test_build_demo_builds_with_every_tab_and_endpoint(client):
    demo = build_demo(LIMITS)
    labels = {getattr(b, "label", None) for b in demo.blocks.values()}
    assert {"Segment", "Compare", "Colourize", "About"} <= labels
    texts = " ".join(str(getattr(b, "value", "")) for b in demo.blocks.values())
    assert "Perazzi" in texts  # the DAVIS credit on the About tab
    assert demo._queue.max_size == LIMITS.queue_size
    endpoints = set(client.view_api(return_format="dict")["named_endpoints"])
    assert {
        "/segment_load_example",
        "/segment_run",
        "/compare_run",
        "/compare_frame",
        "/colourize_run",
    } <= endpoints


def test_limits_validate_and_read_the_environment():
    assert Limits.from_env({"MSN_DEMO_MAX_SIDE": "360"}).max_side == 360
    with pytest.raises(msn_core.InputError, match="MSN_DEMO_MAX_FRAMES"):
        Limits.from_env({"MSN_DEMO_MAX_FRAMES": "many"})
    with pytest.raises(msn_core.InputError, match="max_frames"):
        Limits(max_frames=0)
    assert Limits(max_frames=5, default_frames=30).default_frames == 5
    # adaptation starts on where a GPU makes it take seconds, off on a CPU; the environment decides first
    assert Limits().adapt_steps_default("cuda") == 300 and Limits().adapt_steps_default("cpu") == 0
    assert Limits.from_env({"MSN_DEMO_DEFAULT_ADAPT_STEPS": "100"}).adapt_steps_default("cpu") == 100
    assert Limits(default_adapt_steps=0).adapt_steps_default("cuda") == 0
    assert Limits(max_adapt_steps=50, default_adapt_steps=300).adapt_steps_default("cpu") == 50
    with pytest.raises(msn_core.InputError, match="default_adapt_steps"):
        Limits(default_adapt_steps=-1)


def test_example_clip_reports_the_downscale_and_frame_cap():
    clip = open_example(EXAMPLE, LIMITS)
    assert clip.out_size == OUT_SIZE and clip.first.shape == (*OUT_SIZE, 3)
    text = clip.describe()
    assert "Downscaled from 428×240 to 384×216" in text and "first 10 of 30 frames" in text


# ------------------------------------------------------------------------- segment


def test_segment_example_end_to_end(client, truth, tmp_path):
    info, preview, editor, _, note = client.predict(EXAMPLE, api_name="/segment_load_example")
    assert "dog" in info and "Downscaled" in info and "ground truth" in note
    w, h = Image.open(preview).size  # the annotation view: the working frame, enlarged to be clickable
    assert max(w, h) >= max(OUT_SIZE) and abs(w / h - OUT_SIZE[1] / OUT_SIZE[0]) < 0.02
    status, live, video, files = client.predict("tpn", "msn", 8, api_name="/segment_run")
    assert "Done" in status and "8 frames" in status
    _, notice = get_pipeline("tpn", "mask", LIMITS.max_side)  # the cached pipeline the run used
    assert notice in (None, UNTRAINED_NOTICE)
    assert ("Trained weights are not available" in status) == (notice is not None)  # the visible notice
    frames = list(msn_core.open_video(video))
    assert len(frames) == 8 and frames[0].shape == (*OUT_SIZE, 3)
    names = sorted(Path(f).name for f in files)
    assert names == ["dog_cutouts.zip", "dog_masks.zip", "overlay.mp4"]
    masks = read_zip_masks(next(f for f in files if f.endswith("masks.zip")), tmp_path / "m")
    assert len(masks) == 8 and masks[0].shape == OUT_SIZE
    np.testing.assert_array_equal(masks[0], truth[0])  # the annotation comes back as given
    js = [db_eval_iou(truth[t] > 0, masks[t] > 0) for t in range(1, 4)]
    assert min(js) > 0.5, js
    with zipfile.ZipFile(next(f for f in files if f.endswith("cutouts.zip"))) as zf:
        cut = np.asarray(Image.open(zf.open(sorted(zf.namelist())[3])))
    assert cut.shape == (*OUT_SIZE, 4)
    np.testing.assert_array_equal(cut[..., 3] > 0, masks[3] > 0)
    status, *_ = client.predict("tpn", "oracle", 3, api_name="/segment_run")  # examples have ground truth
    assert "Done" in status and "**oracle**" in status


def test_segment_adapts_to_the_annotation_first(client):
    client.predict(EXAMPLE, api_name="/segment_load_example")
    client.predict(api_name="/segment_use_truth")
    job = client.submit("tpn", "msn", 4, 20, api_name="/segment_run")
    updates = [out[0] for out in job]  # every streamed status, the adaptation's steps first
    assert any(u.startswith("Adapting the network to the annotated object") for u in updates), updates
    assert "Done" in updates[-1] and "Adapted to the annotation first: 20 steps" in updates[-1]
    assert "adapted" not in get_pipeline("tpn", "mask", LIMITS.max_side)[0].weights_info  # shared one untouched
    with pytest.raises(gradio_client.exceptions.AppError, match="greater than maximum value 500"):
        client.predict("tpn", "msn", 4, 900, api_name="/segment_run")


def test_segment_runs_the_network_larger_after_adapting():
    """An adapted run processes at ``adapted_side`` (where adaptation pays), any other at
    ``process_side``; either way the masks and videos come back at the clip's working size."""
    limits = Limits(max_frames=3, default_frames=3, max_side=428, process_side=192, adapted_side=428)
    s = segment.Session(clip=open_example(EXAMPLE, limits))
    s.labels, s.how = s.clip.truth_labels(1)[0], "the DAVIS ground truth"
    for steps, size, prop, name in ((0, "192×108", "tpn", "TPN"), (5, "428×240", "tpn+stm", "TPN + STM-1")):
        *_, (status, shown, video, files) = segment.run(s, prop, "previous", 3, limits, adapt_steps=steps)
        assert f"ran at {size}" in status and "Done" in status and name in status, status
        assert shown.shape == (240, 428, 3) and msn_core.open_video(video).first_frame().shape == (240, 428, 3)
    assert get_pipeline("tpn+stm", "mask", 428)[0].cfg.max_side == 428
    *_, (status, *_rest) = segment.run(s, "stm", "previous", 3, limits, flip=True)
    assert "test-time flip" in status and "ran at 192×108" in status, status
    assert not get_pipeline("stm", "mask", 192)[0].cfg.test_flip  # the cached pipeline stays as it was
    *updates, final = compare.run(None, EXAMPLE, "tpn", "previous", 3, limits, adapt_steps=5)
    assert "Adapting" in updates[0][0] and "adapted to the annotation first (5 steps), at 428×240." in final[0]
    *_, final = compare.run(None, EXAMPLE, "stm", "previous", 3, limits, flip=True)
    assert "ran at 192×108, with test-time flip." in final[0], final[0]
    assert not get_pipeline("stm", "mask", 192)[0].cfg.test_flip  # both runs flipped a copy
    assert msn_core.open_video(final[1]).first_frame().shape[1] == 2 * 428 + 6  # baseline | MSN, at 428 each
    assert "network" in segment.adapt_help(limits) and "428 px" in segment.adapt_help(limits)
    assert segment.default_propagator(Limits(default_adapt_steps=300)) == "tpn+stm"
    assert segment.default_propagator(Limits(default_adapt_steps=0)) == "stm"
    assert Limits.from_env({"MSN_DEMO_ADAPTED_SIDE": "640"}).network_side(300, "stm") == 640
    assert Limits().network_side(300, "tpn") == 854 == Limits().max_side  # adapted: one side for all
    assert Limits().network_side(0, "stm") == 480 == Limits().network_side(0, "tpn")  # each its own
    assert Limits().network_side(0, "tpn+stm") == 384 == Limits().network_side(0, "tpn", "color")
    assert Limits(process_side=200).network_side(0, "stm") == 200 and sides_text(Limits(process_side=200)) == "200 px"
    assert "480 px (TPN), 480 px (STM-1), 384 px (TPN + STM-1)" in sides_text(Limits())
    with pytest.raises(msn_core.InputError, match="process_side must be at least 32"):
        Limits(process_side=16)


def test_segment_clicks_brush_and_mask_upload(client, truth, tmp_path):
    client.predict(EXAMPLE, api_name="/segment_load_example")
    ys, xs = np.nonzero(truth[0])
    pts = [(int(np.median(xs)), int(np.median(ys))), (int(np.percentile(xs, 30)), int(np.median(ys)))]
    for x, y in pts:
        preview, note = client.predict(x, y, 1, "positive", api_name="/segment_click")
    assert "from 2 clicks" in note and "1 object" in note
    preview, note = client.predict(5, 5, 2, "positive", api_name="/segment_click")
    assert "2 object" in note
    preview, note = client.predict(api_name="/segment_undo")
    assert "1 object" in note
    with pytest.raises(gradio_client.exceptions.AppError, match="outside"):
        client.predict(999, 5, 1, "positive", api_name="/segment_click")

    # a box: two opposite corners in box mode, then a click refines it; undo drops a waiting corner
    client.predict(api_name="/segment_clear")
    x0, y0, x1, y1 = int(xs.min()) - 3, int(ys.min()) - 3, int(xs.max()) + 3, int(ys.max()) + 3
    preview, note = client.predict(x0, y0, 1, "box", api_name="/segment_click")
    assert "click the opposite corner" in note
    preview, note = client.predict(x1, y1, 1, "box", api_name="/segment_click")
    assert "from 1 box" in note and "1 object" in note
    preview, note = client.predict(*pts[0], 1, "positive", api_name="/segment_click")
    assert "from 1 box and 1 click" in note
    client.predict(5, 5, 2, "box", api_name="/segment_click")
    preview, note = client.predict(api_name="/segment_undo")
    assert "from 1 box and 1 click" in note

    # a brush layer: object 2's colour painted over the dog
    layer = np.zeros((*OUT_SIZE, 4), np.uint8)
    layer[truth[0] > 0] = (*msn_core.io.davis_palette()[2], 255)
    Image.fromarray(layer).save(tmp_path / "layer.png")
    Image.fromarray(open_example(EXAMPLE, LIMITS).first).save(tmp_path / "bg.png")
    editor = {
        "background": gradio_client.handle_file(str(tmp_path / "bg.png")),
        "layers": [gradio_client.handle_file(str(tmp_path / "layer.png"))],
        "composite": None,
        "id": None,
    }
    preview, note = client.predict(editor, api_name="/segment_use_brush")
    assert "brush" in note and "object 2 (green): 10.7 %" in note

    # a DAVIS annotation at full 854x480 resolution, brought to the working size
    davis = Path(msn_core.config.default_data_dir()) / "Annotations" / "480p" / "dog" / "00000.png"
    if davis.is_file():
        preview, note = client.predict(gradio_client.handle_file(str(davis)), api_name="/segment_use_mask")
        assert "uploaded mask" in note


def test_clicks_cut_out_the_object(truth):
    frame = open_example(EXAMPLE, LIMITS).first
    ys, xs = np.nonzero(truth[0])
    clicks = [(int(np.median(xs)), int(np.median(ys)), 1, True),
              (int(np.percentile(xs, 25)), int(np.percentile(ys, 60)), 1, True)]  # fmt: skip
    labels = annotate.labels_from_clicks(frame, clicks)
    assert db_eval_iou(truth[0] > 0, labels > 0) > 0.6
    assert set(np.unique(labels)) <= {0, 1}


def test_bad_uploads_give_readable_errors(client, tmp_path):
    rng = np.random.default_rng(0)
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(gradio_client.exceptions.AppError) as err:
        client.predict(gradio_client.handle_file(str(bad)), api_name="/segment_load_upload")
    msg = str(err.value)
    assert "'holiday.mp4' is not a readable video" in msg and "/tmp" not in msg and "Traceback" not in msg
    assert "Errno" not in msg  # PyAV's errno noise is not for a person
    junk_zip = tmp_path / "frames.zip"
    junk_zip.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(gradio_client.exceptions.AppError, match="not a valid zip"):
        client.predict(gradio_client.handle_file(str(junk_zip)), api_name="/segment_load_upload")
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (LIMITS.max_upload_bytes + 10))
    with pytest.raises(Exception, match="(?i)(5 MB|too large|exceeds)"):
        client.predict(gradio_client.handle_file(str(big)), api_name="/segment_load_upload")
    client.predict(EXAMPLE, api_name="/segment_load_example")
    bad_mask = tmp_path / "mask.png"
    bad_mask.write_bytes(b"\x89PNG garbage")
    with pytest.raises(gradio_client.exceptions.AppError, match="mask"):
        client.predict(gradio_client.handle_file(str(bad_mask)), api_name="/segment_use_mask")


def test_segment_accepts_a_zip_of_frames_and_a_mask_file(client, tmp_path, truth):
    folder = msn_core.io.example_path(EXAMPLE)
    with zipfile.ZipFile(tmp_path / "frames.zip", "w") as zf:
        for jpg in sorted(folder.glob("*.jpg"))[:4]:
            zf.write(jpg, f"clip/{jpg.name}")
    info, preview, _, _, note = client.predict(
        gradio_client.handle_file(str(tmp_path / "frames.zip")), api_name="/segment_load_upload"
    )
    assert "**frames**: 4 frames, 384×216" in info and "No object marked yet" in note
    Image.fromarray(truth[0] * 255).save(tmp_path / "first.png")  # a binary 0/255 mask
    _, note = client.predict(
        gradio_client.handle_file(str(tmp_path / "first.png")), api_name="/segment_use_mask"
    )
    assert "from the uploaded mask: object 1 (red)" in note
    with pytest.raises(gradio_client.exceptions.AppError, match="oracle selector needs the ground truth"):
        client.predict("tpn", "oracle", 4, api_name="/segment_run")
    status, _, video, files = client.predict("tpn", "msn", 4, api_name="/segment_run")
    assert "Done" in status and "Mean J" not in status  # no ground truth for an upload
    assert len(list(msn_core.open_video(video))) == 4


def test_runs_without_a_video_say_what_is_missing(client, tmp_path):
    with pytest.raises(gradio_client.exceptions.AppError, match="load a video first"):
        client.predict("tpn", "msn", 4, api_name="/segment_run")
    with pytest.raises(gradio_client.exceptions.AppError, match="Segment tab has no video"):
        client.predict(
            "Your video and annotation (Segment tab)", "tpn", "previous", 4, api_name="/compare_run"
        )


def test_segment_run_can_be_cancelled(client):
    client.predict(EXAMPLE, api_name="/segment_load_example")
    job = client.submit("tpn", "msn", 10, api_name="/segment_run")
    deadline = time.monotonic() + 60
    while not job.outputs() and time.monotonic() < deadline:  # the first streamed update
        time.sleep(0.1)
    assert job.outputs(), "no progress update within 60 s"
    job.cancel()
    deadline = time.monotonic() + 30
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.done() and job.status().code.name == "CANCELLED"
    assert not any(isinstance(out[2], str) for out in job.outputs())  # no video was delivered
    status, *_ = client.predict("stm", "previous", 3, api_name="/segment_run")  # the slot is free again
    assert "Done" in status and "3 frames" in status and "STM-1" in status


def test_session_files_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "TEMP_ROOT", tmp_path)
    request = SimpleNamespace(session_hash="abc123")
    work = common.work_dir(request, "segment", 3600)
    (work / "overlay.mp4").write_bytes(b"x")
    assert common.work_dir(request, "segment", 3600) == work and not any(
        work.iterdir()
    )  # a new run starts clean
    old = tmp_path / "stale-session"
    old.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    common.work_dir(SimpleNamespace(session_hash="other"), "compare", 3600)
    assert not old.exists() and work.exists()  # idle sessions are swept, live ones kept
    common.remove_session(request)  # the page was closed
    assert not (tmp_path / "abc123").exists()


# -------------------------------------------------------------------------- compare


def test_compare_end_to_end(client):
    out = client.predict(EXAMPLE, "tpn", "previous", 8, api_name="/compare_run")
    status, video, timeline, heatmap, jplot, slider, view, bars, caption = out
    assert "Done" in status and "Mean J" in status and "test-time flip" not in status  # off, as in the CLI
    frames = list(msn_core.open_video(video))
    assert len(frames) == 8 and frames[0].shape[1] == 2 * OUT_SIZE[1] + 6  # baseline | MSN
    runs = {t["name"]: t for t in plot_data(timeline)}
    assert runs["previous frame"]["y"] == list(range(0, 7))  # the baseline always takes t - 1
    assert len(runs["MSN"]["y"]) == 7 and all(0 <= g < t for t, g in zip(runs["MSN"]["x"], runs["MSN"]["y"]))
    heat = plot_data(heatmap)[0]
    z = np.array(heat["z"], dtype=float)
    assert z.shape == (7, 7) and np.isnan(z[6, 0]) and np.nanmin(z) >= 0 and np.nanmax(z) <= 1
    jtraces = plot_data(jplot)
    assert len(jtraces) == 2 and all(min(t["y"][:3]) > 0.5 for t in jtraces)
    assert 1 <= slider["value"] <= 7 and slider["maximum"] == 7
    assert Image.open(view).size[0] > 2 * OUT_SIZE[1]
    assert f"**Frame {slider['value']}**" in caption
    view3, bars3, caption3 = client.predict(3, api_name="/compare_frame")
    bar = plot_data(bars3)[0]
    assert bar["x"] == [0, 1, 2] and "Frame 3" in caption3 and "MSN chose" in caption3


def test_compare_scores_every_candidate_against_the_truth():
    """The audit option: MSN's picks are kept, every candidate's true IoU is shown beside its score
    and summed up; a video without ground truth gets a clear error."""
    limits = Limits(max_frames=5, default_frames=5, max_side=214, process_side=214)
    plain = compare.run(None, EXAMPLE, "tpn", "previous", 5, limits)
    *_, final = compare.run(None, EXAMPLE, "tpn", "previous", 5, limits, audit=True)
    status, bars, caption, cmp = final[0], final[7], final[8], final[9]
    assert "Every candidate scored against the ground truth" in status and "Spearman" in status, status
    assert [r.guide for r in cmp.msn] == [r.guide for r in list(plain)[-1][9].msn]  # the same picks
    assert all(sorted(r.quality) == r.candidates for r in cmp.msn[1:])
    assert "True IoU of MSN's guide" in caption and bars.data[1].name == "IoU against the ground truth"
    example = open_example(EXAMPLE, limits)
    s = segment.Session(clip=dataclasses.replace(example, example=None, truth=[]))  # as an upload: no truth
    s.labels = example.truth_labels(1)[0]
    with pytest.raises(gr.Error, match="scoring every candidate needs the ground truth"):
        list(compare.run(s, compare.SEGMENT_SOURCE, "tpn", "previous", 3, limits, audit=True))


# ------------------------------------------------------------------------ colourize


def test_colourize_end_to_end(client):
    status, still, video, plot = client.predict(EXAMPLE, None, None, "previous", 6, api_name="/colourize_run")
    assert "Done" in status and "PSNR" in status
    frames = list(msn_core.open_video(video))
    assert len(frames) == 6 and frames[0].shape[1] == 4 * OUT_SIZE[1] + 3 * 6  # grey | base | MSN | original
    traces = plot_data(plot)
    assert len(traces) == 2 and all(len(t["y"]) == 5 and min(t["y"]) > 20 for t in traces)


def test_colourize_greyscale_video_needs_a_coloured_first_frame(client, tmp_path):
    source, _ = msn_core.example_sequence(EXAMPLE, max_side=384, max_frames=4)
    with msn_core.io.VideoWriter(tmp_path / "grey.mp4", 24) as w:
        for f in source:
            w.write(np.repeat(f.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2))
    grey = gradio_client.handle_file(str(tmp_path / "grey.mp4"))
    with pytest.raises(gradio_client.exceptions.AppError, match="greyscale"):
        client.predict(EXAMPLE, grey, None, "previous", 4, api_name="/colourize_run")
    Image.fromarray(source.first_frame()).save(tmp_path / "first.png")
    ref = gradio_client.handle_file(str(tmp_path / "first.png"))
    status, still, video, plot = client.predict(EXAMPLE, grey, ref, "previous", 4, api_name="/colourize_run")
    assert "Done" in status and "no PSNR" in status
    frames = list(msn_core.open_video(video))
    assert len(frames) == 4 and frames[0].shape[1] == 3 * OUT_SIZE[1] + 2 * 6  # no "original" panel
    last_msn = frames[-1][:, 2 * (OUT_SIZE[1] + 6) :][-OUT_SIZE[0] :]
    chroma = np.abs(last_msn.astype(int) - last_msn.mean(axis=2, keepdims=True)).mean()
    assert chroma > 2  # colour came from the reference frame
