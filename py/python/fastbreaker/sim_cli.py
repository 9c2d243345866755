"""``python -m fastbreaker simulate`` and ``python -m fastbreaker trace generate``.

``simulate TRACE|-`` replays a trace (see :mod:`fastbreaker.trace` for the formats) through
breaker, limiter and bulkhead configurations and prints one row per configuration: calls
admitted and rejected, trips, time open, false rejections (rejected while there was no outage),
missed protection (admitted and failed during an outage), and how fast each outage was detected
and recovered from. ``--grid`` tries every combination of breaker parameters and prints the
Pareto front of false rejections against missed protection. ``--plot`` draws the trace's
failure rate with the outages and each configuration's state over time.

``trace generate`` writes a synthetic trace as CSV on standard output.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
from typing import Any, Callable, Optional, Sequence, TextIO

from .trace import FIELD_NAMES, FORMATS, Trace, TraceError, generate_trace, parse_duration

__all__ = [
    "KINDS",
    "TABLE_COLUMNS",
    "TOKEN_COLUMNS",
    "build_configs",
    "expand_grid",
    "format_table",
    "main_simulate",
    "main_trace",
    "parse_fields",
]

#: The kinds of configuration, as spelt in spec strings (``"breaker:window=100"``).
KINDS: tuple[str, ...] = ("breaker", "limiter", "keyed-limiter", "bulkhead")
#: The most configurations one ``--grid`` may make.
MAX_GRID = 100_000
#: Above this many configurations x calls the progress bar is shown (on a terminal).
PROGRESS_WORK = 10_000_000

#: The table's columns: ``(key of a Results row, title)``.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("label", "configuration"),
    ("calls", "calls"),
    ("admitted", "admitted"),
    ("rejected", "rejected"),
    ("trips", "trips"),
    ("time_open", "open s"),
    ("false_rejections", "false rej"),
    ("missed_protection", "missed prot"),
    ("detect_mean", "detect mean s"),
    ("detect_max", "detect max s"),
    ("undetected", "undetected"),
    ("recover_mean", "recover mean s"),
    ("recover_max", "recover max s"),
)
#: The limiters' columns, shown when a limiter granted or refused any token.
TOKEN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tokens_granted", "tokens granted"),
    ("tokens_rejected", "tokens rejected"),
)


# -- configurations ----------------------------------------------------------------------------


def _split_params(text: str) -> list[tuple[str, str]]:
    """``"a=1,b=2"`` as ``[("a", "1"), ("b", "2")]``."""
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"{text!r}: {item!r} is not NAME=VALUE")
        pairs.append((name.strip(), value.strip()))
    return pairs


def _spec(kind: str, text: str) -> str:
    """``kind:params`` from a flag's value; ``text`` may already carry the ``kind:`` prefix."""
    text = text.strip()
    if ":" in text.split("=", 1)[0]:
        given, _, rest = text.partition(":")
        if given.strip() != kind:
            raise ValueError(f"--{kind} {text!r}: the spec is for {given.strip()!r}, not {kind}")
        text = rest.strip()
    if kind == "bulkhead" and text.isdigit():
        text = f"max_concurrent={text}"
    _split_params(text)  # checks the NAME=VALUE syntax; the values are the binding's to check
    return f"{kind}:{text}"


