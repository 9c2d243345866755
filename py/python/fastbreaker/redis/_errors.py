"""Errors of the Redis fleet mode (``fastbreaker.redis``)."""

from __future__ import annotations

from .._native import FastbreakerError


class StoreError(FastbreakerError):
    """Redis did not answer a limiter or breaker call: the server is down, refused the
    connection, timed out (the client's ``socket_timeout``), or replied with an error.

    ``name`` is the limiter's or breaker's name, ``operation`` what was being done
    (``"try_acquire"``, ``"retry_after"``, ``"reset"``, ...), and the redis-py exception
    is chained as ``__cause__``. A subclass of :class:`fastbreaker.FastbreakerError`.
    """

    def __init__(self, name: str, operation: str, cause: BaseException) -> None:
        super().__init__(
            f"redis store error in {operation} of {name!r}: {type(cause).__name__}: {cause}"
        )
        self.name = name
        self.operation = operation
