"""Per-client rate limits for web services: what the ASGI and WSGI middleware share.

A :class:`Limits` holds one :class:`~fastbreaker.KeyedRateLimiter` per policy (the default
limit, and one per route prefix), picks the policy of a request path, takes a token of the
client's bucket and builds the response headers: ``Retry-After`` on a refusal, and the
``RateLimit-Policy`` and ``RateLimit`` fields of the IETF draft
draft-ietf-httpapi-ratelimit-headers (structured-field form) on every limited path.

With ``shared=`` (a :class:`~fastbreaker.SharedRegion` or a region name), each policy's
table is the region's keyed table :func:`shared_table_name` of the policy, which every
process that opens the region shares.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, Optional, Union
from urllib.parse import quote

from ._native import KeyedRateLimiter, ManualClock, SharedRegion

Key = Union[str, bytes]
#: Where the tables live: None (this process), a region name or a SharedRegion.
Shared = Union[None, str, SharedRegion]
#: A route's limit: ``(rate, per)`` or ``(rate, per, burst)``, or None (not limited).
RouteLimit = Optional[Sequence[Any]]

NS = 1_000_000_000
BODY_429 = b"Too Many Requests\n"


#: Keyed table names: at most this many bytes (the region's rule).
_MAX_TABLE_NAME = 64
TABLE_PREFIX = "rl:"


def shared_table_name(policy: str) -> str:
    """The name of the region's keyed table that holds ``policy``'s buckets with
    ``shared=``: ``"rl:default"`` for the default limit; for a route, ``"rl:"`` and the
    prefix percent-encoded as UTF-8 (every character but ASCII letters, digits, ``-``,
    ``_`` and ``~``: ``"/login"`` is ``"rl:%2Flogin"``, ``"/api/v1.2"`` is
    ``"rl:%2Fapi%2Fv1%2E2"``), which is one-to-one and valid as a table name (no ``/``,
    no ``..``, no control characters); a name that would be over 64 bytes is
    ``"rl:sha256:"`` and the first 32 hex digits of the prefix's SHA-256 instead. The same
    routes give the same names in every worker."""
    if policy == "default":
        return TABLE_PREFIX + "default"
    name = TABLE_PREFIX + quote(policy, safe="").replace(".", "%2E")
    if len(name.encode()) <= _MAX_TABLE_NAME:
        return name
    return TABLE_PREFIX + "sha256:" + hashlib.sha256(policy.encode("utf-8")).hexdigest()[:32]


def sf_string(s: str) -> str:
    """``s`` as a structured-field string (RFC 8941): printable ASCII, with ``"`` and
    ``\\`` escaped; any other character is percent-encoded as UTF-8."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~" and ch != "%":
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


