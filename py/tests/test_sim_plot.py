"""fastbreaker.sim_plot: the SVG parses as XML, the PNG is a PNG matplotlib reads back, and
the HTML page, opened in a real headless Chromium through the DevTools protocol, logs no error
and shows every configuration's label."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from fastbreaker.sim_plot import (
    check_plot_path,
    failure_series,
    relative_seconds,
    render_html,
    render_svg,
    state_runs,
    write_plot,
)
from fastbreaker.trace import Trace, generate_trace

S = 1_000_000_000
START = 1_700_000_000.0
SVG_NS = "{http://www.w3.org/2000/svg}"


@dataclass
class FakeResults:
    """Fixed results in the shape of fastbreaker.sim.Results (times on the trace's clock)."""

    rows: list[dict[str, Any]]
    outages: list[tuple[float, float]]
    transitions: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)

    def pareto(self) -> list[dict[str, Any]]:
        return self.rows[:1]


def fake_results() -> FakeResults:
    labels = ["breaker:failure_threshold=3", 'breaker:<odd> & "quoted"', "limiter:rate=5"]
    rows = [
        {
            "label": label,
            "kind": label.split(":")[0],
            "calls": 100,
            "admitted": 90,
            "rejected": 10,
            "trips": 1,
            "time_open": 2.5,
            "false_rejections": i,
            "missed_protection": 3 - i,
            "detect_mean": 0.2,
            "detect_max": 0.2,
            "undetected": 0,
            "recover_mean": None,
            "recover_max": None,
            "tokens_granted": 90 if i == 2 else 0,
            "tokens_rejected": 10 if i == 2 else 0,
        }
        for i, label in enumerate(labels)
    ]
    transitions = {
        labels[0]: [
            (START + 21.0, "closed", "open"),
            (START + 26.0, "open", "half_open"),
            (START + 26.2, "half_open", "closed"),
        ],
        labels[1]: [(START + 22.0, "closed", "open")],
        labels[2]: [],
    }
    return FakeResults(rows, [(START + 20.0, START + 30.0)], transitions)


@pytest.fixture
def trace() -> Trace:
    return generate_trace("60s", 50, 0.01, outages="10s@20s:0.95", seed=2, start=START)


def real_results(trace: Trace, configs: list[str]) -> Optional[Any]:
    """Real results once fastbreaker.sim.simulate has landed, else None."""
    try:
        simulate = importlib.import_module("fastbreaker.sim").simulate
    except (ImportError, AttributeError):
        return None
    return simulate(trace, configs)


# -- pieces ------------------------------------------------------------------------------------


def test_state_runs() -> None:
    transitions = [(2.0, "closed", "open"), (5.0, "open", "half_open"), (5.0, "half_open", "open")]
    assert state_runs(transitions, 10.0, 10) == [(0, 2, "closed"), (2, 10, "open")]
    transitions = [
        (2.0, "closed", "open"),
        (4.0, "open", "half_open"),
        (6.0, "half_open", "closed"),
    ]
    assert state_runs(transitions, 10.0, 10) == [
        (0, 2, "closed"),
        (2, 4, "open"),
        (4, 6, "half_open"),
        (6, 10, "closed"),
    ]
    # A trip shorter than a column still shows, as the most severe state of its column.
    assert state_runs([(3.01, "closed", "open"), (3.02, "open", "closed")], 10.0, 10) == [
        (0, 3, "closed"),
        (3, 4, "open"),
        (4, 10, "closed"),
    ]
    assert state_runs([], 10.0, 5, initial="none") == [(0, 5, "none")]


def test_failure_series_and_relative_seconds() -> None:
    trace = Trace.from_rows(
        [
            (START, "success", 0.1, None),
            (START + 0.5, "failure", 0.1, None),
            (START + 2.5, 503, 0.1, None),
        ]
    )
    assert failure_series(trace, 1.0) == (1.0, [(0.0, 0.5), (1.0, None), (2.0, 1.0)])
    assert failure_series(trace, 0.5, max_points=2) == (1.5, [(0.0, 0.5), (1.5, 1.0)])
    with pytest.raises(ValueError, match=r"bucket: 0 is not a number of seconds > 0"):
        failure_series(trace, 0)
    assert relative_seconds(START + 2.5, trace) == 2.5
    assert relative_seconds((START + 2.5) * 1e9, trace) == pytest.approx(2.5)
    assert relative_seconds(2.5, trace) == 2.5


def test_check_plot_path() -> None:
    assert check_plot_path("a/b.SVG") == "svg"
    assert check_plot_path("x.htm") == "html"
    assert check_plot_path("x.png") == "png"
    with pytest.raises(ValueError, match=r"--plot 'x.pdf': the file must end in .png, .svg"):
        check_plot_path("x.pdf")


def test_png_needs_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RuntimeError, match=r"pip install fastbreaker\[plot\]"):
        check_plot_path(tmp_path / "out.png")


# -- SVG and PNG -------------------------------------------------------------------------------


