"""The slice viewer's part of ``report.html``: one ``<div>`` per case around its data, the style and script once.

The script (``viewer.js``, beside this module) and each case's data (``<name>_viewer.json``, from
:mod:`medseg.io.viewer_data`) are written into the page itself, so it needs no network and no other file.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

STYLE = """
.medseg-viewer { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 1em; background: #000; color: #eee;
  padding: 0.8em; margin: 0.5em 0 1.5em; }
.medseg-view { position: relative; margin: 0; text-align: center; }
.medseg-view canvas { display: block; margin: 0 auto; }
.medseg-view input { width: 100%; }
.medseg-edges { position: absolute; top: 40%; left: 0; right: 0; display: flex; justify-content: space-between;
  color: #ff0; pointer-events: none; font-size: 0.8em; }
.medseg-controls { display: flex; flex-direction: column; gap: 0.3em; font-size: 0.9em; }
.medseg-swatch { display: inline-block; width: 0.9em; height: 0.9em; margin: 0 0.3em; vertical-align: middle; }
.medseg-value { display: inline-block; min-width: 3em; }
"""


def viewer_div(data: Path) -> str:
    """The viewer of one case, around the JSON text of its ``<name>_viewer.json``.

    ``<`` is written as JSON's escape for it (backslash, ``u003c``), which JSON reads as the same
    character, so that no text in the data can end the ``<script>`` element that holds it.
    """
    text = data.read_text(encoding="utf-8").strip().replace("<", "\\u003c")
    return f'<div class="medseg-viewer"><script type="application/json">{text}</script></div>'


def viewer_assets() -> str:
    """The viewers' style and script, once per page, after every viewer ``<div>``."""
    script = files("medseg.io").joinpath("viewer.js").read_text(encoding="utf-8")
    return f"<style>{STYLE}</style>\n<script>\n{script}</script>"
