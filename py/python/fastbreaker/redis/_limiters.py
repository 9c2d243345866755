"""GCRA rate limits held in Redis, shared by every process and host that uses the same server.

One check is one round trip: a Lua script, run by ``EVALSHA`` (and by ``EVAL`` once when the
server answers ``NOSCRIPT``, e.g. after a restart or ``SCRIPT FLUSH``, which caches it again),
reads the server's clock (``TIME``), applies the token bucket's GCRA rule exactly as
``fastbreaker.RateLimiter`` does (interval = the period over the rate, rounded up to a
whole nanosecond by the core; a request of ``n`` tokens costs ``n`` intervals and is granted
when the theoretical arrival time after it is at most ``burst`` intervals ahead of now), and
writes the new theoretical arrival time with a TTL equal to the time until the bucket is full
again, so Redis holds no key of an idle limiter.

Time is the Redis server's only: client clocks (wall or monotonic) never enter a decision,
so clock skew between client hosts has no effect. The optional local pre-check measures a
duration on the client's monotonic clock and nothing else.

Key layout (``prefix`` defaults to ``"fastbreaker:"``; ``prefix`` and ``name`` may not
contain ``{`` or ``}``):

- ``RateLimiter``: one string key ``{<prefix>rl:<name>}``.
- ``KeyedRateLimiter``: one string key per client key, ``{<prefix>krl:<name>:<key>}``
  (``key`` as UTF-8 bytes, or the bytes given).

Each key is its own Redis Cluster hash tag, so a check touches one key in one slot, and a
keyed limiter's keys spread over the cluster's slots instead of loading one shard. The
value is the theoretical arrival time in whole nanoseconds since the Unix epoch on the
server's clock, as decimal digits. A value that is not such a number (or a key of another
type) is read as an empty bucket and overwritten by the next grant.

When Redis fails (down, connection refused, a timeout, an error reply), a check follows
``on_store_error``: ``"raise"`` (the default) raises :class:`fastbreaker.redis.StoreError`
(the redis-py error chained as its cause); ``"allow"`` grants (fail open); ``"deny"``
refuses (fail closed). The limiter never retries, and counts each failed check in
``store_errors``. ``retry_after`` and ``reset`` raise ``StoreError`` on failure whatever
the policy.

Timeouts and the store guard: a Redis call lasts as long as the redis-py client lets it.
The client must have a ``socket_timeout`` (the limiter refuses one without); a call may
then last ``socket_connect_timeout`` + ``socket_timeout`` per attempt, times the attempts
the client's ``retry`` allows, plus that retry's backoff sleeps. redis-py's default retry
(3 retries, exponential backoff with jitter, base 1 s) made one check last 4 to 10 s here
with Redis down; on a request path use e.g.
``redis.Redis(..., socket_timeout=0.1, retry=Retry(NoBackoff(), 0))``. On top of that,
``store_cooldown`` (default 1.0 s; None: off) puts a ``fastbreaker.CircuitBreaker``
(``failure_threshold=1``, ``wait_duration=store_cooldown``, exposed as ``store_guard``) in
front of Redis: after a failed call, Redis is not called for ``store_cooldown`` seconds and
every check answers at once by ``on_store_error`` (``StoreError``'s cause is then the
guard's ``CircuitOpenError``); then one call probes Redis (the others keep answering at
once until it returns) and a success closes the guard. So while Redis is down or frozen,
at most one call per cooldown waits for the timeout, and a check may follow the policy for
up to ``store_cooldown`` after Redis is back.

A check that timed out may still have been applied: a frozen Redis runs the commands it
had received when it wakes up, so its tokens may be taken although the caller saw a
failure (the limit still holds; it errs toward refusing). A Redis restart without
persistence forgets every bucket, so each limit starts full again: up to ``burst`` more
grants than the rate allows, once.

A ``redis.cluster.RedisCluster`` client works too (each script call names its one key, so
the client routes it to that key's slot; tested against a one-node cluster): its own
cluster retries then add to the stall bound.

Sync and async: ``RateLimiter`` and ``KeyedRateLimiter`` take a ``redis.Redis``;
``AsyncRateLimiter`` and ``AsyncKeyedRateLimiter`` take a ``redis.asyncio.Redis`` and have
the same methods as coroutines. ``RateLimiter(...)`` and ``KeyedRateLimiter(...)`` given a
``redis.asyncio.Redis`` build the async twin (so one name serves both kinds of client); the
async classes refuse a sync client with a TypeError naming their twin.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from typing_extensions import Self

from redis.exceptions import NoScriptError, RedisError

from .. import _native
from ._errors import StoreError

__all__ = [
    "AsyncKeyedRateLimiter",
    "AsyncRateLimiter",
    "Decision",
    "KeyedRateLimiter",
    "RateLimiter",
]

#: The longest a bucket may take to refill from empty (``burst`` intervals), in
#: nanoseconds: 2^52 ns, about 52 days. Lua numbers are doubles, exact up to 2^53, and
#: the script adds at most two such spans.
MAX_SPAN_NS = 1 << 52

#: Default number of keys the local pre-check remembers per keyed limiter.
DEFAULT_LOCAL_KEYS = 10_000

_POLICIES = ("raise", "allow", "deny")

GCRA_SCRIPT = """\
-- fastbreaker GCRA (issue 16). KEYS[1]: the bucket. ARGV: interval ns, tolerance ns
-- (interval * burst), n, take (1 to take the tokens, 0 to only look).
-- Returns {granted 0/1, retry_after ns, remaining tokens, reset_after ns}.
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_n = tonumber(t[2]) * 1000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = interval * tonumber(ARGV[3])
local diff = 0
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'string' and #v <= 30 and string.find(v, '^%d+$') then
  local s, ns = 0, 0
  if #v > 9 then
    s = tonumber(string.sub(v, 1, -10))
    ns = tonumber(string.sub(v, -9))
  else
    ns = tonumber(v)
  end
  diff = (s - now_s) * 1e9 + (ns - now_n)
