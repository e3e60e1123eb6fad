"""Weights names to local files: an explicit file, the Hugging Face Hub (through its cache), or the
bundled copy; and loading a name with its pinned checksum checked. Nothing here touches the
network at import; the environment is read on each call.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from torch import Tensor

from msn_core.errors import WeightsError
from msn_core.hub.files import read_weights
from msn_core.hub.table import get_spec

log = logging.getLogger(__name__)

REPO_ENV = "MSN_HUB_REPO"
REVISION_ENV = "MSN_HUB_REVISION"
WEIGHTS_DIR_ENV = "MSN_WEIGHTS_DIR"
UNREACHABLE_RETRY_S = 300.0  # an endpoint that gave no Hub answer is not retried for this long

# endpoint -> time.monotonic() of its last connection failure. The Hub client retries an
# unreachable endpoint for ~25 s; this keeps that to once per endpoint, not once per name.
_UNREACHABLE: dict[str, float] = {}


def forget_unreachable() -> None:
    """Forget which Hub endpoints failed, so the next resolve tries them again at once
    (e.g. after the network is back in a long-running process)."""
    _UNREACHABLE.clear()


def weights_dir() -> Path:
    """Folder of bundled weights: ``$MSN_WEIGHTS_DIR`` or ``msn_core/weights``."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parent.parent / "weights"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("msn_core")
    except PackageNotFoundError:
        return "unknown"


def _env_true(var: str) -> bool:
    return os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub_offline() -> bool:
    """``$HF_HUB_OFFLINE`` as set now, or as huggingface_hub read it at its import (``HF_HUB_OFFLINE``
    or ``TRANSFORMERS_OFFLINE``): then the client refuses every request, so none is tried."""
    from huggingface_hub import constants

    return _env_true("HF_HUB_OFFLINE") or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _reachable(endpoint: str | None, timeout: float = 3.0) -> bool:
    """Can a TCP connection to the Hub's host be opened at all? Without a network the
    Hub client retries for ~25 s; this answers in at most ``timeout`` seconds."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(endpoint or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_weights(
    name: str,
    path: str | Path | None = None,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    local_only: bool | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Local file for ``name``: explicit ``path`` > Hub (via the cache) > bundled file.

    The Hub is not contacted when ``local_only`` (default: ``$HF_HUB_OFFLINE``, as set now or when
    huggingface_hub was imported); a cached copy is still used. ``$HF_ENDPOINT``, ``$MSN_HUB_REPO``
    and ``$MSN_HUB_REVISION`` are read now.
    """
    spec = get_spec(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError(
                f"weights for {name!r}: {p} does not exist or is not a file; pass a .safetensors file "
                "written by save_weights, or no path to use the published weights"
            )
        return p
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    repo = repo_id or os.environ.get(REPO_ENV) or spec.repo_id
    rev = revision or os.environ.get(REVISION_ENV) or spec.revision
    offline = _hub_offline() if local_only is None else bool(local_only)
    endpoint = (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None
    failed_at = _UNREACHABLE.get(endpoint or "")
    skip = not offline and failed_at is not None and time.monotonic() - failed_at < UNREACHABLE_RETRY_S
    if not offline and not skip and not _reachable(endpoint):
        _UNREACHABLE[endpoint or ""] = failed_at = time.monotonic()  # no network: skip the client's retries
        skip = True
    where = f"Hub {repo}@{rev}/{spec.filename}" + (f" at {endpoint}" if endpoint else "")
    tried: list[str] = ["explicit path: none given"]
    try:
        got = hf_hub_download(
            repo,
            spec.filename,
            revision=rev,
            cache_dir=cache_dir,
            endpoint=endpoint,
            local_files_only=offline or skip,
            library_name="msn_core",
            library_version=_version(),
        )
        return Path(got)
    except Exception as exc:  # unreachable, 404, offline cache miss: fall back below
        if offline:
            hub_error = "offline (HF_HUB_OFFLINE=1 or local_only) and not in the local cache"
        elif skip:
            hub_error = "unreachable (no connection to the Hub host; retried after a while) and not in the local cache"
        else:
            hub_error = _first_line(exc)
            if not isinstance(exc, HfHubHTTPError):  # no Hub answer at all: do not wait again for a while
                _UNREACHABLE[endpoint or ""] = time.monotonic()
        tried.append(f"{where}: {hub_error}")
    bundled = weights_dir() / spec.filename
    if bundled.is_file():
        if offline:
            log.info("weights %r: offline and not cached, using the bundled file %s", name, bundled)
        else:
            log.warning(
                "weights %r: could not download from %s (%s); using the bundled file %s "
                "(set HF_HUB_OFFLINE=1 to skip the Hub)",
                name,
                where,
                hub_error,
                bundled,
            )
        return bundled
    tried.append(f"bundled file {bundled}: does not exist")
    raise WeightsError(
        f"no weights file for {name!r}; tried: "
        + "; ".join(tried)
        + f". Pass a file explicitly, check the network / HF_ENDPOINT / HF_HUB_OFFLINE, or put "
        f"{spec.filename} in ${WEIGHTS_DIR_ENV}"
    )


def load_named(name: str, path: str | Path | None = None, **kw) -> tuple[dict[str, Tensor], dict]:
    """Resolve, load and verify the weights ``name``.

    The pinned sha256 is checked on Hub / bundled files; an explicit ``path`` is the user's own
    file, so only its embedded digest and its name are checked.
    """
    spec = get_spec(name)
    p = resolve_weights(name, path, **kw)
    tensors, config, meta = read_weights(p, None if path is not None else spec.sha256)
    if meta.get("name") != name:
        raise WeightsError(
            f"weights file {p} holds {meta.get('name')!r} weights, not {name!r}; pass the right file"
        )
    return {k: t.float() if t.is_floating_point() else t for k, t in tensors.items()}, config
