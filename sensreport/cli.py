"""The command line: parse arguments, call the library, map errors to exit codes.

Exit codes: 0 success; 1 a check failed (``--fail-on warn``: or warned); 2 bad spec or
input; 3 a computation failed (a method failed; the report is written and says which)
or could not run (memory, ``--timeout``, a full disk); 4 an unexpected internal error.
With a time limit ``run`` works in a child process it kills at the limit
(:mod:`sensreport.supervisor`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
import traceback

import click

from .errors import EXIT_INTERNAL, SensreportError
from .spec import MEASURES


def _fail(exc: BaseException, debug: bool, spec=None) -> None:
    if isinstance(exc, SensreportError):
        if spec is not None and exc.key:
            from .spec.parse import line_of

            line = line_of(spec.lines, exc.key)
            if line is not None:
                exc.at(line, str(spec.path) if spec.path else None)
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


class _Main(click.Group):
    """The command group. It remembers the arguments it was invoked with (``sys.argv[1:]``
    from a shell, the list given when called in-process), for the reproduce command."""

    invoked_args: list[str] = []

    def main(self, args=None, *rest, **kwargs):
        self.invoked_args = [str(a) for a in (sys.argv[1:] if args is None else args)]
        return super().main(args, *rest, **kwargs)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sensreport")
def main() -> None:
    """Sensitivity reports for TensorFlow models: Jacobians, gradients and finite differences."""


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Output folder (default: the spec's report.dir).")
@click.option("--plotlyjs", type=click.Choice(["inline", "cdn"]), help="Embed plotly.js (inline, works offline) or load it from a CDN.")
@click.option("--baseline", type=click.Path(dir_okay=False), help="A previous run's results.json to compare with.")
@click.option("--fail-on", type=click.Choice(["fail", "warn"]), default="fail", show_default=True,
              help="Exit 1 on failing checks only, or on warnings too.")
@click.option("--engine", type=click.Choice(["local", "ray"]), help="Override execution.engine.")
@click.option("--ray-address", help="Override execution.ray.address (auto, ray://host:port).")
@click.option("--workers", type=click.IntRange(min=1), help="Override execution.ray.workers.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Stop the run after SECONDS (exit 3, nothing written); overrides execution.timeout; 0: no limit.")
@click.option("--mlflow", is_flag=True,
              help="Log the run to MLflow (report, results, spec, verdict, measures, checks); see report.mlflow.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final one-line summary.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.option("--worker-fd", type=int, hidden=True)  # the supervised child's link (sensreport.supervisor)
@click.option("--command-line", hidden=True)  # the supervised child: the command the user typed
def run(spec: str, out: str | None, plotlyjs: str | None, baseline: str | None, fail_on: str, engine: str | None,
        ray_address: str | None, workers: int | None, timeout: float | None, mlflow: bool, quiet: bool, debug: bool,
        worker_fd: int | None, command_line: str | None) -> None:
    """Run SPEC and write report.html, results.json and arrays.npz.

    Exit codes: 0 success, 1 a check failed, 2 bad spec or input, 3 a computation
    failed (or ran past --timeout), 4 internal error.
    """
    from . import deadline
    from .runner import run as run_spec
    from .spec import load_spec

    started = time.perf_counter()
    command = json.loads(command_line) if command_line else ["sensreport", *main.invoked_args]
    link = contextlib.nullcontext()
    if worker_fd is not None:
        from .supervisor import ParentLink

        link = ParentLink(worker_fd)
    parsed = None
    try:
        with link:
            deadline.stage("reading the spec")
            parsed = load_spec(spec)
            ray_overrides = {k: v for k, v in (("address", ray_address), ("workers", workers)) if v is not None}
            if engine or ray_overrides:
                parsed = dataclasses.replace(parsed, engine=engine or parsed.engine,
                                             ray={**parsed.ray, **ray_overrides})
            limit = parsed.timeout if timeout is None else timeout
            if limit and worker_fd is None:
                _check_inputs(parsed, baseline)  # bad input is exit 2, whatever the time limit
                args = {"out": out, "plotlyjs": plotlyjs, "baseline": baseline, "fail_on": fail_on,
                        "engine": engine, "ray_address": ray_address, "workers": workers, "quiet": quiet,
                        "debug": debug, "mlflow": mlflow}
                code = _supervised(spec, args, command, limit, "--timeout" if timeout is not None
                                   else "execution.timeout", parsed, out)
                sys.exit(code)
            if not quiet:
                click.echo(f"sensreport: running {spec}", err=True)
            result = run_spec(parsed, out, plotlyjs=plotlyjs, command=command, progress=not quiet,
                              baseline=baseline, fail_on=fail_on, timeout=0 if worker_fd is not None else limit,
                              mlflow=True if mlflow else None)
    except Exception as exc:  # noqa: BLE001 - mapped to a message and an exit code
        _fail(exc, debug, parsed)
        return
    elapsed = time.perf_counter() - started
    click.echo(summary_line(result, elapsed))
    if result.mlflow and not quiet:
        click.echo(f"sensreport: logged to MLflow run {result.mlflow['run_id']} ({result.mlflow['tracking_uri']})",
                   err=True)
    for c in result.checks:
        if c.status not in ("pass", "info") and not (quiet and c.status == "warn"):
            click.echo(f"  {c.status.upper()} {c.id}: {c.message}", err=True)
    sys.exit(result.verdict.exit_code)


def _supervised(spec: str, args: dict, command: list[str], limit: float, key: str, parsed, out: str | None) -> int:
    """Run this command in a child process killed past ``limit`` seconds (see
    :mod:`sensreport.supervisor`); return its exit code."""
    import datetime as _dt
    from pathlib import Path

    from .deadline import timeout_message
    from .errors import ComputeError
    from .outputs import Outputs
    from .supervisor import supervise

    argv = ["run", spec, "--timeout", "0", "--command-line", json.dumps(command)]
    for name, value in args.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif value is not None:
            argv += [flag, str(value)]

    def cleanup() -> None:  # what the killed child left behind (its process is gone: stale)
        Outputs(Path(out) if out else parsed.report_dir, _dt.datetime.now()).clean()

    def on_timeout(stage: str) -> ComputeError:
        return ComputeError(key, timeout_message(limit, stage))

    return supervise(argv, limit, on_timeout, cleanup, stdout=sys.stdout, stderr=sys.stderr)


def summary_line(result, elapsed: float) -> str:
    """The CLI's one-line summary: the verdict the exit code follows, methods and checks."""
    methods = ", ".join(f"{k} {m.status}" for k, m in result.methods.items())
    counts = {s: sum(c.status == s for c in result.checks) for s in ("fail", "error", "warn", "info", "pass")}
    checks = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "none"
    return (f"sensreport: {result.verdict.headline} (exit {result.verdict.exit_code}); {methods}; checks: {checks}; "
            f"wrote {result.out_dir}/report.html in {elapsed:.1f} s")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def validate(spec: str, debug: bool) -> None:
    """Check SPEC and what it names (points, baseline) without loading the model or computing anything."""
    from .spec import load_spec

    parsed = None
    try:
        parsed = load_spec(spec)
        _check_inputs(parsed)
    except Exception as exc:  # noqa: BLE001
        _fail(exc, debug, parsed)
        return
    methods = [m for m, on in (("jacobian", parsed.jacobian_mode), ("rows", parsed.rows_outputs),
                               ("finite_difference", parsed.fd_scheme), ("discrete", parsed.discrete)) if on]
    click.echo(f"{spec}: valid ({parsed.model.kind} model, {parsed.points.kind} points, methods: {', '.join(methods)})")


