"""The Grafana dashboard for the metrics of ``fastbreaker.prometheus``.

``python -m fastbreaker grafana-dashboard > fastbreaker.json`` prints it, ready for
Grafana's *Dashboards > New > Import* (it asks for the Prometheus data source:
``${DS_PROMETHEUS}``). For file provisioning, which has no import step, pass
``--datasource-uid UID`` to write the data source's uid in place of the input.
"""

from __future__ import annotations

import argparse
import json
from importlib import resources
from typing import Any, Optional

__all__ = ["DATASOURCE_INPUT", "dashboard", "main_grafana_dashboard"]

DATASOURCE_INPUT = "${DS_PROMETHEUS}"
"""The placeholder every panel names as its data source (the dashboard's ``__inputs``)."""


def _replace(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {k: _replace(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace(v, old, new) for v in node]
    if isinstance(node, str):
        return node.replace(old, new)
    return node


def dashboard(datasource_uid: Optional[str] = None) -> dict[str, Any]:
    """The dashboard as a dict (a fresh copy each call).

    With ``datasource_uid``, every ``${DS_PROMETHEUS}`` becomes that uid and the
    ``__inputs`` / ``__requires`` import sections are dropped (for provisioning).
    """
    text = resources.files(__package__).joinpath("grafana_dashboard.json").read_text("utf-8")
    board: dict[str, Any] = json.loads(text)
    if datasource_uid is None:
        return board
    if not isinstance(datasource_uid, str) or not datasource_uid.strip():
        raise ValueError(f"datasource_uid must be a non-empty string, got {datasource_uid!r}")
    board.pop("__inputs", None)
    board.pop("__requires", None)
    replaced: dict[str, Any] = _replace(board, DATASOURCE_INPUT, datasource_uid)
    return replaced


def main_grafana_dashboard(argv: list[str]) -> int:
    """``python -m fastbreaker grafana-dashboard [--datasource-uid UID] [-o FILE]``.

    Prints the dashboard JSON (or writes it to FILE); returns the exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m fastbreaker grafana-dashboard",
        description="Print the Grafana dashboard for fastbreaker's Prometheus metrics.",
    )
    parser.add_argument(
        "--datasource-uid",
        metavar="UID",
        help="write this Prometheus data source uid instead of the ${DS_PROMETHEUS} input",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    args = parser.parse_args(argv)
    try:
        board = dashboard(args.datasource_uid)
    except ValueError as e:
        parser.error(str(e))
    text = json.dumps(board, indent=2) + "\n"
    if args.output is None:
        print(text, end="")
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0