end
if not (diff >= 0) then diff = 0 elseif diff > tolerance then diff = tolerance end
local nxt = diff + cost
if nxt > tolerance then
  return {0, nxt - tolerance, math.floor((tolerance - diff) / interval), diff}
end
if ARGV[4] ~= '1' then
  return {1, 0, math.floor((tolerance - diff) / interval), diff}
end
local total = now_n + nxt
local carry = math.floor(total / 1e9)
redis.call('SET', KEYS[1], string.format('%d%09d', now_s + carry, total - carry * 1e9),
  'PX', math.ceil(nxt / 1e6))
return {1, 0, math.floor((tolerance - nxt) / interval), nxt}
"""

#: SHA1 of :data:`GCRA_SCRIPT`, the name ``EVALSHA`` runs it by.
GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()


@dataclass(frozen=True)
class Decision:
    """The answer to one check.

    ``allowed``: the tokens were granted. ``retry_after``: seconds until the request could
    be granted (on the server's clock, as of the check), 0.0 when it was.
    ``remaining``: whole tokens left after the check. ``reset_after``: seconds until the
    bucket is full again. ``source``: ``"redis"`` (the script decided), ``"local"`` (the
    local pre-check refused with no round trip; ``remaining`` is then 0 and ``reset_after``
    the known ``retry_after``) or ``"fallback"`` (Redis failed and ``on_store_error``
    decided; ``retry_after``, ``remaining`` and ``reset_after`` are 0).
    """

    allowed: bool
    retry_after: float
    remaining: int
    reset_after: float
    source: str


def _interval_ns(rate: float, per: float, per_ns: int | None, burst: int) -> tuple[int, int]:
    """Validates the bucket's options through the core (``fastbreaker.RateLimiter``) and
    returns (interval ns, burst): the core's own interval, read back from a drained bucket
    on a manual clock, so that the rule lives in one place."""
    if isinstance(burst, bool) or not isinstance(burst, int):
        raise TypeError(f"burst must be an int, got {burst!r} ({type(burst).__name__})")
    probe = _native.RateLimiter(rate, per, burst, per_ns=per_ns, clock=_native.ManualClock(0))
    probe.try_acquire(burst)
    interval = probe.retry_after_ns(1)
    if interval * burst > MAX_SPAN_NS:
        raise ValueError(
            f"invalid burst * per / rate = {interval * burst / 1e9:g} s (burst = {burst}, "
            f"interval = {interval} ns): must be at most 2^52 ns (about 52 days) in a "
            "Redis limiter"
        )
    return interval, burst


def _check_part(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {value!r} ({type(value).__name__})")
    if "{" in value or "}" in value:
        raise ValueError(
            f"invalid {what} = {value!r}: may not contain '{{' or '}}' (the key's hash tag)"
        )
    return value


def _check_policy(on_store_error: object) -> str:
    if on_store_error not in _POLICIES:
        raise ValueError(
            f"invalid on_store_error = {on_store_error!r}: must be one of 'raise', 'allow', 'deny'"
        )
    return str(on_store_error)


def _check_client(client: object, want_async: bool, cls: str, twin: str) -> None:
    execute = getattr(client, "execute_command", None)
    if execute is None:
        raise TypeError(
            f"client must be a redis.{'asyncio.' if want_async else ''}Redis, got {client!r}"
        )

    if inspect.iscoroutinefunction(execute) != want_async:
        kind = "a redis.asyncio.Redis" if not want_async else "a sync redis.Redis"
        raise TypeError(f"client is {kind}: {cls} needs the other kind; use {twin}")
    # redis.Redis keeps its connections' options in its pool, RedisCluster in its nodes manager
    pool = getattr(client, "connection_pool", None) or getattr(client, "nodes_manager", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if isinstance(kwargs, dict) and kwargs.get("socket_timeout") is None:
        raise ValueError(
            "invalid client: its socket_timeout is None, so a frozen Redis would block "
            "every check forever; create it with a timeout, e.g. "
            "redis.Redis(..., socket_timeout=0.1)"
        )


def _store_guard(name: str, cooldown: object) -> _native.CircuitBreaker | None:
    """The breaker that guards Redis (see ``store_cooldown``), or None for no guard."""
    if cooldown is None:
        return None
    if (
        isinstance(cooldown, bool)
        or not isinstance(cooldown, (int, float))
        or not 0.0 < cooldown <= 86_400.0
    ):
        raise ValueError(
            f"invalid store_cooldown = {cooldown!r}: must be seconds in (0, 86400], or None"
        )
    return _native.CircuitBreaker(name, failure_threshold=1, wait_duration=float(cooldown))


def _check_n(n: object, burst: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {n!r} ({type(n).__name__})")
    if n < 1:
        raise ValueError(f"invalid n = {n}: must be in 1..={burst} (the burst)")
    if n > burst:
        raise _native.BurstExceeded(n, burst)
    return n


def _key_bytes(key: object) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8", "surrogatepass")
    if isinstance(key, bytes):
        return key
    raise TypeError(f"key must be a str or bytes, got {key!r} ({type(key).__name__})")


_GRANTED_FALLBACK = Decision(True, 0.0, 0, 0.0, "fallback")
_DENIED_FALLBACK = Decision(False, 0.0, 0, 0.0, "fallback")


class _Core:
    """What the four limiters share: config, keys, the local pre-check, reply decoding."""

    def __init__(
        self,
        name: str,
        rate: float,
        per: float,
        burst: int,
        per_ns: int | None,
        prefix: str,
        on_store_error: str,
        local_precheck: bool,
        local_keys: int,
        store_cooldown: float | None,
    ) -> None:
        self.name = _check_part("name", name)
        if not name:
            raise ValueError("invalid name = '': must not be empty")
        self.prefix = _check_part("prefix", prefix)
        self.on_store_error = _check_policy(on_store_error)
        self.interval_ns, self.burst = _interval_ns(rate, per, per_ns, burst)
        self.rate = rate
        self.per = per if per_ns is None else per_ns / 1e9
        self.local_precheck = bool(local_precheck)
        if isinstance(local_keys, bool) or not isinstance(local_keys, int) or local_keys < 1:
            raise ValueError(f"invalid local_keys = {local_keys!r}: must be an int >= 1")
        self.local_keys = local_keys
        self._args_interval = str(self.interval_ns).encode()
        self._args_tolerance = str(self.interval_ns * self.burst).encode()
        # key -> (monotonic deadline, smallest n refused): refused locally until then.
        self._blocked: dict[bytes, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self.store_errors = 0
        self.guard = _store_guard(f"redis:{self.prefix}{self.name}", store_cooldown)

    def enter(self) -> Any:
        """A permit of the store guard (None without a guard); raises CircuitOpenError while
        the guard is open, so that the caller skips Redis."""
        return None if self.guard is None else self.guard.acquire()

    def leave(self, permit: Any, outcome: BaseException | str | None) -> None:
        """Records the Redis call's outcome (None: success) on the store guard."""
        if permit is not None and self.guard is not None:
            self.guard.record(permit, outcome)

    def args(self, key: bytes, n: int, take: bool) -> tuple[Any, ...]:
        return (
            "EVALSHA",
            GCRA_SHA,
            1,
            key,
            self._args_interval,
            self._args_tolerance,
            n,
            b"1" if take else b"0",
        )

    def local(self, key: bytes, n: int) -> Decision | None:
        """The local pre-check's refusal, or None when Redis must decide."""
        entry = self._blocked.get(key)
        if entry is None:
            return None
        left = entry[0] - time.monotonic()
        if left <= 0.0:
            self._blocked.pop(key, None)
            return None
        if n < entry[1]:
            return None
        return Decision(False, left, 0, left, "local")

    def decide(self, key: bytes, reply: Any, take: bool, n: int) -> Decision:
        """The script's reply as a Decision; a refusal is remembered by the pre-check."""
        granted, wait, remaining, reset = (int(x) for x in reply)
        decision = Decision(granted == 1, wait / 1e9, remaining, reset / 1e9, "redis")
        if take and self.local_precheck and not decision.allowed:
            self.remember(key, wait / 1e9, n)
        return decision

    def remember(self, key: bytes, wait: float, n: int) -> None:
        """Refuses requests of ``n`` or more for ``key`` locally for ``wait`` seconds."""
        blocked = self._blocked
        if len(blocked) >= self.local_keys and key not in blocked:
            now = time.monotonic()
            for k in [k for k, (d, _) in list(blocked.items()) if d <= now]:
                blocked.pop(k, None)
            if len(blocked) >= self.local_keys:
                blocked.clear()
        old = blocked.get(key)
        blocked[key] = (time.monotonic() + wait, n if old is None else min(n, old[1]))

    def failed(self, operation: str, exc: BaseException) -> Decision:
        """What a check answers when Redis failed with ``exc``: ``on_store_error``'s."""
        with self._lock:
            self.store_errors += 1
        if self.on_store_error == "allow":
            return _GRANTED_FALLBACK
        if self.on_store_error == "deny":
            return _DENIED_FALLBACK
        return self.raise_last(operation, exc)

    def raise_last(self, operation: str, exc: BaseException) -> Decision:
        """Raises StoreError for ``exc``, the failure of a Redis call."""
        raise StoreError(self.name, operation, exc) from exc

    def forget(self, key: bytes | None) -> None:
        if key is None:
            self._blocked.clear()
        else:
            self._blocked.pop(key, None)

    def describe(self, cls: str) -> str:
        return (
            f"{cls}(name={self.name!r}, rate={self.rate!r}, per={self.per!r}, "
            f"burst={self.burst}, prefix={self.prefix!r}, "
            f"on_store_error={self.on_store_error!r}, local_precheck={self.local_precheck})"
        )


_Key = Union[str, bytes]


class _Options:
    """Read-only views of a limiter's configuration (shared by the four classes)."""

    _core: _Core
    _client: Any

    def _setup(self, client: Any, want_async: bool, cls: str, twin: str, *args: Any) -> None:
        """Checks ``client`` (sync or async, as ``cls`` needs; ``twin`` is the class for the
        other kind) and builds the configuration from ``args`` (those of ``_init_core``)."""
        _check_client(client, want_async, cls, twin)
        self._client = client
        self._core = _init_core(*args)

    @property
    def name(self) -> str:
        """The limiter's name (part of its Redis keys)."""
        return self._core.name

    @property
    def prefix(self) -> str:
        """The prefix of the limiter's Redis keys."""
        return self._core.prefix

    @property
    def rate(self) -> float:
        """Tokens added every ``per`` seconds, as given."""
        return self._core.rate

    @property
    def per(self) -> float:
        """The period of ``rate``, in seconds."""
        return self._core.per

    @property
    def burst(self) -> int:
        """The most tokens the bucket holds, and the most one request may ask for."""
        return self._core.burst

    @property
    def interval_ns(self) -> int:
        """Nanoseconds per token, as the core computes it (``per`` over ``rate``, rounded
        up); a full bucket refills in ``burst * interval_ns``."""
        return self._core.interval_ns

    @property
    def on_store_error(self) -> str:
        """What a check does when Redis fails: ``"raise"``, ``"allow"`` or ``"deny"``."""
        return self._core.on_store_error

    @property
    def local_precheck(self) -> bool:
        """Whether a refused caller is refused locally, with no round trip, until its
        ``retry_after`` has passed (for requests of at least the refused ``n``)."""
        return self._core.local_precheck

    @property
    def store_guard(self) -> _native.CircuitBreaker | None:
        """The breaker in front of Redis (``store_cooldown``), or None when it is off."""
        return self._core.guard

    @property
    def store_errors(self) -> int:
        """How many checks Redis failed (whatever ``on_store_error`` then did)."""
        return self._core.store_errors


def _init_core(
    name: str,
    rate: float,
    per: float,
    burst: int,
    per_ns: int | None,
    prefix: str,
    on_store_error: str,
    local_precheck: bool,
    local_keys: int,
    store_cooldown: float | None,
) -> _Core:
    return _Core(
        name,
        rate,
        per,
        burst,
        per_ns,
        prefix,
        on_store_error,
        local_precheck,
        local_keys,
        store_cooldown,
    )


def _sync_eval(client: Any, core: _Core, key: bytes, n: int, take: bool, op: str) -> Decision:
    if take and core.local_precheck:
        local = core.local(key, n)
        if local is not None:
            return local
    reply = _sync_script(client, core, core.args(key, n, take))
    if isinstance(reply, BaseException):
        return core.failed(op, reply) if take else core.raise_last(op, reply)
    return core.decide(key, reply, take, n)


def _sync_take(client: Any, core: _Core, key: bytes, n: int) -> bool:
    """``try_acquire``'s path: as :func:`_sync_eval` with take, without building a Decision."""
    if core.local_precheck and core.local(key, n) is not None:
        return False
    reply = _sync_script(client, core, core.args(key, n, True))
    if isinstance(reply, BaseException):
        return core.failed("try_acquire", reply).allowed
    if reply[0] == 1:
        return True
    if core.local_precheck:
        core.remember(key, int(reply[1]) / 1e9, n)
    return False


def _sync_script(client: Any, core: _Core, args: tuple[Any, ...]) -> Any:
    """The reply to ``args`` (EVALSHA, or EVAL after NOSCRIPT), or the exception when Redis
    failed or the store guard is open (CircuitOpenError): replies are never exceptions."""
    try:
        permit = core.enter()
    except _native.CircuitOpenError as exc:
        return exc
    try:
        try:
            reply = client.execute_command(*args)
        except NoScriptError:
            reply = client.execute_command("EVAL", GCRA_SCRIPT, *args[2:])
    except (RedisError, OSError) as exc:
        core.leave(permit, exc)
        return exc
    except BaseException:  # interrupted: the call's outcome is unknown, hand the permit back
        core.leave(permit, "ignored")
        raise
    core.leave(permit, None)
    return reply


async def _async_script(client: Any, core: _Core, args: tuple[Any, ...]) -> Any:
    """The async twin of :func:`_sync_script`."""
    try:
        permit = core.enter()
    except _native.CircuitOpenError as exc:
        return exc
    try:
        try:
            reply = await client.execute_command(*args)
        except NoScriptError:
            reply = await client.execute_command("EVAL", GCRA_SCRIPT, *args[2:])
    except (RedisError, OSError) as exc:
        core.leave(permit, exc)
        return exc
    except BaseException:  # cancelled: the call's outcome is unknown, hand the permit back
        core.leave(permit, "ignored")
        raise
    core.leave(permit, None)
    return reply


async def _async_eval(
    client: Any, core: _Core, key: bytes, n: int, take: bool, op: str
) -> Decision:
    if take and core.local_precheck:
        local = core.local(key, n)
        if local is not None:
            return local
    reply = await _async_script(client, core, core.args(key, n, take))
    if isinstance(reply, BaseException):
        return core.failed(op, reply) if take else core.raise_last(op, reply)
    return core.decide(key, reply, take, n)


async def _async_take(client: Any, core: _Core, key: bytes, n: int) -> bool:
    """The async twin of :func:`_sync_take`."""
    if core.local_precheck and core.local(key, n) is not None:
        return False
    reply = await _async_script(client, core, core.args(key, n, True))
    if isinstance(reply, BaseException):
        return core.failed("try_acquire", reply).allowed
    if reply[0] == 1:
        return True
    if core.local_precheck:
        core.remember(key, int(reply[1]) / 1e9, n)
    return False


def _valid_n(n: object, burst: int) -> int:
    """``n`` if it is an int in 1..=burst (the common case, checked first), else the error."""
    if type(n) is int and 0 < n <= burst:
        return n
    return _check_n(n, burst)


def _sync_delete(client: Any, core: _Core, key: bytes) -> None:
    core.forget(key)
    reply = _sync_script(client, core, ("DEL", key))
    if isinstance(reply, BaseException):
        core.raise_last("reset", reply)


async def _async_delete(client: Any, core: _Core, key: bytes) -> None:
    core.forget(key)
    reply = await _async_script(client, core, ("DEL", key))
    if isinstance(reply, BaseException):
        core.raise_last("reset", reply)


class _Single(_Options):
    """A limiter of one bucket: its key ``{<prefix>rl:<name>}``."""

    _key: bytes

    def _setup(self, client: Any, want_async: bool, cls: str, twin: str, *args: Any) -> None:
        super()._setup(client, want_async, cls, twin, *args)
        self._key = f"{{{self._core.prefix}rl:{self._core.name}}}".encode()

    @property
    def key(self) -> str:
        """The limiter's Redis key: ``{<prefix>rl:<name>}``."""
        return self._key.decode()


class _Keyed(_Options):
    """A limiter of one bucket a key: ``{<prefix>krl:<name>:<key>}``."""

    _head: bytes

    def _setup(self, client: Any, want_async: bool, cls: str, twin: str, *args: Any) -> None:
        super()._setup(client, want_async, cls, twin, *args)
        self._head = f"{{{self._core.prefix}krl:{self._core.name}:".encode()

    def key_of(self, key: _Key) -> str:
        """The Redis key of ``key``'s bucket (bytes that are not UTF-8 are shown escaped)."""
        return self._rkey(key).decode(errors="backslashreplace")

    def _rkey(self, key: _Key) -> bytes:
        return self._head + _key_bytes(key) + b"}"


class RateLimiter(_Single):
    """One GCRA token bucket in Redis, shared by every process using the same server, name
    and prefix: ``rate`` tokens every ``per`` seconds (or ``per_ns`` nanoseconds), at most
    ``burst`` at once. ``client`` is a ``redis.Redis`` with a ``socket_timeout``.

    Each check is one round trip (see the module docs for the script, the server clock, the
    key layout and TTLs, and what happens when Redis is down or slow). Processes sharing a
    limiter must give it the same ``rate``, ``per`` and ``burst``: the key does not record
    them. ``local_precheck=True`` refuses a caller locally, with no round trip, from a
    refusal until its ``retry_after`` has passed (for requests of at least the refused
    ``n``): it never grants what Redis would refuse, but a ``reset`` from another process
    is not seen until then. ``rate``, ``per`` and ``burst`` are validated by the core's
    rules (``fastbreaker.RateLimiter``); ``burst * per / rate`` may not exceed 2^52 ns.
    ``on_store_error`` (``"raise"``, ``"allow"``, ``"deny"``) says what a check does when
    Redis fails, and ``store_cooldown`` how long Redis is skipped after a failure (the store
    guard; None: never skipped): see the module docs.
    """

    def __new__(cls, client: Any, *args: Any, **kwargs: Any) -> Self:
        # Given a redis.asyncio.Redis, this name builds the AsyncRateLimiter (the same
        # methods, awaitable).
        if cls is RateLimiter and inspect.iscoroutinefunction(
            getattr(client, "execute_command", None)
        ):
            # Typed as the sync class (say AsyncRateLimiter for awaitable types).
            return AsyncRateLimiter(client, *args, **kwargs)  # type: ignore[return-value]
        return super().__new__(cls)

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        rate: float,
        per: float = 1.0,
        burst: int = 1,
        per_ns: int | None = None,
        prefix: str = "fastbreaker:",
        on_store_error: str = "raise",
        local_precheck: bool = False,
        store_cooldown: float | None = 1.0,
    ) -> None:
        self._setup(
            client,
            False,
            "RateLimiter",
            "AsyncRateLimiter",
            name,
            rate,
            per,
            burst,
            per_ns,
            prefix,
            on_store_error,
            local_precheck,
            1,
            store_cooldown,
        )

    def check(self, n: int = 1) -> Decision:
        """Takes ``n`` tokens if they are available now (one round trip, or none when the
        local pre-check refuses); the Decision says whether, and for how long not."""
        return _sync_eval(
            self._client, self._core, self._key, _check_n(n, self._core.burst), True, "check"
        )

    def try_acquire(self, n: int = 1) -> bool:
        """Takes ``n`` tokens if they are available now: True if granted, False if not.
        Never waits. ``n`` must be in 1..=burst (BurstExceeded, a ValueError, above)."""
        return _sync_take(self._client, self._core, self._key, _valid_n(n, self._core.burst))

    def retry_after(self, n: int = 1) -> float:
        """Seconds until ``n`` tokens could be granted (0.0 if now), taking nothing; raises
        StoreError when Redis fails, whatever ``on_store_error`` says."""
        return _sync_eval(
            self._client, self._core, self._key, _check_n(n, self._core.burst), False, "retry_after"
        ).retry_after

    def reset(self) -> None:
        """Refills the bucket (deletes its key) and forgets local refusals; raises StoreError
        when Redis fails."""
        _sync_delete(self._client, self._core, self._key)

    def __repr__(self) -> str:
        return self._core.describe("fastbreaker.redis.RateLimiter")


