"""The shared scenarios (tests/scenarios/*.scn, format in tests/scenarios/FORMAT.md), run through
the public ``fastbreaker`` package with a ManualClock: one test per file, checking every step;
a failing step is reported as ``file:line``.

Every file runs through the API's exact integer-nanosecond forms (``wait_duration_ns=``,
``retry_after_ns``, ``reserve_ns`` ...), the exact-ns files included; every file but those
also runs through the float-seconds forms (``wait_duration=``, ``retry_after`` ...), whose
conversion its values survive (see "Exact nanoseconds" in FORMAT.md). AdaptiveLimiter and
AdaptiveThrottle have only the seconds forms: both runs of their files pass seconds."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pytest

from fastbreaker import (
    LIMITS,
    AdaptiveLimiter,
    AdaptiveThrottle,
    Bulkhead,
    BurstExceeded,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    Permit,
    RateLimiter,
    RateLimitExceeded,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "tests" / "scenarios"
FILES = sorted(SCENARIOS.glob("*.scn"))

NS = 1e9


class ScenarioError(AssertionError):
    """A step whose result differs, or a line the runner does not understand."""


def number(text: str) -> int:
    if not re.fullmatch(r"[0-9][0-9_]*", text):
        raise ScenarioError(f"not a number: {text!r}")
    return int(text.replace("_", ""))


def normal(words: list[str]) -> list[str]:
    """Expected words with numbers compared by value (`1_000` is `1000`)."""
    return [str(number(w)) if re.fullmatch(r"[0-9][0-9_]*", w) else w for w in words]


def seconds_to_ns(s: float) -> int:
    return round(s * NS)


@dataclass
class Line:
    number: int
    text: str


@dataclass
class Step:
    line: Line
    relative: bool
    time: int
    action: list[str]
    expected: Optional[list[str]]


def statements(path: Path) -> list[Line]:
    out = []
    for i, raw in enumerate(path.read_text().splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if text:
            out.append(Line(i, text))
    return out


def parse_step(line: Line) -> Step:
    head, sep, tail = line.text.partition("=>")
    expected = tail.split() if sep else None
    tokens = head.split()
    if not tokens or not tokens[0].startswith("@"):
        raise ScenarioError(f"not a step: {line.text!r}")
    at = tokens[0][1:]
    relative = at.startswith("+")
    return Step(line, relative, number(at[1:] if relative else at), tokens[1:], expected)


def unroll(lines: list[Line]) -> list[tuple[Line, Step]]:
    """The steps in execution order, with `repeat k` ... `end` expanded."""
    out: list[tuple[Line, Step]] = []
    i = 0
    while i < len(lines):
        words = lines[i].text.split()
        if words[0] == "repeat":
            if len(words) != 2:
                raise ScenarioError(f"{lines[i].number}: bad repeat: {lines[i].text!r}")
            count = number(words[1])
            body = []
            i += 1
            while i < len(lines) and lines[i].text != "end":
                if lines[i].text.split()[0] == "repeat":
                    raise ScenarioError(f"{lines[i].number}: nested repeat")
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise ScenarioError(f"{lines[-1].number}: repeat without end")
            steps = [parse_step(b) for b in body]
            for _ in range(count):
                out.extend((s.line, s) for s in steps)
        elif words[0] == "end":
            raise ScenarioError(f"{lines[i].number}: end without repeat")
        else:
            step = parse_step(lines[i])
            out.append((lines[i], step))
        i += 1
    return out


def config_pairs(words: list[str], line: Line) -> dict[str, str]:
    out = {}
    for w in words:
        key, eq, value = w.partition("=")
        if not eq:
            raise ScenarioError(f"{line.number}: not key=value: {w!r}")
        out[key] = value
    return out


def ns_arg(value: str) -> float:
    return number(value) / NS


def breaker_kwargs(cfg: dict[str, str], line: Line, exact: bool) -> dict[str, Any]:
    """The Python constructor's arguments for the core's config fields: the durations as the
    ``_ns`` keywords (ints of nanoseconds) if ``exact``, else in float seconds."""
    window = cfg.pop("window", "count")
    if window not in ("count", "time"):
        raise ScenarioError(f"{line.number}: window must be count or time, got {window!r}")
    kwargs: dict[str, Any] = {}

    def opt(value: str, convert: Callable[[str], Any]) -> Any:
        return None if value == "none" else convert(value)

    durations = {
        key: (key, number) if exact else (key.removesuffix("_ns"), ns_arg)
        for key in ("slow_call_duration_ns", "wait_duration_ns", "max_wait_duration_ns")
    }
    simple: dict[str, tuple[str, Callable[[str], Any]]] = {
        **durations,
        "failure_threshold": ("failure_threshold", number),
        "failure_rate_threshold": ("failure_rate_threshold", number),
        "slow_call_rate_threshold": ("slow_call_rate_threshold", number),
        "minimum_calls": ("minimum_calls", number),
        "backoff_factor_milli": ("backoff_factor", lambda v: number(v) / 1000),
        "jitter_permille": ("jitter", lambda v: number(v) / 1000),
        "jitter_seed": ("jitter_seed", number),
        "half_open_max_calls": ("half_open_max_calls", number),
        "success_threshold": ("success_threshold", number),
    }
    buckets = cfg.pop("window_buckets", None)
    bucket_ns = cfg.pop("bucket_duration_ns", None)
    size = cfg.pop("window_size", None)
    for key, value in cfg.items():
        if key not in simple:
            raise ScenarioError(f"{line.number}: unknown breaker key {key!r}")
        name, convert = simple[key]
        kwargs[name] = opt(value, convert)
    if window == "count":
        if size is not None:
            kwargs["window"] = number(size)
    else:
        count = number(buckets) if buckets is not None else LIMITS["DEFAULT_WINDOW_BUCKETS"]
        span = number(bucket_ns) if bucket_ns is not None else LIMITS["DEFAULT_BUCKET_DURATION_NS"]
        if exact:
            kwargs["bucket_duration_ns"] = span
        else:
            # In seconds the API takes the window's span and its bucket count; a bucket
            # count of 0 (refused by the core) keeps the bucket's duration as the span.
            kwargs["window_seconds"] = max(count, 1) * span / NS
        if buckets is not None:
            kwargs["buckets"] = count
    return kwargs


def breaker_changes(
    cfg: dict[str, str], line: Line, exact: bool, buckets_in_force: int
) -> dict[str, Any]:
    """The arguments of ``CircuitBreaker.reconfigure`` for a ``reconfigure`` step's keys: as
    the header's, but only the keys given (a window key is passed as given, so that a change
    of the window is refused; in seconds, a bucket's duration is passed as the span of the
    bucket count given, or in force)."""
    cfg = dict(cfg)
    size = cfg.pop("window_size", None)
    buckets = cfg.pop("window_buckets", None)
    span = cfg.pop("bucket_duration_ns", None)
    if "window" in cfg:
        raise ScenarioError(f"{line.number}: a window's kind is not a reconfigure key")
    kwargs = breaker_kwargs(cfg, line, exact)  # a count window given no size: no window key
    if size is not None:
        kwargs["window"] = number(size)
    if buckets is not None:
        kwargs["buckets"] = number(buckets)
    if span is not None:
        if exact:
            kwargs["bucket_duration_ns"] = number(span)
        else:
            count = number(buckets) if buckets is not None else buckets_in_force
            kwargs["window_seconds"] = max(count, 1) * number(span) / NS
    return kwargs


# The adaptive limiter's keys (core names) as the Python API takes them: limits in calls
# (thousandths / 1000), the decrease as a fraction, durations in float seconds; a latency
# target of 0 (none, in the core) is None. The API has no integer-nanosecond forms for these,
# so both runs pass seconds (the files' values survive the conversion).
ADAPTIVE_KEYS: dict[str, tuple[str, Callable[[int], Any]]] = {
    "initial_limit_milli": ("initial_limit", lambda v: v / 1000),
    "min_limit_milli": ("min_limit", lambda v: v / 1000),
    "max_limit_milli": ("max_limit", lambda v: v / 1000),
    "increase_milli": ("increase", lambda v: v / 1000),
    "decrease_permille": ("decrease", lambda v: v / 1000),
    "rtt_ns": ("rtt", lambda v: v / NS),
    "latency_target_ns": ("latency_target", lambda v: v / NS if v else None),
}
THROTTLE_KEYS: dict[str, tuple[str, Callable[[int], Any]]] = {
    "k_milli": ("k", lambda v: v / 1000),
    "window_ns": ("window", lambda v: v / NS),
    "buckets": ("buckets", lambda v: v),
}


def converted_kwargs(
    cfg: dict[str, str], keys: dict[str, tuple[str, Callable[[int], Any]]], line: Line
) -> dict[str, Any]:
    out = {}
    for key, value in cfg.items():
        if key not in keys:
            raise ScenarioError(f"{line.number}: unknown key {key!r}")
        name, convert = keys[key]
        out[name] = convert(number(value))
    return out


Primitive = Union[CircuitBreaker, RateLimiter, Bulkhead, AdaptiveLimiter, AdaptiveThrottle]


@dataclass
class Runner:
    path: Path
    exact: bool = True  # the integer-nanosecond forms (False: float seconds)
    clock: ManualClock = field(default_factory=ManualClock)
    kind: str = ""
    obj: Any = None
    permits: dict[str, Permit] = field(default_factory=dict)
    transitions: list[tuple[str, str]] = field(default_factory=list)
    now: int = 0
    header: dict[str, str] = field(default_factory=dict)

    def on_state_change(self, name: str, old: str, new: str) -> None:
        self.transitions.append((old, new))

    def fail(self, line: Line, message: str) -> None:
        raise ScenarioError(f"{self.path.name}:{line.number}: {message}\n    {line.text}")

    # ----- the header -----

    def build(self, line: Line) -> Callable[[], Primitive]:
        words = line.text.split()
        kind, cfg = words[0], config_pairs(words[1:], line)
        self.kind = kind
        self.header = dict(cfg)
        if kind == "breaker":
            kwargs = breaker_kwargs(cfg, line, self.exact)
            return lambda: CircuitBreaker("scenario", clock=self.clock, listeners=[self], **kwargs)
        if kind == "bucket":
            known = {"rate", "period_ns", "burst"}
            if set(cfg) - known or "rate" not in cfg:
                self.fail(line, f"bucket takes rate, period_ns and burst, got {sorted(cfg)}")
            burst = number(cfg["burst"]) if "burst" in cfg else None
            rate = number(cfg["rate"])
            if "period_ns" not in cfg:
                return lambda: RateLimiter(rate, burst=burst, clock=self.clock)
            if self.exact:
                per_ns = number(cfg["period_ns"])
                return lambda: RateLimiter(rate, burst=burst, per_ns=per_ns, clock=self.clock)
            per = ns_arg(cfg["period_ns"])
            return lambda: RateLimiter(rate, per, burst, clock=self.clock)
        if kind == "bulkhead":
            if set(cfg) != {"max_concurrent"}:
                self.fail(line, f"bulkhead takes max_concurrent, got {sorted(cfg)}")
            n = number(cfg["max_concurrent"])
            return lambda: Bulkhead(n, clock=self.clock)
        if kind == "adaptive":
            mode = cfg.pop("mode", "concurrency")
            rule = cfg.pop("rule", "aimd")
            if mode not in ("concurrency", "rate") or rule not in ("aimd", "gradient"):
                self.fail(line, f"unknown mode {mode!r} or rule {rule!r}")
            if "initial_limit_milli" not in cfg:
                self.fail(line, "adaptive needs initial_limit_milli")
            akw = converted_kwargs(cfg, ADAPTIVE_KEYS, line)
            initial = akw.pop("initial_limit")
            return lambda: AdaptiveLimiter(initial, mode=mode, rule=rule, clock=self.clock, **akw)
        if kind == "throttle":
            if "seed" not in cfg:
                self.fail(line, "throttle needs seed")
            seed = number(cfg.pop("seed"))
            tkw = converted_kwargs(cfg, THROTTLE_KEYS, line)
            return lambda: AdaptiveThrottle(clock=self.clock, seed=seed, **tkw)
        self.fail(line, f"unknown primitive {kind!r}")
        raise AssertionError  # unreachable

    def run(self) -> None:
        lines = statements(self.path)
        if not lines:
            raise ScenarioError(f"{self.path.name}: empty")
        make = self.build(lines[0])
        rest = lines[1:]
        if rest and rest[0].text.startswith("=>"):
            self.config_error(make, rest)
            return
        self.obj = make()
        for line, step in unroll(rest):
            t = self.now + step.time if step.relative else step.time
            if t < self.now:
                self.fail(line, f"time goes backwards: {t} < {self.now}")
            self.now = t
            self.clock.set_ns(t)
            try:
                self.step(line, step)
            except ScenarioError:
                raise
            except Exception as exc:
                self.fail(line, f"raised {exc!r}")

    def config_error(self, make: Callable[[], Primitive], rest: list[Line]) -> None:
        line = rest[0]
        words = line.text.split()
        if len(rest) != 1 or len(words) != 4 or words[1] != "config_error":
            self.fail(line, "an invalid header is followed by one `=> config_error f v`")
        field_name, value = words[2], number(words[3])
        try:
            make()
        except ValueError as exc:
            self.check_config_error(line, exc, field_name, value)
            return
        self.fail(line, f"construction succeeded; expected config_error {field_name} {value}")

    def check_config_error(self, line: Line, exc: ValueError, field_name: str, value: int) -> None:
        """The error must name the core's field (or its Python parameter) and the value."""
        message = str(exc)
        python_names = {
            "window_size": "window",
            "window_buckets": "buckets",
            "backoff_factor_milli": "backoff_factor",
            "jitter_permille": "jitter",
            **{core: py for core, (py, _) in ADAPTIVE_KEYS.items()},
            **{core: py for core, (py, _) in THROTTLE_KEYS.items()},
        }
        if self.exact:
            python_names["period_ns"] = "per_ns"
        else:
            python_names.update(
                {
                    "wait_duration_ns": "wait_duration",
                    "max_wait_duration_ns": "max_wait_duration",
                    "slow_call_duration_ns": "slow_call_duration",
                    "bucket_duration_ns": "window_seconds",
                    "period_ns": "per",
                }
            )
        named = field_name in message or python_names.get(field_name, "\0") in message
        if not named or not re.search(rf"\b{value}\b", message):
            self.fail(line, f"the error must name {field_name} and {value}: {message}")

    def configuration(self) -> object:
        """What a failed reconfiguration must leave as it was."""
        if self.kind == "breaker":
            return self.obj.options()
        if self.kind == "bucket":
            lim: RateLimiter = self.obj
            return (lim.rate, lim.per_ns, lim.burst, lim.available())
        if self.kind in ("adaptive", "throttle"):
            return self.obj.metrics()
        return (self.obj.max_concurrent, self.obj.in_flight)

    def reconfigure(self, line: Line, args: list[str], expected: Optional[list[str]]) -> list[str]:
        cfg = config_pairs(args, line)
        kwargs: dict[str, Any]
        if self.kind == "breaker":
            in_force = self.header.get("window_buckets")
            count = number(in_force) if in_force else LIMITS["DEFAULT_WINDOW_BUCKETS"]
            kwargs = breaker_changes(cfg, line, self.exact, count)
        elif self.kind == "bucket":
            if set(cfg) - {"rate", "period_ns", "burst"}:
                self.fail(line, f"bucket takes rate, period_ns and burst, got {sorted(cfg)}")
            kwargs = {k: number(v) for k, v in cfg.items() if k != "period_ns"}
            if "period_ns" in cfg and self.exact:
                kwargs["per_ns"] = number(cfg["period_ns"])
            elif "period_ns" in cfg:
                kwargs["per"] = ns_arg(cfg["period_ns"])
        elif self.kind == "adaptive":
            kwargs = converted_kwargs(cfg, ADAPTIVE_KEYS, line)
            if "initial_limit" in kwargs:
                self.fail(line, "initial_limit_milli is the header's alone")
        elif self.kind == "throttle":
            kwargs = converted_kwargs(cfg, THROTTLE_KEYS, line)
        else:
            if set(cfg) - {"max_concurrent"}:
                self.fail(line, f"bulkhead takes max_concurrent, got {sorted(cfg)}")
            kwargs = {k: number(v) for k, v in cfg.items()}
        before = self.configuration()
        try:
            self.obj.reconfigure(**kwargs)
        except ValueError as exc:
            if self.configuration() != before:
                self.fail(
                    line, f"a refused reconfiguration changed {before} to {self.configuration()}"
                )
            if not expected or expected[0] != "config_error" or len(expected) != 3:
                self.fail(line, f"raised {exc!r}")
            assert expected is not None
            self.check_config_error(line, exc, expected[1], number(expected[2]))
            return normal(expected)
        return ["ok"]

    # ----- steps -----

    def step(self, line: Line, step: Step) -> None:
        if not step.action:
            self.fail(line, "no action")
        verb, args = step.action[0], step.action[1:]
        if verb == "expect":
            if step.expected is not None or len(args) != 2:
                self.fail(line, "expect <what> <value>")
            self.expect(line, args[0], args[1])
            return
        if verb == "reconfigure":
            result = self.reconfigure(line, args, step.expected)
            if step.expected is not None and result != normal(step.expected):
                want = " ".join(step.expected)
                self.fail(line, f"expected {want!r}, got {' '.join(result)!r}")
            return
        handler = {
            "breaker": self.breaker_step,
            "bucket": self.bucket_step,
            "bulkhead": self.bulkhead_step,
            "adaptive": self.adaptive_step,
            "throttle": self.throttle_step,
        }[self.kind]
        got = handler(line, verb, args, step.expected)
        if step.expected is not None and got is not None and got != normal(step.expected):
            want = " ".join(step.expected)
            self.fail(line, f"expected {want!r}, got {' '.join(got)!r}")

    def seen_wait(self, line: Line, seconds: float, read_ns: Callable[[], int]) -> int:
        """The wait an error reports in float seconds, in ns. Exact: the errors carry float
        seconds only, so the reading is ``read_ns()``, the primitive's exact wait at the same
        instant, which must be the same value (``ns / 1e9`` is the float the API gives)."""
        if not self.exact:
            return seconds_to_ns(seconds)
        ns = read_ns()
        if seconds != ns / NS:
            self.fail(line, f"the error says {seconds!r} s, the primitive {ns} ns")
        return ns

    def breaker_wait(self, line: Line, seconds: float) -> int:
        b: CircuitBreaker = self.obj
        return self.seen_wait(line, seconds, lambda: b.retry_after_ns)

    def bucket_wait(self, n: int) -> int:
        lim: RateLimiter = self.obj
        return lim.retry_after_ns(n) if self.exact else seconds_to_ns(lim.retry_after(n))

    def changes(self) -> list[str]:
        moves = self.transitions
        self.transitions = []
        return ["none"] if not moves else [",".join(f"{a}->{b}" for a, b in moves)]

    def breaker_step(
        self, line: Line, verb: str, args: list[str], expected: Optional[list[str]]
    ) -> Optional[list[str]]:
        b: CircuitBreaker = self.obj
        self.transitions = []
        if verb == "acquire":
            if args:
                self.fail(line, "acquire takes no argument")
            if expected and expected[0] == "permit":
                if len(expected) not in (2, 3) or (len(expected) == 3 and expected[2] != "probe"):
                    self.fail(line, "permit <id> [probe]")
                self.permits.pop(expected[1], None)  # an unrecorded one is dropped
            try:
                permit = b.acquire()
            except CircuitOpenError as exc:
                if exc.state == "open":
                    return ["rejected", "open", str(self.breaker_wait(line, exc.retry_after))]
                if exc.state == "half_open":
                    return ["rejected", "half_open_full"]
                return ["rejected", exc.state]
            if not expected or expected[0] != "permit":
                return ["permit", "?", permit.kind]
            self.permits[expected[1]] = permit
            got = ["permit", expected[1]]
            if len(expected) == 3:
                got.append("probe" if permit.kind == "probe" else permit.kind)
            return got
        if verb == "record":
            if len(args) not in (2, 3) or args[1] not in ("success", "failure", "ignored"):
                self.fail(line, "record <id> success|failure|ignored [duration=<ns>]")
            if args[0] not in self.permits:
                self.fail(line, f"no permit named {args[0]}")
            duration: Optional[int] = None
            if len(args) == 3:
                key, _, value = args[2].partition("=")
                if key != "duration":
                    self.fail(line, f"unknown record argument {args[2]!r}")
                duration = number(value)
            timing: dict[str, Any] = {}
            if duration is not None and self.exact:
                timing["duration_ns"] = duration
            elif duration is not None:
                timing["duration"] = duration / NS
            try:
                b.record(self.permits[args[0]], args[1], **timing)
            except RuntimeError:
                return ["permit_used"]
            return self.changes()
        if verb == "drop":
            if len(args) != 1 or expected is not None:
                self.fail(line, "drop <id>")
            if args[0] not in self.permits:
                self.fail(line, f"no permit named {args[0]}")
            del self.permits[args[0]]  # never recorded: nothing else refers to it
            return None
        manual = {
            "trip": b.trip,
            "half_open": b.half_open,
            "force_open": b.force_open,
            "disable": b.disable,
            "metrics_only": b.metrics_only,
            "reset": b.reset,
        }
        if verb in manual and not args:
            manual[verb]()
            return self.changes()
        self.fail(line, f"unknown breaker action {verb!r}")
        return None

    def bucket_step(
        self, line: Line, verb: str, args: list[str], expected: Optional[list[str]]
    ) -> Optional[list[str]]:
        lim: RateLimiter = self.obj
        try:
            if verb == "take" and len(args) == 1:
                n = number(args[0])
                if lim.try_acquire(n):
                    return ["ok"]
                return ["limited", str(self.bucket_wait(n))]
            if verb == "retry_after" and len(args) == 1:
                return [str(self.bucket_wait(number(args[0])))]
            if verb == "available" and not args:
                return [str(lim.available())]
            if verb == "reserve" and len(args) in (1, 2):
                n = number(args[0])
                max_wait = None
                if len(args) == 2:
                    key, _, value = args[1].partition("=")
                    if key != "max_wait":
                        self.fail(line, f"unknown reserve argument {args[1]!r}")
                    max_wait = number(value)
                try:
                    if self.exact:
                        return [str(lim.reserve_ns(n, max_wait))]
                    timeout = None if max_wait is None else max_wait / NS
                    return [str(seconds_to_ns(lim.reserve(n, timeout)))]
                except RateLimitExceeded as exc:
                    # A refused reservation takes nothing: the wait it reports is the
                    # limiter's retry_after(n) at the same instant.
                    wait = self.seen_wait(line, exc.retry_after, lambda: lim.retry_after_ns(n))
                    return ["limited", str(wait)]
            if verb == "refund" and len(args) == 1 and expected is None:
                lim.refund(number(args[0]))
                return None
            if verb == "reset" and not args and expected is None:
                lim.reset()
                return None
        except BurstExceeded as exc:
            return ["exceeds", str(exc.requested), str(exc.burst)]
        self.fail(line, f"unknown bucket action {verb!r} {args}")
        return None

    def bulkhead_step(
        self, line: Line, verb: str, args: list[str], expected: Optional[list[str]]
    ) -> Optional[list[str]]:
        bh: Bulkhead = self.obj
        if verb == "enter" and not args:
            return ["ok" if bh.try_acquire() else "full"]
        if verb == "release" and not args:
            before = bh.metrics()
            try:
                bh.release()
            except RuntimeError:
                if bh.metrics() != before:
                    self.fail(line, "a refused release changed the bulkhead")
                return ["not_held"]
            return ["ok"]
        self.fail(line, f"unknown bulkhead action {verb!r}")
        return None

    def adaptive_step(
        self, line: Line, verb: str, args: list[str], expected: Optional[list[str]]
    ) -> Optional[list[str]]:
        lim: AdaptiveLimiter = self.obj
        if verb == "acquire" and not args and expected is not None:
            # Python says True or False; the kind of refusal is read at the same instant: a
            # paused one counts in paused_rejections and its wait is metrics()['paused_for'];
            # else the rate mode's wait is retry_after() (a refusal changes no pacing), and a
            # concurrency refusal is the limit reached (retry_after() reads 0).
            before = lim.metrics()
            if lim.try_acquire():
                return ["admitted"]
            after = lim.metrics()
            if after["paused_rejections"] == before["paused_rejections"] + 1:
                return ["rejected", "paused", str(seconds_to_ns(after["paused_for"]))]
            wait = seconds_to_ns(lim.retry_after())
            if lim.mode == "rate":
                return ["rejected", "rate", str(wait)]
            if wait != 0:
                self.fail(line, f"a concurrency refusal with retry_after {wait} ns")
            return ["rejected", "limit"]
        if verb == "record" and args and expected is None:
            outcome, rest = args[0], args[1:]
            if outcome == "success" and len(rest) == 1:
                lim.record("success", latency=number(rest[0]) / NS)
            elif outcome == "overload" and len(rest) <= 1:
                if rest:
                    lim.record("overload", retry_after=number(rest[0]) / NS)
                else:
                    lim.record("overload")
            elif outcome == "ignore" and not rest:
                lim.record("ignore")
            else:
                self.fail(line, "record success <latency_ns> | overload [<ns>] | ignore")
            return None
        self.fail(line, f"unknown adaptive action {verb!r} {args}")
        return None

    def throttle_step(
        self, line: Line, verb: str, args: list[str], expected: Optional[list[str]]
    ) -> Optional[list[str]]:
        th: AdaptiveThrottle = self.obj
        if verb == "acquire" and not args and expected is not None:
            return ["admitted" if th.try_acquire() else "rejected"]
        if verb == "record" and args in (["accepted"], ["rejected"]) and expected is None:
            th.record(args[0] == "accepted")
            return None
        self.fail(line, f"unknown throttle action {verb!r} {args}")
        return None

    # ----- checks -----

    def expect(self, line: Line, what: str, value: str) -> None:
        got: object
        want: object
        if self.kind == "breaker":
            b: CircuitBreaker = self.obj
            m = b.metrics()
            if what == "state":
                got, want = b.state, value
            elif what == "retry_after":
                want = number(value)
                if self.exact:
                    got = b.retry_after_ns
                    seconds = b.retry_after
                    if seconds != got / NS or m["retry_after"] != seconds:
                        self.fail(
                            line,
                            f"retry_after_ns {got} but retry_after {seconds!r} and "
                            f"metrics()['retry_after'] {m['retry_after']!r}",
                        )
                else:
                    got = seconds_to_ns(b.retry_after)
                    other = seconds_to_ns(m["retry_after"])
                    if other != got:
                        self.fail(line, f"retry_after {got} but metrics()['retry_after'] {other}")
            else:
                keys = {
                    "window_samples": "window_calls",
                    "window_failures": "window_failures",
                    "window_slow": "window_slow",
                }
                counters = {
                    "consecutive_failures",
                    "trips",
                    "rejected",
                    "permitted",
                    "succeeded",
                    "failed",
                    "ignored",
                    "slow",
                    "half_open_in_flight",
                }
                key = keys.get(what, what if what in counters else "")
                if not key:
                    self.fail(line, f"unknown breaker reading {what!r}")
                got, want = m[key], number(value)
        elif self.kind == "bucket" and what == "available":
            got, want = self.obj.available(), number(value)
        elif self.kind == "bulkhead" and what == "in_flight":
            got, want = self.obj.in_flight, number(value)
        elif self.kind == "adaptive":
            lim: AdaptiveLimiter = self.obj
            am = lim.metrics()
            want = number(value)
            if what == "limit":
                got = round(lim.limit * 1000)
                if am["limit"] != lim.limit:
                    self.fail(line, f"limit {lim.limit} but metrics()['limit'] {am['limit']}")
            elif what == "in_flight":
                got = lim.in_flight
                if am["in_flight"] != got:
                    self.fail(line, f"in_flight {got} but metrics() {am['in_flight']}")
            elif what == "paused_for":
                got = seconds_to_ns(am["paused_for"])
            elif what in (
                "admitted",
                "rejected",
                "paused_rejections",
                "overloads",
                "decreases",
                "unmatched_records",
            ):
                got = am[what]
            else:
                self.fail(line, f"unknown adaptive reading {what!r}")
        elif self.kind == "throttle" and what == "reject_probability_ppm":
            th: AdaptiveThrottle = self.obj
            got, want = round(th.reject_probability * 1e6), number(value)
            if th.metrics()["reject_probability"] != th.reject_probability:
                self.fail(line, "metrics()['reject_probability'] disagrees")
        else:
            self.fail(line, f"unknown {self.kind} reading {what!r}")
            return
        if got != want:
            self.fail(line, f"expect {what} {want}, got {got}")


