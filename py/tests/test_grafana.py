"""fastbreaker.grafana: the shipped dashboard and its command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import fastbreaker.grafana as fb_grafana
import fastbreaker.prometheus as fb_prom

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC_RE = re.compile(r"\bfastbreaker_[a-z0-9_]+")


def documented() -> dict[str, str]:
    """Metric name -> type, from the metric reference table of docs/metrics.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### Metric reference") :]
    rows = re.findall(r"^\| `(fastbreaker_[a-z0-9_]+)` \| (\w+) \|", section, re.M)
    assert rows
    return dict(rows)


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def queries(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(board) for t in p.get("targets", [])]


def metric_of(name: str, docs: dict[str, str]) -> str:
    """The documented metric a series name belongs to (histogram suffixes allowed)."""
    if name in docs:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and docs.get(base) == "histogram":
            return base
    raise AssertionError(f"{name} is not a documented metric")


def test_structure() -> None:
    board = fb_grafana.dashboard()
    assert board["title"] and board["uid"] == "fastbreaker"
    assert isinstance(board["schemaVersion"], int)
    assert board["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": board["__inputs"][0]["description"],
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    all_panels = panels(board)
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in all_panels:
        grid = p["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if p["type"] == "row":
            continue
        assert p["title"] and p["targets"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"]
            assert 'name=~"$name"' in t["expr"], t["expr"]
    # no two panels overlap
    cells: set[tuple[int, int]] = set()
    for p in all_panels:
        g = p["gridPos"]
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & area, p["title"]
        cells |= area


def test_name_variable() -> None:
    board = fb_grafana.dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    name = variables["name"]
    assert name["type"] == "query" and name["multi"] and name["includeAll"]
    assert name["datasource"]["uid"] == "${DS_PROMETHEUS}"
    assert "label_values(" in name["definition"] and name["definition"].endswith(", name)")
    assert "fastbreaker_" in name["definition"]


def test_every_query_uses_documented_metrics_and_every_metric_is_used() -> None:
    docs = documented()
    assert set(docs) == {f"fastbreaker_{s.name}" for s in fb_prom.SPECS}
    used = set()
    for expr in queries(fb_grafana.dashboard()):
        names = METRIC_RE.findall(expr)
        assert names, f"no fastbreaker metric in {expr}"
        for name in names:
            used.add(metric_of(name, docs))
        if "_bucket" in expr:
            assert "histogram_quantile(" in expr and "le)" in expr, expr
    assert used == set(docs), f"unused: {set(docs) - used}"


@pytest.mark.parametrize(
    ("panel", "needle"),
    [
        ("Breaker state", "fastbreaker_breaker_state_code"),
        ("Calls by result", "result"),
        ("Rejection rate", 'result="rejected"'),
        ("State transitions", "fastbreaker_breaker_transitions_total"),
        ("Call duration p50 / p99", "histogram_quantile(0.99,"),
        ("Health score", "fastbreaker_breaker_health_score"),
        ("Limiter acquisitions by result", "fastbreaker_limiter_acquisitions_total"),
        ("Limiter wait p50 / p99 / mean", "histogram_quantile(0.5,"),
        ("Bulkhead in flight", "fastbreaker_bulkhead_in_flight"),
    ],
)
def test_expected_panels(panel: str, needle: str) -> None:
    by_title = {p["title"]: p for p in panels(fb_grafana.dashboard())}
    assert any(needle in t["expr"] for t in by_title[panel]["targets"])


def test_datasource_uid_for_provisioning() -> None:
    board = fb_grafana.dashboard("prom-uid")
    assert "__inputs" not in board and "__requires" not in board
    text = json.dumps(board)
    assert "${DS_PROMETHEUS}" not in text and '"uid": "prom-uid"' in text
    assert fb_grafana.dashboard() != board  # a fresh copy each call
    with pytest.raises(ValueError, match=r"datasource_uid must be .* got ''"):
        fb_grafana.dashboard("")


def test_main_prints_and_writes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert fb_grafana.main_grafana_dashboard([]) == 0
    assert json.loads(capsys.readouterr().out) == fb_grafana.dashboard()
    out = tmp_path / "board.json"
    assert fb_grafana.main_grafana_dashboard(["--datasource-uid", "u1", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(out.read_text(encoding="utf-8")) == fb_grafana.dashboard("u1")
    with pytest.raises(SystemExit) as exit_info:
        fb_grafana.main_grafana_dashboard(["--datasource-uid", " "])
    assert exit_info.value.code == 2


def test_shipped_file_is_the_package_resource() -> None:
    path = Path(fb_grafana.__file__).with_name("grafana_dashboard.json")
    assert json.loads(path.read_text(encoding="utf-8")) == fb_grafana.dashboard()


def test_module_command() -> None:
    """`python -m fastbreaker grafana-dashboard` once the lead wires the subcommand."""
    result = subprocess.run(
        [sys.executable, "-m", "fastbreaker", "grafana-dashboard"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == fb_grafana.dashboard()


def test_health_score_description_states_the_formula_in_use() -> None:
    by_title = {p["title"]: p for p in panels(fb_grafana.dashboard())}
    description = by_title["Health score"]["description"]
    assert "consecutive failures / failure_threshold" in description
