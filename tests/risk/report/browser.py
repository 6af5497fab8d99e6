"""Minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (no websocket needed).

Chromium reads NUL-terminated JSON commands from fd 3 and writes replies/events to fd 4.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from risk.report.pdf import chromium_command


def require(binary: str, package: str) -> str:
    """Path of ``binary``; fails (not skips) naming the Debian package when it is missing."""
    found = shutil.which(binary)
    if found is None:
        raise AssertionError(f"`{binary}` is required for this test: apt-get install -y {package}")
    return found


class PipeBrowser:
    """Headless Chromium driven through the DevTools protocol on a pipe pair."""

    def __init__(self):
        self._profile = tempfile.TemporaryDirectory(prefix="trisk-cdp-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        # bash (multi-digit fds) puts the pipe ends on fds 3 (commands) and 4 (replies)
        cmd = chromium_command("--remote-debugging-pipe", "about:blank",
                               user_data_dir=self._profile.name)
        shell = f'exec "$@" 3<&{to_child_r} 4>&{from_child_w} {to_child_r}<&- {from_child_w}>&-'
        self.proc = subprocess.Popen(["/bin/bash", "-c", shell, "bash", *cmd],
                                     pass_fds=(to_child_r, from_child_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "HOME": self._profile.name})
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict:
        """Send a command and return its result (events received meanwhile are kept)."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        """Block until an event ``method`` arrives."""
        deadline = time.monotonic() + timeout
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while True:
            ev = self._read_message(deadline)
            self.events.append(ev)
            if ev.get("method") == method:
                return ev

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 — the browser may already be gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_child)
        os.close(self._from_child)
        self._profile.cleanup()


def load_page(html: Path) -> dict:
    """Load ``html``; return console errors, exceptions, request URLs and image sizes."""
    b = PipeBrowser()
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            b.send(f"{domain}.enable", session=session)
        b.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
        b.wait_event("Page.loadEventFired", timeout=90)
        images = b.send("Runtime.evaluate", {
            "expression": "JSON.stringify(Array.from(document.images).map("
                          "i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt]))",
            "returnByValue": True}, session=session)["result"]["value"]
        title = b.send("Runtime.evaluate", {"expression": "document.title",
                                            "returnByValue": True},
                       session=session)["result"]["value"]
        ev = b.events
        return {
            "title": title,
            "images": json.loads(images),
            "console_errors": [e["params"] for e in ev
                               if e.get("method") == "Runtime.consoleAPICalled"
                               and e["params"].get("type") in ("error", "assert")],
            "exceptions": [e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"],
            "log_errors": [e["params"]["entry"] for e in ev if e.get("method") == "Log.entryAdded"
                           and e["params"]["entry"].get("level") == "error"],
            "requests": [e["params"]["request"]["url"] for e in ev
                         if e.get("method") == "Network.requestWillBeSent"],
        }
    finally:
        b.close()
