"""The frozen stage-1 networks that mine MSN's samples (stage 2).

One weights file (default: the bundled or Hub weights of the kind), several files for cross-fitted
mining (each sequence mined by a net not trained on it), or ``"warp"``: no network, the flow-warped
annotation of each candidate (``mining.mine_warp_sequence``). A mining cache is named by the
weights that made it (:func:`weights_tag`), so other weights never read stale samples.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from msn_core.config import FlowConfig, MSNConfig, from_dict
from msn_core.errors import InputError
from msn_core.hub import get_spec, load_into, load_named, read_weights, sha256_file
from msn_core.models.selection import MSN
from msn_core.propagators import STMPropagator, TPNPropagator
from msn_core.training.data import base_name
from msn_core.training.stage1 import build_stage1

PROPAGATORS = ("tpn-mask", "tpn-color", "stm")
WARP = "warp"  # propagator_weights that mines with the flow-warped annotation, no network


def load_propagator(
    kind: str, backbone_channels: dict[int, int], path: str | Path | None = None, loaded: tuple | None = None
):
    """The frozen stage-1 network (from ``path`` or the bundled weights; ``loaded``: the
    (state dict, config) of ``path`` already read) wrapped as a propagator."""

    if kind not in PROPAGATORS:
        raise InputError(f"unknown propagator {kind!r}; accepted: {', '.join(PROPAGATORS)}")
    sd, config = loaded or load_named(kind, path)
    width = int(config.get("config", {}).get("width", 32))
    net = build_stage1(kind, backbone_channels, width)
    load_into(net, sd)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return TPNPropagator(net, FlowConfig()) if kind.startswith("tpn") else STMPropagator(net)


def load_msn(path: str | Path, backbone_channels: dict[int, int]):
    """A trained MSN (any of the three) from its weights file, frozen, in eval mode."""
    sd, config = read_weights(Path(path), None)[:2]
    cfg = from_dict(MSNConfig, config["config"])
    msn = MSN(cfg, backbone_channels[cfg.feature_stride])
    load_into(msn, {k: t.float() for k, t in sd.items()})
    msn.eval()
    for p in msn.parameters():
        p.requires_grad_(False)
    return msn


def held_out_propagators(kind: str, backbone_channels: dict[int, int], paths: list[str], sequences) -> dict:
    """Cross-fitting: for every mined sequence, the frozen net (of ``paths``) that was *not* trained
    on it, read from the training sequences each weights file records. Labels mined this way show
    how the net behaves on unseen video (drift, failures), not on video it has memorised."""

    loaded = {path: load_named(kind, path) for path in paths}
    trained_on = {}
    for path, (_, config) in loaded.items():
        seqs = config.get("training", {}).get("sequences")
        if not seqs:
            raise InputError(f"{path}: the weights file does not record its training sequences")
        trained_on[path] = set(seqs)
    out = {}
    for name in sequences:  # views of a sequence ("goat~reverse") go with the sequence
        free = [p for p in paths if base_name(name) not in trained_on[p]]
        if not free:
            raise InputError(
                f"cross-fitted mining: every weights file in {', '.join(paths)} was trained on {name!r}; "
                "give one trained without it"
            )
        out[name] = free[0]
    nets = {p: load_propagator(kind, backbone_channels, p, loaded[p]) for p in set(out.values())}
    return {name: nets[p] for name, p in out.items()}


def mining_propagator(kind: str, backbone_channels: dict[int, int], paths: list[str], sequences):
    """What mines the ``sequences``: ``WARP``, a dict sequence name -> held-out net (several
    ``paths``: cross-fitting) or one frozen net (one path, or none: the bundled weights)."""
    if paths == [WARP]:
        return WARP
    if len(paths) > 1:
        return held_out_propagators(kind, backbone_channels, paths, sequences)
    return load_propagator(kind, backbone_channels, paths[0] if paths else None)


def weights_tag(kind: str, paths: list[str]) -> str:
    """Which frozen weights mined a cache, in its name: other weights never read stale samples.
    ``paths``: the files given (empty: the bundled or Hub weights of ``kind``; ``warp``: none)."""

    if paths == [WARP]:
        return ""
    digests = [sha256_file(p) for p in paths] if paths else [get_spec(kind).sha256 or "unpinned"]
    return "_w" + hashlib.sha256("".join(digests).encode()).hexdigest()[:8]
