"""Per-client rate limits for WSGI applications (Flask, Django, any WSGI app).

>>> from fastbreaker.wsgi import RateLimitMiddleware
>>> def app(environ, start_response): ...
>>> app = RateLimitMiddleware(app, rate=100, per=60.0, burst=100)

The options and the responses are those of :class:`fastbreaker.asgi.RateLimitMiddleware`
(see :mod:`fastbreaker.asgi`), with the WSGI environ in place of the ASGI scope: the default
key is ``REMOTE_ADDR`` (or, with ``trust_forwarded``, the entry of ``X-Forwarded-For`` that
many places from the right), a ``key=`` function takes the environ, and the routes are
matched against ``SCRIPT_NAME + PATH_INFO``. The check is one native call, safe from any
number of threads. Tables live in this process, or with ``shared=`` (a
:class:`~fastbreaker.SharedRegion` or a region name) in keyed tables of that region that
every worker process shares, named by :func:`shared_table_name` (``"rl:default"``,
``"rl:%2Flogin"``, ...; see :mod:`fastbreaker.asgi`): with ``gunicorn -w 4``, a client gets
its limit across the four workers, not from each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional

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

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["RateLimitMiddleware", "shared_table_name"]


def client_address(environ: WSGIEnvironment, proxies: int = 0) -> Optional[str]:
    """The client's address: from ``X-Forwarded-For`` behind ``proxies`` trusted proxies
    (see :mod:`fastbreaker.asgi`), else ``REMOTE_ADDR``, else None."""
    if proxies:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        found = forwarded_client([forwarded] if forwarded else [], proxies)
        if found is not None:
            return found
    addr = environ.get("REMOTE_ADDR")
    return str(addr) if addr else None


def request_path(environ: WSGIEnvironment) -> str:
    """``SCRIPT_NAME + PATH_INFO`` as text (WSGI holds them as latin-1 decoded bytes)."""
    raw = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    if raw.isascii():  # the same text in latin-1 and UTF-8: no round trip
        return raw or "/"
    try:
        return raw.encode("latin-1").decode("utf-8", "replace") or "/"
    except UnicodeEncodeError:
        return raw or "/"


class RateLimitMiddleware:
    """Per-client rate limits around a WSGI app (see the module docs)."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        rate: Optional[float],
        per: float = 1.0,
        burst: Optional[int] = None,
        key: Optional[Callable[[WSGIEnvironment], Optional[Key]]] = None,
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
        self._key: Callable[[WSGIEnvironment], Optional[Key]] = (
            key if key is not None else (lambda environ: client_address(environ, proxies))
        )

    def metrics(self) -> dict[str, Any]:
        """As :meth:`fastbreaker.asgi.RateLimitMiddleware.metrics`."""
        return self.limits.metrics()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        policy = self.limits.policy_for(request_path(environ))
        key = None if policy is None else self._key(environ)
        if policy is None or key is None:
            return self.app(environ, start_response)
        granted, headers = self.limits.check(policy, key)
        if not granted:
            start_response(
                "429 Too Many Requests",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(BODY_429))),
                    *headers,
                ],
            )
            return [BODY_429]

        def start_with_headers(
            status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            return start_response(status, [*response_headers, *headers], exc_info)

        return self.app(environ, start_with_headers)
