"""Weights files: the safetensors format msn_core writes and every check made on reading one.

Weights are safetensors only (never pickle). Each file's metadata holds
``{"config": <json>, "format": "msn_core", "name": ..., "tensors_sha256": ...}``;
the last is a digest of the tensors so a corrupted file is refused even where no
checksum is pinned in the weights table yet (msn_core/hub/table.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from msn_core.errors import InputError, WeightsError

FORMAT = "msn_core"

_PICKLE_HINT = (
    "it looks like a pickle / torch.save checkpoint, which is refused because unpickling can run code; "
    "convert it once in a trusted environment with msn_core.hub.save_weights"
)


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


def read_weights(
    path: str | Path, expected_sha256: str | None = None
) -> tuple[dict[str, Tensor], dict, dict]:
    """Read a weights file after every check: (tensors as stored, config, raw metadata).

    The layout is checked from the header before anything is read, then ``expected_sha256`` (if
    given) on the whole file, the msn_core metadata, and the digest of the tensors it embeds.
    """
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
    tensors, config, _ = read_weights(path, expected_sha256)
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
