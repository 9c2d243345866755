"""fastbreaker.trace: the readers on hand-written inputs of every format, bad lines, a fuzz
test of every reader, and the generator's properties (seeded, so deterministic)."""

from __future__ import annotations

import gzip
import io
import json
import math
import statistics
from array import array
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbreaker.trace import (
    DEFAULT_FAILURE_STATUSES,
    FORMATS,
    Trace,
    TraceError,
    generate_trace,
    parse_duration,
    read_trace,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S  # 2023-11-14T22:13:20Z


def columns(trace: Trace) -> tuple[list[int], list[int], list[int], list[Optional[str]]]:
    """The trace as plain lists, keys resolved to names."""
    keys = [trace.key_names[k - 1] if k else None for k in trace.key]
    return list(trace.t_ns), list(trace.duration_ns), list(trace.failed), keys


def read(text: str, **kwargs: object) -> tuple[Trace, int]:
    return read_trace(io.StringIO(text), **kwargs)  # type: ignore[arg-type]


# -- CSV ---------------------------------------------------------------------------------------

CSV = """timestamp,outcome,duration,key
1700000000.5,success,50ms,alice
1700000000.25,503,0.1,bob
2023-11-14T22:13:21.000000001Z,timeout,1s,
1700000002,429,250us,alice
2023-11-14T23:13:23+01:00,404,2,
"""


def test_csv_exact() -> None:
    trace, skipped = read(CSV)
    assert skipped == 0
    assert trace.t_ns == array("Q", [T0 + S // 4, T0 + S // 2, T0 + S + 1, T0 + 2 * S, T0 + 3 * S])
    assert trace.duration_ns == array("Q", [S // 10, S // 20, S, 250_000, 2 * S])
    assert trace.failed == array("B", [1, 0, 1, 1, 0])
    assert trace.key_names == ["alice", "bob"]
    assert trace.key == array("I", [2, 1, 0, 1, 0])
    assert len(trace) == 5
    assert trace.t_ns.typecode == "Q" and trace.failed.typecode == "B"
    assert trace.key.typecode == "I" and trace.duration_ns.typecode == "Q"


def test_csv_without_key_column_and_other_names_and_auto_by_name(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text("time,status,duration\n1700000000,200,0.5\n\n1700000000,ok,1.5s\n")
    trace, _ = read_trace(path)
    assert columns(trace) == ([T0, T0], [S // 2, 3 * S // 2], [0, 0], [None, None])


def test_csv_with_a_byte_order_mark_and_crlf() -> None:
    trace, _ = read("\ufefftimestamp,outcome,duration\r\n1700000000,success,1\r\n")
    assert columns(trace) == ([T0], [S], [0], [None])


def test_csv_fields_mapping_and_failure_statuses() -> None:
    text = "ts,code,rt,client\n1700000000,404,1,a\n1700000001,503,1,b\n"
    fields = {"t": "ts", "outcome": "code", "duration": "rt", "key": "client"}
    trace, _ = read(text, fields=fields)
    assert list(trace.failed) == [0, 1]
    trace, _ = read(text, fields=fields, failure_statuses={404})
    assert list(trace.failed) == [1, 0]
    assert 429 in DEFAULT_FAILURE_STATUSES and 599 in DEFAULT_FAILURE_STATUSES
    assert 404 not in DEFAULT_FAILURE_STATUSES


def test_csv_quoted_key_round_trip() -> None:
    trace = Trace.from_rows([(1700000000, "success", 0.5, 'a,"b"'), (1700000001, 500, 1, None)])
    out = io.StringIO()
    trace.to_csv(out)
    back, _ = read(out.getvalue())
    assert columns(back) == columns(trace)
    assert columns(trace)[3] == ['a,"b"', None]


def test_csv_bad_lines_are_numbered_or_skipped() -> None:
    text = (
        "timestamp,outcome,duration\n"
        "1700000000,success,1\n"
        "1700000001,maybe,1\n"
        "1700000002,success,1\n"
        "yesterday,success,1\n"
        "1700000003,success\n"
        "1700000004,success,-1\n"
    )
    with pytest.raises(TraceError, match=r"^line 3: outcome 'maybe' is not success"):
        read(text)
    trace, skipped = read(text, skip_bad=True)
    assert skipped == 4
    assert list(trace.t_ns) == [T0, T0 + 2 * S]
    with pytest.raises(TraceError, match=r"^line 5: timestamp 'yesterday' is not Unix seconds"):
        read(text.replace("maybe", "success"))
    with pytest.raises(TraceError, match=r"^line 6: 2 columns, the header has 3"):
        read(text.replace("maybe", "success").replace("yesterday", "1"))
    with pytest.raises(TraceError, match=r"^line 7: duration '-1' is not a duration"):
        fixed = text.replace("maybe", "success").replace("yesterday", "1")
        read(fixed.replace("1700000003,success\n", "1700000003,success,1\n"))


def test_csv_header_without_a_needed_column() -> None:
    with pytest.raises(TraceError, match=r"^line 1: the CSV header has no column for duration"):
        read("timestamp,outcome,latency\n1,success,1\n")
    with pytest.raises(TraceError, match=r"line 2: the CSV header has no column for t "):
        read("\ntime_stamp,outcome,duration\n", format="csv")


# -- JSON lines --------------------------------------------------------------------------------


def test_jsonl_with_fields() -> None:
    text = (
        '{"ts": 1700000000.5, "status": 500, "request_time": "12ms", "client": "x"}\n'
        '{"ts": "2023-11-14T22:13:20Z", "status": "success", "request_time": 0.001}\n'
        "\n"
        '{"ts": 1700000001, "status": 200, "request_time": 2, "client": 7}\n'
    )
    fields = {"t": "ts", "outcome": "status", "duration": "request_time", "key": "client"}
    trace, skipped = read(text, fields=fields)
    assert skipped == 0
    assert columns(trace) == (
        [T0, T0 + S // 2, T0 + S],
        [S // 1000, 12 * S // 1000, 2 * S],
        [0, 1, 0],
        [None, "x", "7"],
    )


def test_jsonl_default_names_and_bad_lines() -> None:
    text = (
        '{"timestamp": 1700000000, "outcome": "timeout", "duration": 1}\n'
        "[1, 2]\n"
        '{"timestamp": 1700000000, "outcome": "success"}\n'
        "{not json\n"
        '{"timestamp": NaN, "outcome": "success", "duration": 1}\n'
        '{"timestamp": 1700000000, "outcome": true, "duration": 1}\n'
    )
    with pytest.raises(TraceError, match=r"^line 2: not a JSON object but list"):
        read(text)
    trace, skipped = read(text, skip_bad=True)
    assert skipped == 5
    assert columns(trace) == ([T0], [S], [1], [None])
    with pytest.raises(TraceError, match=r"^line 3: no duration field"):
        read(text.replace("[1, 2]", '{"timestamp": 1, "outcome": 200, "duration": "1ms"}'))


# -- access logs -------------------------------------------------------------------------------

NGINX = (
    '10.0.0.1 - - [14/Nov/2023:22:13:21 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8" 0.250\n'
    '10.0.0.2 - bob [14/Nov/2023:23:13:21 +0100] "GET /x?a=\\"b\\" HTTP/1.1" 502 0 '
    '"http://r/" "Mozilla \\"q\\"" 1.500\n'
    '10.0.0.1 - - [14/Nov/2023:22:13:22 +0000] "GET / HTTP/1.1" 429 12 "-" "curl/8" 1.250\n'
)


def test_nginx_start_is_end_minus_request_time_and_sorted() -> None:
    trace, skipped = read(NGINX)
    assert skipped == 0
    # Starts: 21 - 0.25, 21 - 1.5, 22 - 1.25 (= the first one's; the file order is kept).
    assert columns(trace) == (
        [T0 - S // 2, T0 + 3 * S // 4, T0 + 3 * S // 4],
        [3 * S // 2, S // 4, 5 * S // 4],
        [1, 0, 1],
        ["10.0.0.2", "10.0.0.1", "10.0.0.1"],
    )
    assert read(NGINX, format="nginx")[0] == trace


APACHE = (
    '10.0.0.1 - frank [14/Nov/2023:22:13:21 +0000] "GET / HTTP/1.1" 200 2326 "-" "curl/8" '
    "250000\n"
    '10.0.0.3 - - [14/Nov/2023:22:13:20 +0000] "POST /api HTTP/1.1" 503 - "-" "-" 1500\n'
)


def test_apache_start_is_the_received_time() -> None:
    trace, _ = read(APACHE)
    assert columns(trace) == (
        [T0, T0 + S],
        [1_500_000, S // 4],
        [1, 0],
        ["10.0.0.3", "10.0.0.1"],
    )
    assert read(APACHE, format="apache")[0] == trace


def test_access_log_bad_lines() -> None:
    text = NGINX + "garbage line\n" + NGINX.replace("22:13:22", "22:13:99")
    with pytest.raises(TraceError, match=r"^line 4: not an nginx combined line"):
        read(text)
    with pytest.raises(TraceError, match=r"^line 6: .*second must be in 0..60"):
        read(text.replace("garbage line\n", ""), format="nginx")
    trace, skipped = read(text, format="nginx", skip_bad=True)
    assert (len(trace), skipped) == (5, 2)
    with pytest.raises(TraceError, match=r"^line 1: not an Apache combined line"):
        read(NGINX, format="apache")
    with pytest.raises(TraceError, match=r"^line 1: time '14/Foo/2023"):
        read(APACHE.replace("Nov", "Foo"), format="apache")


def test_sources_path_gzip_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "access.log"
    plain.write_text(NGINX)
    packed = tmp_path / "access.log.gz"
    with gzip.open(packed, "wt") as f:
        f.write(NGINX)
    expected = read(NGINX)[0]
    assert read_trace(plain)[0] == expected
    assert read_trace(str(packed))[0] == expected
    monkeypatch.setattr("sys.stdin", io.StringIO(NGINX))
    assert read_trace("-")[0] == expected


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"format: 'xml' is not auto or one of csv, jsonl"):
        read(CSV, format="xml")
    with pytest.raises(ValueError, match=r"fields: unknown field 'when'; the fields are t,"):
        read(CSV, fields={"when": "ts"})
    with pytest.raises(ValueError, match=r"failure_statuses: 42 is not an HTTP status"):
        read(CSV, failure_statuses={42})
    with pytest.raises(ValueError, match=r"fields: applies to csv and jsonl, not nginx"):
        read(NGINX, format="nginx", fields={"t": "x"})


def test_empty_inputs() -> None:
    for fmt in ("auto", *FORMATS):
        trace, skipped = read("", format=fmt)
        assert (len(trace), skipped) == (0, 0)
    assert len(read("timestamp,outcome,duration\n")[0]) == 0


def test_from_rows_and_parse_duration() -> None:
    trace = Trace.from_rows(
        [(1700000001.5, "failure", "2ms", "k"), ("2023-11-14T22:13:20Z", 200, 0.25, None)]
    )
    assert columns(trace) == ([T0, T0 + 3 * S // 2], [S // 4, 2_000_000], [0, 1], [None, "k"])
    with pytest.raises(TraceError, match=r"^row 2: outcome 'nope'"):
        Trace.from_rows([(1, "success", 1, None), (2, "nope", 1, None)])
    assert parse_duration("1.5") == 3 * S // 2
    assert parse_duration("300ms") == 300_000_000
    assert parse_duration("2m") == 120 * S
    assert parse_duration("1h") == 3600 * S
    assert parse_duration("1e-3s") == 1_000_000
    assert parse_duration(0.000000001) == 1
    with pytest.raises(TraceError, match=r"brownout '5 parsecs' is not a duration"):
        parse_duration("5 parsecs", what="brownout")
    with pytest.raises(TraceError, match=r"out of range"):
        parse_duration("99999999999999999999s")
    with pytest.raises(TraceError, match=r"duration is out of range"):
        parse_duration(1e300)
    with pytest.raises(TraceError, match=r"^row 1: timestamp is out of range"):
        Trace.from_rows([(1e300, "success", 1, None)])
    with pytest.raises(TraceError, match=r"^row 1: outcome '²²²' is not success"):
        Trace.from_rows([(1, "²²²", 1, None)])


# -- fuzz: never anything but TraceError --------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "1700000000",
        "1700000000.5",
        ".5",
        "1e9",
        "-1",
        "ms",
        "s",
        "success",
        "timeout",
        "503",
        "999",
        ",",
        '"',
        "\\",
        "[",
        "]",
        " ",
        "-",
        "{",
        "}",
        ":",
        "14/Nov/2023:22:13:21 +0000",
        "2023-11-14T22:13:20Z",
        '"GET / HTTP/1.1"',
        '"timestamp": ',
        '"outcome": ',
        '"duration": ',
        "null",
        "\x00",
        "\r",
        "é",
        "9" * 40,
        "²²²",
        "1e300",
        "NaN",
    ]
)
_LINES = st.lists(
    st.one_of(st.text(max_size=80), st.lists(_FRAGMENTS, max_size=12).map("".join)),
    max_size=8,
)
_PREFIXES = [
    "",
    "timestamp,outcome,duration,key\n",
    NGINX,
    APACHE,
    '{"timestamp": 1700000000, "outcome": "success", "duration": 1}\n',
]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    prefix=st.sampled_from(_PREFIXES),
    lines=_LINES,
    fmt=st.sampled_from(("auto", *FORMATS)),
    skip_bad=st.booleans(),
)
def test_fuzz_readers_raise_only_trace_error(
    prefix: str, lines: list[str], fmt: str, skip_bad: bool
) -> None:
    text = prefix + "\n".join(lines)
    try:
        trace, skipped = read(text, format=fmt, skip_bad=skip_bad)
    except TraceError as exc:
        assert str(exc)
        return
    assert skipped >= 0
    n = len(trace)
    assert len(trace.duration_ns) == len(trace.failed) == len(trace.key) == n
    assert all(trace.t_ns[i] <= trace.t_ns[i + 1] for i in range(n - 1))
    assert all(k <= len(trace.key_names) for k in trace.key)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["1700000000.5", "503", "timeout", "2023-11-14T22:13:20Z", "5ms"]),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(rows=st.lists(st.tuples(_VALUES, _VALUES, _VALUES, _VALUES), max_size=5))
def test_fuzz_from_rows_raises_only_trace_error(rows: list[tuple[object, ...]]) -> None:
    try:
        Trace.from_rows(rows)  # type: ignore[arg-type]
    except TraceError as exc:
        assert str(exc).startswith("row ")


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    objects=st.lists(
        st.dictionaries(
            st.sampled_from(["timestamp", "outcome", "duration", "key", "other"]),
            st.recursive(
                _VALUES.filter(lambda v: not isinstance(v, float) or math.isfinite(v)),
                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner),
                max_leaves=5,
            ),
        ),
        max_size=5,
    ),
    skip_bad=st.booleans(),
)
def test_fuzz_json_objects_raise_only_trace_error(
    objects: list[dict[str, object]], skip_bad: bool
) -> None:
    text = "\n".join(json.dumps(o) for o in objects)
    try:
        read(text, format="jsonl", skip_bad=skip_bad)
    except TraceError as exc:
        assert str(exc).startswith("line ")


# -- the generator -----------------------------------------------------------------------------


def test_generator_is_seeded() -> None:
    a = generate_trace("100s", 50, 0.1, outages="10s@50s:0.9", keys=5, seed=7)
    b = generate_trace("100s", 50, 0.1, outages="10s@50s:0.9", keys=5, seed=7)
    c = generate_trace("100s", 50, 0.1, outages="10s@50s:0.9", keys=5, seed=8)
    assert a == b
    assert a != c
    assert all(T0 <= t < T0 + 100 * S for t in a.t_ns)
    assert all(a.t_ns[i] <= a.t_ns[i + 1] for i in range(len(a) - 1))


def _within(x: float, mean: float, sd: float, k: float = 5.0) -> bool:
    return abs(x - mean) <= k * sd


def test_generator_rate_and_healthy_ratio() -> None:
    trace = generate_trace("1000s", 100, 0.02, latency="const:20ms", seed=1)
    n = len(trace)
    assert _within(n, 100_000, math.sqrt(100_000))
    failed = sum(trace.failed)
    assert _within(failed / n, 0.02, math.sqrt(0.02 * 0.98 / n))
    assert set(trace.duration_ns) == {20_000_000}
    assert trace.key_names == [] and set(trace.key) == {0}


def test_generator_outage_brownout_and_flapping_windows() -> None:
    trace = generate_trace(
        "600s",
        200,
        0.0,
        outages=["60s@100s:0.9"],
        brownouts="50s@300s:300ms",
        flapping="100s@400s:10s",
        latency="const:20ms",
        seed=3,
    )
    inside = [f for t, f in zip(trace.t_ns, trace.failed) if T0 + 100 * S <= t < T0 + 160 * S]
    assert _within(sum(inside) / len(inside), 0.9, math.sqrt(0.9 * 0.1 / len(inside)))
    for t, d, f in zip(trace.t_ns, trace.duration_ns, trace.failed):
        rel = (t - T0) / S
        slow = 300 <= rel < 350
        assert d == (320_000_000 if slow else 20_000_000)
        if 400 <= rel < 500:
            failing = int((rel - 400) // 10) % 2 == 1
            assert f == (1 if failing else 0), rel
        elif not 100 <= rel < 160:
            assert f == 0, rel


def test_generator_latency_distributions_and_keys() -> None:
    exp = generate_trace("200s", 100, 0.0, latency="exp:30ms", seed=4)
    mean = statistics.fmean(exp.duration_ns) / 1e6
    assert _within(mean, 30.0, 30.0 / math.sqrt(len(exp)))
    logn = generate_trace("200s", 100, 0.0, latency="lognormal:50ms", seed=5, keys=10)
    median = statistics.median(logn.duration_ns) / 1e6
    assert 48.0 < median < 52.0
    assert logn.key_names == [f"client-{i}" for i in range(10)]
    counts = [list(logn.key).count(k) for k in range(1, 11)]
    assert min(logn.key) >= 1 and max(logn.key) <= 10
    assert counts[0] > counts[4] > counts[9] > 0  # Zipf weights 1, 1/5, 1/10


def test_generator_round_trips_through_csv() -> None:
    trace = generate_trace("30s", 100, 0.1, outages="5s@10s:1", keys=3, seed=9)
    out = io.StringIO()
    trace.to_csv(out)
    back, skipped = read(out.getvalue())
    assert skipped == 0
    assert columns(back) == columns(trace)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, r"rate: 0 is not a number of calls per second"),
        ({"healthy": 1.5}, r"healthy: 1.5 is not a failure ratio from 0 to 1"),
        ({"outages": "120s@600s"}, r"outage: '120s@600s' is not LENGTH@START:VALUE"),
        ({"outages": "1s@2s:2"}, r"outage: failure ratio '2' is not a number from 0 to 1"),
        ({"brownouts": "1s@2s:fast"}, r"brownout latency 'fast' is not a duration"),
        ({"flapping": "10s@0s:0s"}, r"flapping: the period of '10s@0s:0s' must be > 0"),
        ({"latency": "normal:5ms"}, r"latency: 'normal:5ms' is not lognormal:MEDIAN"),
        ({"keys": -1}, r"keys: -1 is not a number of clients"),
        ({"duration": "forever"}, r"duration 'forever' is not a duration"),
    ],
)
def test_generator_argument_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"duration": "10s", "rate": 10.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_trace(**args)  # type: ignore[arg-type]
