from __future__ import annotations

from typing import Any

import pytest

from fastbreaker import Listener


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
