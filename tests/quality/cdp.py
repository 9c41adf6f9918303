"""Headless Chromium driven over the DevTools protocol (a websocket), to measure a page's layout.

Chromium picks its own debugging port (``--remote-debugging-port=0``) and writes it to
``DevToolsActivePort`` in its profile directory; the page target's websocket then takes JSON commands
(``Page.navigate``, ``Runtime.evaluate``, ``Page.captureScreenshot``, ``Emulation.setDeviceMetricsOverride``:
https://chromedevtools.github.io/devtools-protocol/, checked 2026-12-05).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.quality.test_server import chromium_binary


class Chromium:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: ClientConnection | None = None
        self.next_id = 0

    def __enter__(self) -> Chromium:
        self.proc = subprocess.Popen(
            [
                chromium_binary(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not open its debugging port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Sends one command and returns its result (events in between are skipped)."""
        assert self.ws is not None
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (JSON-serialisable)."""
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"])
        return res["result"].get("value")

    def open(self, url: str, width: int, height: int, ready: str, timeout_s: float = 30) -> None:
        """Sets the viewport, navigates, and waits until ``ready`` (a JS expression) is true."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout_s
        while not self.evaluate(ready):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page not ready: {ready}")
            time.sleep(0.1)

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        """A PNG of the page (the whole page height with ``full_page``)."""
        res = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)
        path.write_bytes(base64.b64decode(res["data"]))
