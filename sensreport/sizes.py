"""Byte sizes: parsed from a spec (``4GiB``) and written for people (``1.5 GiB``), one owner."""

from __future__ import annotations

import re


def parse_size(value: int | str) -> int:
    """Bytes from ``4GiB``, ``512MB`` or a plain number; ``ValueError`` when it is none of these."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([KMGT]?)(i?)B?\s*", value)
    if not m:
        raise ValueError(f"not a size: {value!r}")
    number, unit, binary = float(m.group(1)), m.group(2), m.group(3)
    base = 1024 if binary or unit == "" else 1000
    return int(number * base ** " KMGT".index(unit or " "))


def format_bytes(n) -> str:
    """``1.5 GiB``, ``12.0 MiB``, ``3.0 KiB`` or ``512 B``; ``—`` for a missing value."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "—" if n is None else str(n)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"
