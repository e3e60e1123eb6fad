"""``msn data davis2016`` against a real HTTP server on 127.0.0.1 (standard library, with byte
ranges) serving a small zip in the official archive's layout, built from the bundled clips: a
whole download, a cut-off one resumed with a Range request (within a run and by the next run),
checksums refused with one line, unsafe zips refused, and the result read by the DAVIS reader."""

from __future__ import annotations

import hashlib
import io
import re
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from prose import MEASURED

import msn_core.datasets as datasets
import msn_core.fetch as fetch_module
from msn_core.cli import main
from msn_core.errors import InputError
from msn_core.io import davis_sequence, example_path, list_davis_sequences, read_mask

CLIPS, FRAMES = ("camel", "dog"), 4


def _davis_zip(extra: dict[str | zipfile.ZipInfo, bytes] | None = None, top: str = "DAVIS/") -> bytes:
    """A zip laid out as DAVIS-data.zip: <top>JPEGImages/480p, Annotations/480p (0/255 PNGs, as
    DAVIS-2016 stores them), ImageSets/480p, plus 1080p frames and a README that are not unpacked."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in CLIPS:
            for i in range(FRAMES):
                zf.write(example_path(name) / f"{i:05d}.jpg", f"{top}JPEGImages/480p/{name}/{i:05d}.jpg")
                mask = Image.fromarray(
                    (np.array(Image.open(example_path(name) / f"{i:05d}.png")) > 0).astype(np.uint8) * 255
                )
                png = io.BytesIO()
                mask.save(png, format="PNG")
                zf.writestr(f"{top}Annotations/480p/{name}/{i:05d}.png", png.getvalue())
            zf.write(example_path(name) / "00000.jpg", f"{top}JPEGImages/1080p/{name}/00000.jpg")
        lines = [
            f"/JPEGImages/480p/{n}/{i:05d}.jpg /Annotations/480p/{n}/{i:05d}.png"
            for n in CLIPS
            for i in range(FRAMES)
        ]
        zf.writestr(f"{top}ImageSets/480p/val.txt", "\n".join(lines) + "\n")
        zf.writestr(f"{top}README.md", "DAVIS look-alike for tests\n")
        for member, data in (extra or {}).items():
            zf.writestr(member, data)
    return buf.getvalue()


class RangeServer:
    """``with RangeServer(payload) as srv: srv.url``. Answers GET with the payload, or from byte N
    on (206) for ``Range: bytes=N-`` when ``ranges``; ``cut_after`` bytes into its next answer it
    closes the connection (once). ``ranges_asked`` logs each request's Range header; ``sent``
    counts body bytes written."""

    def __init__(self, payload: bytes, *, ranges: bool = True, cut_after: int | None = None) -> None:
        self.payload, self.ranges, self.cut_after = payload, ranges, cut_after
        self.ranges_asked: list[str | None] = []
        self.sent = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/moved/DAVIS-data.zip":  # as an old address that redirects to the new one
                    self.send_response(302)
                    self.send_header("Location", outer.url)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, asked = outer.payload, self.headers.get("Range")
                outer.ranges_asked.append(asked)
                start = 0
                if asked and outer.ranges:
                    start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:  # say the whole length, send part of it, hang up
                    body, outer.cut_after = body[: outer.cut_after], None
                    self.close_connection = True
                self.wfile.write(body)
                outer.sent += len(body)

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/Data/Davis/DAVIS-data.zip"

    def __enter__(self) -> RangeServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="module")
def payload() -> bytes:
    return _davis_zip()


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch):
    monkeypatch.setattr(fetch_module, "RETRY_WAIT_S", 0.0)


def _run(out: Path, url: str, *extra: str) -> int:
    return main(["data", "davis2016", "--out", str(out), "--url", url, "--no-progress", *extra])


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("msn data: error: ")
    return err[0]


def test_download_unpacks_the_480p_layout_the_reader_reads(tmp_path, payload, capsys):
    out = tmp_path / "davis"
    with RangeServer(payload) as srv:
        assert _run(out, srv.url) == 0
        printed = capsys.readouterr().out
        assert srv.ranges_asked == [None]
        assert list_davis_sequences(out) == list(CLIPS)
        for name in CLIPS:
            source, masks = davis_sequence(out, name)
            assert source.num_frames == FRAMES == len(masks) and source.size == (240, 428)
            labels = read_mask(masks[0])
            assert labels.shape == (240, 428) and set(np.unique(labels)) == {0, 1}
        assert (
            (out / "ImageSets" / "480p" / "val.txt")
            .read_text()
            .startswith("/JPEGImages/480p/camel/00000.jpg")
        )
        # nothing else: no 1080p, no README, no archive, no part file, no unpacking folder
        assert sorted(p.name for p in out.iterdir()) == ["Annotations", "ImageSets", "JPEGImages"]
        assert [p.name for p in (out / "JPEGImages").iterdir()] == ["480p"]
        assert (
            f"sha256 {hashlib.sha256(payload).hexdigest()}" in printed
            and "not checked: no digest is pinned" in printed
        )
        assert "none of the MD5s published" in printed
        assert (
            f"DAVIS-2016 ready in {out}: 2 sequences, {2 * FRAMES} frames, {2 * FRAMES} annotations"
            in printed
        )
        assert f"--data-dir {out}" in printed  # not the default folder: say how to point there
        # a second run finds the data and asks the server nothing
        assert _run(out, srv.url) == 0
        assert "nothing to do" in capsys.readouterr().out and len(srv.ranges_asked) == 1


def test_a_cut_off_download_resumes_with_a_range_request(tmp_path, payload, capsys):
    cut = len(payload) // 3
    digest = hashlib.sha256(payload).hexdigest()
    with RangeServer(payload, cut_after=cut) as srv:
        assert _run(tmp_path, srv.url, "--sha256", digest.upper(), "--keep-archive") == 0
        assert srv.ranges_asked == [None, f"bytes={cut}-"] and srv.sent == len(payload)  # no byte twice
    printed = capsys.readouterr().out
    size = fetch_module.human_size(cut)  # as the messages write it: 101.2 KB
    assert f"closed after {size} of" in printed and f"resuming after {size}" in printed
    assert "(matches --sha256)" in printed
    assert (tmp_path / "DAVIS-data.zip").read_bytes() == payload and not (
        tmp_path / "DAVIS-data.zip.part"
    ).exists()
    assert list_davis_sequences(tmp_path) == list(CLIPS)


def test_a_redirected_download_resumes_at_the_new_address(tmp_path, payload):
    cut = len(payload) // 4
    with RangeServer(payload, cut_after=cut) as srv:
        assert _run(tmp_path, srv.url.replace("/Data/Davis/", "/moved/")) == 0
        assert srv.ranges_asked == [None, f"bytes={cut}-"] and srv.sent == len(
            payload
        )  # Range kept across it
    assert list_davis_sequences(tmp_path) == list(CLIPS)


def test_a_run_that_gives_up_keeps_the_part_and_the_next_run_resumes(tmp_path, payload, capsys, monkeypatch):
    monkeypatch.setattr(fetch_module, "RETRIES", 0)
    cut = len(payload) // 2
    part = tmp_path / "DAVIS-data.zip.part"
    with RangeServer(payload, cut_after=cut) as srv:
        assert _run(tmp_path, srv.url) == 2
        line = _error_line(capsys)
        assert (
            f"stopped at {fetch_module.human_size(cut)}" in line
            and f"kept in {part}" in line
            and "run the same command again" in line
        )
        assert part.read_bytes() == payload[:cut] and not (tmp_path / "DAVIS-data.zip").exists()
        assert _run(tmp_path, srv.url) == 0
        assert srv.ranges_asked == [None, f"bytes={cut}-"] and srv.sent == len(payload)
    assert f"resuming after {fetch_module.human_size(cut)}" in capsys.readouterr().out
    assert list_davis_sequences(tmp_path) == list(CLIPS) and not part.exists()


def test_a_server_that_cannot_resume_sends_it_all_again(tmp_path, payload):
    (tmp_path / "DAVIS-data.zip.part").write_bytes(b"stale bytes of some other file")
    with RangeServer(payload, ranges=False) as srv:
        assert _run(tmp_path, srv.url) == 0
        assert srv.ranges_asked == ["bytes=30-"] and srv.sent == len(payload)
    assert list_davis_sequences(tmp_path) == list(CLIPS)


def test_a_complete_part_is_not_downloaded_again(tmp_path, payload):
    (tmp_path / "DAVIS-data.zip.part").write_bytes(payload)  # cut off after the last byte arrived
    with RangeServer(payload) as srv:
        assert _run(tmp_path, srv.url) == 0
        assert srv.ranges_asked == [f"bytes={len(payload)}-"] and srv.sent == 0  # 416: nothing more
    assert list_davis_sequences(tmp_path) == list(CLIPS)


def test_a_checksum_mismatch_is_refused_with_one_line(tmp_path, payload, capsys, monkeypatch):
    wrong = "0" * 64
    with RangeServer(payload) as srv:
        assert _run(tmp_path / "a", srv.url, "--sha256", wrong) == 2
        line = _error_line(capsys)
        assert f"sha256 {hashlib.sha256(payload).hexdigest()} does not match the expected {wrong}" in line
        assert "deleted it" in line
        assert list((tmp_path / "a").iterdir()) == []  # nothing unpacked, nothing kept
        # the pinned digest is checked the same way, and --sha256 overrides it
        monkeypatch.setattr(datasets, "DAVIS2016_SHA256", wrong)
        assert _run(tmp_path / "b", srv.url) == 2
        assert "does not match the expected" in _error_line(capsys)
        monkeypatch.setattr(datasets, "DAVIS2016_SHA256", hashlib.sha256(payload).hexdigest())
        assert _run(tmp_path / "c", srv.url) == 0
        assert "(matches the pinned digest)" in capsys.readouterr().out
    assert _run(tmp_path / "d", "http://127.0.0.1:9/x.zip", "--sha256", "abc") == 2
    assert "not a sha256 digest; give 64 hexadecimal digits" in _error_line(capsys)


def test_an_unreachable_server_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fetch_module, "RETRIES", 1)
    with RangeServer(b"") as srv:
        url = srv.url
    assert _run(tmp_path, url) == 2  # the server is gone: connection refused, twice
    line = _error_line(capsys)
    assert "cannot reach 127.0.0.1" in line and "run the same command again" in line


@pytest.mark.parametrize(
    "member",
    [
        "DAVIS/JPEGImages/480p/dog/../../../../evil.jpg",
        "/tmp/evil.jpg",
        "DAVIS/Annotations/480p/a\\..\\evil.png",
    ],
)
def test_members_leaving_the_target_are_refused_before_anything_is_written(tmp_path, member, capsys):
    with RangeServer(_davis_zip({member: b"x"})) as srv:
        assert _run(tmp_path / "out", srv.url, "--keep-archive") == 2
    assert "unsafe member" in _error_line(capsys)
    kept = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert kept == ["DAVIS-data.zip"]  # the archive kept, nothing unpacked
    assert not list(tmp_path.rglob("evil*"))


def test_a_damaged_archive_is_refused_and_kept_with_a_way_out(tmp_path, capsys):
    stored = zipfile.ZipInfo(
        "DAVIS/JPEGImages/480p/dog/00009.jpg"
    )  # stored: its bytes sit in the zip as they are
    payload = _davis_zip({stored: b"MARKER" * 100})
    damaged = payload.replace(b"MARKER", b"MARKEX", 1)  # one byte flipped after the CRC was written
    with RangeServer(damaged) as srv:
        assert _run(tmp_path, srv.url) == 2
    line = _error_line(capsys)
    assert (
        "00009.jpg: bad CRC" in line
        and f"{tmp_path / 'DAVIS-data.zip'} is kept: delete it and run again" in line
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DAVIS-data.zip"]  # nothing unpacked


def test_a_link_member_is_refused(tmp_path):
    data = io.BytesIO(_davis_zip())
    with zipfile.ZipFile(data, "a") as zf:
        link = zipfile.ZipInfo("DAVIS/JPEGImages/480p/dog/00009.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    archive = tmp_path / "DAVIS-data.zip"
    archive.write_bytes(data.getvalue())
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="unsafe member.*00009.jpg.*a link"):
        datasets.unpack_davis(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_zip_at_its_root_unpacks_and_other_zips_are_refused(tmp_path):
    flat = tmp_path / "flat.zip"
    flat.write_bytes(_davis_zip(top=""))
    (tmp_path / "flat").mkdir()
    found = datasets.unpack_davis(flat, tmp_path / "flat", log=lambda _: None)
    assert (found.sequences, found.frames, found.annotations) == (2, 2 * FRAMES, 2 * FRAMES)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("photos/cat.jpg", b"x")
    with pytest.raises(
        InputError, match=r"no JPEGImages/480p/: not the DAVIS-2016 archive \(its top level: photos\)"
    ):
        datasets.unpack_davis(other, tmp_path)
    frames_only = tmp_path / "frames.zip"
    with zipfile.ZipFile(frames_only, "w") as zf:
        zf.writestr("DAVIS/JPEGImages/480p/dog/00000.jpg", b"x")
    with pytest.raises(InputError, match="no DAVIS/Annotations/480p/"):
        datasets.unpack_davis(frames_only, tmp_path)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(datasets.DownloadError, match="not a readable zip"):
        datasets.unpack_davis(tmp_path / "bad.zip", tmp_path)


def test_a_half_there_folder_is_refused(tmp_path, capsys):
    (tmp_path / "JPEGImages" / "480p" / "dog").mkdir(parents=True)
    assert _run(tmp_path, "http://127.0.0.1:9/x.zip") == 2
    assert "holds only one of JPEGImages/480p and Annotations/480p" in _error_line(capsys)


@pytest.mark.parametrize("command", [["data"], ["data", "davis2016"]])
def test_help_holds_no_measured_figures(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "-h, --help" in text and not MEASURED.search(text)


def test_the_official_source_is_named_and_the_pin_is_honest():
    assert datasets.DAVIS2016_URL == "https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip"
    pin = datasets.DAVIS2016_SHA256
    assert pin is None or re.fullmatch(r"[0-9a-f]{64}", pin)
    source = Path(datasets.__file__).read_text()
    assert pin is not None or "NOT PINNED YET" in source  # an empty pin says so where it is defined
