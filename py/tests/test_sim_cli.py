"""``python -m fastbreaker simulate`` and ``trace generate``: grid expansion, configurations,
tables, the progress bar and the errors, in-process against a stub of ``simulate`` kept here
(never shipped), and end to end in a subprocess against the real replay when it is built."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pytest

from fastbreaker import sim_cli
from fastbreaker.sim_cli import (
    build_configs,
    expand_grid,
    format_table,
    main_simulate,
    parse_fields,
)
from fastbreaker.trace import Trace, generate_trace, read_trace


def real_simulate() -> Optional[Callable[..., Any]]:
    """``fastbreaker.sim.simulate`` once the binding has landed, else None."""
    try:
        sim = importlib.import_module("fastbreaker.sim")
    except ImportError:
        return None
    found: Optional[Callable[..., Any]] = getattr(sim, "simulate", None)
    return found


needs_simulate = pytest.mark.skipif(
    real_simulate() is None,
    reason="fastbreaker.sim.simulate (the native replay binding) has not landed yet",
)


# -- a stub of fastbreaker.sim.simulate, for the tests only ------------------------------------


@dataclass
class StubResults:
    """The shape of fastbreaker.sim.Results, with made-up but deterministic numbers."""

    rows: list[dict[str, Any]]
    outages: list[tuple[float, float]]
    transitions: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)

    def pareto(
        self, x: str = "false_rejections", y: str = "missed_protection"
    ) -> list[dict[str, Any]]:
        return [
            r
            for r in self.rows
            if not any(
                o[x] <= r[x] and o[y] <= r[y] and (o[x] < r[x] or o[y] < r[y]) for o in self.rows
            )
        ]


@dataclass
class StubSimulate:
    """Records its calls; returns StubResults."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self,
        trace: Trace,
        configs: Sequence[str],
        *,
        outage_bucket: float = 1.0,
        outage_min_calls: int = 5,
        outage_threshold: float = 0.5,
        threads: Optional[int] = None,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> StubResults:
        self.calls.append(
            {
                "configs": list(configs),
                "outage_bucket": outage_bucket,
                "outage_min_calls": outage_min_calls,
                "outage_threshold": outage_threshold,
                "threads": threads,
                "progress": progress,
            }
        )
        start = trace.start_ns / 1e9
        rows = []
        transitions: dict[str, list[tuple[float, str, str]]] = {}
        for i, label in enumerate(configs):
            kind = label.split(":")[0]
            rows.append(
                {
                    "label": label,
                    "kind": kind,
                    "params": {},
                    "calls": len(trace),
                    "admitted": len(trace) - i,
                    "rejected": i,
                    "trips": i % 3,
                    "time_open": 1.5 * i,
                    "false_rejections": (7 * i) % 5,
                    "missed_protection": (3 * i) % 4,
                    "detect_mean": 0.25 if i % 2 else None,
                    "detect_max": 0.5 if i % 2 else None,
                    "recover_mean": None,
                    "recover_max": None,
                    "undetected": i % 2,
                    "tokens_granted": 0,
                    "tokens_rejected": 0,
                }
            )
            if kind == "breaker":
                transitions[label] = [
                    (start + 10 + i, "closed", "open"),
                    (start + 20 + i, "open", "half_open"),
                    (start + 20.5 + i, "half_open", "closed"),
                ]
            if progress is not None:
                progress(i + 1, len(configs))
        return StubResults(rows, [(start + 20.0, start + 30.0)], transitions)


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubSimulate:
    s = StubSimulate()
    monkeypatch.setattr(sim_cli, "_load_simulate", lambda: s)
    return s


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    with path.open("w") as f:
        generate_trace("60s", 50, 0.01, outages="10s@20s:0.9", seed=1).to_csv(f)
    return path


def run(argv: list[str], tty: bool = False) -> tuple[int, str, str]:
    class Err(io.StringIO):
        def isatty(self) -> bool:
            return tty

    out, err = io.StringIO(), Err()
    code = main_simulate(argv, out, err)
    return code, out.getvalue(), err.getvalue()


