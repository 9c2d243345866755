"""Per-client rate limits for ASGI applications (Starlette, FastAPI, any ASGI 3 app).

>>> from fastbreaker.asgi import RateLimitMiddleware
>>> async def app(scope, receive, send): ...
>>> app = RateLimitMiddleware(app, rate=100, per=60.0, burst=100)

Each client (by default the peer address, ``scope["client"][0]``) gets a GCRA bucket of
``burst`` requests refilled at ``rate`` per ``per`` seconds, in a
:class:`~fastbreaker.KeyedRateLimiter` of ``capacity`` keys. A refused request is answered
``429 Too Many Requests`` with ``Retry-After`` (whole seconds, rounded up, at least 1) and
the ``RateLimit-Policy`` / ``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers;
granted responses carry the same two fields. The check is one native call that never blocks
and holds no lock across an ``await``: the event loop is never held up.

Options (the same as :class:`fastbreaker.wsgi.RateLimitMiddleware`):

- ``rate``, ``per``, ``burst``: the default limit of every path, or ``rate=None`` for none
  (only the ``routes`` are limited). ``burst`` defaults to ``rate`` rounded up, as for
  :class:`~fastbreaker.RateLimiter`.
- ``key``: a function of the ASGI scope returning the client's key (a str or bytes; keys
  longer than 64 bytes are digested with SHA-256) or None to let the request through
  unlimited. Default: the peer address; a request without one is not limited.
- ``trust_forwarded``: the number of reverse proxies in front of the app that append to
  ``X-Forwarded-For`` (``True`` is one). The client is then the entry that many places from
  the right, the address the outermost trusted proxy saw; entries further left are written
  by the client and never used. A chain shorter than that falls back to the peer address.
  Off (``False``) by default: never turn it on without such proxies, or clients choose their
  key. Applies to the default key only (not with ``key=``).
- ``routes``: ``{"/login": (5, 60.0, 5), "/health": None, ...}``: a path prefix (whole
  segments: ``/login`` covers ``/login/x``, not ``/logins``) mapped to its own limit
  ``(rate, per[, burst])`` in its own table, or None for no limit; the longest prefix wins,
  other paths get the default limit.
- ``capacity``, ``when_full``: each table's slots, and what a new client gets when its
  slots all hold live clients: ``"reject"`` (429) or ``"admit"`` (let through untracked).
- ``clock``: a :class:`~fastbreaker.ManualClock` for tests (not with ``shared``).
- ``shared``: where the tables live. None (the default): in this process, so with several
  worker processes each has its own and a client gets up to the limit from each worker.
  A :class:`~fastbreaker.SharedRegion` (``SharedRegion("myapp", dir=...)``) or a region
  name (``"myapp"``, under /dev/shm): each policy's table is a keyed table of that region,
  which every worker of the host that opens it shares (keys, buckets and the ``allowed`` /
  ``limited`` counters of :meth:`~RateLimitMiddleware.metrics`), so each client's budget is
  the limit across all workers. The tables are named after the policy, the same in every
  worker (:func:`shared_table_name`): ``"rl:default"`` for the default limit, ``"rl:"`` and
  the percent-encoded prefix for a route (``"/login"``: ``"rl:%2Flogin"``; a name over 64
  bytes is ``"rl:sha256:"`` and 32 hex digits of the prefix's SHA-256), in the files
  ``fastbreaker.<region>.keyed.<table>`` beside the region's. Every worker must give the
  same limits, ``capacity`` and ``when_full`` (else
  :class:`~fastbreaker.RegionConfigMismatch`); two apps with different limits on the same
  paths need regions of their own. ``SharedRegion.unlink(region)`` removes the tables.

Only ``http`` scopes are limited; ``websocket`` and ``lifespan`` pass through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, MutableMapping
from typing import Any, Callable, Optional

from ._keyed import (
    BODY_429,
    Key,
    Limits,
    RouteLimit,
    Shared,
    forwarded_client,
    shared_table_name,
    trusted_proxies,
)
from ._native import ManualClock

__all__ = ["RateLimitMiddleware", "shared_table_name"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_HEADERS_429 = (
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(BODY_429)).encode()),
)


def client_address(scope: Scope, proxies: int = 0) -> Optional[str]:
    """The client's address: from ``X-Forwarded-For`` behind ``proxies`` trusted proxies
    (see the module docs), else the peer's, else None."""
    if proxies:
        values = [
            v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"
        ]
        found = forwarded_client(values, proxies)
        if found is not None:
            return found
    client = scope.get("client")
    return str(client[0]) if client else None


class RateLimitMiddleware:
    """Per-client rate limits around an ASGI app (see the module docs)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: Optional[float],
        per: float = 1.0,
        burst: Optional[int] = None,
        key: Optional[Callable[[Scope], Optional[Key]]] = None,
        routes: Optional[Mapping[str, RouteLimit]] = None,
        trust_forwarded: int = False,
        capacity: int = 65536,
        when_full: str = "reject",
        clock: Optional[ManualClock] = None,
        shared: Shared = None,
    ) -> None:
        proxies = trusted_proxies(trust_forwarded)
        if key is not None and proxies:
            raise ValueError("trust_forwarded applies to the default key only: not with key=")
        self.app = app
        self.limits = Limits(rate, per, burst, routes, capacity, when_full, clock, shared)
        self._key: Callable[[Scope], Optional[Key]] = (
            key if key is not None else (lambda scope: client_address(scope, proxies))
        )

    def metrics(self) -> dict[str, Any]:
        """Requests ``allowed`` and ``limited`` (every policy), and each policy's
        ``KeyedRateLimiter.metrics()`` under ``policies`` ("default" and the route
        prefixes). With ``shared``, the counts are those of every worker."""
        return self.limits.metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.limits.policy_for(scope.get("path") or "/")
        key = None if policy is None else self._key(scope)
        if policy is None or key is None:
            await self.app(scope, receive, send)
            return
        granted, extra = self.limits.check_asgi(policy, key)
        if not granted:
            extra += _HEADERS_429
            await send({"type": "http.response.start", "status": 429, "headers": extra})
            await send({"type": "http.response.body", "body": BODY_429})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
