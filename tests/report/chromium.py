"""Opens a page in headless Chromium and reports its console errors, over the DevTools
protocol on a pipe (``--remote-debugging-pipe``: JSON messages ending in NUL, read by the
browser from fd 3, written to fd 4), so no websocket client is needed. A page's failed
loads (a missing image) are console errors there, as a reader's browser shows them."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((path for name in NAMES if (path := shutil.which(name))), None)


class _Pipe:
    def __init__(self, browser: str):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        # bash puts the pipe's ends on fds 3 and 4 (by way of two high fds: an end may be
        # 3 or 4 already) and becomes the browser (exec)
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec 198<&{to_browser_r} 199>&{from_browser_w}; "
             'exec 3<&198 4>&199 198<&- 199>&- "$0" "$@"', browser,
             "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", "--allow-file-access-from-files",
             "--window-size=1200,900", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        answer = self.wait(lambda m: m.get("id") == self._id, timeout)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def wait(self, matches, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if matches(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError(f"no answer from Chromium within {timeout} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe: "
                                   + self.process.stderr.read().decode()[-1000:])
            self._buffer += chunk

    def close(self) -> None:
        try:
            os.write(self._to_browser, json.dumps(
                {"id": 0, "method": "Browser.close", "params": {}}).encode() + b"\0")
        except OSError:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def open_page(browser: str, page: Path, screenshot: Path) -> list[str]:
    """Loads `page`, saves a full-page screenshot, returns its console errors (failed
    loads, script exceptions, console.error calls)."""
    pipe = _Pipe(browser)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"]
        for domain in ("Log", "Runtime", "Page"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        pipe.wait(lambda m: m.get("method") == "Page.loadEventFired"
                  and m.get("sessionId") == session)
        shot = pipe.send("Page.captureScreenshot", {"format": "png",
                                                     "captureBeyondViewport": True},
                         session=session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        pipe.close()
    errors = []
    for event in pipe.events:
        params = event.get("params", {})
        if event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
        elif event["method"] == "Runtime.exceptionThrown":
            errors.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") == "error":
            errors.append(f"console.error: {params.get('args')}")
    return errors
