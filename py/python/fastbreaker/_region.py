"""Host-shared breakers, rate limiters and bulkheads, in a named shared-memory region."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from . import _native
from ._breaker import CircuitBreaker
from ._limiters import Bulkhead, RateLimiter

_Handle = Union[CircuitBreaker, RateLimiter, Bulkhead]

# Handles by (region file, slot name), for the whole process. A dict and setdefault: no
# lock, so nothing here can be left locked in a forked child.
_HANDLES: dict[tuple[str, str], _Handle] = {}


class SharedRegion(_native.SharedRegion):
    """A named shared-memory region: breakers, rate limiters and bulkheads that every
    process of this host opening the same region (same name and ``dir``, same user) shares.

    ``SharedRegion(name, capacity=None, dir=None, create=True)`` opens the region, creating
    it (``capacity`` slots, default 256) if it does not exist; it is the file
    ``<dir>/fastbreaker.<name>`` (``dir`` default ``/dev/shm``), mode 0600. ``breaker``,
    ``rate_limiter`` and ``bulkhead`` return the usual classes, living in the region: the
    first process to ask for a name creates its slot with its configuration, later ones
    attach, after checking that they ask for the same configuration
    (``RegionConfigMismatch`` otherwise, showing both). Within a process, each (region,
    name) gives one object: later calls return the first one (its Python-side options,
    such as listeners, exclude and fallback, are the first call's).
    """

    __slots__ = ()

    def _get(self, kind: type[_Handle], name: str, build: Any) -> Any:
        # Built every time, so that the region checks the requested kind and configuration
        # against the slot's; the first object built for (region, name) is the one kept.
        fresh = build()
        key = (self.path, name)
        found = _HANDLES.get(key)
        if isinstance(found, kind):
            return found
        return _HANDLES.setdefault(key, fresh)

    def breaker(
        self, name: str, *args: Any, reconfigure: bool = False, **options: Any
    ) -> CircuitBreaker:
        """The breaker ``name`` of this region (arguments as ``CircuitBreaker``'s, except
        ``clock``: a shared breaker reads CLOCK_MONOTONIC, which every process shares).
        ``reconfigure=True`` gives an existing slot this configuration, in place and for
        every process (its state kept, as ``CircuitBreaker.reconfigure``); without it, a
        slot with another configuration raises ``RegionConfigMismatch``."""
        return self._get(  # type: ignore[no-any-return]
            CircuitBreaker,
            name,
            lambda: CircuitBreaker(name, *args, shared=self, reconfigure=reconfigure, **options),
        )

    def rate_limiter(
        self,
        name: str,
        rate: float,
        per: float = 1.0,
        burst: Optional[int] = None,
        *,
        reconfigure: bool = False,
    ) -> RateLimiter:
        """The rate limiter ``name`` of this region: ``rate`` tokens every ``per`` seconds
        across every process, at most ``burst`` at once."""
        return self._get(  # type: ignore[no-any-return]
            RateLimiter,
            name,
            lambda: RateLimiter(rate, per, burst, name=name, shared=self, reconfigure=reconfigure),
        )

    def bulkhead(self, name: str, max_concurrent: int, *, reconfigure: bool = False) -> Bulkhead:
        """The bulkhead ``name`` of this region: at most ``max_concurrent`` calls in flight
        across every process. Its permits record their owner process: those of a process
        that dies holding them (SIGKILL, OOM killer) come back at the first rejection 100 ms
        or more after the previous reclaim, or at once with ``reap()``."""
        return self._get(  # type: ignore[no-any-return]
            Bulkhead,
            name,
            lambda: Bulkhead(max_concurrent, name=name, shared=self, reconfigure=reconfigure),
        )

    @staticmethod
    def unlink(name: str, *, dir: Union[str, os.PathLike[str], None] = None) -> bool:
        """Removes region ``name``'s file (under ``dir``, default /dev/shm); whether there
        was one. Processes that have it open keep using it (and this process forgets its
        objects of that region); the next opening creates a new, empty region."""
        path = _native.SharedRegion.path_of(name, dir=dir)
        for key in [k for k in _HANDLES if k[0] == path]:
            _HANDLES.pop(key, None)
        return _native.SharedRegion.unlink(name, dir=dir)
