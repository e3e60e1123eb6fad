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


def get_spec(name: str) -> WeightSpec:
    """The entry for ``name``; an InputError listing the known names if there is none."""
    if name not in WEIGHTS:
        raise InputError(f"unknown weights name {name!r}; known names: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]
