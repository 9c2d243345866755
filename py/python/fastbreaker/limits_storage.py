"""A ``limits`` storage on fastbreaker's native keyed counters: ``fastbreaker://`` (this
process) and ``fastbreaker+shm://NAME`` (shared memory, every process of the host).

Importing this module registers both schemes with ``limits`` (5.x), so flask-limiter and
slowapi users switch by adding one import and changing ``storage_uri``::

    import fastbreaker.limits_storage  # noqa: F401  (registers the schemes)

    limiter = Limiter(get_remote_address, app=app, storage_uri="fastbreaker+shm://myapp")
    # or, in one process: storage_uri="fastbreaker://"

Options are URI query parameters (or keyword arguments of ``storage_from_string``, e.g.
flask-limiter's ``storage_options``):

- ``capacity``: keys tracked at once (default 16384). Memory is fixed when the table is
  made: ``capacity * (136 + 8 * window_entries)`` bytes.
- ``window_entries``: the moving-window log of each key (default 256): the largest
  moving-window limit. A moving-window limit above it raises ``ValueError`` naming
  ``limit``, its value and the range.
- ``when_full``: ``reject`` (default) or ``admit``: what a new key gets when the slots it
  may live in all hold live keys (live keys are never evicted). ``reject``: ``incr``
  answers ``sys.maxsize`` (so a fixed-window or sliding-window hit is refused; ``get``
  reads 0) and ``acquire_entry`` answers ``False``. ``admit``: ``incr`` answers ``amount``
  and ``acquire_entry`` ``True``, untracked.
- ``fastbreaker+shm://NAME`` only: ``dir`` (the region's directory, default ``/dev/shm``),
  ``table`` (default ``limits``). The state lives in the file
  ``<dir>/fastbreaker.NAME.keyed.<table>`` beside the region file
  ``<dir>/fastbreaker.NAME``; the first process makes it, the others attach (a process
  asking for another capacity, window_entries or when_full gets an error naming it).

Semantics are those of ``limits``' ``MemoryStorage`` (the tests compare them step by
step), with times read from ``time.time()`` as ``limits`` does and kept in integer
nanoseconds; a moving-window entry counts while ``entry + expiry > now``. Keys longer
than 64 bytes (UTF-8) are stored as their SHA-256. ``reset()`` empties every key (for
every process, when shared) and returns how many held live state.

The state lives in native code: fixed-window counters are lock-free while a window is
open; opening a window, the moving-window log and ``clear``/``reset`` take the key's lock,
a lease that a process killed while holding it loses after 500 ms. A lock still taken
after 2 s (a stopped process holding it) raises ``TimeoutError``, which
``wrap_exceptions=True`` wraps in ``limits.errors.StorageError``. A slot left half-claimed
by a process killed while claiming it for a new key is claimed again after that lease.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
import urllib.parse
from typing import Any, Optional, Union

from limits.storage.base import (
    MovingWindowSupport,
    SlidingWindowCounterSupport,
    Storage,
    TimestampedSlidingWindow,
)

from . import _native

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_WINDOW_ENTRIES", "FastbreakerStorage"]

#: Keys tracked at once unless ``capacity`` says otherwise.
DEFAULT_CAPACITY = 16384
#: Moving-window entries per key (the largest moving-window limit) unless
#: ``window_entries`` says otherwise.
DEFAULT_WINDOW_ENTRIES = 256

_MAX_KEY = 64
_DIGEST_PREFIX = b"\x00sha256:"
_NS = 1_000_000_000
_OPTIONS = {"capacity", "window_entries", "when_full", "dir", "table", "region_capacity"}


def _now_ns() -> int:
    """``time.time()`` in integer nanoseconds (exact for times with a short binary
    fraction: the whole seconds and the fraction are converted apart)."""
    t = time.time()
    s = math.floor(t)
    return s * _NS + round((t - s) * _NS)


def _seconds(ns: int) -> float:
    return ns // _NS + (ns % _NS) / _NS


def _key(key: str) -> bytes:
    b = key.encode("utf-8")
    if len(b) <= _MAX_KEY and not b.startswith(_DIGEST_PREFIX):
        return b
    return _DIGEST_PREFIX + hashlib.sha256(b).digest()


def _int_option(name: str, value: Union[str, float, bool, None], default: int) -> int:
    if value is None:
        return default
    try:
        if isinstance(value, bool):
            raise ValueError
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int, got {value!r}") from None
    return n


class FastbreakerStorage(
    Storage, MovingWindowSupport, SlidingWindowCounterSupport, TimestampedSlidingWindow
):
    """The ``limits`` storage of ``fastbreaker://`` and ``fastbreaker+shm://NAME`` (see the
    module docs): fixed window, moving window and sliding window counter, on the native
    ``KeyedCounters`` table."""

    STORAGE_SCHEME = ["fastbreaker", "fastbreaker+shm"]

    def __init__(
        self,
        uri: Optional[str] = None,
        wrap_exceptions: bool = False,
        **options: Union[float, str, bool],
    ) -> None:
        parsed = urllib.parse.urlparse(uri or "fastbreaker://")
        merged: dict[str, Union[float, str, bool, None]] = {
            k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()
        }
        merged.update(options)
        unknown = sorted(set(merged) - _OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown fastbreaker storage option {unknown[0]!r}: "
                f"known are {', '.join(sorted(_OPTIONS))}"
            )
        capacity = _int_option("capacity", merged.get("capacity"), DEFAULT_CAPACITY)
        entries = _int_option(
            "window_entries", merged.get("window_entries"), DEFAULT_WINDOW_ENTRIES
        )
        when_full = str(merged.get("when_full") or "reject")
        shared: Any = None
        if parsed.scheme == "fastbreaker+shm":
            name = parsed.netloc or parsed.path.lstrip("/")
            if not name:
                raise ValueError(
                    f"fastbreaker+shm:// needs a region name: fastbreaker+shm://NAME, got {uri!r}"
                )
            region_capacity = merged.get("region_capacity")
            shared = _native.SharedRegion(
                name,
                capacity=None
                if region_capacity is None
                else _int_option("region_capacity", region_capacity, 0),
                dir=None if merged.get("dir") is None else str(merged["dir"]),
            )
        elif parsed.scheme not in ("fastbreaker", ""):
            raise ValueError(f"uri must be fastbreaker:// or fastbreaker+shm://NAME, got {uri!r}")
        elif parsed.netloc or parsed.path.strip("/"):
            raise ValueError(
                f"fastbreaker:// takes no name (in-process storage), got {uri!r}; "
                "use fastbreaker+shm://NAME to share between processes"
            )
        self.table = _native.KeyedCounters(
            capacity,
            entries,
            when_full,
            shared=shared,
            name=str(merged.get("table") or "limits"),
        )
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> Union[type[Exception], tuple[type[Exception], ...]]:
        """What ``wrap_exceptions=True`` wraps in ``limits.errors.StorageError``."""
        return TimeoutError

    # ----- Storage -----

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Adds ``amount`` to ``key``'s counter; a window of ``expiry`` seconds starts
        when it had expired (or was at 0). The count (``sys.maxsize`` for a new key of a
        full table with ``when_full=reject``)."""
        n = self.table.incr(_key(key), round(expiry * _NS), amount, _now_ns())
        return sys.maxsize if n is None else n

    def decr(self, key: str, amount: int = 1) -> int:
        """Takes ``amount`` from ``key``'s counter, not below 0; the count."""
        return self.table.decr(_key(key), amount, _now_ns())

    def get(self, key: str) -> int:
        """``key``'s count (0: absent or expired)."""
        return self.table.get(_key(key), _now_ns())

    def get_expiry(self, key: str) -> float:
        """When ``key``'s counter expires (``time.time()`` seconds; now if it is not live)."""
        now = _now_ns()
        e = self.table.expiry(_key(key), now)
        return _seconds(now if e is None else e)

    def check(self) -> bool:
        """Whether the storage is usable: its table is in memory (or mapped), so always."""
        return True

    def reset(self) -> Optional[int]:
        """Empties every key (every process's, when shared); how many held live state."""
        return self.table.clear_all(_now_ns())

    def clear(self, key: str) -> None:
        """Empties ``key``'s counter and moving window."""
        self.table.clear(_key(key), _now_ns())

    # ----- MovingWindowSupport -----

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Adds ``amount`` entries to ``key``'s moving window of ``expiry`` seconds if that
        keeps it within ``limit``; whether it did."""
        if amount > limit:
            return False
        return self.table.acquire_entry(_key(key), limit, expiry * _NS, amount, _now_ns())

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """``(start, count)``: the oldest entry's time within the last ``expiry`` seconds
        and the number of entries there (``(now, 0)`` when none)."""
        start, count = self.table.moving_window(_key(key), expiry * _NS, _now_ns())
        return _seconds(start), count

    # ----- SlidingWindowCounterSupport (as limits' MemoryStorage does it) -----

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Counts ``amount`` in ``key``'s current window if the weighted count of the
        previous and current windows stays within ``limit``; whether it did."""
        if amount > limit:
            return False
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous_count, previous_ttl, current_count, _ = self._sliding_window_info(
            previous_key, current_key, expiry, now
        )
        weighted = previous_count * previous_ttl / expiry + current_count
        if math.floor(weighted) + amount > limit:
            return False
        current_count = self.incr(current_key, 2 * expiry, amount=amount)
        weighted = previous_count * previous_ttl / expiry + current_count
        if math.floor(weighted) > limit:
            # Another hit won the race: take this one back (as limits' storages do).
            self.decr(current_key, amount)
            return False
        return True

    def _sliding_window_info(
        self, previous_key: str, current_key: str, expiry: int, now: float
    ) -> tuple[int, float, int, float]:
        previous_count = self.get(previous_key)
        current_count = self.get(current_key)
        if previous_count == 0:
            previous_ttl = 0.0
        else:
            previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous_count, previous_ttl, current_count, current_ttl

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        """(previous count, previous TTL, current count, current TTL) of ``key``."""
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        return self._sliding_window_info(previous_key, current_key, expiry, now)

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        """Empties ``key``'s previous and current windows."""
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        self.clear(previous_key)
        self.clear(current_key)

    def __repr__(self) -> str:
        return f"<FastbreakerStorage {self.table!r}>"
