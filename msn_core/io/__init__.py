"""Video / frame-folder / zip / DAVIS input and mask, video, overlay and zip output.

Frames are (H, W, 3) uint8 RGB; labels are (H, W) uint8 object ids (0 background,
1..K objects, 255 DAVIS "void"). Every user mistake raises
:class:`msn_core.errors.InputError` naming the file.
"""

from __future__ import annotations

from msn_core.io._common import IMAGE_EXTS, VIDEO_EXTS, VOID_LABEL, ZIP_EXTS
from msn_core.io.davis import (
    davis_annotations,
    davis_sequence,
    example_path,
    example_sequence,
    examples_as_davis,
    list_davis_sequences,
    list_examples,
)
from msn_core.io.images import decode_image
from msn_core.io.masks import (
    check_mask,
    davis_palette,
    labels_from_palette_or_binary,
    object_ids,
    read_mask,
    write_mask_png,
)
from msn_core.io.resize import fit_size, resize_frame, resize_labels, restore_labels
from msn_core.io.sources import VideoSource, open_video
from msn_core.io.writers import (
    VideoWriter,
    atomic_write,
    overlay_labels,
    rgba_cutout,
    write_overlay_video,
    write_rgba_cutout,
    zip_directory,
)

__all__ = [
    "IMAGE_EXTS",
    "VIDEO_EXTS",
    "VOID_LABEL",
    "ZIP_EXTS",
    "VideoSource",
    "VideoWriter",
    "atomic_write",
    "check_mask",
    "davis_annotations",
    "davis_palette",
    "davis_sequence",
    "decode_image",
    "example_path",
    "example_sequence",
    "examples_as_davis",
    "fit_size",
    "labels_from_palette_or_binary",
    "list_davis_sequences",
    "list_examples",
    "object_ids",
    "open_video",
    "overlay_labels",
    "read_mask",
    "resize_frame",
    "resize_labels",
    "restore_labels",
    "rgba_cutout",
    "write_mask_png",
    "write_overlay_video",
    "write_rgba_cutout",
    "zip_directory",
]