# -- grids and configurations ------------------------------------------------------------------


def test_expand_grid() -> None:
    combos = expand_grid("failure_threshold=3..5,wait_duration=5,15")
    assert combos == [
        [("failure_threshold", a), ("wait_duration", b)]
        for a in ("3", "4", "5")
        for b in ("5", "15")
    ]
    assert len(expand_grid("failure_threshold=3..10,wait_duration=5,15,30,60")) == 32
    assert expand_grid("jitter=0.1, 0.2") == [[("jitter", "0.1")], [("jitter", "0.2")]]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("", r"no parameters"),
        ("3..5", r"starts with '3..5', not NAME=VALUES"),
        ("a=5..3", r"the range '5..3' is empty \(5 > 3\)"),
        ("a=x..3", r"'x..3' is not a range of integers A..B"),
        ("a=1,a=2", r"'a=2' names no new parameter"),
        ("a=", r"an empty value for 'a'"),
        ("a=1..1000,b=1..1000", r"over 100000 combinations"),
    ],
)
def test_expand_grid_errors(grid: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expand_grid(grid)


def test_build_configs() -> None:
    assert build_configs() == ["breaker:"]
    assert build_configs(
        ["failure_threshold=5,wait_duration=30", "breaker:window=100"],
        ["rate=100,per=1,burst=20"],
        ["rate=10,per=1,burst=5,capacity=64"],
        ["10", "max_concurrent=3"],
    ) == [
        "breaker:failure_threshold=5,wait_duration=30",
        "breaker:window=100",
        "limiter:rate=100,per=1,burst=20",
        "keyed-limiter:rate=10,per=1,burst=5,capacity=64",
        "bulkhead:max_concurrent=10",
        "bulkhead:max_concurrent=3",
    ]
    grid = build_configs(["failure_threshold=5,window=50"], grid="failure_threshold=1..2,jitter=0")
    assert grid == [
        "breaker:failure_threshold=1,window=50,jitter=0",
        "breaker:failure_threshold=2,window=50,jitter=0",
    ]
    assert build_configs(grid="wait_duration=5,15") == [
        "breaker:wait_duration=5",
        "breaker:wait_duration=15",
    ]
    with pytest.raises(ValueError, match=r"the spec is for 'limiter', not breaker"):
        build_configs(["limiter:rate=1"])
    with pytest.raises(ValueError, match=r"'window' is not NAME=VALUE"):
        build_configs(["window"])
    with pytest.raises(ValueError, match=r"'breaker:window=5' is given more than once"):
        build_configs(["window=5", "window=5"])


def test_parse_fields() -> None:
    assert parse_fields("t=ts, outcome=status,duration=rt,key=ip") == {
        "t": "ts",
        "outcome": "status",
        "duration": "rt",
        "key": "ip",
    }
    with pytest.raises(ValueError, match=r"unknown field 'time'; the fields are t, outcome"):
        parse_fields("time=ts")


def test_format_table_is_aligned() -> None:
    rows = StubSimulate()(
        Trace.from_rows([(1, "success", 1, None)]),
        ["breaker:failure_threshold=3", "bulkhead:max_concurrent=10"],
    ).rows
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].startswith("configuration") and "false rej" in lines[0]
    assert len({len(line) for line in lines}) == 1
    assert "tokens" not in lines[0]
    assert lines[1].startswith("breaker:failure_threshold=3 ")
    rows[1]["tokens_granted"] = 9
    assert "tokens granted" in format_table(rows)


# -- simulate, in process against the stub -----------------------------------------------------