class AsyncRateLimiter(_Single):
    """:class:`RateLimiter` for a ``redis.asyncio.Redis``: the same options, guarantees and
    methods, as coroutines."""

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        rate: float,
        per: float = 1.0,
        burst: int = 1,
        per_ns: int | None = None,
        prefix: str = "fastbreaker:",
        on_store_error: str = "raise",
        local_precheck: bool = False,
        store_cooldown: float | None = 1.0,
    ) -> None:
        self._setup(
            client,
            True,
            "AsyncRateLimiter",
            "RateLimiter",
            name,
            rate,
            per,
            burst,
            per_ns,
            prefix,
            on_store_error,
            local_precheck,
            1,
            store_cooldown,
        )

    async def check(self, n: int = 1) -> Decision:
        """See :meth:`RateLimiter.check`."""
        return await _async_eval(
            self._client, self._core, self._key, _check_n(n, self._core.burst), True, "check"
        )

    async def try_acquire(self, n: int = 1) -> bool:
        """See :meth:`RateLimiter.try_acquire`."""
        return await _async_take(self._client, self._core, self._key, _valid_n(n, self._core.burst))

    async def retry_after(self, n: int = 1) -> float:
        """See :meth:`RateLimiter.retry_after`."""
        decision = await _async_eval(
            self._client, self._core, self._key, _check_n(n, self._core.burst), False, "retry_after"
        )
        return decision.retry_after

    async def reset(self) -> None:
        """See :meth:`RateLimiter.reset`."""
        await _async_delete(self._client, self._core, self._key)

    def __repr__(self) -> str:
        return self._core.describe("fastbreaker.redis.AsyncRateLimiter")


