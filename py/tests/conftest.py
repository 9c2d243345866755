from __future__ import annotations

import random
import threading
from typing import Any, Callable, Sequence

import pytest

from fastbreaker import Listener

# The real redis-server fixtures (redis_server, redis_url) of the fleet-mode tests.
pytest_plugins = ("redis_server",)


class Recorder(Listener):
    """Collects every listener event."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_state_change(self, name: str, old: str, new: str) -> None:
        self.events.append(("state", name, old, new))

    def on_failure(self, name: str, exc: BaseException) -> None:
        self.events.append(("failure", name, type(exc).__name__))

    def on_rejection(self, name: str, exc: BaseException) -> None:
        self.events.append(("rejection", name, type(exc).__name__))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def run_mixed_calls(
    ways: Sequence[Callable[[int], Any]],
    threads: int,
    calls: int,
    expected: tuple[type[BaseException], ...],
) -> None:
    """``threads`` threads each make ``calls`` calls, each through a random one of ``ways``
    with a random kind (0 success, 1 failure, 2 excluded: 2 in 6, 3 in 6, 1 in 6), seeded per
    thread; errors in ``expected`` are the calls' own, anything else fails the test."""
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(calls):
                try:
                    rng.choice(ways)(rng.choice((0, 0, 1, 1, 1, 2)))
                except expected:
                    pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(seed,)) for seed in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
