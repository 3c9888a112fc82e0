"""A minimal W3C WebDriver client (the standard library only) for Debian's chromium + chromium-driver.

Only what scripts/test-client-page.py needs: start chromedriver, a headless session, navigate, find
elements by CSS selector, click, type, read text, run a script, take a screenshot. WebDriver is
JSON over HTTP (https://www.w3.org/TR/webdriver2/); a client library such as selenium would pin
packages of the shared services venv (it downgrades typing_extensions there).

    with Chromium() as browser:
        browser.get("http://127.0.0.1:3002/client/")
        browser.find("#customer-name").type("Ada")
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

# The key WebDriver uses for an element reference in JSON.
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class WebDriverError(Exception):
    """An error answer of the driver (`error`, `message`)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Element:
    def __init__(self, browser: "Chromium", ref: str, selector: str) -> None:
        self.browser, self.ref, self.selector = browser, ref, selector

    def _call(self, method: str, path: str, body: dict | None = None):
        return self.browser.call(method, f"/element/{self.ref}{path}", body)

    def click(self) -> None:
        self._call("POST", "/click", {})

    def clear(self) -> None:
        self._call("POST", "/clear", {})

    def type(self, text: str, clear: bool = True) -> None:
        if clear:
            self.clear()
        self._call("POST", "/value", {"text": text})

    @property
    def text(self) -> str:
        return self._call("GET", "/text")

    def attribute(self, name: str):
        return self._call("GET", f"/attribute/{name}")

    def property(self, name: str):
        return self._call("GET", f"/property/{name}")


class Chromium:
    """chromedriver on a free loopback port and one headless chromium session."""

    def __init__(self, width: int = 1600, height: int = 1000, log: Path | None = None) -> None:
        driver = shutil.which("chromedriver")
        binary = shutil.which("chromium")
        if not driver or not binary:
            raise WebDriverError("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
        self.port = free_port()
        self.log = open(log or os.devnull, "ab")
        self.driver = subprocess.Popen([driver, f"--port={self.port}"], stdout=self.log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.session = ""
        deadline = time.monotonic() + 20
        while True:
            try:
                self._request("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline or self.driver.poll() is not None:
                    self.close()
                    raise WebDriverError("chromedriver did not start")
                time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--lang=en-US", "--no-first-run"]
        capabilities = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": {"binary": binary, "args": args}}}}
        try:
            self.session = self._request("POST", "/session", capabilities)["sessionId"]
        except Exception:
            self.close()
            raise

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _request(self, method: str, path: str, body: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            payload = None if body is None else json.dumps(body)
            headers = {"content-type": "application/json"} if payload is not None else {}
            connection.request(method, path, payload, headers)
            answer = json.loads(connection.getresponse().read() or b"{}")
        finally:
            connection.close()
        value = answer.get("value")
        if isinstance(value, dict) and "error" in value:
            raise WebDriverError(f"{value['error']}: {value.get('message', '').splitlines()[0] if value.get('message') else ''}")
        return value

    def call(self, method: str, path: str, body: dict | None = None):
        return self._request(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    def find(self, selector: str) -> Element:
        value = self.call("POST", "/element", {"using": "css selector", "value": selector})
        return Element(self, value[ELEMENT], selector)

    def find_all(self, selector: str) -> list[Element]:
        values = self.call("POST", "/elements", {"using": "css selector", "value": selector})
        return [Element(self, v[ELEMENT], selector) for v in values]

    def script(self, source: str, *args):
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("GET", "/screenshot")))

    def close(self) -> None:
        if self.session:
            try:
                self.call("DELETE", "")
            except (OSError, WebDriverError):
                pass
            self.session = ""
        if self.driver.poll() is None:
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
                self.driver.wait()
        self.log.close()
