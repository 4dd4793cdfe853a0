"""Open a local HTML file in headless Chromium and report what a user's browser would show.

Speaks the Chrome DevTools protocol over `--remote-debugging-pipe` (JSON messages ending in NUL on
file descriptors 3 and 4), so no websocket library and no network port are needed. Collected:
console errors and uncaught exceptions, browser log errors (a Content-Security-Policy violation
lands there), every network request that is not the file itself or inline data, DOM facts from
JavaScript expressions, and a full-page PNG screenshot.
"""
from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe")


def find_chromium() -> str | None:
    explicit = os.environ.get("LLEM_CHROMIUM")
    if explicit:
        return explicit
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


@dataclass
class PageReport:
    console_errors: list[str] = field(default_factory=list)
    network_requests: list[str] = field(default_factory=list)
    values: dict[str, object] = field(default_factory=dict)
    screenshot_png: bytes = b""


class _Pipe:
    """A DevTools session over the two pipes; events are kept in `events`."""

    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int):
        self.proc, self.to_browser, self.next_id = proc, to_browser, 0
        self.responses: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, args=(from_browser,), daemon=True).start()

    def _read(self, fd: int) -> None:
        buffer = b""
        with os.fdopen(fd, "rb", buffering=0) as stream:
            while chunk := stream.read(65536):
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    message = json.loads(raw)
                    if "id" in message:
                        self.responses.put(message)
                    else:
                        with self.lock:
                            self.events.append(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout_s: float = 30.0) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                reply = self.responses.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"chromium exited with {self.proc.returncode} before answering {method}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no answer to {method} within {timeout_s} s") from None
                continue
            if reply["id"] == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_event(self, method: str, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                found = next((e for e in self.events if e.get("method") == method), None)
            if found:
                return found
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode} before {method}")
            time.sleep(0.05)
        raise TimeoutError(f"no {method} within {timeout_s} s")


def render(html_path: Path, expressions: dict[str, str], width: int = 1280, height: int = 900,
           chromium: str | None = None, settle_s: float = 0.5) -> PageReport:
    """Load `html_path`, evaluate each JavaScript expression (by name), take a full-page screenshot."""
    chromium = chromium or find_chromium()
    if not chromium:
        raise FileNotFoundError("no chromium executable found")
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    with tempfile.TemporaryDirectory(prefix="llem-chromium-") as profile:
        command = ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}', chromium, *FLAGS,
                   f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
        log = open(Path(profile) / "chromium.log", "w+b")  # a file, not a pipe: chromium's chatter never blocks it
        proc = subprocess.Popen(command, pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log)
        os.close(to_browser_r)
        os.close(from_browser_w)
        pipe = _Pipe(proc, to_browser_w, from_browser_r)
        try:
            return _inspect(pipe, html_path, expressions, width, height, settle_s)
        except (TimeoutError, RuntimeError, OSError) as exc:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"chromium did not answer ({exc!r}; exit code {proc.poll()}); its log:\n{tail}") from exc
        finally:
            try:
                pipe.send("Browser.close", timeout_s=5)
            except Exception:  # noqa: BLE001 - closing is best effort; the process is killed below
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_browser_w)
            log.close()


def _inspect(pipe: _Pipe, html_path: Path, expressions: dict[str, str], width: int, height: int,
             settle_s: float) -> PageReport:
    target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Network", "Page"):
        pipe.send(f"{domain}.enable", session=session)
    pipe.send("Emulation.setDeviceMetricsOverride",
              {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
    url = Path(html_path).resolve().as_uri()
    pipe.send("Page.navigate", {"url": url}, session=session)
    pipe.wait_event("Page.loadEventFired")
    time.sleep(settle_s)  # late console messages (CSP reports are asynchronous)
    report = PageReport()
    for name, expression in expressions.items():
        result = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{name}: {result['exceptionDetails']}")
        report.values[name] = result["result"].get("value")
    page_height = pipe.send("Runtime.evaluate", {"expression": "document.documentElement.scrollHeight",
                                                 "returnByValue": True}, session=session)["result"]["value"]
    shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                "clip": {"x": 0, "y": 0, "width": width, "height": page_height,
                                                         "scale": 1}}, session=session, timeout_s=60)
    report.screenshot_png = base64.b64decode(shot["data"])
    with pipe.lock:
        events = list(pipe.events)
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            report.console_errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            report.console_errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            report.console_errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            request_url = params["request"]["url"]
            if request_url != url and not request_url.startswith(("data:", "about:")):
                report.network_requests.append(request_url)
    return report


def pixel_stats(png: bytes) -> tuple[float, float]:
    """(variance of grey levels, share of pixels that are not near-white) of a PNG image."""
    import io

    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return float(grey.var()), float((grey < 240).mean())


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.browser REPORT.html SCREENSHOT.png`: render, save the full-page screenshot,
    print console errors and network requests (exit 1 when there are any)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tests.browser REPORT.html SCREENSHOT.png", file=sys.stderr)
        return 2
    seen = render(Path(args[0]), {"figures": "document.querySelectorAll('figure svg').length"})
    Path(args[1]).write_bytes(seen.screenshot_png)
    variance, inked = pixel_stats(seen.screenshot_png)
    print(f"{args[1]}: {seen.values['figures']} SVG figures; grey variance {variance:.0f}, {inked:.1%} inked")
    for line in seen.console_errors + [f"network request: {u}" for u in seen.network_requests]:
        print(line)
    return 1 if seen.console_errors or seen.network_requests else 0


if __name__ == "__main__":
    raise SystemExit(main())
