"""A circuit breaker shared by every process and host that uses the same Redis server.

``fastbreaker.redis.CircuitBreaker(client, name, *, on_store_error="local", ...)`` is a
:class:`fastbreaker.CircuitBreaker` (the native, lock-free one) whose state is kept in step
with a fleet-wide state in Redis. It is used exactly like the in-process breaker: as a
decorator, with ``call`` / ``call_async``, as a ``with`` / ``async with`` block, or with
``acquire`` / ``record``.

Hot path
    A call never makes a round trip and takes no lock: the local breaker decides, in every
    state. All Redis traffic happens in two background threads per breaker (a flusher and a
    pub/sub subscriber), so a slow or dead Redis never delays a call. The one exception to
    "no lock" is the call whose outcome changes the local state (a local trip, a probe's
    result): its listener takes an in-process lock for a few microseconds (no I/O under it)
    to hold the breaker open and queue the report.

Outcomes
    Every ``flush_interval`` seconds (default 0.05), or as soon as ``flush_at`` failures are
    waiting, the flusher sends the counts of successes, failures and slow calls recorded
    since its last batch (read from the local breaker's counters: one message, whatever the
    number of calls). One Lua script (``EVALSHA``; ``NOSCRIPT`` after a restart or
    ``SCRIPT FLUSH`` makes it load the script again) adds them to the fleet's time window and
    decides, atomically, on the server's clock (``TIME``), whether the fleet trips:

    - ``failure_rate_threshold`` / ``slow_call_rate_threshold`` (percent): over the calls of
      the fleet window once it holds ``minimum_calls`` calls;
    - ``failure_threshold`` (consecutive failures): counted per batch, fleet-wide: a batch
      with a success restarts the count at the failures its process saw after its last
      success; a batch of failures only adds to it. Failures arriving from two processes in
      the same instant therefore count as consecutive, which is the point of a fleet count.

    The fleet window is a time window: ``window_seconds`` / ``buckets`` (or
    ``bucket_duration_ns``) when given, else ``fleet_window`` seconds (default 10) in 10
    buckets. A count window (``window=N``) applies to each process's local breaker only.

    The local breaker also applies every threshold to the process's own outcomes. When it
    trips on them, the process reports the trip and the script opens the fleet, unless the
    fleet has moved on since (another generation). So a fleet trips on whichever comes
    first: one process's own evidence, or the sum of everyone's.

Trips, resets, manual opens
    Each fleet state change (trip, reset, close after probes, ``trip()``, ``reset()``,
    ``force_open()``, ``half_open()``) gets a new generation and is published on the channel
    ``{<prefix>cb:<name>}:events``; every subscribed process applies it to its local breaker
    at once (typically within a millisecond or two on one host: measured in
    ``tests/test_redis_breaker.py``; the bound asserted there is 2 s). Pub/sub delivers at
    most once, so the flusher also reads the fleet state every ``resync_interval`` seconds
    (default 1) and after any reconnect.
    While the fleet is open, the local breaker is held in ``forced_open`` (so that it never
    admits a probe of its own); ``state`` reports the fleet's state (``"open"``,
    ``"half_open"``, ``"forced_open"``), and ``retry_after`` the server's remaining wait.
    The open wait is the local breaker's: ``wait_duration`` grown by ``backoff_factor`` per
    consecutive fleet trip, capped by ``max_wait_duration``, less up to ``jitter`` of it.

Half-open probes
    When the fleet's open wait is over, a process whose callers are being refused asks for
    the probe lease (``SET NX PX`` inside the script): the lease is one key,
    ``{<prefix>cb:<name>}:probe``, held by one process at a time, which then half-opens its
    local breaker and admits at most ``half_open_max_calls`` probes, so at most that many
    run across the fleet. Its probes' result is the fleet's: ``success_threshold`` successes
    close the fleet; a failure reopens it, with the next backoff step. A holder renews the
    lease every batch while it keeps it; a holder that is killed stops renewing, and its lease
    expires ``probe_ttl`` seconds (default 5) after the last renewal, when another process may
    take it. A holder that admits no probe within ``probe_ttl`` gives the lease up. Within
    the holder, probes follow the in-process breaker's rules (a probe hung past the open wait
    gives its slot to a new one).

When Redis fails (``on_store_error``)
    Every Redis call has a timeout (``timeout``, default 0.25 s: the breaker talks to Redis
    through its own connection pool, with the client's connection settings, that socket
    timeout and no retries), and an internal fastbreaker breaker (``store_breaker``) guards
    Redis: the first call that fails or times out opens it, and it lets one call through
    every ``store_retry`` seconds (default 1) until one succeeds. While it is open the
    breaker is in an outage and follows ``on_store_error``:

    - ``"local"`` (default): the local breaker keeps deciding on this process's outcomes
      alone, with its own open wait and its own half-open probes (no lease). A fleet-open
      state held when the outage began becomes a local open (a fresh ``wait_duration``).
    - ``"open"`` (fail open): the local breaker is disabled: every call is let through and
      nothing trips until Redis is back.
    - ``"closed"`` (fail closed): the local breaker is forced open: every call is refused
      with ``CircuitOpenError`` until Redis is back.

    Outcomes recorded during an outage are not sent later. When Redis answers again, the
    breaker resyncs: under ``"local"``, a local breaker that is open (or probing) reports a
    trip, which opens the fleet if it is closed; otherwise the process adopts the fleet's
    state. Redis without persistence forgets the fleet state when it restarts: the fleet
    starts closed again (in a new *epoch*), apart from those reported trips.

Time
    Every deadline (open wait, window buckets, lease expiry) is computed by the script on the
    server's clock; a client receives durations ("1.2 s left"), never instants, so the clocks
    of client hosts, however skewed, play no part.

Keys (``prefix`` defaults to ``"fastbreaker:"``; ``prefix`` and ``name`` may not contain
``{`` or ``}``), all in one hash tag so that a Redis Cluster keeps them in one slot:

- ``{<prefix>cb:<name>}:state``: a hash (state, epoch, gen, until, trips, consec), expiring
  after a day without a batch (or a day after the end of a longer open wait);
- ``{<prefix>cb:<name>}:window``: a hash of per-bucket counts, expiring with the window;
- ``{<prefix>cb:<name>}:probe``: the probe lease (a string: its holder), with a TTL;
- channel ``{<prefix>cb:<name>}:events``: ``state|epoch|generation|remaining_ms``.

Clients and lifetime
    The constructor makes no Redis call: it returns at once and the flusher reads the fleet
    state right away in the background (``sync()``, or ``await sync_async()``, waits for it);
    until then the local breaker starts closed. ``client`` is a ``redis.Redis`` or a
    ``redis.asyncio.Redis`` with an ordinary connection pool (TCP, TLS or a Unix socket; not
    Sentinel), or a sync ``redis.cluster.RedisCluster`` (tested against a one-node cluster):
    the breaker opens its own sync client with the same connection settings (the cluster's
    nodes), used only by its background threads (never on the event loop), so every call
    path works in sync and async code alike. Each breaker holds one pub/sub
    connection and one for its batches. ``close()`` (or ``with breaker.closing(): ...``, or
    ``await aclose()``; ``with breaker:`` is a call through the breaker, as for the
    in-process one) stops both threads, joins them and closes the private pool; the breaker
    then goes on as a plain local breaker. The threads are daemon threads that hold the
    breaker only while they work: a breaker dropped without ``close()`` is collected, and
    its threads end within about ``flush_interval``. Create the breaker after a fork
    (threads do not survive one).

Manual control: ``trip()``, ``reset()``, ``force_open()`` and ``half_open()`` act on the
fleet: they apply locally at once and are sent to Redis by the flusher (``sync()`` waits
for that); during an outage they act on this process only. ``disable()`` and
``metrics_only()`` act on this process only, until the next fleet state change. Listeners
see the local breaker's transitions (a fleet open appears as ``forced_open``). Configure
every process of a fleet alike: the script judges each batch by its sender's thresholds.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import socket
import threading
import time
import uuid
import weakref
from typing import Any, Optional, Union

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisError
from redis.retry import Retry

from .. import _native
from .._breaker import CircuitBreaker as _LocalBreaker
from .._native import CircuitOpenError

__all__ = ["CircuitBreaker", "RedisShared"]

_POLICIES = ("local", "open", "closed")
_FLEET_STATES = ("closed", "open", "half_open", "forced_open")
#: The core's longest open wait (2^54 ns), in milliseconds.
_MAX_WAIT_MS = (1 << 54) // 1_000_000
_DEFAULT_FLEET_WINDOW = 10.0
_DEFAULT_FLEET_BUCKETS = 10

# One script for every fleet operation, so that each is atomic and reads the server's clock.
# KEYS: state hash, window hash, probe lease.  ARGV: see _Fleet.args.
BREAKER_SCRIPT = """\
local S, W, L = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]
local seen_epoch, seen_gen, holder = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local succ, fail = tonumber(ARGV[5]), tonumber(ARGV[6])
local slow, trailing = tonumber(ARGV[7]), tonumber(ARGV[8])
local f_thr, fr_thr = tonumber(ARGV[9]), tonumber(ARGV[10])
local sr_thr, min_calls = tonumber(ARGV[11]), tonumber(ARGV[12])
local bucket_ms, nbuckets = tonumber(ARGV[13]), tonumber(ARGV[14])
local wait_ms, backoff = tonumber(ARGV[15]), tonumber(ARGV[16])
local max_wait_ms, jitter_u = tonumber(ARGV[17]), tonumber(ARGV[18])
local lease_ms, channel = tonumber(ARGV[19]), ARGV[20]

