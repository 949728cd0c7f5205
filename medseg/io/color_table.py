"""Slicer colour tables (``.ctbl``): one line ``value name r g b a`` per label, colours 0-255.

Slicer reads a line's fields split at white space, so a name's spaces become underscores.
"""

from __future__ import annotations

from pathlib import Path

from medseg.io.atomic import write_text
from medseg.labels import Label


def color_table_text(labels: list[Label]) -> str:
    """The colour table of ``labels``: background transparent black, the others opaque in their colours."""
    lines = [f"# medseg colour table: {len(labels)} labels", "# value name r g b a"]
    for label in labels:
        red, green, blue = label.rgb if label.value else (0, 0, 0)
        alpha = 255 if label.value else 0
        lines.append(f"{label.value} {'_'.join(label.name.split())} {red} {green} {blue} {alpha}")
    return "\n".join(lines) + "\n"


def write_color_table(path: str | Path, labels: list[Label]) -> Path:
    """Write :func:`color_table_text` of ``labels`` to ``path`` atomically."""
    write_text(path, color_table_text(labels))
    return Path(path)
