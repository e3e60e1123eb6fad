"""Named weights: an explicit file, the Hugging Face Hub, or the bundled copy.

Weights are safetensors only (never pickle). Each file's metadata holds
``{"config": <json>, "format": "msn_core", "name": ..., "tensors_sha256": ...}``;
the last is a digest of the tensors so a corrupted file is refused even where no
checksum is pinned in ``WEIGHTS`` yet. Nothing here touches the network at import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from msn_core.errors import InputError, WeightsError

log = logging.getLogger(__name__)

DEFAULT_REPO = "msn-core/msn-core"
DEFAULT_REVISION = "v0.1.0"  # a tag until the first upload; then pin the 40-hex commit
REPO_ENV = "MSN_HUB_REPO"
REVISION_ENV = "MSN_HUB_REVISION"
WEIGHTS_DIR_ENV = "MSN_WEIGHTS_DIR"
FORMAT = "msn_core"
UNREACHABLE_RETRY_S = 300.0  # an endpoint that gave no Hub answer is not retried for this long

# endpoint -> time.monotonic() of its last connection failure. The Hub client retries an
# unreachable endpoint for ~25 s; this keeps that to once per endpoint, not once per name.
_UNREACHABLE: dict[str, float] = {}


@dataclass(frozen=True)
class WeightSpec:
    """One published weights file."""

    name: str
    filename: str
    sha256: str | None  # pinned checksum of the published file (None = not published yet)
    repo_id: str = DEFAULT_REPO
    revision: str = DEFAULT_REVISION
    description: str = ""


WEIGHTS: dict[str, WeightSpec] = {
    s.name: s
    for s in (
        WeightSpec(
            "tpn-mask",
            "tpn_mask.safetensors",
            "f12cfeda8d411208e199f95499b714353bdc01c02ad38fc92ba6113727081a18",
            description="TPN propagating object masks",
        ),
        WeightSpec(
            "tpn-color",
            "tpn_color.safetensors",
            "5a7ccdc015721ae2d400f774fdcc58aeb6f438bb5e2cd4484c012a11fcfb4ad6",
            description="TPN propagating colour (ab)",
        ),
        WeightSpec(
            "stm",
            "stm.safetensors",
            "9368a96634e8583c8cbc0896948039b02f224fcd6078023e8aaa0fbc758cf2b5",
            description="STM-1 propagating object masks",
        ),
        WeightSpec(
            "msn-tpn",
            "msn_tpn.safetensors",
            "8823f4fd8412f402aca11ab72a6efe3105c4dc9e046fcf75e391cb8a6a218804",
            description="MSN guide selector trained for TPN mask propagation",
        ),
        WeightSpec(
            "msn-tpn-color",
            "msn_tpn_color.safetensors",
            "9c6d8b0b1d4c995fd72a822eb4d398a98f94416762942fd9e899e6e6ab3e7d64",
            description="MSN guide selector trained for TPN colour propagation",
        ),
        WeightSpec(
            "msn-stm",
            "msn_stm.safetensors",
            "e54bd00b654e26afca0b6dc16c33a8296bc080763ab0c81c23eecf9035c127e1",
            description="MSN guide selector trained for STM-1",
        ),
        WeightSpec("vgg16", "vgg16.safetensors", None, description="VGG16 feature extractor (the paper's F)"),
    )
}

_PICKLE_HINT = (
    "it looks like a pickle / torch.save checkpoint, which is refused because unpickling can run code; "
    "convert it once in a trusted environment with msn_core.hub.save_weights"
)


# ----------------------------------------------------------------------------- files


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tensors_digest(tensors: dict[str, Tensor]) -> str:
    """sha256 over (name, dtype, shape, raw bytes) of every tensor, in key order."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def save_weights(
    state_dict: dict[str, Tensor], path: str | Path, config: dict, name: str, half: bool = False
) -> str:
    """Write ``state_dict`` as safetensors (atomically: temp file + rename); returns its sha256.

    ``half`` stores floating tensors as float16 (refused if a finite value would overflow).
    """
    from safetensors.torch import save_file

    path = Path(path)
    if not isinstance(name, str) or not name:
        raise InputError(f"save_weights: name must be a non-empty string such as 'tpn-mask', got {name!r}")
    try:
        config_json = json.dumps(config, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"save_weights({path}): config is not JSON-serialisable ({exc}); "
            "pass plain dicts/lists/numbers/strings, e.g. msn_core.config.to_dict(cfg)"
        ) from exc
    tensors: dict[str, Tensor] = {}
    storages: set[int] = set()
    for key, value in state_dict.items():
        if not isinstance(value, Tensor):
            raise InputError(f"save_weights({path}): entry {key!r} is a {type(value).__name__}; only tensors")
        t = value.detach().cpu()
        if half and t.is_floating_point() and t.dtype != torch.float16:
            h = t.to(torch.float16)
            if (torch.isinf(h) & torch.isfinite(t)).any():
                raise InputError(
                    f"save_weights({path}): {key!r} has values beyond float16 range; use half=False"
                )
            t = h
        t = t.contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr and ptr in storages:  # tied / shared tensors: safetensors wants one storage each
            t = t.clone()
        storages.add(t.untyped_storage().data_ptr())
        tensors[key] = t
    metadata = {
        "config": config_json,
        "format": FORMAT,
        "name": name,
        "tensors_sha256": _tensors_digest(tensors),
    }

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def _check_layout(path: Path) -> None:
    """Refuse anything that is not a complete safetensors file, reading only its header."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head[:4] == b"PK\x03\x04":
            raise WeightsError(f"weights file {path} is not safetensors: {_PICKLE_HINT}")
        if size < 8:
            raise WeightsError(
                f"weights file {path} has {size} bytes: not a safetensors file (empty or truncated)"
            )
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise WeightsError(
                f"weights file {path} is not a valid safetensors file or is truncated "
                f"(header claims {n} bytes, file has {size}); re-download or re-export it"
            )
        try:
            header = json.loads(f.read(n))
            ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise WeightsError(
                f"weights file {path} is not a safetensors file (unreadable header: {exc})"
            ) from exc
    data = size - 8 - n
    need = max(ends, default=0)
    if need > data:
        raise WeightsError(
            f"weights file {path} is truncated: it holds {data} bytes of tensor data, its header describes "
            f"{need}; the download or copy was cut short, delete it and fetch it again"
        )
    if need < data:
        raise WeightsError(
            f"weights file {path} has {data - need} unexpected bytes after its tensors; re-export it"
        )


def _read(path: str | Path, expected_sha256: str | None) -> tuple[dict[str, Tensor], dict, dict]:
    """(tensors as stored, config, raw metadata), after every check."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; pass the path of a .safetensors file")
    _check_layout(path)
    if expected_sha256:
        actual = sha256_file(path)
        if actual != expected_sha256.lower():
            raise WeightsError(
                f"weights file {path} has sha256 {actual}, expected {expected_sha256}: it is corrupted or "
                "not the published file; delete it (the Hub copy is downloaded again) or pass the right file"
            )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as exc:
        raise WeightsError(f"weights file {path} cannot be read as safetensors: {exc}") from exc
    if meta.get("format") != FORMAT or "config" not in meta:
        raise WeightsError(
            f"weights file {path} is safetensors but not an msn_core weights file (metadata format "
            f"{meta.get('format')!r}, expected {FORMAT!r} with a config); "
            "write it with msn_core.hub.save_weights"
        )
    try:
        config = json.loads(meta["config"])
    except ValueError as exc:
        raise WeightsError(f"weights file {path}: its config metadata is not valid JSON ({exc})") from exc
    digest = meta.get("tensors_sha256")
    if digest and _tensors_digest(tensors) != digest:
        raise WeightsError(
            f"weights file {path}: tensor data does not match the digest in its metadata (corrupted or "
            "modified); delete it and download or export it again"
        )
    return tensors, config, meta


