"""Locks that a forked child gets back unlocked.

A ``threading.Lock`` held by another thread when the process forks stays locked in the
child, where that thread does not exist: the child's first use of it waits forever (a
health-probe thread plus ``gunicorn --preload`` is enough). So every lock of the package is
made by ``fork_safe_lock(owner, attribute)``, which stores a plain lock in that attribute
(no cost on use) and remembers it; after a fork, the child (``os.register_at_fork``) puts a
fresh lock in every such attribute. Whatever a critical section interrupted by the fork was
doing in the parent is simply not done in the child; the tables these locks guard stay
usable (each change to them is one dict operation).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Union

_Lock = Union["threading.Lock", "threading.RLock"]

# Owners by (id, attribute, reentrant); an entry goes with its owner.
_OWNERS: weakref.WeakValueDictionary[tuple[int, str, bool], Any] = weakref.WeakValueDictionary()


def _new(reentrant: bool) -> Any:
    return threading.RLock() if reentrant else threading.Lock()


def fork_safe_lock(owner: Any, attribute: str, *, reentrant: bool = False) -> Any:
    """Sets ``owner.<attribute>`` to a new ``threading.Lock`` (``RLock`` if ``reentrant``)
    that a forked child replaces with a fresh one; returns it. ``owner`` may be a module."""
    lock = _new(reentrant)
    setattr(owner, attribute, lock)
    _OWNERS[(id(owner), attribute, reentrant)] = owner
    return lock


def _after_fork_in_child() -> None:
    for (_, attribute, reentrant), owner in list(_OWNERS.items()):
        setattr(owner, attribute, _new(reentrant))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
