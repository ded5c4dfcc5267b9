"""The one Jinja environment (autoescaping, ``StrictUndefined``), its templates, and plotly.js."""

from __future__ import annotations

import functools
from pathlib import Path

from ..sizes import format_bytes
from .format import css_string, format_number, markdown, percent, tolerance_text


def template_dir() -> Path:
    """Templates ship in the wheel as ``sensreport/templates``; a source checkout has ``templates/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "templates", here.parent.parent / "templates"):
        if (candidate / "report.html.j2").is_file():
            return candidate
    raise FileNotFoundError("sensreport's templates are missing from the installation")


def seconds_text(s: float | None) -> str:
    return "—" if s is None else (f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s")


@functools.lru_cache(maxsize=8)
def environment(user_templates: Path | None = None):
    """The Jinja environment, built once (per user template folder).

    A template in ``user_templates`` (``report.templates`` in a spec) replaces the
    built-in one of the same name, partials (``_style.css.j2``, ...) included.
    """
    import jinja2

    loaders = [jinja2.FileSystemLoader(str(template_dir()))]
    if user_templates is not None:
        loaders.insert(0, jinja2.FileSystemLoader(str(user_templates)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["percent"] = percent
    env.filters["tol"] = tolerance_text
    env.filters["seconds"] = seconds_text
    env.filters["markdown"] = markdown
    env.filters["css_string"] = css_string
    env.filters["bytes"] = format_bytes
    return env


def _bytecode_cache():
    """Compiled templates kept between runs (about 0.3 s of every run's rendering), in
    Jinja's per-user temporary folder (``_jinja2-cache-<uid>``, owner-only).

    Each entry is keyed by the template's file and checked against its source, so an
    edited template (a user's own included) is compiled afresh. A cache that cannot be
    read or written costs only the compilation: the report renders as without it.
    """
    import jinja2

    class QuietCache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket):
            try:
                super().load_bytecode(bucket)
            except Exception:  # noqa: BLE001 - a damaged or foreign entry: compile instead
                bucket.reset()

        def dump_bytecode(self, bucket):
            try:
                super().dump_bytecode(bucket)
            except OSError:  # a full disk or a read-only folder: next time compiles again
                pass

    try:
        return QuietCache()
    except (OSError, RuntimeError):  # no private temporary folder to be had
        return None


def plotly_script(plotlyjs: str = "inline") -> dict[str, str]:
    """How a page loads plotly.js: ``{"inline": code}`` (works offline) or ``{"src": CDN url}``."""
    import plotly.offline

    if plotlyjs == "inline":
        return {"inline": plotly.offline.get_plotlyjs().replace("</script", "<\\/script")}
    return {"src": f"https://cdn.plot.ly/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"}
