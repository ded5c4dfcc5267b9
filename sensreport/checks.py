"""The checks stage: every finding and the run's verdict, decided once.

Each check turns a finding of the run into a :class:`~sensreport.results.CheckResult`
(``pass``; ``info``, ``warn`` or ``fail`` by its severity when its condition is not
met; ``error`` when it could not be evaluated). :func:`decide` turns them into the one
:class:`~sensreport.results.Verdict`. The report, the CLI summary, the exit code,
``history`` and ``compare`` only display what is decided here; a check the spec turns
off (``false``) is not evaluated and appears nowhere.

=====================  ===========================  ========  ================================
check                  spec key                     severity  condition
=====================  ===========================  ========  ================================
``method.<name>``      ``methods.<name>``           fail      the method ran (else ``error``,
                                                              and the run is incomplete)
``nonfinite``          ``checks.nonfinite``         fail      no NaN/Inf in outputs, derivatives
``fd_vs_ad``           ``checks.fd_vs_ad``          fail      ``min_share`` of entries agree
``dead_inputs``        ``checks.dead_inputs``       warn      at most ``max_count`` dead inputs
``ranking_stability``  ``checks.ranking_stability`` info      rankings agree across points
``direction_changes``  ``checks.direction_changes`` info      top inputs act in one direction
``warnings``           ``checks.warnings``          info      the run raised no warning
``baseline.*``         ``checks.baseline``          fail      drift, top-k, rank correlation
=====================  ===========================  ========  ================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .analysis.baseline import MeasureTable, compare, load_baseline
from .analysis.stats import ranking
from .compute.methods import METHODS
from .results import CHECK_STATUSES, CheckResult, RunResult, Verdict

#: ``--fail-on`` values.
FAIL_ON = ("fail", "warn")


def _judge(id_: str, ok: bool, value, threshold, cfg: dict, message: str, *, title: str, key: str,
           items: list[str] | None = None, title_ok: str | None = None) -> CheckResult:
    severity = cfg["severity"]
    status = "pass" if ok else severity  # fail | warn | info
    return CheckResult(id_, status, value, threshold, severity, message, key=key,
                       title=title_ok if ok and title_ok else title, items=list(items or []))


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def _share(s: float) -> str:
    return f"{100 * s:.2f}%".replace(".00%", "%")


def _entry(r: RunResult, point: int, output: int, inputs: int) -> str:
    return f"point #{point}, {r.output_names[output]} / {r.input_names[inputs]}"


def _location(r: RunResult, array: str, loc: list[int]) -> str:
    if array == "outputs" and len(loc) == 2:
        return f"point #{loc[0]}, {r.output_names[loc[1]]}"
    m = r.methods.get(array)
    if m is not None and len(loc) == 3:
        out = m.outputs[loc[1]] if loc[1] < len(m.outputs) else loc[1]
        return _entry(r, loc[0], out, loc[2])
    return str(loc)


# --------------------------------------------------------------------------- the checks
def _methods(r: RunResult, cfg: dict) -> list[CheckResult]:
    return [CheckResult(f"method.{name}", "error", None, None, "fail", f"{name} failed: {m.reason}",
                        key=f"methods.{name}", title=f"{METHODS[name].title} failed")
            for name, m in r.methods.items() if m.status != "ok"]


def _nonfinite(r: RunResult, cfg: dict) -> list[CheckResult]:
    bad = {k: v for k, v in r.nonfinite.items() if v["count"]}
    items = [f"{v['count']:,} in {k} ({v['nan']:,} NaN, {v['inf']:,} infinite); first at "
             + ", ".join(_location(r, k, loc) for loc in v["locations"][:5]) for k, v in bad.items()]
    where = "; ".join(f"{v['count']} in {k} (first at {v['locations'][:1]})" for k, v in bad.items())
    return [_judge("nonfinite", not bad, sum(v["count"] for v in bad.values()), 0, cfg,
                   f"NaN/Inf values: {where}" if bad
                   else "all outputs and derivatives are finite",
                   title="Non-finite values (left out of every measure)", title_ok="All values are finite",
                   key="checks.nonfinite", items=items)]


def _fd_vs_ad(r: RunResult, cfg: dict) -> list[CheckResult]:
    a = r.agreement.summary if r.agreement else None
    threshold = {"max_z": cfg["max_z"], "min_share": cfg["min_share"]}
    if cfg.get("max_rel_error") is not None:
        threshold["max_rel_error"] = cfg["max_rel_error"]
    title = "Finite differences vs automatic derivatives"
    if a is None:
        if not cfg.get("explicit"):
            return []  # the default check needs both methods; an explicit one says why it could not run
        return [CheckResult("fd_vs_ad", "error", None, threshold, cfg["severity"],
                            "needs finite differences and automatic derivatives that both succeeded",
                            key="checks.fd_vs_ad", title=title)]
    smooth, kinks = a["smooth_entries"], a["kinks"]["count"]
    share = a["share_within_tolerance"] if a["share_within_tolerance"] is not None else 1.0
    bad = smooth - round(share * smooth)
    ok = share >= cfg["min_share"]
    extra = f" and a relative error of {cfg['max_rel_error']:g}" if cfg.get("max_rel_error") is not None else ""
    largest = f"{a['max_z']:.3g}" if a["max_z"] is not None else "n/a"
    message = (f"{smooth - bad:,} of {smooth:,} smooth entries ({_share(share)}) agree within {cfg['max_z']:g} "
               f"estimated finite-difference errors{extra} (need {_share(cfg['min_share'])}); largest z {largest}, "
               f"median {a['median_z']:.2g}" if a["median_z"] is not None else
               f"no smooth entry to compare ({kinks:,} on kinks)")
    if kinks:
        message += (f"; {kinks:,} {'entry lies' if kinks == 1 else 'entries lie'} on a kink of the model "
                    f"({_share(a['kinks']['share'] or 0)} of {a['entries']:,}), left out")
    items = [f"{_entry(r, w['point'], w['output'], w['input'])}: automatic {w['ad']:.6g}, finite difference "
             f"{w['fd']:.6g} ± {w['error_estimate']:.2g} (z {w['z']:.3g})"
             for w in a["worst"][:3] if w["z"] > cfg["max_z"]]
    if bad:
        message += ". A wrong derivative: a custom gradient, a gradient TensorFlow defines differently " \
                   "(rounding, stop_gradient), or a bug in the model's gradient code"
        if r.custom_gradients:
            message += (f"; the model defines custom gradients ({', '.join(r.custom_gradients[:3])}), whose "
                        "derivatives then do not describe the function, so its sensitivities would mislead")
    return [_judge("fd_vs_ad", ok, share, threshold, cfg, message, key="checks.fd_vs_ad", items=items,
                   title=f"{title}: {_count(bad, 'entry', 'entries')} disagree" if bad
                   else "Finite differences agree with automatic derivatives")]


def _dead_inputs(r: RunResult, cfg: dict) -> list[CheckResult]:
    if not r.measure_source:
        return []
    names = [r.input_names[j] for j in r.dead_inputs]
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    message = (f"the derivative of every output with respect to {shown} is exactly zero at every point: the "
               "model ignores these inputs here, or a gradient is blocked (stop_gradient, rounding)" if names
               else "every input moves at least one output at some point")
    return [_judge("dead_inputs", len(names) <= cfg["max_count"], len(names), cfg["max_count"], cfg, message,
                   key="checks.dead_inputs", title=_count(len(names), "dead input"), title_ok="No dead inputs")]


def _ranking_stability(r: RunResult, cfg: dict) -> list[CheckResult]:
    st = r.point_stats.stability if r.point_stats else None
    if st is None:
        return []  # one point, fewer than three inputs, or the per-point derivatives were not kept
    rho, ov, k = st["median_spearman"], st["mean_overlap"], r.point_stats.top_k
    lo_rho, lo_ov = cfg["min_spearman"], cfg["min_overlap"]
    unstable = [row for row in range(len(rho)) if (np.isfinite(rho[row]) and rho[row] < lo_rho) or ov[row] < lo_ov]
    what = ("median Spearman correlation between each point's ranking and the overall ranking, and the share of "
            + ("the top input in common" if k == 1 else f"the top {k} inputs in common"))
    items = [f"{r.output_names[r.measure_outputs[row]]}: median Spearman {rho[row]:.2f}, top-{k} overlap "
             f"{_share(ov[row])}" for row in unstable[:10]]
    if len(unstable) > 10:
        items.append(f"and {len(unstable) - 10} more outputs")
    message = (f"the aggregate ranking hides point-to-point differences ({what}); read the per-point heatmaps"
               if unstable else f"for every output, the {what} are at least {lo_rho:g} and {_share(lo_ov)}")
    worst = float(np.nanmin(rho)) if np.isfinite(rho).any() else None
    return [_judge("ranking_stability", not unstable, worst, {"min_spearman": lo_rho, "min_overlap": lo_ov}, cfg,
                   message, key="checks.ranking_stability", items=items,
                   title=f"Ranking changes across points for {_count(len(unstable), 'output')}",
                   title_ok="Rankings are stable across points")]


def _direction_changes(r: RunResult, cfg: dict) -> list[CheckResult]:
    ps = r.point_stats
    lead = r.leading_measure
    if ps is None or ps.negative is None or len(r.points) < 2 or lead is None:
        return []
    minority = cfg["min_minority"]
    items = []
    for row, o in enumerate(r.measure_outputs):
        values = np.asarray(r.measures[lead][row], float)
        for j in [j for j in ranking(values)[:3] if values[j] > 0]:
            if min(ps.positive[row, j], ps.negative[row, j]) >= minority:
                items.append(f"{r.output_names[o]} rises with {r.input_names[j]} at {_share(ps.positive[row, j])} "
                             f"of points and falls at {_share(ps.negative[row, j])}")
    count = len(items)
    if count > 10:
        items = items[:10] + [f"and {count - 10} more"]
    message = ("for these top inputs the sign of the derivative depends on the point, so one average hides two "
               "opposite effects" if count else
               f"each output's top inputs act in one direction at {_share(1 - minority)} or more of the points")
    return [_judge("direction_changes", not count, count, {"min_minority": minority}, cfg, message,
                   key="checks.direction_changes", items=items,
                   title=f"Direction changes across points ({_count(count, 'case')})",
                   title_ok="Directions are consistent")]


def _warnings(r: RunResult, cfg: dict) -> list[CheckResult]:
    return [_judge("warnings", not r.warnings, len(r.warnings), 0, cfg,
                   "what may make the numbers differ from the truth" if r.warnings else "the run raised no warning",
                   key="checks.warnings", items=list(r.warnings),
                   title=f"{_count(len(r.warnings), 'warning')} from the run", title_ok="No warnings from the run")]


def _baseline(r: RunResult, cfg: dict) -> list[CheckResult]:
    comparison = r.baseline
    key = "checks.baseline"
    if comparison is None or "error" in comparison:
        reason = (comparison or {}).get("error", "no measures to compare")
        return [CheckResult("baseline", "error", None, None, cfg["severity"], reason, key=key,
                            title="Comparison with the baseline run")]
    rows = comparison["per_output"]
    drift = max((row["max_rel_change"] or 0.0) for row in rows.values()) if rows else 0.0
    worst = max(rows, key=lambda o: rows[o]["max_rel_change"] or 0.0) if rows else None
    out = [_judge("baseline.drift", drift <= cfg["max_rel_change"], drift, cfg["max_rel_change"], cfg,
                  f"largest relative change of {comparison['measure']}: {drift:.3g}" + (f" (output {worst})" if worst else ""),
                  key=key, title="Drift against the baseline run")]
    changes = max((row["top_k_changes"] for row in rows.values()), default=0)
    out.append(_judge("baseline.top_k", changes <= cfg["max_top_k_changes"], changes, cfg["max_top_k_changes"], cfg,
                      f"inputs entering the top {comparison['top_k']} of an output: {changes}", key=key,
                      title="Top inputs against the baseline run"))
    if cfg.get("min_rank_correlation") is not None:
        corr = [row["rank_correlation"] for row in rows.values() if row["rank_correlation"] is not None]
        value = min(corr) if corr else None
        out.append(_judge("baseline.rank_correlation", value is None or value >= cfg["min_rank_correlation"], value,
                          cfg["min_rank_correlation"], cfg,
                          f"lowest Spearman rank correlation with the baseline: {value:.3f}" if value is not None
                          else "too few inputs to correlate", key=key, title="Ranking against the baseline run"))
    return out


#: Every configurable check, in the order they are evaluated.
CHECKS = {
    "nonfinite": _nonfinite,
    "fd_vs_ad": _fd_vs_ad,
    "dead_inputs": _dead_inputs,
    "ranking_stability": _ranking_stability,
    "direction_changes": _direction_changes,
    "warnings": _warnings,
    "baseline": _baseline,
}


def evaluate(result: RunResult, config: dict[str, Any]) -> list[CheckResult]:
    """Every check ``config`` turns on (the spec's ``checks`` with defaults, see
    :func:`sensreport.spec.default_checks`), on a typed result; failures first."""
    out = _methods(result, {})
    for name, check in CHECKS.items():
        cfg = config.get(name)
        if cfg and (name != "baseline" or cfg.get("path") is not None):
            out += check(result, cfg)
    return sorted(out, key=lambda c: CHECK_STATUSES.index(c.status))


def decide(result: RunResult, checks: list[CheckResult], fail_on: str = "fail") -> Verdict:
    """The run's verdict, and its exit code under each ``--fail-on`` value.

    A failed method makes the run ``incomplete`` (exit 3); a failing check ``failed``
    (exit 1); a warning ``passed_with_warnings`` (exit 1 only with ``--fail-on warn``).
    ``info`` never changes the exit code, and a check in ``error`` (e.g. a schedule's
    first night, with no baseline yet) is shown as such without failing the run.
    """
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    failed_methods = tuple(name for name, m in result.methods.items() if m.status != "ok")
    failing = tuple(c.id for c in checks if c.status == "fail")
    warning = tuple(c.id for c in checks if c.status == "warn")
    errors = tuple(c.id for c in checks if c.status == "error" and not c.id.startswith("method."))
    if failed_methods:
        status, codes = "incomplete", {"fail": 3, "warn": 3}
    elif failing:
        status, codes = "failed", {"fail": 1, "warn": 1}
    elif warning:
        status, codes = "passed_with_warnings", {"fail": 0, "warn": 1}
    else:
        status, codes = "passed", {"fail": 0, "warn": 0}
    return Verdict(status, failing, warning, errors, failed_methods, codes, fail_on)


def baseline_document(config: dict[str, Any]) -> dict | None:
    """The baseline results.json the spec (or ``--baseline``) names, read and checked before
    any computation; None when there is none or the file is missing (the check reports it)."""
    cfg = config.get("baseline")
    if not cfg or cfg.get("path") is None or not Path(cfg["path"]).exists():
        return None
    return load_baseline(Path(cfg["path"]))


def apply(result: RunResult, config: dict[str, Any], baseline_doc: dict | None, fail_on: str = "fail") -> None:
    """Compare with the baseline, evaluate the checks and decide the verdict; store all on ``result``."""
    cfg = config.get("baseline")
    comparison = None
    if cfg and cfg.get("path") is not None:
        if baseline_doc is None:
            comparison = {"error": f"baseline not found: {cfg['path']}"}
        else:
            measure = cfg["measure"] or result.leading_measure or "mean_abs"
            table = measure_table(result, measure)
            comparison = (compare(table, baseline_doc, cfg["top_k"]) if table is not None
                          else {"error": f"this run has no '{measure}' values to compare"})
            comparison["path"] = str(cfg["path"])
    result.baseline = comparison
    result.checks = evaluate(result, config)
    result.verdict = decide(result, result.checks, fail_on)


def measure_table(result: RunResult, measure: str) -> MeasureTable | None:
    """One measure of this run as a table for the baseline comparison."""
    values = result.measures.get(measure)
    if values is None:
        return None
    outputs = [result.output_names[o] for o in result.measure_outputs]
    v = np.asarray(values, dtype=np.float64)
    return MeasureTable(measure, list(result.input_names), outputs, np.where(np.isfinite(v), v, np.nan),
                        result.provenance.get("created"), result.provenance.get("model_sha256"))
