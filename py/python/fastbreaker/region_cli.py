"""``python -m fastbreaker region ls|show|unlink NAME``: look into shared regions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Optional, TextIO

from ._region import SharedRegion

_PREFIX = "fastbreaker."
_KEYED_INFIX = ".keyed."
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
    """The regions in ``dir`` (default /dev/shm) that this user can see, by name (not
    their keyed tables' files, ``fastbreaker.<region>.keyed.<table>``: no region's name
    contains ``.keyed.``)."""
    where = dir or "/dev/shm"
    try:
        entries = os.listdir(where)
    except FileNotFoundError:
        return []
    names = (e[len(_PREFIX) :] for e in entries if e.startswith(_PREFIX))
    return sorted(n for n in names if _KEYED_INFIX not in n)


#: What ``keyed_tables`` reports of each table, in this order.
_KEYED_FIELDS = (
    "name",
    "capacity",
    "live_keys",
    "rate",
    "per",
    "burst",
    "when_full",
    "allowed",
    "limited",
    "full_rejected",
    "full_admitted",
)


#: The first bytes of a keyed-namespace file holding ``limits`` counters
#: (``fastbreaker+shm://``, core ``shm::counters``) rather than token buckets.
COUNTERS_MAGIC = b"FBKEYCNT"


def is_counters_table(region: SharedRegion, name: str) -> bool:
    """Whether the keyed-namespace table ``name`` of ``region`` holds ``limits`` counters
    (the storage of ``fastbreaker.limits_storage``) rather than token buckets."""
    try:
        with open(f"{region.path}{_KEYED_INFIX}{name}", "rb") as f:
            return f.read(len(COUNTERS_MAGIC)) == COUNTERS_MAGIC
    except OSError:
        return False


def counters_tables(region: SharedRegion) -> list[dict[str, Any]]:
    """The ``limits`` counter tables beside ``region`` (``fastbreaker+shm://<region>``), each
    as its name, file path and size in bytes."""
    out: list[dict[str, Any]] = []
    for name in region.keyed_tables():
        if is_counters_table(region, name):
            path = f"{region.path}{_KEYED_INFIX}{name}"
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            out.append({"name": name, "path": path, "size": size})
    return out


def keyed_tables(region: SharedRegion) -> list[dict[str, Any]]:
    """Each keyed table of ``region`` (files beside the region's, sorted by name), read now
    with the configuration its file holds: name, capacity, live_keys (keys holding tokens
    now: a scan of the table), rate, per, burst, when_full and the counters every process
    shares (allowed, limited, full_rejected, full_admitted), or, for a table that cannot be
    read, its name and ``error``."""
    from ._native import RegionError

    out: list[dict[str, Any]] = []
    for name in region.keyed_tables():
        if is_counters_table(region, name):
            continue  # limits counters: see counters_tables
        try:
            m = region.keyed_table(name).metrics()
        except RegionError as exc:
            out.append({"name": name, "error": str(exc)})
            continue
        out.append({k: m[k] for k in _KEYED_FIELDS})
    return out


def _keyed_line(t: dict[str, Any]) -> str:
    if "error" in t:
        return f"keyed  {t['name']:<24} unreadable: {t['error']}"
    return (
        f"keyed  {t['name']:<24} capacity={t['capacity']} live_keys={t['live_keys']} "
        f"rate={t['rate']:g}/{t['per']:g}s burst={t['burst']} when_full={t['when_full']} "
        f"allowed={t['allowed']} limited={t['limited']} "
        f"table_full={t['full_rejected'] + t['full_admitted']} "
        f"(rejected={t['full_rejected']} admitted={t['full_admitted']})"
    )


def _counters_line(t: dict[str, Any]) -> str:
    return f"counters {t['name']:<22} limits storage (fastbreaker+shm), {t['size']} bytes"


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
    tables = keyed_tables(region)
    counters = counters_tables(region)
    if as_json:
        json.dump(
            {
                "name": name,
                "path": region.path,
                "capacity": region.capacity,
                "slots": slots,
                "keyed_tables": tables,
                "counters_tables": counters,
            },
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
    if tables:
        out.write(f"{len(tables)} keyed table{'s' if len(tables) != 1 else ''}:\n")
        for t in tables:
            out.write(_keyed_line(t) + "\n")
    if counters:
        out.write(f"{len(counters)} limits counter table{'s' if len(counters) != 1 else ''}:\n")
        for t in counters:
            out.write(_counters_line(t) + "\n")
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
                    tables = keyed_tables(region)
                    counters = counters_tables(region)
                    out.write(
                        f"{found}  {region.path}  {len(region.slots())}/{region.capacity} slots"
                        f"  {len(tables)} keyed tables"
                        + (f"  {len(counters)} limits counter tables" if counters else "")
                        + "\n"
                    )
                    for t in tables:
                        out.write("  " + _keyed_line(t) + "\n")
                    for t in counters:
                        out.write("  " + _counters_line(t) + "\n")
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
