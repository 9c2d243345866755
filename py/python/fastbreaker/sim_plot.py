"""Plots of a simulation: the trace's failure rate over time with its outages shaded, and under
it one band per configuration coloured by its state over time.

:func:`write_plot` writes ``.svg`` and ``.html`` (a self-contained page: the SVG and the
results table, no external resources) with the standard library alone, and ``.png`` with
matplotlib (``pip install fastbreaker[plot]``).
"""

from __future__ import annotations

import html
import math
import os
from typing import Any, Mapping, Optional, Protocol, Sequence, Union

from .trace import Trace

__all__ = [
    "PLOT_SUFFIXES",
    "STATE_COLOURS",
    "check_plot_path",
    "failure_series",
    "relative_seconds",
    "render_html",
    "render_svg",
    "state_runs",
    "write_plot",
]

#: The file name endings :func:`write_plot` writes.
PLOT_SUFFIXES: tuple[str, ...] = (".png", ".svg", ".html", ".htm")
#: The colour of each state in the bands (``"none"``: a subject without states).
STATE_COLOURS: dict[str, str] = {
    "closed": "#43a047",
    "open": "#e53935",
    "half_open": "#fb8c00",
    "forced_open": "#8e24aa",
    "disabled": "#9e9e9e",
    "metrics_only": "#64b5f6",
    "none": "#cfd8dc",
}
_PRIORITY = {
    "none": 0,
    "closed": 1,
    "metrics_only": 2,
    "disabled": 2,
    "half_open": 3,
    "open": 4,
    "forced_open": 4,
}
_MAX_POINTS = 1500
_WIDTH = 1000
_LEFT = 60
_RIGHT = 20
_PLOT_W = _WIDTH - _LEFT - _RIGHT
_NS = 1_000_000_000


class ResultsLike(Protocol):
    """What the plots read of :class:`fastbreaker.sim.Results`."""

    @property
    def rows(self) -> Sequence[Mapping[str, Any]]: ...

    @property
    def outages(self) -> Sequence[tuple[float, float]]: ...

    @property
    def transitions(self) -> Mapping[str, Sequence[tuple[float, str, str]]]: ...

    def pareto(self) -> Sequence[Mapping[str, Any]]: ...


def check_plot_path(path: Union[str, os.PathLike[str]]) -> str:
    """The plot's kind (``"png"``, ``"svg"`` or ``"html"``) from ``path``'s ending.

    Raises ValueError for another ending, RuntimeError for ``.png`` without matplotlib.
    """
    name = os.fspath(path)
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in PLOT_SUFFIXES:
        raise ValueError(
            f"--plot {name!r}: the file must end in {', '.join(PLOT_SUFFIXES)} "
            f"(got {suffix or 'no ending'!r})"
        )
    if suffix == ".png":
        _matplotlib()
    return "html" if suffix == ".htm" else suffix[1:]


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(
            "a .png plot needs matplotlib: pip install fastbreaker[plot] "
            "(or write .svg or .html, which need nothing more)"
        ) from None
    return matplotlib


def relative_seconds(t: float, trace: Trace) -> float:
    """A time of :class:`fastbreaker.sim.Results` in seconds since the trace's first call.

    Times may be given since the trace's first call already, or since the Unix epoch (in
    seconds, or in ns when above 10^15); both are recognised by size, as a trace starts after
    1973 in ns since the epoch.
    """
    start_s = trace.start_ns / _NS
    if t > 1e15:
        return t / _NS - start_s
    if start_s > 1e8 and t > start_s / 2:
        return t - start_s
    return float(t)