def test_simulate_table_and_pareto(stub: StubSimulate, trace_file: Path) -> None:
    code, out, err = run(
        [
            str(trace_file),
            "--breaker",
            "failure_threshold=5",
            "--grid",
            "failure_threshold=3..10,wait_duration=5,15,30,60",
            "--limiter",
            "rate=100,per=1,burst=20",
            "--outage-bucket",
            "500ms",
            "--outage-min-calls",
            "3",
            "--outage-threshold",
            "0.6",
        ]
    )
    assert (code, err) == (0, "")
    (call,) = stub.calls
    assert len(call["configs"]) == 33
    assert call["configs"][0] == "breaker:failure_threshold=3,wait_duration=5"
    assert call["configs"][-1] == "limiter:rate=100,per=1,burst=20"
    assert call["outage_bucket"] == 0.5
    assert (call["outage_min_calls"], call["outage_threshold"]) == (3, 0.6)
    assert call["progress"] is None  # not a terminal
    assert out.startswith("trace: ")
    assert "outages (0.5 s buckets with >= 3 calls and >= 60% failed): 1" in out
    assert "  +20.0 s to +30.0 s (10.0 s)" in out
    for label in call["configs"]:
        assert f"\n{label} " in out
    _, _, front = out.partition("Pareto front (false rejections vs missed protection")
    assert front, out
    front_labels = [line.split()[0] for line in front.splitlines()[2:]]
    results = StubSimulate()(read_trace(trace_file)[0], call["configs"])
    assert front_labels == [r["label"] for r in results.pareto()]


def test_simulate_json(stub: StubSimulate, trace_file: Path) -> None:
    code, out, _ = run([str(trace_file), "--bulkhead", "4", "--breaker", "window=10", "--json"])
    assert code == 0
    doc = json.loads(out)
    assert [r["label"] for r in doc["rows"]] == ["breaker:window=10", "bulkhead:max_concurrent=4"]
    assert doc["outages"] == [{"start_s": 20.0, "end_s": 30.0}]
    assert doc["outage_rule"] == {"bucket_s": 1.0, "min_calls": 5, "failure_ratio": 0.5}
    assert doc["trace"]["calls"] == len(read_trace(trace_file)[0])
    assert doc["trace"]["start"] == "2023-11-14T22:13:20Z"
    assert doc["pareto"] == ["breaker:window=10"]