class Policy:
    """One limit: a keyed table and its ``RateLimit-Policy`` item."""

    __slots__ = (
        "header",
        "header_item",
        "header_item_b",
        "limiter",
        "name",
        "remaining_b",
        "remaining_s",
        "sf_name",
    )

    def __init__(
        self,
        name: str,
        rate: float,
        per: float,
        burst: Optional[int],
        capacity: int,
        when_full: str,
        clock: Optional[ManualClock],
        shared: Shared = None,
    ) -> None:
        self.name = name
        if shared is None:
            self.limiter = KeyedRateLimiter(
                rate, per, burst, capacity=capacity, when_full=when_full, clock=clock, name=name
            )
        else:
            self.limiter = KeyedRateLimiter(
                rate,
                per,
                burst,
                capacity=capacity,
                when_full=when_full,
                clock=clock,
                name=shared_table_name(name),
                shared=shared,
            )
        self.sf_name = sf_string(name)
        # GCRA as a quota: `burst` requests per the time the bucket takes to refill from
        # empty (burst * per / rate), in whole seconds rounded up; the same long-run rate.
        lim = self.limiter
        refill = Fraction(lim.burst * lim.per_ns) / Fraction(lim.rate) / NS
        window = max(1, -(-refill.numerator // refill.denominator))
        self.header = f"{self.sf_name};q={self.limiter.burst};w={window}"
        # What every response of the policy repeats, made once: the RateLimit-Policy
        # header, and the start of the RateLimit value (str for WSGI, bytes for ASGI).
        self.header_item = ("RateLimit-Policy", self.header)
        self.header_item_b = (b"ratelimit-policy", self.header.encode("latin-1"))
        self.remaining_s = f"{self.sf_name};r="
        self.remaining_b = self.remaining_s.encode("latin-1")


def _route_policy(
    prefix: object,
    limit: RouteLimit,
    capacity: int,
    when_full: str,
    clock: Optional[ManualClock],
    shared: Shared,
) -> Optional[Policy]:
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ValueError(f"routes: a route is a path prefix starting with '/', got {prefix!r}")
    if limit is None:
        return None
    if (
        isinstance(limit, (str, bytes))
        or not isinstance(limit, Sequence)
        or not 2 <= len(limit) <= 3
    ):
        raise TypeError(
            f"routes[{prefix!r}] must be (rate, per), (rate, per, burst) or None, got {limit!r}"
        )
    rate, per, *rest = limit
    burst = rest[0] if rest else None
    try:
        return Policy(prefix, rate, per, burst, capacity, when_full, clock, shared)
    except (TypeError, ValueError) as e:
        if type(e) not in (TypeError, ValueError):
            raise  # a region's error (RegionConfigMismatch names the table) as it is
        raise type(e)(f"routes[{prefix!r}]: {e}") from e


def trusted_proxies(trust_forwarded: object) -> int:
    """``trust_forwarded`` as a number of trusted proxies (False: 0, True: 1)."""
    if isinstance(trust_forwarded, bool):
        return int(trust_forwarded)
    if not isinstance(trust_forwarded, int) or trust_forwarded < 0:
        raise ValueError(
            "trust_forwarded must be False, True (one proxy) or the number of trusted proxies "
            f"(an int >= 0), got {trust_forwarded!r}"
        )
    return trust_forwarded


def forwarded_client(values: Sequence[str], proxies: int) -> Optional[str]:
    """The client address of an ``X-Forwarded-For`` chain behind ``proxies`` trusted
    proxies: the ``proxies``-th entry from the right (each proxy appends the address it
    received the request from; entries further left are the client's to choose). None when
    the chain has fewer entries."""
    hops = [h.strip() for v in values for h in v.split(",")]
    hops = [h for h in hops if h]
    if proxies <= 0 or len(hops) < proxies:
        return None
    return hops[-proxies]


class Limits:
    """The policies of a middleware: the default one and the routes'."""

    def __init__(
        self,
        rate: Optional[float],
        per: float,
        burst: Optional[int],
        routes: Optional[Mapping[str, RouteLimit]],
        capacity: int,
        when_full: str,
        clock: Optional[ManualClock],
        shared: Shared = None,
    ) -> None:
        if shared is not None and not isinstance(shared, (str, SharedRegion)):
            raise TypeError(
                f"shared must be a SharedRegion, a region name (str) or None, got {shared!r}"
            )
        self.default = (
            None
            if rate is None
            else Policy("default", rate, per, burst, capacity, when_full, clock, shared)
        )
        parsed = [
            (prefix, _route_policy(prefix, limit, capacity, when_full, clock, shared))
            for prefix, limit in (routes or {}).items()
        ]
        # Longest prefix first: the first match is the longest.
        parsed.sort(key=lambda r: len(r[0]), reverse=True)
        self.routes = [
            (prefix, prefix if prefix.endswith("/") else prefix + "/", policy)
            for prefix, policy in parsed
        ]
        self.policies = [p for p in [self.default, *(r[2] for r in self.routes)] if p]

    def policy_for(self, path: str) -> Optional[Policy]:
        """The policy of ``path``: the longest route prefix it is under (whole path
        segments: ``/login`` covers ``/login`` and ``/login/x``, not ``/logins``), else
        the default; None when that is no limit."""
        for prefix, below, policy in self.routes:
            if path == prefix or path.startswith(below):
                return policy
        return self.default

    @staticmethod
    def check(policy: Policy, key: Key) -> tuple[bool, list[tuple[str, str]]]:
        """Takes a token of ``key``'s bucket: whether granted, and the response headers."""
        granted, _, remaining, reset_ns, retry_ns = policy.limiter.check_ns(key)
        reset = -(-reset_ns // NS)  # whole seconds, rounded up
        if granted:
            return True, [
                policy.header_item,
                ("RateLimit", f"{policy.remaining_s}{remaining};t={reset}"),
            ]
        retry = max(1, -(-retry_ns // NS))
        return False, [
            ("Retry-After", str(retry)),
            policy.header_item,
            ("RateLimit", f"{policy.remaining_s}0;t={max(retry, reset)}"),
        ]

    @staticmethod
    def check_asgi(policy: Policy, key: Key) -> tuple[bool, list[tuple[bytes, bytes]]]:
        """:meth:`check` with the headers as ASGI wants them: lower-case names and values
        as bytes (the policy's parts encoded once, not a request)."""
        granted, _, remaining, reset_ns, retry_ns = policy.limiter.check_ns(key)
        reset = -(-reset_ns // NS)
        if granted:
            return True, [
                policy.header_item_b,
                (b"ratelimit", b"%s%d;t=%d" % (policy.remaining_b, remaining, reset)),
            ]
        retry = max(1, -(-retry_ns // NS))
        return False, [
            (b"retry-after", b"%d" % retry),
            policy.header_item_b,
            (b"ratelimit", b"%s0;t=%d" % (policy.remaining_b, max(retry, reset))),
        ]

    def metrics(self) -> dict[str, Any]:
        """``allowed`` and ``limited`` requests over every policy (a new key let through
        or refused because the table was full counts as allowed or limited), and each
        policy's ``KeyedRateLimiter.metrics()`` under ``policies``."""
        per = {p.name: p.limiter.metrics() for p in self.policies}
        return {
            "allowed": sum(m["allowed"] + m["full_admitted"] for m in per.values()),
            "limited": sum(m["limited"] + m["full_rejected"] for m in per.values()),
            "policies": per,
        }
