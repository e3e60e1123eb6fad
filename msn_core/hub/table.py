"""The weights table: every published weights name, its file, its Hub repo and the sha256 pinned for it.

This is the one place the checksums are pinned. To publish new weights: upload the file
(``msn export-hub``), then put its sha256 (``msn_core.hub.sha256_file``) in its entry below.
Files from the Hub or the bundled folder are refused unless they match the pin.
"""

from __future__ import annotations

from dataclasses import dataclass

from msn_core.errors import InputError

DEFAULT_REPO = "msn-core/msn-core"
DEFAULT_REVISION = "v0.1.0"  # a tag until the first upload; then pin the 40-hex commit


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
            "68899c487df456e7d6889c522e632d795d4b8b8daedbfbfbdb4879f4c7cf768a",
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
            "c84fbc15590fc0adfb193f9110be9dca461a7d5064b29df449db779f22df7a2d",
            description="STM-1 propagating object masks",
        ),
        WeightSpec(
            "msn-tpn",
            "msn_tpn.safetensors",
            "2ea57ad2203c6a441ed6c32fe594f4343fcefab2ba1c22f4823f525e4aa869b5",
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
            "5d83ae1c07dbec81f79c7494eafcd1add60bb4f53624b81ce33cee45f8492341",
            description="MSN guide selector trained for STM-1",
        ),
        WeightSpec(
            "click",
            "click.safetensors",
            "e06dbb42ec4e8b81815d296b66ef00e1e0d7c32d1f07c183a3928ce351cb8586",
            description="ClickNet: an object's mask from positive and negative clicks (the demo's click tool)",
        ),
        WeightSpec("vgg16", "vgg16.safetensors", None, description="VGG16 feature extractor (the paper's F)"),
    )
}


def get_spec(name: str) -> WeightSpec:
    """The entry for ``name``; an InputError listing the known names if there is none."""
    if name not in WEIGHTS:
        raise InputError(f"unknown weights name {name!r}; known names: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


# the weights each msn_core.load(propagator, task) pipeline reads: (network, its MSN)
WEIGHT_NAMES = {
    ("tpn", "mask"): ("tpn-mask", "msn-tpn"),
    ("tpn", "color"): ("tpn-color", "msn-tpn-color"),
    ("stm", "mask"): ("stm", "msn-stm"),
    # the ensemble: both networks' files ("+"-joined, in propagators.MEMBERS order) and STM-1's MSN
    ("tpn+stm", "mask"): ("tpn-mask+stm", "msn-stm"),
}
