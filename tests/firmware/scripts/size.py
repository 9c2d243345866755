#!/usr/bin/env python3
"""What one breaker (64-outcome count window) and one token bucket cost on each target.

Builds `size-base` and `size-pair` (src/bin/) in release (opt-level "s", fat LTO) for each
target and prints the difference of their allocated ELF sections:

  code  = read-only sections in flash (.text, .rodata, .eh_frame, ...)
  RAM   = writable sections (.data + .bss), without the linker's .stack/.heap reservations
  flash = code + the .data initializer image (copied to RAM at boot)

The ELF section headers are read here (ELF32 little-endian), so no binutils are needed.
Usage: scripts/size.py [--no-build]   (run from anywhere; exit 1 if a build fails)
"""

import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (target, core, cargo features, how portable-atomic provides 64-bit atomics)
CONFIGS = [
    ("thumbv6m-none-eabi", "Cortex-M0", "critical-section", "critical-section"),
    ("thumbv6m-none-eabi", "Cortex-M0", "single-core", "unsafe-assume-single-core"),
    ("thumbv7m-none-eabi", "Cortex-M3", "single-core", "unsafe-assume-single-core"),
    ("thumbv7m-none-eabi", "Cortex-M3", "", "lock fallback (default)"),
    ("thumbv7em-none-eabihf", "Cortex-M4F", "single-core", "unsafe-assume-single-core"),
    ("thumbv7em-none-eabihf", "Cortex-M4F", "", "lock fallback (default)"),
    ("riscv32imc-unknown-none-elf", "RV32IMC", "critical-section", "critical-section"),
    ("riscv32imc-unknown-none-elf", "RV32IMC", "single-core", "unsafe-assume-single-core"),
]
AIM_CODE, AIM_RAM = 8 * 1024, 160

SHF_WRITE, SHF_ALLOC = 0x1, 0x2
SHT_NOBITS = 8
RESERVATIONS = {".stack", ".heap"}


def sections(path):
    """(name, type, flags, size) of every section of an ELF32 little-endian file."""
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        sys.exit(f"{path}: not an ELF32 little-endian file")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    headers = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = headers[shstrndx][4]

    def name(off):
        end = data.index(b"\0", strtab_off + off)
        return data[strtab_off + off:end].decode()

    return [(name(h[0]), h[1], h[2], h[5]) for h in headers]


def footprint(path):
    code = data = bss = 0
    for name, kind, flags, size in sections(path):
        if not flags & SHF_ALLOC or name in RESERVATIONS:
            continue
        if not flags & SHF_WRITE:
            code += size
        elif kind == SHT_NOBITS:
            bss += size
        else:
            data += size
    return code, data, bss


def build(target, features):
    cmd = ["cargo", "build", "--release", "--quiet", "--target", target,
           "--bin", "size-base", "--bin", "size-pair"]
    if features:
        cmd += ["--features", features]
    subprocess.run(cmd, cwd=HERE, check=True)


def main():
    no_build = "--no-build" in sys.argv
    rows = []
    for target, core, features, atomics in CONFIGS:
        if not no_build:
            build(target, features)
        out = os.path.join(HERE, "target", target, "release")
        base = footprint(os.path.join(out, "size-base"))
        pair = footprint(os.path.join(out, "size-pair"))
        code, data, bss = (p - b for p, b in zip(pair, base))
        rows.append((target, core, atomics, code, data + bss, code + data, data, bss))

    head = ("target", "core", "atomics by", "code", "RAM", "flash", ".data", ".bss", "aim")
    print("One CircuitBreaker<CountWindow64> + one TokenBucket in statics, acquire+record+try_acquire,")
    print('release, opt-level "s", fat LTO; bytes over the same program without them.')
    print(f"aim: code <= {AIM_CODE} B, RAM <= {AIM_RAM} B. code = .text+.rodata (flash), "
          "RAM = .data+.bss, flash = code + .data image.\n")
    table = [head] + [
        (t, c, a, str(code), str(ram), str(flash), str(d), str(b),
         ("ok" if code <= AIM_CODE and ram <= AIM_RAM else
          "code ok, RAM over" if code <= AIM_CODE else "over"))
        for t, c, a, code, ram, flash, d, b in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for i, r in enumerate(table):
        print("  ".join(cell.ljust(w) if j < 3 or j == 8 else cell.rjust(w)
                        for j, (cell, w) in enumerate(zip(r, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
