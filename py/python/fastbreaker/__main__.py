"""``python -m fastbreaker COMMAND``.

- ``demo [--duration SECONDS] [--threads N]``: live demo against a flaky local HTTP service.
- ``demo-adaptive [--seconds S] [--threads N] [--once]``: an adaptive limit following a local
  server's changing capacity (needs ``AdaptiveLimiter``).
- ``grafana-dashboard [--datasource-uid UID] [-o FILE]``: prints the Grafana dashboard JSON
  for the metrics ``fastbreaker.prometheus`` exports.
- ``region [--dir DIR] ls [NAME] | show [--json] NAME | unlink NAME``: lists the shared
  regions, or every primitive of one with its state and counts; removes one.
- ``exporter --region NAME [--dir DIR] [--host HOST] [--port PORT] [--once]``: serves the
  Prometheus metrics of every primitive of a shared region on ``/metrics`` (or prints them
  once).
- ``simulate TRACE|- [--breaker SPEC]... [--grid GRID] [--plot OUT] [--json]``: replays a
  trace (CSV, JSON lines, nginx or Apache log) through breaker, limiter and bulkhead
  configurations; ``trace generate [--duration D] [--rate R] [--outage LEN@START:RATIO]...``:
  writes a synthetic trace as CSV.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns the exit status."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["grafana-dashboard"]:
        # Its own parser, so that `--help` shows its options.
        from .grafana import main_grafana_dashboard

        return main_grafana_dashboard(args_in[1:])
    if args_in[:1] == ["demo-adaptive"]:
        from .demo_adaptive import main as main_demo_adaptive

        return main_demo_adaptive(args_in[1:])
    if args_in[:1] == ["region"]:
        from .region_cli import main as main_region

        return main_region(args_in[1:])
    if args_in[:1] == ["exporter"]:
        from .exporter import main as main_exporter

        return main_exporter(args_in[1:])
    if args_in[:1] == ["simulate"]:
        from .sim_cli import main_simulate

        return main_simulate(args_in[1:])
    if args_in[:1] == ["trace"]:
        from .sim_cli import main_trace

        return main_trace(args_in[1:])
    parser = argparse.ArgumentParser(prog="python -m fastbreaker")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="live demo against a flaky local HTTP service")
    demo.add_argument("--duration", type=float, default=20.0, help="seconds (default 20)")
    demo.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    sub.add_parser(
        "demo-adaptive", help="an adaptive limit following a local server's changing capacity"
    )
    sub.add_parser("grafana-dashboard", help="print the Grafana dashboard JSON")
    sub.add_parser("region", help="list, show or unlink shared regions")
    sub.add_parser(
        "exporter", help="serve a shared region's Prometheus metrics (exporter --region NAME)"
    )
    sub.add_parser("simulate", help="replay a trace through breaker/limiter configurations")
    sub.add_parser("trace", help="generate a synthetic trace (trace generate ...)")
    args = parser.parse_args(args_in)
    from .demo import run

    return run(duration=args.duration, threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