def expand_grid(text: str) -> list[list[tuple[str, str]]]:
    """Every combination of a grid such as ``"failure_threshold=3..10,wait_duration=5,15,30"``.

    A parameter's values follow its ``NAME=``, separated by commas; ``A..B`` stands for every
    integer from A to B inclusive. Returns one list of ``(name, value)`` per combination, the
    last parameter varying fastest.
    """
    params: list[tuple[str, list[str]]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        if eq:
            name = name.strip()
            if not name or any(name == n for n, _ in params):
                raise ValueError(f"--grid {text!r}: {item!r} names no new parameter")
            params.append((name, []))
        elif not params:
            raise ValueError(f"--grid {text!r}: starts with {item!r}, not NAME=VALUES")
        else:
            value = item
        value = value.strip()
        lo, dots, hi = value.partition("..")
        if dots:
            try:
                a, b = int(lo), int(hi)
            except ValueError:
                raise ValueError(
                    f"--grid {text!r}: {value!r} is not a range of integers A..B"
                ) from None
            if a > b:
                raise ValueError(f"--grid {text!r}: the range {value!r} is empty ({a} > {b})")
            if b - a >= MAX_GRID:
                raise ValueError(f"--grid {text!r}: the range {value!r} has over {MAX_GRID} values")
            params[-1][1].extend(str(i) for i in range(a, b + 1))
        elif value:
            params[-1][1].append(value)
        else:
            raise ValueError(f"--grid {text!r}: an empty value for {params[-1][0]!r}")
    if not params:
        raise ValueError(f"--grid {text!r}: no parameters (like failure_threshold=3..10)")
    total = 1
    for name, values in params:
        if not values:
            raise ValueError(f"--grid {text!r}: no values for {name!r}")
        total *= len(values)
        if total > MAX_GRID:
            raise ValueError(f"--grid {text!r}: over {MAX_GRID} combinations; narrow the ranges")
    names = [n for n, _ in params]
    return [list(zip(names, combo)) for combo in itertools.product(*(v for _, v in params))]


def _override(base: str, changes: Sequence[tuple[str, str]]) -> str:
    """``kind:params`` with ``changes`` set (replacing the base's value of the same name)."""
    kind, _, text = base.partition(":")
    pairs = dict(_split_params(text))
    for name, value in changes:
        pairs[name] = value
    return kind + ":" + ",".join(f"{k}={v}" for k, v in pairs.items())


def build_configs(
    breakers: Sequence[str] = (),
    limiters: Sequence[str] = (),
    keyed_limiters: Sequence[str] = (),
    bulkheads: Sequence[str] = (),
    grid: Optional[str] = None,
) -> list[str]:
    """The spec strings to simulate, in order: breakers, limiters, keyed limiters, bulkheads.

    ``grid`` (see :func:`expand_grid`) is applied on top of each breaker (or of a default
    breaker when none is given), making one configuration per combination. With nothing at
    all, the one configuration is a default breaker.
    """
    base = [_spec("breaker", b) for b in breakers]
    configs: list[str] = []
    if grid is not None:
        combos = expand_grid(grid)
        for b in base or ["breaker:"]:
            configs.extend(_override(b, combo) for combo in combos)
        if len(configs) > MAX_GRID:
            raise ValueError(f"--grid: {len(configs)} configurations, over {MAX_GRID}")
    else:
        configs.extend(base)
    configs.extend(_spec("limiter", s) for s in limiters)
    configs.extend(_spec("keyed-limiter", s) for s in keyed_limiters)
    configs.extend(_spec("bulkhead", s) for s in bulkheads)
    if not configs:
        configs.append("breaker:")
    seen: dict[str, int] = {}
    for c in configs:
        seen[c] = seen.get(c, 0) + 1
    dup = [c for c, n in seen.items() if n > 1]
    if dup:
        raise ValueError(f"configuration {dup[0]!r} is given more than once")
    return configs


def parse_fields(text: str) -> dict[str, str]:
    """``"t=ts,outcome=status"`` as the ``fields`` mapping of
    :func:`~fastbreaker.trace.read_trace`."""
    fields: dict[str, str] = {}
    for name, value in _split_params(text):
        if name not in FIELD_NAMES:
            raise ValueError(
                f"--fields {text!r}: unknown field {name!r}; "
                f"the fields are {', '.join(FIELD_NAMES)}"
            )
        if not value:
            raise ValueError(f"--fields {text!r}: no column name for {name!r}")
        fields[name] = value
    return fields


# -- output ------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """An aligned text table, one line per row of :attr:`fastbreaker.sim.Results.rows`
    (the token columns only when a limiter granted or refused any)."""
    columns = list(TABLE_COLUMNS)
    if any(r.get("tokens_granted") or r.get("tokens_rejected") for r in rows):
        columns += TOKEN_COLUMNS
    cells = [[title for _, title in columns]]
    cells += [[_cell(r.get(key)) for key, _ in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        parts = [line[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(line[1:], widths[1:])]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def _iso(t_ns: int) -> str:
    import datetime as dt

    when = dt.datetime.fromtimestamp(t_ns // 1_000_000_000, tz=dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def trace_summary(trace: Trace) -> dict[str, Any]:
    """The trace's size, start (ISO-8601 UTC), span in seconds and failure ratio."""
    n = len(trace)
    failed = sum(trace.failed)
    return {
        "calls": n,
        "start": _iso(trace.start_ns) if n else None,
        "span_s": (trace.t_ns[-1] - trace.t_ns[0]) / 1e9 if n else 0.0,
        "failed": failed,
        "failure_ratio": failed / n if n else 0.0,
        "keys": len(trace.key_names),
    }


class _Progress:
    """A progress bar on a terminal: ``[#####-----] done/total configurations``."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.lock = threading.Lock()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        with self.lock:
            width = 30
            filled = width * done // total if total else width
            self.err.write(
                f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total} configurations"
            )
            self.err.flush()
            self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.err.write("\n")
            self.err.flush()


# -- simulate ----------------------------------------------------------------------------------


def _simulate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastbreaker simulate",
        description="Replay a trace through breaker, limiter and bulkhead configurations.",
    )
    p.add_argument("trace", help="the trace file (CSV, JSON lines, nginx or Apache log), or -")
    p.add_argument("--format", choices=("auto", *FORMATS), default="auto", help="default auto")
    p.add_argument(
        "--fields", default=None, help="field names, like t=ts,outcome=status,duration=rt,key=ip"
    )
    p.add_argument("--skip-bad", action="store_true", help="skip and count unreadable lines")
    p.add_argument(
        "--breaker",
        action="append",
        default=[],
        metavar="SPEC",
        help="a breaker, like failure_rate_threshold=50,window=100,wait_duration=30 (repeatable)",
    )
    p.add_argument(
        "--limiter",
        action="append",
        default=[],
        metavar="SPEC",
        help="a limiter, like rate=100,per=1,burst=20",
    )
    p.add_argument(
        "--keyed-limiter",
        action="append",
        default=[],
        metavar="SPEC",
        help="a limiter per key, like rate=10,per=1,burst=5,capacity=65536",
    )
    p.add_argument(
        "--bulkhead",
        action="append",
        default=[],
        metavar="SPEC",
        help="a bulkhead, like max_concurrent=10",
    )
    p.add_argument(
        "--grid",
        default=None,
        help="every combination on top of each --breaker, like "
        "'failure_threshold=3..10,wait_duration=5,15,30,60'",
    )
    p.add_argument("--plot", default=None, metavar="OUT", help="out.png, out.svg or out.html")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument(
        "--outage-threshold", type=float, default=0.5, help="failure ratio of an outage (0.5)"
    )
    p.add_argument(
        "--outage-bucket", default="1s", help="outage bucket length (seconds or 500ms; 1s)"
    )
    p.add_argument(
        "--outage-min-calls", type=int, default=5, help="calls a bucket needs to count (5)"
    )
    p.add_argument("--threads", type=int, default=None, help="replay threads (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _load_simulate() -> Callable[..., Any]:
    """``fastbreaker.sim.simulate``, imported when first needed (it loads the replay)."""
    import importlib

    simulate: Callable[..., Any] = importlib.import_module(".sim", __package__).simulate
    return simulate


def main_simulate(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Runs ``simulate``; returns the exit status (2 for a bad trace or configuration)."""
    args = _simulate_parser().parse_args(list(argv))
    from .trace import read_trace

    try:
        if not 0.0 <= args.outage_threshold <= 1.0:
            raise ValueError(
                f"--outage-threshold {args.outage_threshold}: not a failure ratio from 0 to 1"
            )
        if args.outage_min_calls < 0:
            raise ValueError(f"--outage-min-calls {args.outage_min_calls}: must be >= 0")
        bucket_ns = parse_duration(args.outage_bucket, what="--outage-bucket")
        if bucket_ns <= 0:
            raise ValueError(f"--outage-bucket {args.outage_bucket!r}: must be > 0")
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads {args.threads}: must be >= 1")
        if args.plot is not None:
            from .sim_plot import check_plot_path

            check_plot_path(args.plot)
        configs = build_configs(
            args.breaker, args.limiter, args.keyed_limiter, args.bulkhead, args.grid
        )
        fields = parse_fields(args.fields) if args.fields else None
        trace, skipped = read_trace(
            args.trace, format=args.format, fields=fields, skip_bad=args.skip_bad
        )
    except (TraceError, ValueError, OSError, RuntimeError) as exc:
        err.write(f"error: {exc}\n")
        return 2
    if skipped:
        err.write(f"skipped {skipped} unreadable line{'s' if skipped != 1 else ''}\n")
    if not len(trace):
        err.write(f"error: the trace {args.trace!r} has no calls\n")
        return 2
    simulate = _load_simulate()
    bar: Optional[_Progress] = None
    if not args.no_progress and err.isatty() and len(configs) * len(trace) > PROGRESS_WORK:
        bar = _Progress(err)
    try:
        results = simulate(
            trace,
            configs,
            outage_bucket=bucket_ns / 1e9,
            outage_min_calls=args.outage_min_calls,
            outage_threshold=args.outage_threshold,
            threads=args.threads,
            progress=bar,
        )
    except (ValueError, TypeError) as exc:
        if bar is not None:
            bar.finish()
        err.write(f"error: {exc}\n")
        return 2
    if bar is not None:
        bar.finish()
    rows: list[dict[str, Any]] = list(results.rows)
    front: list[dict[str, Any]] = list(results.pareto()) if len(rows) > 1 else []
    summary = trace_summary(trace)
    from .sim_plot import relative_seconds

    outages = [(relative_seconds(a, trace), relative_seconds(b, trace)) for a, b in results.outages]
    if args.json:
        json.dump(
            {
                "trace": {**summary, "skipped": skipped},
                "outage_rule": {
                    "bucket_s": bucket_ns / 1e9,
                    "min_calls": args.outage_min_calls,
                    "failure_ratio": args.outage_threshold,
                },
                "outages": [{"start_s": a, "end_s": b} for a, b in outages],
                "rows": rows,
                "pareto": [r["label"] for r in front],
            },
            out,
            indent=2,
            default=str,
        )
        out.write("\n")
    else:
        out.write(
            f"trace: {summary['calls']} calls from {summary['start']} over "
            f"{summary['span_s']:.1f} s, {100 * summary['failure_ratio']:.2f}% failed"
            + (f", {summary['keys']} keys" if summary["keys"] else "")
            + "\n"
        )
        out.write(
            f"outages ({bucket_ns / 1e9:g} s buckets with >= {args.outage_min_calls} calls and "
            f">= {100 * args.outage_threshold:g}% failed): {len(outages)}\n"
        )
        for a, b in outages:
            out.write(f"  +{a:.1f} s to +{b:.1f} s ({b - a:.1f} s)\n")
        out.write("\n" + format_table(rows))
        if front:
            out.write(
                f"\nPareto front (false rejections vs missed protection, both minimised): "
                f"{len(front)} of {len(rows)} configurations\n"
            )
            out.write(format_table(front))
    if args.plot is not None:
        from .sim_plot import write_plot

        try:
            write_plot(args.plot, trace, results, bucket=bucket_ns / 1e9, title=f"{args.trace}")
        except (RuntimeError, OSError, ValueError) as exc:
            err.write(f"error: {exc}\n")
            return 2
        err.write(f"wrote {args.plot}\n")
    return 0


# -- trace generate ----------------------------------------------------------------------------


def _trace_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fastbreaker trace")
    sub = p.add_subparsers(dest="action", required=True)
    g = sub.add_parser("generate", help="write a synthetic trace as CSV on standard output")
    g.add_argument("--duration", default="3600s", help="length (3600s, 60m; default 3600s)")
    g.add_argument("--rate", type=float, default=100.0, help="calls per second (default 100)")
    g.add_argument("--healthy", type=float, default=0.01, help="failure ratio (default 0.01)")
    g.add_argument(
        "--outage",
        action="append",
        default=[],
        metavar="LEN@START:RATIO",
        help="an outage, like 120s@600s:0.9 (repeatable)",
    )
    g.add_argument(
        "--brownout",
        action="append",
        default=[],
        metavar="LEN@START:EXTRA",
        help="slow but succeeding calls, like 60s@1200s:300ms (repeatable)",
    )
    g.add_argument(
        "--flap",
        action="append",
        default=[],
        metavar="LEN@START:PERIOD[:RATIO]",
        help="alternately healthy and failing, like 300s@1800s:10s (repeatable)",
    )
    g.add_argument(
        "--latency",
        default="lognormal:50ms",
        help="lognormal:MEDIAN[:SIGMA], const:D or exp:MEAN (default lognormal:50ms)",
    )
    g.add_argument("--keys", type=int, default=0, help="clients, Zipf-weighted (default none)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument(
        "--start", type=float, default=1_700_000_000, help="Unix seconds of the first instant"
    )
    g.add_argument("-o", "--output", default=None, help="write to this file, not stdout")
    return p


def main_trace(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Runs ``trace generate``; returns the exit status (2 for a bad argument)."""
    args = _trace_parser().parse_args(list(argv))
    try:
        trace = generate_trace(
            args.duration,
            args.rate,
            args.healthy,
            outages=args.outage,
            brownouts=args.brownout,
            flapping=args.flap,
            latency=args.latency,
            keys=args.keys,
            seed=args.seed,
            start=args.start,
        )
    except ValueError as exc:
        err.write(f"error: {exc}\n")
        return 2
    if args.output is None:
        trace.to_csv(out)
    else:
        with open(args.output, "w", encoding="utf-8", newline="") as f:
            trace.to_csv(f)
    return 0