def failure_series(
    trace: Trace, bucket: float = 1.0, max_points: int = _MAX_POINTS
) -> tuple[float, list[tuple[float, Optional[float]]]]:
    """The trace's failure ratio per bucket: ``(bucket_s, [(start_s, ratio or None)])``.

    ``bucket`` seconds, widened to a whole multiple so that there are at most ``max_points``
    buckets; ``start_s`` since the first call; None for a bucket without calls.
    """
    if not bucket > 0 or not math.isfinite(bucket):
        raise ValueError(f"bucket: {bucket!r} is not a number of seconds > 0")
    if not len(trace):
        return bucket, []
    t0 = trace.t_ns[0]
    span = trace.t_ns[-1] - t0
    bucket_ns = max(1, round(bucket * _NS))
    n = span // bucket_ns + 1
    if n > max_points:
        bucket_ns *= -(-n // max_points)
        n = span // bucket_ns + 1
    calls = [0] * n
    fails = [0] * n
    for t, f in zip(trace.t_ns, trace.failed):
        i = (t - t0) // bucket_ns
        calls[i] += 1
        fails[i] += f
    series = [(i * bucket_ns / _NS, fails[i] / calls[i] if calls[i] else None) for i in range(n)]
    return bucket_ns / _NS, series


def state_runs(
    transitions: Sequence[tuple[float, str, str]], end: float, columns: int, initial: str = "closed"
) -> list[tuple[int, int, str]]:
    """The states of one configuration as runs of pixel columns ``(first, last + 1, state)``.

    ``transitions`` are ``(t, from, to)`` with ``t`` in seconds since the trace's first call;
    ``end`` is the right edge in seconds, spread over ``columns``. A column where states changed
    shows the most severe one (open over half-open over closed), so a short trip stays visible.
    """
    if columns <= 0:
        return []
    cols = ["none"] * columns
    scale = columns / end if end > 0 else 0.0
    state = initial
    at = 0.0
    points = sorted(transitions, key=lambda x: x[0])
    for t, _, new in [*points, (end, state, state)]:
        t = min(max(t, 0.0), end)
        c0 = min(int(at * scale), columns - 1)
        c1 = min(max(c0 + 1, math.ceil(t * scale)), columns)
        p = _PRIORITY.get(state, 1)
        for c in range(c0, c1):
            if _PRIORITY.get(cols[c], 0) < p:
                cols[c] = state
        state, at = new, max(at, t)
    runs: list[tuple[int, int, str]] = []
    for c, s in enumerate(cols):
        if runs and runs[-1][2] == s and runs[-1][1] == c:
            runs[-1] = (runs[-1][0], c + 1, s)
        else:
            runs.append((c, c + 1, s))
    return runs


def _tick_step(span: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200):
        if span / step <= 10:
            return float(step)
    return 86400.0 * max(1, math.ceil(span / 86400 / 10))


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _layout(trace: Trace, results: ResultsLike) -> tuple[float, list[tuple[float, float]]]:
    end = (trace.end_ns - trace.start_ns) / _NS if len(trace) else 1.0
    outages = [(relative_seconds(a, trace), relative_seconds(b, trace)) for a, b in results.outages]
    return max(end, 1e-9), outages


def _transitions_of(results: ResultsLike, label: str, trace: Trace) -> list[tuple[float, str, str]]:
    return [(relative_seconds(t, trace), a, b) for t, a, b in results.transitions.get(label, ())]


def _has_states(row: Mapping[str, Any], label: str, results: ResultsLike) -> bool:
    """Breakers have states (closed until a first transition); limiters and bulkheads not."""
    return str(row.get("kind", "")).startswith("breaker") or bool(results.transitions.get(label))


def render_svg(trace: Trace, results: ResultsLike, bucket: float = 1.0, title: str = "") -> str:
    """The plot as an SVG document (no external resources)."""
    end, outages = _layout(trace, results)
    bucket_s, series = failure_series(trace, bucket)
    x_of = _PLOT_W / end
    top, panel_h = 40, 160
    rows = list(results.rows)
    band_top = top + panel_h + 50
    band_step = 34
    legend_y = band_top + band_step * len(rows) + 20
    height = legend_y + 30
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{_WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{_LEFT}" y="20" font-size="14" font-weight="bold">'
        f"{_e(title or 'simulation')}: failure ratio per {bucket_s:g} s, outages shaded</text>",
    ]
    for a, b in outages:
        x0 = _LEFT + max(0.0, a) * x_of
        w = max(1.0, (min(b, end) - max(0.0, a)) * x_of)
        out.append(
            f'<rect class="outage" x="{x0:.1f}" y="{top}" width="{w:.1f}" height="{panel_h}" '
            f'fill="#ffcdd2"><title>outage +{a:.1f} s to +{b:.1f} s</title></rect>'
        )
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + panel_h * (1 - frac)
        out.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + _PLOT_W}" y2="{y:.1f}" '
            f'stroke="#e0e0e0"/><text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{round(frac * 100)}%</text>"
        )
    segment: list[str] = []
    segments: list[list[str]] = []
    for t, ratio in series:
        if ratio is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        x = _LEFT + (t + bucket_s / 2) * x_of
        segment.append(f"{x:.1f},{top + panel_h * (1 - ratio):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        if len(seg) == 1:
            cx, cy = seg[0].split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="1.5" fill="#1e88e5"/>')
        else:
            out.append(
                f'<polyline class="failure-rate" fill="none" stroke="#1e88e5" '
                f'stroke-width="1.2" points="{" ".join(seg)}"/>'
            )
    axis_y = top + panel_h
    out.append(
        f'<line x1="{_LEFT}" y1="{axis_y}" x2="{_LEFT + _PLOT_W}" y2="{axis_y}" stroke="#616161"/>'
    )
    step = _tick_step(end)
    k = 0
    while k * step <= end + 1e-9:
        x = _LEFT + k * step * x_of
        out.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#616161"/>'
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{k * step:g}</text>'
        )
        k += 1
    out.append(
        f'<text x="{_LEFT + _PLOT_W / 2:.0f}" y="{axis_y + 32}" text-anchor="middle">'
        "seconds since the first call</text>"
    )
    for i, row in enumerate(rows):
        label = str(row.get("label", f"#{i}"))
        y = band_top + i * band_step
        has_states = _has_states(row, label, results)
        out.append(f'<text class="band-label" x="{_LEFT}" y="{y}">{_e(label)}</text>')
        transitions = _transitions_of(results, label, trace)
        runs = state_runs(transitions, end, _PLOT_W, "closed" if has_states else "none")
        for c0, c1, state in runs:
            colour = STATE_COLOURS.get(state, "#bdbdbd")
            out.append(
                f'<rect x="{_LEFT + c0}" y="{y + 4}" width="{c1 - c0}" height="14" '
                f'fill="{colour}"><title>{_e(label)}: {_e(state)}</title></rect>'
            )
    x = _LEFT
    for state in ("closed", "half_open", "open", "forced_open", "none"):
        out.append(
            f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" '
            f'fill="{STATE_COLOURS[state]}"/><text x="{x + 16}" y="{legend_y}">'
            f"{'no states' if state == 'none' else state.replace('_', '-')}</text>"
        )
        x += 110
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _html_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return _e(str(value))


