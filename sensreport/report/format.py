"""Formatting for people: numbers, shares, tolerances, dates, and text made safe for plotly and CSV."""

from __future__ import annotations

from typing import Any
import html
import json
import math

import numpy as np


def format_number(value: Any, digits: int = 4) -> str:
    """A number for people: 4 significant digits, scientific when very small or large."""
    if value is None:
        return "—"
    v = float(value)
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("∞" if v > 0 else "−∞")
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}g}"
    return f"{v:.{digits - 1}e}"


def percent(share: float) -> str:
    """A share as a percentage that never rounds a partial share to 0% or 100%."""
    if share is None or not math.isfinite(share):
        return "—"
    p = 100 * share
    if p in (0, 100):
        return f"{p:.0f}%"
    if p > 99.5:
        return f"{min(p, 99.99):.2f}%"
    return f"{p:.0f}%" if p >= 9.5 else f"{p:.1f}%" if p >= 0.1 else "<0.1%"


def tolerance_text(v: float) -> str:
    """A tolerance as written in a spec: ``2e-3`` rather than ``0.002`` or ``2.000e-03``."""
    m, e = f"{float(v):.6e}".split("e")
    return f"{float(m):g}e{int(e)}"


def count_text(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def markdown(text: str):
    """Markdown to HTML with raw HTML disabled (it is shown as text) and unsafe links refused."""
    import markupsafe
    from markdown_it import MarkdownIt

    return markupsafe.Markup(MarkdownIt("commonmark", {"html": False}).render(text or ""))


def round_list(a: np.ndarray, sig: int = 6) -> list:
    """Nested lists with ``sig`` significant digits and None for non-finite values (keeps the page small)."""
    arr = np.asarray(a, dtype=np.float64)
    flat = _rounded(arr.ravel(), sig)
    if not np.isfinite(arr).all():
        for i in np.flatnonzero(~np.isfinite(arr.ravel())).tolist():
            flat[i] = None
    if arr.ndim == 0:
        return flat[0]
    out: Any = flat
    for size in reversed(arr.shape[1:]):
        out = [out[i:i + size] for i in range(0, len(out), size)]
    return out


def to_json(data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def plotly_text(text: str) -> str:
    """A user string for plotly, which renders a subset of HTML in labels: shown as text."""
    return html.escape(str(text), quote=False)


def csv_cell(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; a leading ' keeps them text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def exact(v: float, sig: int | None = None) -> str:
    """Python's shortest round-trip repr (as in results.json), or ``sig`` digits; empty when not finite."""
    v = float(v)
    if not math.isfinite(v):
        return ""
    return repr(v) if sig is None else repr(float(f"{v:.{sig}g}"))


def exact_column(values: np.ndarray, sig: int | None = None) -> list[str]:
    """:func:`exact` of every value (the same text), without a function call per value."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    out = list(map(repr, arr.tolist() if sig is None else _rounded(arr, sig)))
    if not np.isfinite(arr).all():
        for i in np.flatnonzero(~np.isfinite(arr)).tolist():
            out[i] = ""
    return out


def _rounded(flat: np.ndarray, sig: int) -> list[float]:
    """``float(f"{v:.{sig}g}")`` of every value of a 1-d array, mapped by C-level calls
    (no Python loop body per value); non-finite values come back as they are."""
    return list(map(float, map(f"{{:.{sig}g}}".format, flat.tolist())))


def date_text(iso: str | None) -> str:
    """``2026-11-27T06:33:03+00:00`` as ``27 Nov 2026, 06:33 UTC``."""
    import datetime as dt

    if not iso:
        return "—"
    try:
        d = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if d.utcoffset() == dt.timedelta(0):
        return f"{d:%d %b %Y, %H:%M} UTC"
    return f"{d:%d %b %Y, %H:%M %z}"


def shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def css_string(text: str):
    """``text`` as a quoted CSS string (for ``content:`` in a ``<style>``): every character but
    letters, digits and spaces is a CSS escape, so nothing can end the string or the style element."""
    import markupsafe

    body = "".join(c if (c.isascii() and c.isalnum()) or c == " " else f"\\{ord(c):x} " for c in str(text))
    return markupsafe.Markup(f'"{body}"')


def plain(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {plain(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"  # as the checks' messages write it: one spelling of a tolerance per row
    return str(value)


def join_words(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