-- A key of another type (written by something else) is dropped, never an error.
local function want(key, kind)
  local k = redis.call('TYPE', key)['ok']
  if k ~= 'none' and k ~= kind then redis.call('DEL', key) end
end
want(S, 'hash')
want(W, 'hash')
want(L, 'string')

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', S, 'state', 'epoch', 'gen', 'until', 'trips', 'consec')
local state, epoch = h[1], h[2]
local gen, untl, trips, consec = tonumber(h[3]), tonumber(h[4]), tonumber(h[5]), tonumber(h[6])
if (state ~= 'closed' and state ~= 'open' and state ~= 'half_open' and state ~= 'forced_open')
    or not epoch or not gen or not untl or not trips or not consec then
  -- No state (first use, a restart, an expiry) or a corrupt one: a new epoch, closed.
  epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  state, gen, untl, trips, consec = 'closed', 0, 0, 0, 0
  redis.call('DEL', W, L)
end

local changed = false
local result = 0

local function publish()
  changed = true
  local rem = untl - now
  if rem < 0 then rem = 0 end
  local msg = state .. '|' .. epoch .. '|' .. gen .. '|' .. string.format('%d', rem)
  redis.call('PUBLISH', channel, msg)
end

local function open_fleet()
  trips = trips + 1
  local d = wait_ms
  if max_wait_ms < d then d = max_wait_ms end
  local step = 1
  while backoff > 1 and step < trips and d < max_wait_ms do
    d = d * backoff
    step = step + 1
  end
  if d > max_wait_ms then d = max_wait_ms end
  d = math.floor(d - d * jitter_u)
  state, gen, untl, consec = 'open', gen + 1, now + d, 0
  redis.call('DEL', W, L)
  publish()