def render_html(trace: Trace, results: ResultsLike, bucket: float = 1.0, title: str = "") -> str:
    """A self-contained HTML page: the SVG plot and the results table, Pareto rows marked."""
    from .sim_cli import TABLE_COLUMNS, TOKEN_COLUMNS

    rows = list(results.rows)
    columns = list(TABLE_COLUMNS)
    if any(r.get("tokens_granted") or r.get("tokens_rejected") for r in rows):
        columns += TOKEN_COLUMNS
    front = {str(r.get("label")) for r in results.pareto()} if len(rows) > 1 else set()
    head = "".join(f"<th>{_e(t)}</th>" for _, t in columns) + "<th>Pareto</th>"
    body = []
    for r in rows:
        on_front = str(r.get("label")) in front
        cells = "".join(
            f'<td class="{"text" if key == "label" else "num"}">{_html_cell(r.get(key))}</td>'
            for key, _ in columns
        )
        body.append(
            f"<tr{' class=pareto' if on_front else ''}>{cells}"
            f"<td>{'yes' if on_front else ''}</td></tr>"
        )
    n = len(trace)
    failed = sum(trace.failed)
    svg = render_svg(trace, results, bucket, title)
    page_title = _e(f"fastbreaker simulation{': ' + title if title else ''}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{page_title}</title>\n"
        '<link rel="icon" href="data:,">\n'
        "<style>\n"
        "body{font-family:sans-serif;margin:1.5em;color:#212121}\n"
        ".scroll{overflow-x:auto}\n"
        "table{border-collapse:collapse;font-size:12px;margin-top:1em}\n"
        "td.text{white-space:nowrap}\n"
        "th,td{border:1px solid #ddd;padding:3px 6px}th{background:#f5f5f5}\n"
        "td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
        "tr.pareto td{background:#e8f5e9}\n"
        "</style>\n</head>\n<body>\n"
        f"<h1>{page_title}</h1>\n"
        f"<p>{n} calls over {(trace.t_ns[-1] - trace.t_ns[0]) / _NS if n else 0:.1f} s, "
        f"{100 * failed / n if n else 0:.2f}% failed, {len(results.outages)} outages. "
        "False rejections: calls rejected while there was no outage; missed protection: "
        "calls admitted that failed during an outage. Highlighted rows are the Pareto front "
        "of the two.</p>\n"
        f"{svg}"
        f'<div class="scroll"><table id="results">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body)
        + "\n</tbody>\n</table></div>\n</body>\n</html>\n"
    )