def _check_inputs(parsed, baseline: str | None = None) -> None:
    """What a run reads before the model, checked without loading it: the baseline's
    structure and the points (CSV header, numbers, size against the memory budget)."""
    from pathlib import Path

    from .checks import baseline_document
    from .engine.runtime import default_memory_budget
    from .inputs.points import load_points
    from .spec import default_checks

    config = parsed.checks if baseline is None else default_checks(parsed.raw.get("checks"), Path.cwd(), baseline)
    baseline_document(config)
    points = load_points(parsed.points, parsed.input_names, budget=parsed.memory_budget or default_memory_budget())
    if parsed.model.kind == "callable":  # a callable takes numbers only; a Keras model may take text inputs
        points.numeric()


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Index page to write (default: FOLDER/index.html).")
@click.option("--measure", type=click.Choice(list(MEASURES)), default=None,
              help="Measure whose top inputs are drawn over time (default: the newest run's leading measure).")
@click.option("--plotlyjs", type=click.Choice(["inline", "cdn"]), default="inline", show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def history(folder: str, out: str | None, measure: str, plotlyjs: str, debug: bool) -> None:
    """Build an index page over every run found below FOLDER."""
    from .report.history import write_history

    skipped: list[str] = []
    try:
        path, count = write_history(folder, out, measure, plotlyjs, skipped)
    except Exception as exc:  # noqa: BLE001
        _fail(exc, debug)
        return
    for reason in skipped:
        click.echo(f"sensreport: skipped {reason}", err=True)
    click.echo(f"sensreport: {count} run{'s' if count != 1 else ''}; wrote {path}")


@main.command()
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--out", "-o", type=click.Path(dir_okay=False), default="comparison.html", show_default=True)
@click.option("--measure", type=click.Choice(list(MEASURES)), default=None,
              help="Measure to compare (default: run B's leading measure).")
@click.option("--plotlyjs", type=click.Choice(["inline", "cdn"]), default="inline", show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def compare(a: str, b: str, out: str, measure: str, plotlyjs: str, debug: bool) -> None:
    """Compare run A (before) with run B (after): each a run folder or its results.json."""
    from .report.history import write_comparison

    try:
        path = write_comparison(a, b, out, measure, plotlyjs)
    except Exception as exc:  # noqa: BLE001
        _fail(exc, debug)
        return
    click.echo(f"sensreport: wrote {path}")


@main.command()
@click.option("--results", is_flag=True, help="The schema of results.json instead of the spec's.")
def schema(results: bool) -> None:
    """Print the spec's JSON Schema (for editor completion and validation), or results.json's."""
    if results:
        from .results_schema import results_schema

        click.echo(json.dumps(results_schema(), indent=2))
        return
    from .spec import schema as spec_schema

    click.echo(json.dumps(spec_schema(), indent=2))


@main.command()
@click.argument("results", type=click.Path())
@click.option("--markdown", is_flag=True, help="Markdown (for a CI job summary) instead of plain text.")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Top inputs listed per output.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def summary(results: str, markdown: bool, top: int, debug: bool) -> None:
    """Print a run's verdict, top inputs and the checks that did not pass.

    RESULTS is a results.json or a run folder. It shows what the run decided (its
    verdict and checks), never judges again, and exits 0 whatever the verdict
    (2 when RESULTS cannot be read). In a GitHub workflow:
    sensreport summary reports/latest --markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from .summarize import read_results, summarize

    try:
        text = summarize(read_results(results), markdown=markdown, top=top)
    except Exception as exc:  # noqa: BLE001
        _fail(exc, debug)
        return
    click.echo(text, nl=False)


def entry() -> None:
    """The ``sensreport`` command (console script, ``python -m sensreport``): :func:`main`,
    then the process ends.

    Before it ends, every object is moved out of the garbage collector's reach
    (:func:`gc.freeze`): the collections Python makes while it shuts down would walk
    TensorFlow's and Keras's objects, about 1.5 s after a run on a 2-core machine, to
    free memory the operating system takes back at once anyway. Exit handlers still run
    (logging, MLflow, Ray) and every file is closed by then. The objects alive before the
    command are frozen too, and TensorFlow's join them when it is imported
    (:func:`sensreport.engine.tensorflow`): the collector's passes during the run then
    walk only the run's own objects (a run unfreezes its own freeze when it ends, and the
    next full pass walked everything again: 0.3-0.4 s). Only the process entry point does
    this: calling :func:`main` in-process (tests, notebooks) leaves the collector alone.
    """
    import gc

    gc.freeze()
    try:
        main(prog_name="sensreport")
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover - the supervised child (sensreport.supervisor)
    entry()
