"""Per-hit time of limits' strategies on limits' memory:// and on fastbreaker:// and
fastbreaker+shm:// (fastbreaker.limits_storage): a standalone script, not part of
compare.py. Usage: python py/benches/limits_storage_timing.py [hits] [keys]"""

from __future__ import annotations

import sys
import tempfile
import time

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import STRATEGIES

import fastbreaker.limits_storage  # noqa: F401  (registers the schemes)
from fastbreaker import SharedRegion


def main() -> None:
    hits = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    shm = tempfile.mkdtemp(prefix="fb-limits-timing-")
    uris = {
        "memory://": "memory://",
        "fastbreaker://": "fastbreaker://?capacity=65536",
        "fastbreaker+shm://": f"fastbreaker+shm://timing?dir={shm}&capacity=65536",
    }
    item = RateLimitItemPerSecond(100)
    names = [f"client-{i}" for i in range(keys)]
    print(f"{hits} hits over {keys} keys, limit {item}; ns per hit (best of 3)")
    print(f"{'strategy':<24}" + "".join(f"{u:>20}" for u in uris))
    for strategy, cls in STRATEGIES.items():
        row = f"{strategy:<24}"
        for uri in uris.values():
            storage = storage_from_string(uri)
            limiter = cls(storage)
            best = float("inf")
            for _ in range(3):
                storage.reset()
                start = time.perf_counter_ns()
                for i in range(hits):
                    limiter.hit(item, names[i % keys])
                best = min(best, (time.perf_counter_ns() - start) / hits)
            row += f"{best:>20.0f}"
        print(row)
    SharedRegion.unlink("timing", dir=shm)


if __name__ == "__main__":
    main()
