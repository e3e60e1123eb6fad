"""Checks on the prose users read (help texts, demo hints) shared by the CLI and demo tests."""

from __future__ import annotations

import re

# A measured figure in prose: "about 60", "~2x", "90 s", "four minutes", "+0.4", "J&F ... 78".
# Figures live in results/ and BENCHMARKS.md, where the run that made them is recorded; help
# and hints only point there, so they cannot go stale.
MEASURED = re.compile(
    r"\b(about|around|roughly) (\d|one|two|three|four|five|ten|twice)|~ ?\d|\d(\.\d+)? ?(s|ms|min|seconds?|minutes?)\b"
    r"|\ba minute\b|\bminutes\b|\+\d+\.\d|\d+(-\d+)? ?x the\b|\bJ&F( \w+){0,3} \+?\d"
)
