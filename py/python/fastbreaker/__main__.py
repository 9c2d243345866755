"""``python -m fastbreaker demo [--duration SECONDS] [--threads N]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastbreaker")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="live demo against a flaky local HTTP service")
    demo.add_argument("--duration", type=float, default=20.0, help="seconds (default 20)")
    demo.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    args = parser.parse_args(argv)
    from .demo import run

    return run(duration=args.duration, threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