def test_svg_parses_and_shows_every_band(trace: Trace, tmp_path: Path) -> None:
    results = fake_results()
    path = tmp_path / "out.svg"
    write_plot(path, trace, results, title="fake <results>")
    root = ET.parse(path).getroot()
    assert root.tag == SVG_NS + "svg"
    labels = [str(e.text) for e in root.iter(SVG_NS + "text") if e.get("class") == "band-label"]
    assert labels == [r["label"] for r in results.rows]
    outages = [e for e in root.iter(SVG_NS + "rect") if e.get("class") == "outage"]
    assert len(outages) == 1
    # The outage from +20 s to +30 s of a trace of 59 to 61 s (from its first call to the end
    # of its last): a sixth of the width, from a third in.
    x, w = float(outages[0].get("x", "0")), float(outages[0].get("width", "0"))
    assert 60 + 920 * 19 / 61 <= x <= 60 + 920 * 20 / 59
    assert 920 * 10 / 61 <= w <= 920 * 10 / 59
    assert len(list(root.iter(SVG_NS + "polyline"))) >= 1
    colours = {
        label: [
            e.get("fill")
            for e in root.iter(SVG_NS + "rect")
            if (e.findtext(SVG_NS + "title") or "").startswith(label + ":")
        ]
        for label in labels
    }
    assert colours[labels[0]] == ["#43a047", "#e53935", "#fb8c00", "#43a047"]
    assert colours[labels[1]] == ["#43a047", "#e53935"]
    assert colours[labels[2]] == ["#cfd8dc"]  # a limiter: no states
    assert render_svg(trace, results).startswith("<svg ")


def test_png_is_a_png_matplotlib_reads_back(trace: Trace, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is in requirements-dev.txt")
    from matplotlib import image

    path = tmp_path / "out.png"
    results = real_results(trace, ["breaker:failure_threshold=5,wait_duration=2"])
    write_plot(path, trace, results if results is not None else fake_results(), title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(path)
    height, width = pixels.shape[:2]
    assert width == 1200 and height >= 300


# -- HTML in a real headless Chromium ----------------------------------------------------------

_WAIT = 60.0  # the bound on every wait for the browser, in seconds


class DevTools:
    """A headless Chromium and a DevTools protocol connection to its page."""

    def __init__(self, profile: Path) -> None:
        import websocket

        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            pytest.fail(
                "chromium is not installed: `make py-test` installs it "
                "(apt-get install -y chromium)"
            )
        self.proc = subprocess.Popen(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + _WAIT
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"chromium did not start its DevTools server (exit {self.proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split("\n")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=_WAIT) as r:
            targets = json.load(r)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=_WAIT, suppress_origin=True
        )
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Calls ``method``; returns its result, keeping the events that came before it."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + _WAIT
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg["result"]
                return result
            self.events.append(msg)
        raise AssertionError(f"no answer to {method} within {_WAIT} s")

    def wait_for(self, method: str) -> None:
        """Reads events until ``method`` comes."""
        deadline = time.monotonic() + _WAIT
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return
        raise AssertionError(f"no {method} within {_WAIT} s")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"]["value"]

    def problems(self) -> list[dict[str, Any]]:
        """The console errors and warnings, uncaught exceptions and error log entries."""
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(e)
            elif method == "Runtime.consoleAPICalled" and params.get("type") in (
                "error",
                "warning",
                "assert",
            ):
                found.append(e)
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in (
                "error",
                "warning",
            ):
                found.append(e)
        return found

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=_WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=_WAIT)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    devtools = DevTools(tmp_path_factory.mktemp("chromium-profile"))
    try:
        devtools.send("Runtime.enable")
        devtools.send("Log.enable")
        devtools.send("Page.enable")
        yield devtools
    finally:
        devtools.close()


def open_page(browser: DevTools, path: Path) -> None:
    browser.events.clear()
    browser.send("Page.navigate", url=path.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")


def check_page(browser: DevTools, results: Any) -> None:
    labels = [str(r["label"]) for r in results.rows]
    assert browser.evaluate("document.title").startswith("fastbreaker simulation")
    text = browser.evaluate("document.body.innerText")
    for label in labels:
        assert label in text
    bands = browser.evaluate(
        "Array.from(document.querySelectorAll('svg text.band-label')).map(e => e.textContent)"
    )
    assert bands == labels
    cells = browser.evaluate(
        "Array.from(document.querySelectorAll('#results tbody tr'))"
        ".map(r => r.cells[0].textContent)"
    )
    assert cells == labels
    assert browser.evaluate("document.querySelectorAll('svg rect.outage').length") == len(
        results.outages
    )
    # Nothing loaded from elsewhere: every resource is the page itself.
    urls = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert urls == []
    assert browser.problems() == []


def test_html_in_chromium_fake_results(browser: DevTools, trace: Trace, tmp_path: Path) -> None:
    path = tmp_path / "fake.html"
    results = fake_results()
    write_plot(path, trace, results, title="fake <results> & more")
    html = path.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    open_page(browser, path)
    check_page(browser, results)
    assert browser.evaluate("document.querySelectorAll('tr.pareto').length") == 1


def test_html_in_chromium_real_results(browser: DevTools, trace: Trace, tmp_path: Path) -> None:
    configs = [f"breaker:failure_threshold={n},wait_duration=5" for n in (3, 5, 8)]
    configs += ["limiter:rate=40,per=1,burst=10", "bulkhead:max_concurrent=2"]
    results = real_results(trace, configs)
    if results is None:
        pytest.skip("fastbreaker.sim.simulate (the native replay binding) has not landed yet")
    path = tmp_path / "real.html"
    path.write_text(render_html(trace, results, title="real"))
    open_page(browser, path)
    check_page(browser, results)
    assert os.path.getsize(path) < 2_000_000
