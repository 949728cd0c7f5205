"""Headless Chromium driven over the DevTools protocol on a pipe: load a page, send real input, take screenshots.

With ``--remote-debugging-pipe`` Chromium reads protocol messages (JSON, each ended by a NUL byte) from its
file descriptor 3 and writes replies and events to 4; nothing but the standard library is needed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

TIMEOUT_S = 60.0


def chromium_or_skip() -> str:
    """The chromium executable; where it is missing, skip, or fail when ``MEDSEG_REQUIRE_CHROMIUM`` is set (CI)."""
    found = shutil.which("chromium")
    if found is None:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("MEDSEG_REQUIRE_CHROMIUM"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class Browser:
    """One headless Chromium with one page of ``width`` x ``height`` CSS pixels."""

    def __init__(self, executable: str, profile: Path, width: int, height: int) -> None:
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run"]
        flags += ["--disable-background-networking", f"--user-data-dir={profile}", "--hide-scrollbars"]
        self._process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}', executable, *flags],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._last_id = 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self._from_browser, 1 << 20) if ready else b""
            if not chunk:
                raise TimeoutError("chromium did not answer")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one protocol command (to the browser, or to ``session``) and return its result."""
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while (reply := self._message(deadline)).get("id") != self._last_id:
            pass  # an event, or the reply to nothing we wait for
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one protocol command to the page."""
        return self.send(method, self._session, **params)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str) -> None:
        """Load ``url`` and wait until the JavaScript expression ``ready`` is true."""
        self.call("Page.navigate", url=url)
        waited = (
            f"new Promise(done => {{ const check = () => ({ready}) ? done(true) : setTimeout(check, 50); check(); }})"
        )
        self.evaluate(waited)

    def point(self, selector: str, at: tuple[float, float] = (0.5, 0.5)) -> tuple[float, float]:
        """A point of the first element that matches ``selector``, ``at`` fractions of its width and height
        from its top left corner, in CSS pixels of the page."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect(); "
            f"return [r.x + {at[0]} * r.width, r.y + {at[1]} * r.height]; }})()"
        )
        return box[0], box[1]

    def wheel(self, selector: str, clicks: int) -> None:
        """Turn the mouse wheel over an element: ``clicks`` notches, away from the user when positive."""
        x, y = self.point(selector)
        for _ in range(abs(clicks)):
            self.call(
                "Input.dispatchMouseEvent", type="mouseWheel", x=x, y=y, deltaX=0, deltaY=100 if clicks > 0 else -100
            )

    def click(self, selector: str, at: tuple[float, float] = (0.5, 0.5)) -> None:
        """Press and release the left mouse button over an element, at :meth:`point` ``at``."""
        x, y = self.point(selector, at)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, selector: str) -> np.ndarray:
        """The element's pixels as shown, ``(rows, columns, 3)`` uint8."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect(); "
            "return {x: r.x, y: r.y, width: r.width, height: r.height}; })()"
        )
        shot = self.call("Page.captureScreenshot", format="png", clip={**box, "scale": 1})
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB"))

    def close(self) -> None:
        """End the browser."""
        os.close(self._to_browser)  # Chromium exits when its pipe closes
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._from_browser)