end

local function close_fleet()
  state, gen, untl, trips, consec = 'closed', gen + 1, 0, 0, 0
  redis.call('DEL', W, L)
  publish()
end

local function my_lease()
  return redis.call('GET', L) == holder
end

if op == 'report' then
  if state == 'closed' and (succ + fail) > 0 then
    local b = math.floor(now / bucket_ms)
    redis.call('HINCRBY', W, b .. ':c', succ + fail)
    if fail > 0 then redis.call('HINCRBY', W, b .. ':f', fail) end
    if slow > 0 then redis.call('HINCRBY', W, b .. ':s', slow) end
    redis.call('PEXPIRE', W, bucket_ms * (nbuckets + 1))
    local calls, fails, slows = 0, 0, 0
    local all = redis.call('HGETALL', W)
    for i = 1, #all, 2 do
      local sep = string.find(all[i], ':', 1, true)
      local fb = sep and tonumber(string.sub(all[i], 1, sep - 1))
      local v = tonumber(all[i + 1]) or 0
      if v ~= v or v < 0 or v > 1e15 then v = 0 end
      if not fb or fb <= b - nbuckets or fb > b then
        redis.call('HDEL', W, all[i])
      else
        local kind = string.sub(all[i], sep + 1)
        if kind == 'c' then calls = calls + v
        elseif kind == 'f' then fails = fails + v
        else slows = slows + v end
      end
    end
    if succ > 0 then consec = trailing else consec = consec + fail end
    local trip = false
    if f_thr > 0 and consec >= f_thr then trip = true end
    if calls >= min_calls and calls > 0 then
      if fr_thr >= 0 and fails * 100 >= fr_thr * calls and fails > 0 then trip = true end
      if sr_thr >= 0 and slows * 100 >= sr_thr * calls and slows > 0 then trip = true end
    end
    if trip then open_fleet(); result = 1 end
  end
elseif op == 'trip' then
  -- seen_gen >= 0: a process's own trip (accepted in the generation it saw, closed, or a
  -- probe failure of the lease holder); -1: a resync after an outage (accepted if closed);
  -- -2: a manual trip (always).
  if seen_gen == -2 or (seen_gen == -1 and state == 'closed')
      or (seen_gen >= 0 and seen_epoch == epoch and seen_gen == gen
          and (state == 'closed' or (state == 'half_open' and my_lease()))) then
    open_fleet(); result = 1
  end
elseif op == 'probe' then
  if (state == 'open' or state == 'half_open') and now >= untl then
    local cur = redis.call('GET', L)
    if not cur or cur == holder then
      redis.call('SET', L, holder, 'PX', lease_ms)
      state = 'half_open'
      result = 1
    end
  end
elseif op == 'renew' then
  if state == 'half_open' and my_lease() then
    redis.call('PEXPIRE', L, lease_ms); result = 1
  end
elseif op == 'close' then
  if state == 'half_open' and seen_epoch == epoch and seen_gen == gen and my_lease() then
    close_fleet(); result = 1
  end
elseif op == 'reset' then
  close_fleet(); result = 1
elseif op == 'force_open' then
  state, gen, untl = 'forced_open', gen + 1, 0
  redis.call('DEL', W, L)
  publish(); result = 1
elseif op == 'half_open' then
  state, gen, untl = 'open', gen + 1, now
  redis.call('DEL', L)
  publish(); result = 1
end

redis.call('HSET', S, 'state', state, 'epoch', epoch, 'gen', gen, 'until', untl,
  'trips', trips, 'consec', consec)
local keep = 86400000
if untl - now + 86400000 > keep then keep = untl - now + 86400000 end
redis.call('PEXPIRE', S, keep)
local rem = untl - now
if rem < 0 then rem = 0 end
return {state, epoch, gen, rem, result}
"""


def _check_part(param: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{param} must be a str, got {type(value).__name__} {value!r}")
    if "{" in value or "}" in value:
        raise ValueError(f"{param} must not contain '{{' or '}}' (hash tags), got {value!r}")
    return value


def _check_seconds(param: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{param} must be a number of seconds, got {type(value).__name__}")
    v = float(value)
    if not (low < v <= high):
        raise ValueError(f"{param} must be in ({low}, {high}] seconds, got {value!r}")
    return v


_CLIENT_TYPES = (redis.Redis, redis.asyncio.Redis, RedisCluster)
_CLIENTS = "a redis.Redis, redis.asyncio.Redis or redis.cluster.RedisCluster"


def _private_client(client: object, timeout: float) -> Union[redis.Redis, RedisCluster]:
    """A sync client on its own connections: the connection settings of ``client`` (a
    ``redis.Redis``, ``redis.asyncio.Redis`` or ``RedisCluster``), socket timeouts of
    ``timeout`` and no retry."""
    if isinstance(client, RedisCluster):
        ckw = dict(client.nodes_manager.connection_kwargs)
        for drop in ("retry", "retry_on_error", "redis_connect_func", "retry_on_timeout", "db"):
            ckw.pop(drop, None)
        ckw.update(socket_timeout=timeout, socket_connect_timeout=timeout)
        ckw["decode_responses"] = False
        nodes = [ClusterNode(n.host, n.port) for n in client.get_nodes()]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, retry=Retry(NoBackoff(), 0), **ckw)
    if isinstance(client, redis.Redis):
        pool: Any = client.connection_pool
    elif isinstance(client, redis.asyncio.Redis):
        pool = client.connection_pool
    else:
        raise TypeError(
            f"client must be {_CLIENTS}, got {type(client).__module__}.{type(client).__qualname__}"
        )
    kwargs = dict(pool.connection_kwargs)
    for drop in ("retry", "retry_on_error", "redis_connect_func", "retry_on_timeout"):
        kwargs.pop(drop, None)
    kwargs.update(
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=False,
        retry=Retry(NoBackoff(), 0),
    )
    cls_name = pool.connection_class.__name__
    conn_cls = getattr(redis.connection, cls_name, None)
    if conn_cls is None or not isinstance(conn_cls, type):
        conn_cls = redis.connection.Connection
    sync_pool = redis.ConnectionPool(connection_class=conn_cls, max_connections=4, **kwargs)
    return redis.Redis(connection_pool=sync_pool)


class RedisShared:
    """Where fleet breakers keep their state: a Redis client and a key prefix.

    ``fastbreaker.redis.CircuitBreaker(shared=RedisShared(client, "app:"), name=...)`` is the
    same as ``CircuitBreaker(client, name, prefix="app:")``; one ``RedisShared`` can be
    handed to many breakers. ``client`` is a ``redis.Redis``, ``redis.asyncio.Redis`` or
    ``redis.cluster.RedisCluster``.
    """

    __slots__ = ("client", "prefix")

    def __init__(
        self,
        client: Union[redis.Redis, redis.asyncio.Redis, RedisCluster],
        prefix: str = "fastbreaker:",
    ):
        if not isinstance(client, _CLIENT_TYPES):
            raise TypeError(
                f"client must be {_CLIENTS}, got "
                f"{type(client).__module__}.{type(client).__qualname__}"
            )
        self.client = client
        self.prefix = _check_part("prefix", prefix)

    def __repr__(self) -> str:
        return f"RedisShared({self.client!r}, prefix={self.prefix!r})"


class _Listener:
    """The breaker's own listener on its local breaker (state changes and failures)."""

    __slots__ = ("owner",)

    def __init__(self, owner: CircuitBreaker) -> None:
        self.owner = owner

    def on_state_change(self, name: str, old: str, new: str) -> None:
        self.owner._local_change(old, new)

    def on_failure(self, name: str, exc: BaseException) -> None:
        self.owner._local_failure()


