"""Errors a user can act on. Each message says what was wrong and what is accepted."""

from __future__ import annotations


class MSNError(Exception):
    """Base class: the CLI prints these as one line (exit 2), the demo as gr.Error."""


class InputError(MSNError, ValueError):
    """A file, frame or mask that cannot be used, with the reason and what is accepted."""


class WeightsError(MSNError):
    """Weights that are missing, tampered with, or do not fit the model."""


class DownloadError(MSNError):
    """A download that failed or was refused (unreachable, cut off, wrong checksum), saying what was
    kept and how to go on."""
