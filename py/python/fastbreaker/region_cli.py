"""``python -m fastbreaker region ls|show|unlink NAME``: look into shared regions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Optional, TextIO

from ._region import SharedRegion

_PREFIX = "fastbreaker."
_COUNTS = (
    "permitted",
    "rejected",
    "succeeded",
    "failed",
    "trips",
    "available",
    "burst",
    "max_concurrent",
    "in_flight",
    "peak",
    "acquired",
)


def region_names(dir: Optional[str] = None) -> list[str]:
    """The regions in ``dir`` (default /dev/shm) that this user can see, by name."""
    where = dir or "/dev/shm"
    try:
        entries = os.listdir(where)
    except FileNotFoundError:
        return []
    return sorted(e[len(_PREFIX) :] for e in entries if e.startswith(_PREFIX))


def _line(slot: dict[str, Any]) -> str:
    counts = " ".join(f"{k}={slot[k]}" for k in _COUNTS if k in slot)
    held = slot.get("held")
    if held:
        counts += " held=" + ",".join(f"pid{pid}:{n}" for pid, n in sorted(held.items()))
    if slot.get("state") == "open":
        counts += f" retry_after={slot['retry_after']:.3f}s"
    if "reason" in slot:
        counts += f" reason={slot['reason']}"
    name = slot["name"] if slot["name"] is not None else "-"
    return (
        f"{slot['index']:>5}  {slot['kind']:<13} {name:<24} {slot.get('state', '-'):<10} {counts}"
    )


def show(name: str, dir: Optional[str], out: TextIO, as_json: bool = False) -> int:
    """Prints every primitive of region ``name`` with its state and counts."""
    region = SharedRegion(name, dir=dir, create=False)
    slots = region.slots()
    if as_json:
        json.dump(
            {"name": name, "path": region.path, "capacity": region.capacity, "slots": slots},
            out,
            indent=2,
            default=str,
        )
        out.write("\n")
        return 0
    out.write(f"region {name}: {region.path}, {len(slots)} of {region.capacity} slots used\n")
    out.write(f"{'index':>5}  {'kind':<13} {'name':<24} {'state':<10} counts\n")
    for slot in slots:
        out.write(_line(slot) + "\n")
    return 0


def main(argv: list[str], out: TextIO = sys.stdout) -> int:
    """Runs ``region ls|show|unlink``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m fastbreaker region")
    parser.add_argument(
        "--dir", default=None, help="directory of the region files (default /dev/shm)"
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("ls", help="list the regions, or the primitives of one").add_argument(
        "name", nargs="?"
    )
    show_p = sub.add_parser("show", help="every primitive of a region with its state and counts")
    show_p.add_argument("name")
    show_p.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("unlink", help="remove a region's file").add_argument("name")
    args = parser.parse_args(argv)
    from ._native import RegionError

    try:
        if args.action == "ls" and args.name is None:
            for found in region_names(args.dir):
                try:
                    region = SharedRegion(found, dir=args.dir, create=False)
                    out.write(
                        f"{found}  {region.path}  {len(region.slots())}/{region.capacity} slots\n"
                    )
                except RegionError as exc:
                    out.write(f"{found}  unreadable: {exc}\n")
            return 0
        if args.action in ("ls", "show"):
            return show(args.name, args.dir, out, getattr(args, "json", False))
        removed = SharedRegion.unlink(args.name, dir=args.dir)
        out.write(f"{'removed' if removed else 'no region'} {args.name}\n")
        return 0 if removed else 1
    except RegionError as exc:
        sys.stderr.write(f"region {args.name}: {exc}\n")
        return 1
