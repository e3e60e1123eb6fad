"""A small Hugging Face Hub look-alike for tests (standard library only).

Serves ``<root>/<repo_id>/<revision>/<filename>`` at ``/{repo_id}/resolve/{revision}/{filename}``
the way the Hub answers ``hf_hub_download``: HEAD and GET with ``X-Repo-Commit``,
``ETag`` (the file's sha256, as for LFS files), ``Content-Length`` and byte ranges;
404 with ``X-Error-Code`` ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``.
With ``lfs_redirect=True`` the resolve URL answers 302 to a "CDN" on another host
name (``localhost``) carrying ``X-Linked-Etag`` / ``X-Linked-Size``, as the Hub does for LFS.
With ``not_hub=True`` it answers like a captive portal or a wrong ``HF_ENDPOINT``: 200, no Hub headers.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

# Settings a caller's shell may export that change where weights come from. Tests remove them and
# set what they need; huggingface_hub's import-time copies are reset by isolate_hub_env.
HUB_ENV_VARS = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_ENDPOINT",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_TOKEN",
    "MSN_HUB_REPO",
    "MSN_HUB_REVISION",
    "MSN_WEIGHTS_DIR",
)


def isolate_hub_env(monkeypatch, tmp: Path) -> Path:
    """Forget the caller's Hub settings for one test: every ``HUB_ENV_VARS`` removed, and the values
    huggingface_hub read at its import reset (online, an empty cache under ``tmp``, no telemetry,
    which would send an extra request). Returns that cache folder."""
    import huggingface_hub.constants as hf

    for var in HUB_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    cache = Path(tmp) / "hf-cache"
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf, "HF_HUB_DISABLE_TELEMETRY", True)
    return cache


def child_env(**settings: str) -> dict[str, str]:
    """The environment for a child process: this one without ``HUB_ENV_VARS``, plus ``settings``
    (a child's huggingface_hub reads them at its own import)."""
    env = {k: v for k, v in os.environ.items() if k not in HUB_ENV_VARS}
    return {**env, "HF_HUB_DISABLE_TELEMETRY": "1", **settings}


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_CDN = re.compile(r"^/cdn/(?P<repo>[^/]+/[^/]+)/(?P<rev>[^/]+)/(?P<file>.+)$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def commit_for(repo_id: str, revision: str) -> str:
    """The commit hash the server reports: the revision itself if it is one, else a stable fake."""
    return revision if _HEX40.match(revision) else hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()


class HubServer:
    """``with HubServer(root) as hub: hub.endpoint ...``; ``hub.requests`` logs (method, path)."""

    def __init__(self, root: str | Path, *, lfs_redirect: bool = False, not_hub: bool = False) -> None:
        self.root = Path(root)
        self.lfs_redirect = lfs_redirect
        self.not_hub = not_hub
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HubServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ content
    def publish(self, repo_id: str, revision: str, src: str | Path, filename: str | None = None) -> Path:
        """Copy ``src`` into the served tree; returns the served path."""
        dst = self.root / repo_id / revision / (filename or Path(src).name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst

    def count(self, method: str, path_part: str = "") -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and path_part in p)

    def _log(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))


def _make_handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "HubLike/1.0"

        def log_message(self, format, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        # -------------------------------------------------------------- helpers
        def _error(self, code: str, message: str, commit: str | None = None) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _locate(self, repo: str, rev: str, file: str) -> Path | None:
            repo_dir = (hub.root / repo).resolve()
            root = hub.root.resolve()
            if root not in repo_dir.parents or not repo_dir.is_dir():
                self._error("RepoNotFound", "Repository not found")
                return None
            rev_dir = repo_dir / rev
            if not rev_dir.is_dir():
                self._error("RevisionNotFound", f"Invalid rev id: {rev}")
                return None
            path = (rev_dir / file).resolve()
            if rev_dir.resolve() not in path.parents or not path.is_file():
                self._error("EntryNotFound", "Entry not found", commit_for(repo, rev))
                return None
            return path

        def _serve(self, body: bool) -> None:
            url_path = urlsplit(self.path).path
            hub._log(self.command, url_path)
            if hub.not_hub:
                page = b"<html>sign in to the network</html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                if body:
                    self.wfile.write(page)
                return
            m = _RESOLVE.match(url_path)
            cdn = _CDN.match(url_path) if m is None else None
            if m is None and cdn is None:
                self._error("RepoNotFound", "Repository not found")
                return
            hit = m or cdn
            repo, rev, file = unquote(hit["repo"]), unquote(hit["rev"]), unquote(hit["file"])
            path = self._locate(repo, rev, file)
            if path is None:
                return
            data = path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            commit = commit_for(repo, rev)
            if m is not None and hub.lfs_redirect:
                self.send_response(302)
                self.send_header(
                    "Location", f"http://localhost:{hub.port}/cdn/{repo}/{quote(rev, safe='')}/{file}"
                )
                self.send_header("X-Repo-Commit", commit)
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, status = 0, 200
            rng = re.match(r"^bytes=(\d+)-$", self.headers.get("Range", ""))
            if rng and int(rng[1]) < len(data):
                start, status = int(rng[1]), 206
            self.send_response(status)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{sha}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data) - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if body:
                self.wfile.write(data[start:])

    return Handler
