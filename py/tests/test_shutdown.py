"""Python never aborts: daemon threads inside guarded calls while the interpreter shuts down.

CPython 3.9 to 3.13 end a daemon thread that wants the GIL back during finalization with
``pthread_exit``, a forced unwind of its stack. When that stack held a PyO3 trampoline
(``catch_unwind``) around the call into the user's function, the process died with SIGABRT
("FATAL: exception not rethrown"), 10 times out of 10 for four threads looping over a
decorated function. Each mode below runs such a process many times and wants exit status 0.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    import fastbreaker

    mode = sys.argv[1]
    breaker = fastbreaker.CircuitBreaker("d", failure_threshold=None)
    limiter = fastbreaker.RateLimiter(1e9, burst=1_000_000)
    bulkhead = fastbreaker.Bulkhead(100)
    refusing = fastbreaker.CircuitBreaker("r", fallback=lambda x: x)
    refusing.force_open()

    class Busy:
        def on_failure(self, name, exc):
            total = 0
            for i in range(2000):
                total += i

    listened = fastbreaker.CircuitBreaker("l", failure_threshold=None, listeners=[Busy()])

    @listened
    def failing(x):
        raise ValueError(x)

    def swallow(x):
        try:
            failing(x)
        except ValueError:
            pass

    def work(x):
        total = 0
        for i in range(200):
            total += i
        return total

    calls = {
        "decorator": breaker(work),
        "call": lambda x: breaker.call(work, x),
        "method": fastbreaker.CircuitBreaker("m").call,
        "fallback": refusing(work),
        "limiter": limiter(work),
        "bulkhead": bulkhead(work),
        "listener": swallow,
    }

    def with_breaker(x):
        with breaker:
            return work(x)

    calls["with"] = with_breaker
    fn = calls[mode]
    if mode == "method":
        fn = (lambda call: lambda x: call(work, x))(fn)

    def loop():
        while True:
            fn(1)

    for _ in range(4):
        threading.Thread(target=loop, daemon=True).start()
    time.sleep(0.02)
    """
)

RUNS = {
    "decorator": 20,
    "call": 20,
    "method": 5,
    "fallback": 10,
    "with": 5,
    "limiter": 5,
    "bulkhead": 5,
    "listener": 5,
}


@pytest.mark.parametrize("mode", sorted(RUNS))
def test_daemon_threads_in_guarded_calls_exit_cleanly(mode: str) -> None:
    runs = RUNS[mode]
    done = 0
    while done < runs:
        batch = [
            subprocess.Popen(
                [sys.executable, "-c", SCRIPT, mode],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(min(4, runs - done))
        ]
        for proc in batch:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, (
                f"{mode}: run {done} exited with {proc.returncode}\n{err[-2000:]}"
            )
            done += 1