def test_progress_bar_on_a_terminal(
    stub: StubSimulate, trace_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few calls x configurations: no bar even on a terminal.
    code, _, err = run([str(trace_file)], tty=True)
    assert (code, err) == (0, "")
    monkeypatch.setattr(sim_cli, "PROGRESS_WORK", 0)
    code, _, err = run([str(trace_file), "--grid", "failure_threshold=1..4"], tty=True)
    assert code == 0
    assert err.count("\r[") == 4
    assert err.endswith("\r[" + "#" * 30 + "] 4/4 configurations\n")
    code, _, err = run([str(trace_file), "--no-progress"], tty=True)
    assert (code, err) == (0, "")


def test_simulate_errors(stub: StubSimulate, tmp_path: Path, trace_file: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,outcome,duration\n1700000000,success,1\n1700000001,maybe,1\n")
    code, out, err = run([str(bad)])
    assert (code, out) == (2, "")
    assert err.startswith("error: line 3: outcome 'maybe' is not success")
    code, out, err = run([str(bad), "--skip-bad"])
    assert code == 0
    assert err == "skipped 1 unreadable line\n"
    assert stub.calls[-1]["configs"] == ["breaker:"]
    for argv, message in [
        ([str(trace_file), "--grid", "a=3..1"], "the range '3..1' is empty"),
        ([str(trace_file), "--plot", "out.gif"], "--plot 'out.gif': the file must end in .png"),
        ([str(tmp_path / "missing.csv")], "No such file or directory"),
        ([str(trace_file), "--outage-threshold", "2"], "--outage-threshold 2.0: not a failure"),
        ([str(trace_file), "--outage-bucket", "0"], "--outage-bucket '0': must be > 0"),
        ([str(trace_file), "--fields", "when=x"], "unknown field 'when'"),
        ([str(trace_file), "--threads", "0"], "--threads 0: must be >= 1"),
    ]:
        code, out, err = run(argv)
        assert (code, out) == (2, ""), argv
        assert err.startswith("error: ") and message in err, (argv, err)
    empty = tmp_path / "empty.csv"
    empty.write_text("timestamp,outcome,duration\n")
    code, _, err = run([str(empty)])
    assert code == 2 and "has no calls" in err


def test_simulate_reports_the_binding_errors(
    monkeypatch: pytest.MonkeyPatch, trace_file: Path
) -> None:
    def refuses(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("limiter needs a rate")

    monkeypatch.setattr(sim_cli, "_load_simulate", lambda: refuses)
    assert run([str(trace_file), "--limiter", "burst=3"]) == (
        2,
        "",
        "error: limiter needs a rate\n",
    )


# -- the commands in a subprocess --------------------------------------------------------------


def cli(*args: str, stdin: Optional[str] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastbreaker", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_trace_generate_subprocess(tmp_path: Path) -> None:
    args = ["--duration", "2m", "--rate", "40", "--outage", "20s@30s:0.9", "--brownout"]
    args += ["10s@60s:300ms", "--flap", "30s@80s:5s", "--latency", "exp:30ms", "--keys", "4"]
    done = cli("trace", "generate", *args, "--seed", "11")
    assert done.returncode == 0, done.stderr
    expected = generate_trace(
        "2m",
        40,
        0.01,
        outages=["20s@30s:0.9"],
        brownouts=["10s@60s:300ms"],
        flapping=["30s@80s:5s"],
        latency="exp:30ms",
        keys=4,
        seed=11,
    )
    got, skipped = read_trace(io.StringIO(done.stdout))
    assert skipped == 0
    assert (got.t_ns, got.duration_ns, got.failed) == (
        expected.t_ns,
        expected.duration_ns,
        expected.failed,
    )
    out = tmp_path / "t.csv"
    assert cli("trace", "generate", "--duration", "5s", "-o", str(out)).returncode == 0
    assert out.read_text().startswith("timestamp,outcome,duration,key\n")
    bad = cli("trace", "generate", "--outage", "oops")
    assert bad.returncode == 2
    assert bad.stderr == "error: outage: 'oops' is not LENGTH@START:VALUE (like 120s@600s:0.9)\n"
    assert "simulate" in cli("--help").stdout


@needs_simulate
def test_simulate_subprocess_end_to_end(tmp_path: Path) -> None:
    trace_path = tmp_path / "trace.csv"
    gen = cli(
        "trace", "generate", "--duration", "600s", "--rate", "100", "--outage", "60s@200s:0.9",
        "--flap", "120s@400s:10s", "--seed", "5", "-o", str(trace_path),
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    grid = "failure_threshold=3..6,wait_duration=5,30"
    svg = tmp_path / "plot.svg"
    done = cli(
        "simulate", str(trace_path), "--grid", grid, "--bulkhead", "8", "--json",
        "--plot", str(svg),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"wrote {svg}\n"
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    doc = json.loads(done.stdout)
    labels = [r["label"] for r in doc["rows"]]
    assert len(labels) == 9
    assert doc["pareto"] and set(doc["pareto"]) <= set(labels)
    assert len(doc["outages"]) >= 1
    first = doc["outages"][0]
    assert 195 <= first["start_s"] <= 201 and 259 <= first["end_s"] <= 262
    breakers = [r for r in doc["rows"] if r["kind"] == "breaker"]
    assert all(r["calls"] == doc["trace"]["calls"] for r in doc["rows"])
    assert any(r["trips"] > 0 for r in breakers)
    # The text table, from standard input.
    text = cli("simulate", "-", "--grid", grid, stdin=trace_path.read_text())
    assert text.returncode == 0, text.stderr
    assert "Pareto front (false rejections vs missed protection" in text.stdout
    for label in labels[:-1]:
        assert label in text.stdout or label.replace("breaker:", "") in text.stdout
