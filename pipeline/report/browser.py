"""Open a local HTML file in headless Chromium and report what a person would see.

Drives Debian's `chromium` over the DevTools protocol on a pipe (--remote-debugging-pipe): no
port, no websocket library, no browser download. Collects console messages, uncaught exceptions,
browser log errors, every URL the page requested and any dialog a script opened; evaluates one
expression in the page; takes a PNG screenshot. Used by the report's browser test and by
scripts/screenshot_report.py.
"""
from __future__ import annotations

import base64
import json
import math
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ToolError

# Flags Chromium needs on these machines (root, no GPU, no network but the package registries).
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-pipe", "--hide-scrollbars", "--force-color-profile=srgb",
]


# Chromium reads DevTools commands on fd 3 and answers on fd 4. This shim moves our pipe ends
# there (via fds >= 10, so neither end can overwrite the other) and then becomes Chromium.
_ON_FDS_3_AND_4 = """
import fcntl, os, sys
ends = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]]
for fd in sys.argv[1:3]:
    os.close(int(fd))
for target, fd in zip((3, 4), ends):
    os.dup2(fd, target)
    os.close(fd)
os.execv(sys.argv[3], sys.argv[3:])
"""


@dataclass
class PageVisit:
    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    errors: list[str] = field(default_factory=list)  # exceptions, console errors, browser log errors
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    value: Any = None
    screenshot: bytes = b""


class _Pipe:
    """Null-terminated JSON messages to Chromium's fd 3, from its fd 4."""

    def __init__(self, to_browser: int, from_browser: int, process: subprocess.Popen):
        self.to_browser, self.from_browser, self.process = to_browser, from_browser, process
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        return self.next_id

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ToolError("chromium: no answer from the DevTools pipe in time")
            ready, _, _ = select.select([self.from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise ToolError(f"chromium exited (code {self.process.poll()}) while a page was open")
                self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        message = json.loads(raw)
        if message.get("method") == "Page.javascriptDialogOpening":
            # An open alert() blocks the page's load event: dismiss it, it is recorded as an event.
            self.send("Page.handleJavaScriptDialog", {"accept": False}, message.get("sessionId"))
        return message

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise ToolError(f"chromium: {method} failed: {message['error'].get('message')}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, method: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if event["method"] == method:
                return self.events[i]
        while True:
            message = self._read_message(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message


def chromium_executable() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise ToolError("chromium not found: run scripts/setup-system.sh (Debian's package `chromium`)")
    return path


def _collect(visit: PageVisit, events: list[dict]) -> None:
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            visit.console.append((params.get("type", ""), text))
            if params.get("type") in ("error", "assert"):
                visit.errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            visit.errors.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            visit.errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            visit.requests.append(params["request"]["url"])
        elif method == "Page.javascriptDialogOpening":
            visit.dialogs.append(params.get("message", ""))


def visit(page: Path, expression: str | None = None, screenshot: Path | None = None, width: int = 1280,
          height: int = 900, full_page: bool = True, timeout: float = 60) -> PageVisit:
    """Load `page` (a local file) in a fresh headless Chromium profile and report what happened."""
    url = page.resolve().as_uri()
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="report-chromium-")
    command = [sys.executable, "-c", _ON_FDS_3_AND_4, str(to_browser_r), str(from_browser_w), chromium_executable(),
               *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log)
    os.close(to_browser_r)
    os.close(from_browser_w)
    pipe = _Pipe(to_browser_w, from_browser_r, process)
    result = PageVisit()
    try:
        _drive(pipe, result, url, page, expression, screenshot, width, height, full_page, timeout)
    except ToolError as e:
        log.seek(0)
        last = [line for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()][-1:]
        raise ToolError(f"{e}{'; chromium said: ' + last[0] if last else ''}") from e
    finally:
        os.close(to_browser_w)
        os.close(from_browser_r)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
    return result


def _drive(pipe: _Pipe, result: PageVisit, url: str, page: Path, expression: str | None, screenshot: Path | None,
           width: int, height: int, full_page: bool, timeout: float) -> None:
    target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
    session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Page", "Network"):
        pipe.call(f"{domain}.enable", session=session)
    pipe.call("Emulation.setDeviceMetricsOverride",
              {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
    pipe.events.clear()
    navigation = pipe.call("Page.navigate", {"url": url}, session=session)
    if navigation.get("errorText"):
        raise ToolError(f"chromium could not open {page}: {navigation['errorText']}")
    pipe.wait_for("Page.loadEventFired", timeout)
    if expression is not None:
        evaluated = pipe.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        if "exceptionDetails" in evaluated:
            raise ToolError(f"chromium: the expression failed: {evaluated['exceptionDetails'].get('text')}")
        result.value = evaluated["result"].get("value")
    if screenshot is not None:
        params = {"format": "png"}
        if full_page:
            size = pipe.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": width, "height": math.ceil(size["height"]), "scale": 1})
        shot = pipe.call("Page.captureScreenshot", params, session=session, timeout=timeout)
        result.screenshot = base64.b64decode(shot["data"])
        screenshot.write_bytes(result.screenshot)
    _collect(result, pipe.events)
    try:
        pipe.call("Browser.close", timeout=10)
    except ToolError:
        pass  # the browser closing its end of the pipe is an expected answer