def _write_png(path: str, trace: Trace, results: ResultsLike, bucket: float, title: str) -> None:
    _matplotlib()
    from matplotlib.figure import Figure

    end, outages = _layout(trace, results)
    bucket_s, series = failure_series(trace, bucket)
    rows = list(results.rows)
    fig = Figure(figsize=(12, 3 + 0.4 * max(1, len(rows))), layout="constrained")
    top, bands = fig.subplots(2, 1, sharex=True, height_ratios=[3, max(1.0, 0.4 * len(rows))])
    for a, b in outages:
        top.axvspan(a, b, color="#ffcdd2", lw=0)
    xs = [t + bucket_s / 2 for t, r in series]
    ys = [math.nan if r is None else r for _, r in series]
    top.plot(xs, ys, color="#1e88e5", lw=1)
    top.set_ylim(0, 1)
    top.set_ylabel("failure ratio")
    top.set_title(f"{title or 'simulation'}: failure ratio per {bucket_s:g} s, outages shaded")
    columns = 2000
    for i, row in enumerate(rows):
        label = str(row.get("label", f"#{i}"))
        has_states = _has_states(row, label, results)
        runs = state_runs(
            _transitions_of(results, label, trace), end, columns, "closed" if has_states else "none"
        )
        bands.broken_barh(
            [(c0 * end / columns, (c1 - c0) * end / columns) for c0, c1, _ in runs],
            (i - 0.4, 0.8),
            facecolors=[STATE_COLOURS.get(s, "#bdbdbd") for _, _, s in runs],
        )
    bands.set_yticks(range(len(rows)), [str(r.get("label", "")) for r in rows], fontsize=8)
    bands.set_ylim(len(rows) - 0.5, -0.5)
    bands.set_xlim(0, end)
    bands.set_xlabel("seconds since the first call")
    fig.savefig(path, dpi=100)


def write_plot(
    path: Union[str, os.PathLike[str]],
    trace: Trace,
    results: ResultsLike,
    *,
    bucket: float = 1.0,
    title: str = "",
) -> None:
    """Writes the plot to ``path``: ``.png`` (matplotlib), ``.svg`` or ``.html``.

    ``bucket`` is the failure-ratio bucket in seconds (widened for long traces).
    """
    kind = check_plot_path(path)
    name = os.fspath(path)
    if kind == "png":
        _write_png(name, trace, results, bucket, title)
        return
    text = (render_svg if kind == "svg" else render_html)(trace, results, bucket, title)
    if kind == "svg":
        text = '<?xml version="1.0" encoding="UTF-8"?>\n' + text
    with open(name, "w", encoding="utf-8") as f:
        f.write(text)