class CircuitBreaker(_LocalBreaker):
    """A fleet-wide circuit breaker on Redis with a lock-free local hot path.

    ``CircuitBreaker(client, name, *, on_store_error="local", flush_interval=0.05, **options)``
    where ``options`` are those of :class:`fastbreaker.CircuitBreaker` (``failure_threshold``,
    ``wait_duration``, ``failure_rate_threshold``, ``minimum_calls``, ``window_seconds``,
    ``half_open_max_calls``, ``success_threshold``, ``exclude``, ``fallback``, ``listeners``,
    ``rejection_error``, ...; not ``clock`` (time is the Redis server's) nor ``reconfigure``;
    ``shared=`` takes a :class:`RedisShared` here, not a shared-memory region). Fleet-mode
    keywords:

    - ``on_store_error``: ``"local"``, ``"open"`` or ``"closed"`` (see the module docs);
    - ``flush_interval`` (s, default 0.05) and ``flush_at`` (failures, default 100): when a
      batch of outcomes goes out;
    - ``prefix`` (default ``"fastbreaker:"``) or ``shared=RedisShared(client, prefix)``
      instead of ``client``;
    - ``timeout`` (s, default 0.25): socket timeout of every Redis call;
    - ``store_retry`` (s, default 1.0): how often Redis is tried again during an outage;
    - ``probe_ttl`` (s, default 5.0): the probe lease's TTL;
    - ``resync_interval`` (s, default 1.0): how often the fleet state is read regardless;
    - ``fleet_window`` (s, default 10.0): the fleet window when no time window is given.

    Beyond the in-process breaker's methods: ``sync()`` / ``await sync_async()`` (send and
    read now), ``close()`` / ``await aclose()`` / ``with closing()``, ``fleet_state``,
    ``store_available``, ``fleet_metrics()``, ``keys`` and ``channel`` (the Redis names),
    ``from_env(name, client=...)``. See the module documentation for what is guaranteed.
    """

    def __new__(
        cls,
        client: Union[redis.Redis, redis.asyncio.Redis, RedisCluster, None] = None,
        name: Optional[str] = None,
        *,
        shared: Optional[RedisShared] = None,
        **options: Any,
    ) -> CircuitBreaker:
        """Builds the local breaker (see the class documentation)."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
        for bad in ("clock", "reconfigure"):
            if bad in options:
                raise TypeError(
                    f"{bad}= is not supported by fastbreaker.redis.CircuitBreaker: its time is "
                    "the Redis server's and its configuration is per process"
                )
        local = {k: v for k, v in options.items() if k not in _FLEET_KEYWORDS}
        user_rejection = local.pop("rejection_error", None)
        cell: list[weakref.ref[CircuitBreaker]] = []  # weak: the native side does not traverse it

        def rejection(name: str, state: str, retry_after: float) -> BaseException:
            # A fleet open is held locally as forced_open: the error says what the fleet is.
            owner = cell[0]() if cell else None
            if owner is not None:
                state, retry_after = owner._rejection_view(state, retry_after)
            if user_rejection is not None:
                return user_rejection(name, state, retry_after)  # type: ignore[no-any-return]
            return CircuitOpenError(name, state, retry_after)

        self = super().__new__(cls, name, rejection_error=rejection, **local)
        cell.append(weakref.ref(self))  # type: ignore[arg-type]
        return self  # type: ignore[return-value]

    def __init__(
        self,
        client: Union[redis.Redis, redis.asyncio.Redis, RedisCluster, None] = None,
        name: Optional[str] = None,
        *,
        shared: Optional[RedisShared] = None,
        on_store_error: str = "local",
        flush_interval: float = 0.05,
        flush_at: int = 100,
        prefix: Optional[str] = None,
        timeout: float = 0.25,
        store_retry: float = 1.0,
        probe_ttl: float = 5.0,
        resync_interval: float = 1.0,
        fleet_window: float = _DEFAULT_FLEET_WINDOW,
        **options: Any,
    ) -> None:
        """Connects the local breaker to the fleet and starts the background threads."""
        if shared is not None:
            if not isinstance(shared, RedisShared):
                raise TypeError(
                    f"shared must be a fastbreaker.redis.RedisShared, got {type(shared).__name__}"
                )
            if client is not None or prefix is not None:
                raise TypeError("give either shared= or client (and prefix=), not both")
            client, prefix = shared.client, shared.prefix
        if prefix is None:
            prefix = "fastbreaker:"
        if on_store_error not in _POLICIES:
            raise ValueError(
                f"on_store_error must be one of 'local', 'open', 'closed', got {on_store_error!r}"
            )
        assert name is not None  # checked by __new__
        _check_part("name", name)
        _check_part("prefix", prefix)
        self._flush_interval = _check_seconds("flush_interval", flush_interval, 0.0, 60.0)
        if (
            isinstance(flush_at, bool)
            or not isinstance(flush_at, int)
            or not 1 <= flush_at <= 10**9
        ):
            raise ValueError(f"flush_at must be an int in [1, 1000000000], got {flush_at!r}")
        self._flush_at = flush_at
        self._timeout = _check_seconds("timeout", timeout, 0.0, 60.0)
        self._store_retry = _check_seconds("store_retry", store_retry, 0.0, 3600.0)
        self._probe_ttl = _check_seconds("probe_ttl", probe_ttl, 0.0, 3600.0)
        self._resync_interval = _check_seconds("resync_interval", resync_interval, 0.0, 3600.0)
        self._fleet_window = _check_seconds("fleet_window", fleet_window, 0.0, 86400.0 * 7)
        self._policy = on_store_error
        self._redis = _private_client(client, self._timeout)
        tag = "{" + prefix + "cb:" + name + "}"
        self.keys = (tag + ":state", tag + ":window", tag + ":probe")
        self.channel = tag + ":events"
        self._script = self._redis.register_script(BREAKER_SCRIPT)  # type: ignore[misc]
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.store_breaker = _native.CircuitBreaker(
            f"{name}.redis", failure_threshold=1, wait_duration=self._store_retry
        )
        # Background state: touched by the flusher and subscriber threads (under _lock) and
        # by manual operations; never by the hot path.
        self._lock = threading.RLock()
        # Reentrant: a listener run by the flusher may call sync().
        self._flush_lock = threading.RLock()
        self._tls = threading.local()
        self._events: collections.deque[tuple[str, int]] = collections.deque()
        self._failures = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._resync = threading.Event()
        self._epoch: Optional[str] = None
        self._gen = -1
        self._fleet_state = "closed"
        self._open_until = 0.0
        self._store_ok = True
        self._lease_since: Optional[float] = None
        self._last_get = 0.0
        self._base = self._counters(_native.CircuitBreaker.metrics(self))
        self.store_errors = 0
        self.applied = 0
        self.add_listener(_Listener(self))
        self._flusher = threading.Thread(
            target=_flush_loop,
            args=(weakref.ref(self),),
            name=f"fastbreaker.redis flusher {name}",
            daemon=True,
        )
        self._subscriber = threading.Thread(
            target=_subscribe_loop,
            args=(weakref.ref(self),),
            name=f"fastbreaker.redis subscriber {name}",
            daemon=True,
        )
        self._closed = False
        self._subscribed = threading.Event()
        self._finalizer = weakref.finalize(self, _stop_threads, self._stop, self._wake)
        self._resync.set()
        self._wake.set()  # read the fleet state at once
        self._flusher.start()
        self._subscriber.start()

    # ----- public surface -----

    @classmethod
    def from_env(cls, name: str, **kwargs: Any) -> CircuitBreaker:
        """A fleet breaker whose breaker options are read from the environment exactly as
        :meth:`fastbreaker.CircuitBreaker.from_env` reads them (``FASTBREAKER_<NAME>_<OPTION>``
        and so on; ``environ=`` replaces ``os.environ``). ``kwargs`` must hold ``client=``
        (or ``shared=``) and may hold the fleet keywords and any breaker option."""
        from ..env import breaker_from_env

        fleet = {k: kwargs.pop(k) for k in list(kwargs) if k in _FLEET_KEYWORDS}
        client = kwargs.pop("client", None)
        shared = kwargs.pop("shared", None)
        if client is None and shared is None:
            raise TypeError("from_env needs client= (a redis.Redis) or shared= (RedisShared)")
        # Options that options() does not read back.
        unread = ("exclude", "fallback", "listeners", "rejection_error")
        passed: dict[str, Any] = {k: v for k, v in kwargs.items() if k in unread}
        probe = breaker_from_env(name, cls=_LocalBreaker, **kwargs)
        options = {k: v for k, v in probe.options().items() if k != "clock"}
        options.update(passed)
        return cls(client, name, shared=shared, **fleet, **options)

    @property
    def on_store_error(self) -> str:
        """The outage policy: ``"local"``, ``"open"`` or ``"closed"``."""
        return self._policy

    @property
    def store_available(self) -> bool:
        """False during an outage (from a failed Redis call until one succeeds again)."""
        return self._store_ok

    @property
    def fleet_state(self) -> str:
        """The fleet's state as last heard from Redis (``"closed"``, ``"open"``,
        ``"half_open"`` or ``"forced_open"``)."""
        return self._fleet_state

    @property
    def state(self) -> str:
        """The state callers see: the local breaker's, except that a fleet open held locally
        as ``forced_open`` reads as the fleet's state."""
        local = _native.CircuitBreaker.state.__get__(self)
        if local == "forced_open" and self._store_ok and self._fleet_state != "closed":
            return self._fleet_state
        return local  # type: ignore[no-any-return]

    @property
    def retry_after(self) -> float:
        """Seconds until the open wait ends (the fleet's, as measured by the server, while the
        fleet is open), 0.0 when calls are admitted."""
        local = _native.CircuitBreaker.state.__get__(self)
        if local == "forced_open" and self._store_ok and self._fleet_state in ("open", "half_open"):
            return max(0.0, self._open_until - time.monotonic())
        return _native.CircuitBreaker.retry_after.__get__(self)  # type: ignore[no-any-return]

    def trip(self) -> None:
        """Opens the breaker fleet-wide (locally at once; the fleet with the next batch)."""
        self._manual("trip", _native.CircuitBreaker.force_open)

    def reset(self) -> None:
        """Closes the breaker fleet-wide (locally at once; the fleet with the next batch)."""
        self._manual("reset", _native.CircuitBreaker.reset)

    def force_open(self) -> None:
        """Holds the breaker open fleet-wide until ``reset()`` (anywhere in the fleet)."""
        self._manual("force_open", _native.CircuitBreaker.force_open)

    def half_open(self) -> None:
        """Ends the fleet's open wait now: the next refused caller's process takes the
        probe lease (locally, calls stay refused until then)."""
        self._manual("half_open", _native.CircuitBreaker.force_open)

    def sync(self) -> bool:
        """Sends what is waiting and reads the fleet state now, in the calling thread.

        Returns True when Redis answered, False during an outage or when a call failed. Each
        Redis call it makes is bounded by the breaker's ``timeout``; it may first wait for a
        batch the flusher is sending (bounded the same way)."""
        with self._flush_lock:
            return self._flush_once(force_get=True)

    async def sync_async(self) -> bool:
        """``sync()`` for async code: runs it in a worker thread (the event loop never waits
        on Redis)."""
        return await asyncio.to_thread(self.sync)

    async def aclose(self) -> None:
        """``close()`` for async code: runs it in a worker thread."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Sends the waiting events and counts (when Redis is available; bounded by the
        timeout), stops and joins the flusher and subscriber threads and closes the private
        Redis pool. The breaker goes on as a local breaker: a fleet open (or an outage policy's
        hold) becomes a local open with a fresh ``wait_duration`` (or closed, after
        ``"open"``); a manual ``force_open()`` stays. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        bound = self._timeout * 4 + 2.0
        if threading.current_thread() is not self._flusher:
            self._flusher.join(bound)
        if threading.current_thread() is not self._subscriber:
            self._subscriber.join(bound)
        if self._store_ok:
            # The last batch: a trip or counts still waiting reach the fleet (each call
            # bounded by the timeout; a failure is only counted).
            try:
                with self._flush_lock:
                    self._flush_once(final=True)
            except Exception:  # pragma: no cover - best effort on the way out
                pass
        try:
            if isinstance(self._redis, RedisCluster):
                self._redis.close()
            else:
                self._redis.connection_pool.disconnect()
        except Exception:  # pragma: no cover - disconnecting a dead pool
            pass
        with self._lock:
            # Release what the fleet (or the outage policy) held: a plain local breaker now.
            local = _native.CircuitBreaker.state.__get__(self)
            if local == "forced_open" and (
                self._fleet_state in ("open", "half_open")
                or (not self._store_ok and self._policy == "closed")
            ):
                self._apply_local("open")  # a local open wait, then local probes
            elif local == "disabled" and not self._store_ok and self._policy == "open":
                self._apply_local("closed")
            self._lease_since = None

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def threads(self) -> list[threading.Thread]:
        """The breaker's background threads (for shutdown checks)."""
        return [self._flusher, self._subscriber]

    def closing(self) -> _Closing:
        """A context manager that closes the breaker on exit: ``with b.closing(): ...``.
        (``with b:`` is a call through the breaker, as for the in-process one.)"""
        return _Closing(self)

    def fleet_metrics(self) -> dict[str, Any]:
        """Fleet-mode counters: the fleet state, epoch and generation as last heard, whether
        Redis is available, store errors, the number of fleet changes applied locally,
        whether this process holds the probe lease, and whether it is subscribed."""
        return {
            "fleet_state": self._fleet_state,
            "epoch": self._epoch,
            "generation": self._gen,
            "store_available": self._store_ok,
            "store_errors": self.store_errors,
            "applied": self.applied,
            "holds_probe_lease": self._lease_since is not None,
            # Subscribed, and the fleet state read since (no resync pending).
            "subscribed": self._subscribed.is_set() and not self._resync.is_set(),
        }

    # ----- internals -----

    @staticmethod
    def _counters(m: dict[str, Any]) -> tuple[int, int, int, int]:
        return (int(m["succeeded"]), int(m["failed"]), int(m["slow"]), int(m["rejected"]))

    def _manual(self, op: str, local: Any) -> None:
        with self._lock:
            self._tls.applying = True
            try:
                local(self)
            finally:
                self._tls.applying = False
            self._lease_since = None
            if op == "reset":
                self._fleet_state = "closed"
            elif op == "force_open":
                self._fleet_state = "forced_open"
            else:
                self._fleet_state = "open"
                wait = 0.0 if op == "half_open" else float(self.options()["wait_duration"])
                self._open_until = time.monotonic() + wait
            self._events.append((op, -2))
        self._wake.set()

    def _rejection_view(self, state: str, retry_after: float) -> tuple[str, float]:
        if state == "forced_open" and self._store_ok and self._fleet_state in ("open", "half_open"):
            return self._fleet_state, max(0.0, self._open_until - time.monotonic())
        return state, retry_after

    def _local_failure(self) -> None:
        self._failures += 1
        if self._failures >= self._flush_at:
            self._failures = 0
            self._wake.set()

    def _local_change(self, old: str, new: str) -> None:
        if getattr(self._tls, "applying", False) or self._closed:
            return
        if not self._store_ok:
            return  # an outage: the policy's local breaker decides alone
        if new == "open":
            # The local breaker tripped (on this process's outcomes) or a probe failed: hold it
            # forced open (no local probe without the lease) and tell the fleet.
            with self._lock:
                gen = self._gen
                self._apply_local("forced_open")
                self._events.append(("trip", gen))
                self._lease_since = None
                # Until the fleet answers: open for wait_duration (the reply corrects both).
                self._fleet_state = "open"
                self._open_until = time.monotonic() + float(self.options()["wait_duration"])
            self._wake.set()
        elif old == "half_open" and new == "closed":
            with self._lock:
                self._events.append(("close", self._gen))
            self._wake.set()

    def _apply_local(self, target: str) -> None:
        """Moves the local breaker to ``target`` without reporting it (caller holds _lock)."""
        current = _native.CircuitBreaker.state.__get__(self)
        if current == target:
            return
        self._tls.applying = True
        try:
            if target == "closed":
                _native.CircuitBreaker.reset(self)
            elif target == "forced_open":
                _native.CircuitBreaker.force_open(self)
            elif target == "half_open":
                _native.CircuitBreaker.half_open(self)
            elif target == "open":
                _native.CircuitBreaker.trip(self)
            elif target == "disabled":
                _native.CircuitBreaker.disable(self)
        finally:
            self._tls.applying = False

    def _apply(
        self, state: str, epoch: str, gen: int, remaining_ms: int, force: bool = False
    ) -> None:
        """Applies a fleet state heard from Redis (a reply or a message)."""
        if state not in _FLEET_STATES:
            return
        with self._lock:
            if (not self._store_ok and not force) or self._closed:
                return
            if not force and epoch == self._epoch and gen < self._gen:
                return  # stale
            new_gen = epoch != self._epoch or gen != self._gen
            self._epoch, self._gen, self._fleet_state = epoch, gen, state
            self._open_until = time.monotonic() + remaining_ms / 1000.0
            local = _native.CircuitBreaker.state.__get__(self)
            if local in ("disabled", "metrics_only") and not new_gen and not force:
                return  # this process's own manual mode, until the next fleet change
            if state == "closed":
                if local != "closed":
                    self._apply_local("closed")
                    self.applied += 1
                self._lease_since = None
            else:
                if self._lease_since is not None and state == "half_open" and not new_gen:
                    return  # our own probes run
                if local != "forced_open":
                    self._apply_local("forced_open")
                    self.applied += 1
                if new_gen:
                    self._lease_since = None

    def _call(
        self, op: str, gen: int = -3, counts: tuple[int, int, int, int] = (0, 0, 0, 0)
    ) -> list[Any]:
        o = self.options()
        window_seconds = o.get("window_seconds")
        if window_seconds:
            nb = int(o.get("buckets") or _DEFAULT_FLEET_BUCKETS)
            bucket_ms = max(1, round(float(window_seconds) * 1000 / nb))
        else:
            nb = _DEFAULT_FLEET_BUCKETS
            bucket_ms = max(1, round(self._fleet_window * 1000 / nb))
        ft = o.get("failure_threshold")
        fr = o.get("failure_rate_threshold")
        sr = o.get("slow_call_rate_threshold")
        max_wait = o.get("max_wait_duration")
        wait_ms = float(o["wait_duration"]) * 1000.0
        max_wait_ms = min(float(max_wait) * 1000.0, _MAX_WAIT_MS) if max_wait else _MAX_WAIT_MS
        jitter = float(o.get("jitter") or 0.0)
        args: list[Union[str, int, float]] = [
            op,
            self._epoch or "",
            gen,
            self._holder,
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            int(ft) if ft else 0,
            float(fr) if fr is not None else -1,
            float(sr) if sr is not None else -1,
            int(o["minimum_calls"]),
            bucket_ms,
            nb,
            wait_ms,
            float(o["backoff_factor"]),
            max_wait_ms,
            random.random() * jitter,
            int(self._probe_ttl * 1000),
            self.channel,
        ]
        reply = self._script(keys=list(self.keys), args=args)
        return list(reply)

    def _reply(self, reply: list[Any], force: bool = False) -> int:
        state = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        epoch = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
        self._apply(state, epoch, int(reply[2]), int(reply[3]), force=force)
        return int(reply[4])

    def _flush_once(self, force_get: bool = False, final: bool = False) -> bool:
        """One batch: events, counts, probe lease, resync. Returns True when Redis answered.
        ``final``: events and counts only (the last batch, sent by ``close()``)."""
        now = time.monotonic()
        counters = self._counters(_native.CircuitBreaker.metrics(self))
        base, self._base = self._base, counters
        delta = tuple(max(0, c - b) for c, b in zip(counters, base))
        self._failures = 0
        try:
            permit = self.store_breaker.acquire()
        except CircuitOpenError:
            self._events.clear()
            return False
        try:
            recovering = not self._store_ok
            if recovering:
                self._recover()
            while self._events:
                op, gen = self._events.popleft()
                if op == "close":
                    # Accepted or not, the lease is no longer ours after a close attempt.
                    with self._lock:
                        self._lease_since = None
                self._reply(self._call(op, gen))
            talked = recovering
            if delta[0] or delta[1] or delta[2]:
                consecutive = int(_native.CircuitBreaker.metrics(self)["consecutive_failures"])
                trailing = min(consecutive, delta[1])
                self._reply(
                    self._call("report", self._gen, (delta[0], delta[1], delta[2], trailing))
                )
                talked = True
            if final:
                self.store_breaker.record(permit)
                return True
            local = _native.CircuitBreaker.state.__get__(self)
            if self._lease_since is not None:
                # Renew while probing; give an unused lease up after probe_ttl.
                if local != "half_open":
                    self._lease_since = None
                elif now - self._lease_since >= self._probe_ttl and not self._probing():
                    with self._lock:
                        self._apply_local("forced_open")
                        self._lease_since = None
                else:
                    if not self._call("renew", self._gen)[4]:
                        with self._lock:
                            self._lease_since = None
                            self._apply_local("forced_open")
                    talked = True
            elif (
                local == "forced_open"
                and self._fleet_state in ("open", "half_open")
                and delta[3] > 0
                and now >= self._open_until
            ):
                reply = self._call("probe", self._gen)
                talked = True
                if int(reply[4]):
                    with self._lock:
                        # Unless a newer fleet change was applied meanwhile (it dropped the
                        # lease in Redis), probe: half-open the local breaker.
                        if int(reply[2]) == self._gen and str(
                            reply[1].decode() if isinstance(reply[1], bytes) else reply[1]
                        ) == (self._epoch or ""):
                            self._lease_since = now
                            self._fleet_state = "half_open"
                            self._apply_local("half_open")
                else:
                    self._reply(reply)
            if force_get or (not talked and now - self._last_get >= self._resync_interval):
                self._resync.clear()
                self._reply(self._call("get"))
                talked = True
            if talked:
                self._last_get = now
        except RedisError as exc:
            self.store_breaker.record(permit, exc)
            self.store_errors += 1
            self._outage()
            return False
        self.store_breaker.record(permit)
        return True

    def _probing(self) -> bool:
        return int(_native.CircuitBreaker.metrics(self)["half_open_in_flight"]) > 0

    def _outage(self) -> None:
        with self._lock:
            if not self._store_ok:
                return
            self._events.clear()
            self._lease_since = None
            local = _native.CircuitBreaker.state.__get__(self)
            if self._policy == "open":
                self._apply_local("disabled")
            elif self._policy == "closed":
                self._apply_local("forced_open")
            elif local == "forced_open" and self._fleet_state != "closed":
                self._apply_local("open")  # the fleet's open becomes a local one
            # Last, so that whoever sees store_available False sees the policy applied.
            self._store_ok = False

    def _recover(self) -> None:
        """Redis answers again: resync (see the module docs). Raises RedisError."""
        local = _native.CircuitBreaker.state.__get__(self)
        reply = None
        if self._policy == "local" and local in ("open", "half_open"):
            reply = self._call("trip", -1)
        if reply is None or not int(reply[4]):
            reply = self._call("get")
        with self._lock:
            self._events.clear()
            self._base = self._counters(_native.CircuitBreaker.metrics(self))
            self._reply(reply, force=True)
            # Last, so that whoever sees store_available True sees the fleet state applied.
            self._store_ok = True