class KeyedRateLimiter(_Keyed):
    """One GCRA token bucket in Redis per key (a client id, an IP, a tenant), each with
    ``rate`` tokens every ``per`` seconds and at most ``burst`` at once, shared by every
    process using the same server, name and prefix. ``client`` is a ``redis.Redis`` with a
    ``socket_timeout``; ``key`` a str (UTF-8) or bytes.

    As :class:`RateLimiter`, per key: one round trip per check, one Redis key per client key
    (``{<prefix>krl:<name>:<key>}``, its own hash tag) that expires when its bucket is full
    again, so idle keys cost nothing. ``local_precheck=True`` remembers refusals of up to
    ``local_keys`` keys (then it drops the expired ones, or all).
    """

    def __new__(cls, client: Any, *args: Any, **kwargs: Any) -> Self:
        # Given a redis.asyncio.Redis, this name builds the AsyncKeyedRateLimiter (the
        # same methods, awaitable).
        if cls is KeyedRateLimiter and inspect.iscoroutinefunction(
            getattr(client, "execute_command", None)
        ):
            # Typed as the sync class (say AsyncKeyedRateLimiter for awaitable types).
            return AsyncKeyedRateLimiter(client, *args, **kwargs)  # type: ignore[return-value]
        return super().__new__(cls)

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        rate: float,
        per: float = 1.0,
        burst: int = 1,
        per_ns: int | None = None,
        prefix: str = "fastbreaker:",
        on_store_error: str = "raise",
        local_precheck: bool = False,
        local_keys: int = DEFAULT_LOCAL_KEYS,
        store_cooldown: float | None = 1.0,
    ) -> None:
        self._setup(
            client,
            False,
            "KeyedRateLimiter",
            "AsyncKeyedRateLimiter",
            name,
            rate,
            per,
            burst,
            per_ns,
            prefix,
            on_store_error,
            local_precheck,
            local_keys,
            store_cooldown,
        )

    def check(self, key: _Key, n: int = 1) -> Decision:
        """Takes ``n`` of ``key``'s tokens if available now; see :meth:`RateLimiter.check`."""
        rkey = self._rkey(key)
        return _sync_eval(
            self._client, self._core, rkey, _check_n(n, self._core.burst), True, "check"
        )

    def try_acquire(self, key: _Key, n: int = 1) -> bool:
        """Takes ``n`` of ``key``'s tokens if available now: True if granted."""
        rkey = self._rkey(key)
        return _sync_take(self._client, self._core, rkey, _valid_n(n, self._core.burst))

    def retry_after(self, key: _Key, n: int = 1) -> float:
        """Seconds until ``n`` of ``key``'s tokens could be granted, taking nothing."""
        rkey = self._rkey(key)
        return _sync_eval(
            self._client, self._core, rkey, _check_n(n, self._core.burst), False, "retry_after"
        ).retry_after

    def reset(self, key: _Key) -> None:
        """Refills ``key``'s bucket (deletes its Redis key) and forgets its local refusal."""
        _sync_delete(self._client, self._core, self._rkey(key))

    def __repr__(self) -> str:
        return self._core.describe("fastbreaker.redis.KeyedRateLimiter")