def exact_ns(path: Path) -> bool:
    first = path.read_text().splitlines()[:1]
    return bool(first) and first[0].startswith("# exact-ns")


SECONDS_FILES = [p for p in FILES if not exact_ns(p)]


def test_there_are_scenarios() -> None:
    assert len(FILES) >= 40, f"expected the shared scenarios in {SCENARIOS}"
    assert len(FILES) - len(SECONDS_FILES) >= 6, "expected the exact-ns files"


def run(path: Path, exact: bool) -> None:
    try:
        Runner(path, exact).run()
    except ScenarioError as exc:
        failure = str(exc)
    else:
        return
    pytest.fail(failure, pytrace=False)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_scenario(path: Path) -> None:
    """Every file, through the exact integer-nanosecond forms."""
    run(path, exact=True)


@pytest.mark.parametrize("path", SECONDS_FILES, ids=[p.name for p in SECONDS_FILES])
def test_scenario_in_seconds(path: Path) -> None:
    """Every file whose values survive float seconds, through the seconds forms."""
    run(path, exact=False)


def test_the_runner_reports_the_failing_step(tmp_path: Path) -> None:
    bad = tmp_path / "wrong.scn"
    bad.write_text(
        "# A wrong expectation is reported with its file and line.\n"
        "breaker failure_threshold=1 wait_duration_ns=100\n"
        "@0 acquire => permit p1\n"
        "@0 record p1 failure => none\n"
    )
    with pytest.raises(ScenarioError, match=r"wrong\.scn:4: expected 'none', got 'closed->open'"):
        Runner(bad).run()
    unknown = tmp_path / "unknown.scn"
    unknown.write_text("# An unknown action fails.\nbulkhead max_concurrent=1\n@0 juggle\n")
    with pytest.raises(ScenarioError, match=r"unknown\.scn:3: unknown bulkhead action"):
        Runner(unknown).run()
    adaptive = tmp_path / "adaptive.scn"
    adaptive.write_text(
        "# An adaptive record without its latency fails.\n"
        "adaptive initial_limit_milli=1000\n@0 acquire => admitted\n@0 record success\n"
    )
    with pytest.raises(ScenarioError, match=r"adaptive\.scn:4: record success <latency_ns>"):
        Runner(adaptive).run()
    paused = tmp_path / "paused.scn"
    paused.write_text(
        "# A pause read as a limit fails.\n"
        "adaptive initial_limit_milli=1000\n@0 record overload 5\n@1 acquire => rejected limit\n"
    )
    with pytest.raises(ScenarioError, match=r"expected 'rejected limit', got 'rejected paused 4'"):
        Runner(paused).run()