def load_weights(path: str | Path, expected_sha256: str | None = None) -> tuple[dict[str, Tensor], dict]:
    """Read a weights file: (state_dict with floating tensors as float32, config dict).

    Refuses a non-safetensors, truncated or tampered file with a WeightsError.
    """
    tensors, config, _ = _read(path, expected_sha256)
    return {k: t.float() if t.is_floating_point() else t for k, t in tensors.items()}, config


def load_into(module: nn.Module, state_dict: dict[str, Tensor]) -> nn.Module:
    """``module.load_state_dict(state_dict, strict=True)``; a mismatch becomes a WeightsError."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = [f"missing keys {missing}"] * bool(missing) + [f"unexpected keys {unexpected}"] * bool(
            unexpected
        )
        parts += [f"shape mismatch {shapes}"] * bool(shapes)
        raise WeightsError(
            f"weights do not fit {type(module).__name__}: "
            + "; ".join(parts)
            + "; check that the weights name/config match the model"
        )
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"weights do not fit {type(module).__name__}: {exc}") from exc
    return module


# ------------------------------------------------------------------------- resolving


def weights_dir() -> Path:
    """Folder of bundled weights: ``$MSN_WEIGHTS_DIR`` or ``msn_core/weights``."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parent / "weights"


def get_spec(name: str) -> WeightSpec:
    if name not in WEIGHTS:
        raise InputError(f"unknown weights name {name!r}; known names: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("msn_core")
    except PackageNotFoundError:
        return "unknown"


def _env_true(var: str) -> bool:
    return os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


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

    The Hub is not contacted when ``local_only`` (default: ``$HF_HUB_OFFLINE``); a cached
    copy is still used. ``$HF_ENDPOINT``, ``$MSN_HUB_REPO``, ``$MSN_HUB_REVISION`` are read now.
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
    offline = _env_true("HF_HUB_OFFLINE") if local_only is None else bool(local_only)
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
    tensors, config, meta = _read(p, None if path is not None else spec.sha256)
    if meta.get("name") != name:
        raise WeightsError(
            f"weights file {p} holds {meta.get('name')!r} weights, not {name!r}; pass the right file"
        )
    return {k: t.float() if t.is_floating_point() else t for k, t in tensors.items()}, config


# ---------------------------------------------------------------------------- export

_TAGS = ["video-object-segmentation", "video-colorization", "pytorch", "safetensors"]

_CITATION = """@inproceedings{wu2020memory,
  title     = {Memory Selection Network for Video Propagation},
  author    = {Wu, Ruizheng and Lin, Huaijia and Qi, Xiaojuan and Jia, Jiaya},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2020}
}"""


def _readme_results(readme: Path | None = None) -> str | None:
    """Body of the first '... Results ...' section of the repository README, if any."""
    readme = readme or Path(__file__).resolve().parent.parent / "README.md"
    if not readme.is_file():
        return None
    lines = readme.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#{1,6})\s+.*\bresults?\b", line, flags=re.IGNORECASE)
        if m:
            level = len(m.group(1))
            body = []
            for nxt in lines[i + 1 :]:
                h = re.match(r"^(#{1,6})\s", nxt)
                if h and len(h.group(1)) <= level:
                    break
                body.append(nxt)
            return "\n".join(body).strip() or None
    return None


def _find_local(name: str, source_dir: Path | None) -> Path | None:
    spec = WEIGHTS[name]
    if source_dir is not None and (source_dir / spec.filename).is_file():
        return source_dir / spec.filename
    try:
        return resolve_weights(name, local_only=True)
    except WeightsError:
        return None


def _model_card(rows: list[tuple[WeightSpec, str]], repo_id: str, revision: str, results: str) -> str:
    from huggingface_hub import ModelCardData

    data = ModelCardData(library_name="msn_core", license="mit", tags=_TAGS, datasets=["davis"])
    table = "\n".join(f"| `{s.name}` | `{s.filename}` | {s.description} | `{sha}` |" for s, sha in rows)
    first = rows[0][0]
    return f"""---
{data.to_yaml()}
---

# msn_core weights: Memory Selection Network for video propagation

Weights for `msn_core`, an open implementation of *Memory Selection
Network for Video Propagation* (Wu, Lin, Qi, Jia, ECCV 2020). MSN scores every frame held in a memory
pool and picks the best guide frame for propagating masks (TPN, STM-1) or colours (TPN).

## Files

Every file is safetensors; its metadata holds the model config (also in `config.json`).

| name | file | what it is | sha256 |
|---|---|---|---|
{table}

## Training data

DAVIS-2016 (Perazzi et al., CVPR 2016, https://davischallenge.org): a subset of 15 of its
sequences, 854x480, one binary object mask per frame. The sequences were split **by sequence**
(never by frame) into a training part and a validation part; every number below is measured on the
validation sequences only. DAVIS is released for research use. The paper trains on far larger data,
so absolute numbers are lower than its tables; compare the baseline and +MSN rows.

## Evaluation

{results}

## How to load

```python
import msn_core

model = msn_core.load("{first.name}")  # downloads, verifies the checksum, loads strictly
```

or by hand:

```python
from huggingface_hub import hf_hub_download
from msn_core.hub import load_weights

path = hf_hub_download("{repo_id}", "{first.filename}", revision="{revision}")
state_dict, config = load_weights(path)  # pass expected_sha256= to pin the file
```

## Citation

```bibtex
{_CITATION}
```
"""


def export_hub_repo(
    out_dir: str | Path,
    names: list[str] | None = None,
    results_md: str | None = None,
    *,
    source_dir: str | Path | None = None,
) -> Path:
    """Write a Hub-ready model repo to ``out_dir``: weight files, config.json, README.md.

    Files come from ``source_dir`` (e.g. a training output folder), else the Hub cache or the
    bundled folder. ``names=None`` exports every name found; named ones must all be found.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(
            f"export-hub: {out} exists and is not a folder; give a folder to write the repo into"
        )
    src_dir = Path(source_dir) if source_dir is not None else None
    if src_dir is not None and not src_dir.is_dir():
        raise InputError(f"export-hub: source folder {src_dir} does not exist")
    wanted = list(WEIGHTS) if names is None else list(names)
    for n in wanted:
        get_spec(n)
    found = {n: p for n in wanted if (p := _find_local(n, src_dir)) is not None}
    missing = [n for n in wanted if n not in found]
    where = f"{src_dir}, " if src_dir else ""
    if names is not None and missing:
        raise WeightsError(
            f"export-hub: no local weights for {missing}; looked in {where}the Hub cache and {weights_dir()}"
        )
    if not found:
        raise WeightsError(f"export-hub: no weights files found in {where}the Hub cache or {weights_dir()}")
    for n in missing:
        log.warning("export-hub: no local weights for %r, left out", n)

    out.mkdir(parents=True, exist_ok=True)
    configs: dict[str, dict] = {}
    rows: list[tuple[WeightSpec, str]] = []
    for n, p in found.items():
        spec = WEIGHTS[n]
        _, config, meta = _read(p, None)
        if meta.get("name") != n:
            raise WeightsError(f"export-hub: {p} holds {meta.get('name')!r} weights, not {n!r}")
        dst = out / spec.filename
        if p.resolve() != dst.resolve():
            shutil.copyfile(p, dst)
        configs[n] = config
        rows.append((spec, sha256_file(dst)))
    (out / "config.json").write_text(json.dumps(configs, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / ".gitattributes").write_text(
        "*.safetensors filter=lfs diff=lfs merge=lfs -text\n", encoding="utf-8"
    )
    results = (results_md or "").strip() or _readme_results() or "_No evaluation results recorded yet._"
    repo_id = os.environ.get(REPO_ENV) or DEFAULT_REPO
    revision = os.environ.get(REVISION_ENV) or DEFAULT_REVISION
    (out / "README.md").write_text(_model_card(rows, repo_id, revision, results), encoding="utf-8")
    return out
