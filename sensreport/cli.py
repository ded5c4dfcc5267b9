"""The command line: parse arguments, call the library, map errors to exit codes.

Exit codes: 0 success; 2 bad spec or input; 3 a computation failed (a method failed
or produced NaN/Inf; the report is written and says which) or could not run (memory);
4 an unexpected internal error.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import click

from .errors import EXIT_COMPUTE_FAILED, EXIT_INTERNAL, SensreportError


def _fail(exc: BaseException, debug: bool) -> None:
    if isinstance(exc, SensreportError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    if debug:
        traceback.print_exc()
    click.echo(
        f"internal error: {type(exc).__name__}: {exc}. This is a bug in sensreport; rerun with --debug "
        "for the traceback.",
        err=True,
    )
    sys.exit(EXIT_INTERNAL)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sensreport")
def main() -> None:
    """Sensitivity reports for TensorFlow models: Jacobians, gradients and finite differences."""


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Output folder (default: the spec's report.dir).")
@click.option("--plotlyjs", type=click.Choice(["inline", "cdn"]), help="Embed plotly.js (inline, works offline) or load it from a CDN.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final one-line summary.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def run(spec: str, out: str | None, plotlyjs: str | None, quiet: bool, debug: bool) -> None:
    """Run SPEC and write report.html, results.json and arrays.npz."""
    from .runner import run as run_spec
    from .spec import load_spec

    started = time.perf_counter()
    try:
        parsed = load_spec(spec)
        if not quiet:
            click.echo(f"sensreport: running {spec}", err=True)
        result = run_spec(parsed, out, plotlyjs=plotlyjs, command=["sensreport", *sys.argv[1:]], progress=not quiet)
    except Exception as exc:  # noqa: BLE001 - mapped to a message and an exit code
        _fail(exc, debug)
        return
    where = out or str(parsed.report_dir)
    elapsed = time.perf_counter() - started
    methods = ", ".join(f"{k} {m.status}" for k, m in result.methods.items())
    click.echo(f"sensreport: {result.status}: {methods}; wrote {where}/report.html in {elapsed:.1f} s")
    if result.status != "ok":
        for line in result.problems():
            click.echo(f"  {line}", err=True)
        sys.exit(EXIT_COMPUTE_FAILED)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def validate(spec: str, debug: bool) -> None:
    """Check SPEC without loading the model or computing anything."""
    from .spec import load_spec

    try:
        parsed = load_spec(spec)
    except Exception as exc:  # noqa: BLE001
        _fail(exc, debug)
        return
    methods = [m for m, on in (("jacobian", parsed.jacobian_mode), ("rows", parsed.rows_outputs),
                               ("finite_difference", parsed.fd_scheme)) if on]
    click.echo(f"{spec}: valid ({parsed.model.kind} model, {parsed.points.kind} points, methods: {', '.join(methods)})")


@main.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editor completion and validation)."""
    from .spec import schema as spec_schema

    click.echo(json.dumps(spec_schema(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