def _stop_threads(stop: threading.Event, wake: threading.Event) -> None:
    """Finalizer of a breaker dropped without close(): its threads end."""
    stop.set()
    wake.set()


def _flush_loop(ref: weakref.ref[CircuitBreaker]) -> None:
    """The flusher thread: holds the breaker only while it flushes."""
    b = ref()
    if b is None:
        return
    stop, wake, interval = b._stop, b._wake, b._flush_interval
    del b
    while not stop.is_set():
        wake.wait(interval)
        wake.clear()
        b = ref()
        if b is None or stop.is_set():
            break
        try:
            with b._flush_lock:
                b._flush_once(force_get=b._resync.is_set())
        except Exception:  # pragma: no cover - never let the flusher die
            import logging

            logging.getLogger("fastbreaker").exception("fleet breaker flusher")
        finally:
            del b


def _subscribe_loop(ref: weakref.ref[CircuitBreaker]) -> None:
    """The subscriber thread: holds the breaker only while it applies a message."""
    b = ref()
    if b is None:
        return
    stop, wake, resync, subscribed = b._stop, b._wake, b._resync, b._subscribed
    client, channel, pause = b._redis, b.channel, min(b._store_retry, 0.5)
    del b
    pubsub = None
    while not stop.is_set():
        try:
            if pubsub is None:
                pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(channel)
                subscribed.set()
                resync.set()
                wake.set()
            msg = pubsub.get_message(timeout=0.1)
            if msg is None or msg.get("type") != "message":
                continue
            data = msg["data"]
            text = data.decode() if isinstance(data, bytes) else str(data)
            parts = text.split("|")
            b = ref()
            if b is None:
                break
            try:
                if len(parts) == 4:
                    b._apply(parts[0], parts[1], int(parts[2]), int(parts[3]))
            finally:
                del b
        except (RedisError, OSError, ValueError):
            if pubsub is not None:
                try:
                    pubsub.close()
                except Exception:  # pragma: no cover - closing a dead connection
                    pass
                pubsub = None
            stop.wait(pause)
    if pubsub is not None:
        try:
            pubsub.close()
        except Exception:  # pragma: no cover - closing a dead connection
            pass


class _Closing:
    """``with breaker.closing():`` closes the breaker at the end of the block."""

    __slots__ = ("breaker",)

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def __enter__(self) -> CircuitBreaker:
        return self.breaker

    def __exit__(self, *exc: object) -> None:
        self.breaker.close()


_FLEET_KEYWORDS = frozenset(
    {
        "on_store_error",
        "flush_interval",
        "flush_at",
        "prefix",
        "timeout",
        "store_retry",
        "probe_ttl",
        "resync_interval",
        "fleet_window",
    }
)