class AsyncKeyedRateLimiter(_Keyed):
    """:class:`KeyedRateLimiter` for a ``redis.asyncio.Redis``: the same options,
    guarantees and methods, as coroutines."""

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        rate: float,
        per: float = 1.0,
        burst: int = 1,
        per_ns: int | None = None,
        prefix: str = "fastbreaker:",
        on_store_error: str = "raise",
        local_precheck: bool = False,
        local_keys: int = DEFAULT_LOCAL_KEYS,
        store_cooldown: float | None = 1.0,
    ) -> None:
        self._setup(
            client,
            True,
            "AsyncKeyedRateLimiter",
            "KeyedRateLimiter",
            name,
            rate,
            per,
            burst,
            per_ns,
            prefix,
            on_store_error,
            local_precheck,
            local_keys,
            store_cooldown,
        )

    async def check(self, key: _Key, n: int = 1) -> Decision:
        """See :meth:`KeyedRateLimiter.check`."""
        rkey = self._rkey(key)
        return await _async_eval(
            self._client, self._core, rkey, _check_n(n, self._core.burst), True, "check"
        )

    async def try_acquire(self, key: _Key, n: int = 1) -> bool:
        """See :meth:`KeyedRateLimiter.try_acquire`."""
        rkey = self._rkey(key)
        return await _async_take(self._client, self._core, rkey, _valid_n(n, self._core.burst))

    async def retry_after(self, key: _Key, n: int = 1) -> float:
        """See :meth:`KeyedRateLimiter.retry_after`."""
        rkey = self._rkey(key)
        decision = await _async_eval(
            self._client, self._core, rkey, _check_n(n, self._core.burst), False, "retry_after"
        )
        return decision.retry_after

    async def reset(self, key: _Key) -> None:
        """See :meth:`KeyedRateLimiter.reset`."""
        await _async_delete(self._client, self._core, self._rkey(key))

    def __repr__(self) -> str:
        return self._core.describe("fastbreaker.redis.AsyncKeyedRateLimiter")
