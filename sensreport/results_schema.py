"""The JSON Schema of results.json (``sensreport schema --results``).

What :meth:`sensreport.results.RunResult.to_dict` writes, for the programs that read it
(CI steps, dashboards, ``sensreport summary``, ``history``, ``compare``). The verdict,
checks, names, measures and rankings are described field by field; the engine's
records (methods, agreement, timings, memory, provenance) are objects whose fields
may grow. ``tests/test_results_schema.py`` validates real runs against it and fails
when results.json gains a key this schema does not describe.
"""

from __future__ import annotations

from typing import Any

from .results import CHECK_STATUSES, RESULTS_SCHEMA_VERSION
from .spec import MEASURES

_NAMES = {"type": "array", "items": {"type": "string"}}
_NUMBER_OR_NULL = {"type": ["number", "null"], "description": "null where the value is not finite (NaN, inf)."}
_BY_INPUT = {"type": "object", "description": "Input name -> value.", "additionalProperties": _NUMBER_OR_NULL}
_SCAN = {
    "type": "object",
    "required": ["count"],
    "properties": {
        "count": {"type": "integer", "minimum": 0},
        "nan": {"type": "integer", "minimum": 0},
        "inf": {"type": "integer", "minimum": 0},
        "locations": {"type": "array", "description": "Where the first non-finite values are."},
    },
}

_MEASURES: dict[str, Any] = {
    "type": "object",
    "required": ["source", "shown", "leading", "values"],
    "properties": {
        "source": {"type": ["string", "null"], "description": "The method the measures come from."},
        "shown": {"type": "array", "items": {"enum": list(MEASURES)}},
        "leading": {"type": ["string", "null"], "description": "The measure every view ranks by."},
        "values": {
            "type": "object",
            "description": "Measure -> per_output (output -> input -> value) and overall (input -> share, "
                           "averaged over outputs).",
            "propertyNames": {"enum": list(MEASURES)},
            "additionalProperties": {
                "type": "object",
                "required": ["per_output", "overall"],
                "properties": {"per_output": {"type": "object", "additionalProperties": _BY_INPUT},
                               "overall": _BY_INPUT},
            },
        },
        "confidence": {
            "type": ["object", "null"],
            "description": "Confidence intervals at `level` (sensitivity.confidence), by a percentile bootstrap "
                           "over `batches` batches of consecutive points (`replicates` replicates): measure -> "
                           "per_output -> output -> input -> [low, high]; `shares` of the rankable measures in the "
                           "same layout with `overall`, and `ranks` (overall only: 1 the most sensitive). null without measures or with fewer than "
                           "8 points. Under group_measures: the groups' per_output intervals of mean_abs, rms, std_scaled, "
                           "elasticity.",
            "required": ["level", "method"],
            "properties": {"level": {"type": "number"}, "method": {"type": "string"},
                           "batches": {"type": "integer"}, "replicates": {"type": "integer"},
                           "shares": {"type": "object"}, "ranks": {"type": "object"}},
        },
    },
}

RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"https://sensreport.invalid/results-v{RESULTS_SCHEMA_VERSION}.json",
    "title": "sensreport results.json",
    "description": "One run's findings: the verdict, the checks, the measures and rankings per output and input, "
                   "and how the run went.",
    "type": "object",
    "required": ["schema_version", "status", "check_status", "problems", "verdict", "checks", "title", "model",
                 "inputs", "outputs", "points", "methods", "measures", "global", "rankings", "agreement", "nonfinite",
                 "dead_inputs", "baseline", "warnings", "notes", "timings", "memory", "provenance"],
    "properties": {
        "schema_version": {"const": RESULTS_SCHEMA_VERSION, "description": "Format version of this file."},
        "status": {"enum": ["ok", "incomplete"],
                   "description": "ok: every method ran and every value is finite; else incomplete."},
        "check_status": {"enum": list(CHECK_STATUSES), "description": "The worst status among the checks."},
        "problems": {**_NAMES, "description": "One sentence per failed method or non-finite array."},
        "verdict": {
            "type": ["object", "null"],
            "description": "The run's one verdict, decided by the checks stage; what the exit code, the report's "
                           "banner and `sensreport summary` show. null only for results computed without checks.",
            "required": ["status", "headline", "failing", "warning", "errors", "failed_methods", "exit_codes",
                         "fail_on", "exit_code"],
            "additionalProperties": False,
            "properties": {
                "status": {"enum": ["passed", "passed_with_warnings", "failed", "incomplete"]},
                "headline": {"type": "string", "description": "One line, e.g. 'Check failed: fd_vs_ad'."},
                "failing": {**_NAMES, "description": "Ids of the checks that failed."},
                "warning": {**_NAMES, "description": "Ids of the checks that warned."},
                "errors": {**_NAMES, "description": "Ids of the checks that could not be evaluated."},
                "failed_methods": {**_NAMES, "description": "Requested methods that failed."},
                "exit_codes": {"type": "object", "description": "The exit code under each --fail-on value.",
                               "properties": {"fail": {"type": "integer"}, "warn": {"type": "integer"}},
                               "additionalProperties": {"type": "integer"}},
                "fail_on": {"enum": ["fail", "warn"], "description": "The --fail-on this run was asked for."},
                "exit_code": {"type": "integer", "description": "exit_codes[fail_on]: the CLI's exit code."},
            },
        },
        "checks": {
            "type": "array",
            "description": "Every check that was evaluated, as the checks stage decided it.",
            "items": {
                "type": "object",
                "required": ["id", "status", "value", "threshold", "severity", "message", "key", "title", "items"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "description": "e.g. fd_vs_ad, nonfinite, baseline.drift."},
                    "status": {"enum": list(CHECK_STATUSES)},
                    "value": {"description": "What was measured (a number, or null)."},
                    "threshold": {"description": "What it was compared with (a number, a mapping, or null)."},
                    "severity": {"enum": ["fail", "warn", "info"]},
                    "message": {"type": "string"},
                    "key": {"type": "string", "description": "The spec key that configures the check."},
                    "title": {"type": "string"},
                    "items": {**_NAMES, "description": "The entries the check found (inputs, locations, ...)."},
                },
            },
        },
        "title": {"type": "string"},
        "model": {
            "type": "object",
            "required": ["kind", "source", "sha256", "summary"],
            "properties": {
                "kind": {"enum": ["keras", "saved_model", "callable"]},
                "source": {"type": "string", "description": "The file, callable reference, or an in-memory "
                                                            "object's description."},
                "sha256": {"type": ["string", "null"], "description": "Of the model file (folder), of an "
                                                                      "in-memory Keras model's weights, or null."},
                "summary": {"type": "string"},
            },
        },
        "inputs": {"type": "object", "required": ["names", "shape"],
                   "properties": {
                       "names": {**_NAMES, "description": "Names of the flattened differentiated inputs: the "
                                                          "Jacobian's columns."},
                       "shape": {"type": "array", "items": {"type": "integer"}},
                       "units": {"type": "object", "additionalProperties": {"type": "string"},
                                 "description": "Declared units by name (only those declared)."},
                       "distributions": {"type": "object",
                                         "description": "Declared distributions by name (only those declared), "
                                                        "as a spec writes them: {\"uniform\": [low, high]}.",
                                         "additionalProperties": {"type": "object", "minProperties": 1,
                                                                  "maxProperties": 1,
                                                                  "additionalProperties": {
                                                                      "type": "array",
                                                                      "items": {"type": "number"}}}},
                       "tensors": {"type": "array", "description": "Every model input in the model's order.",
                                   "items": {"type": "object", "required": ["name", "shape", "dtype", "fixed", "names"],
                                             "properties": {"name": {"type": "string"},
                                                            "shape": {"type": "array", "items": {"type": "integer"}},
                                                            "dtype": {"type": "string"},
                                                            "fixed": {"type": "boolean", "description":
                                                                      "Held at each point's value, not "
                                                                      "differentiated."},
                                                            "names": _NAMES, "axes": {"type": "object"}}}},
                       "fixed": {"type": "array", "description": "The held inputs and the values seen in the points.",
                                 "items": {"type": "object", "required": ["name", "dtype", "shape", "distinct", "values"],
                                           "properties": {"name": {"type": "string"}, "dtype": {"type": "string"},
                                                          "shape": {"type": "array", "items": {"type": "integer"}},
                                                          "distinct": {"type": "integer", "minimum": 1},
                                                          "values": {"type": "array", "description":
                                                                     "The distinct values (at most 1,000)."}}}},
                       "groups": {"type": "object", "description": "Feature group -> its member inputs.",
                                  "additionalProperties": _NAMES}}},
        "outputs": {"type": "object", "required": ["names", "shape"],
                    "properties": {"names": {**_NAMES, "description": "Names of the flattened outputs."},
                                   "units": {"type": "object", "additionalProperties": {"type": "string"},
                                            "description": "Declared units by name (only those declared)."},
                                  "shape": {"type": "array", "items": {"type": "integer"}}}},
        "custom_gradients": {**_NAMES, "description": "Ops of the model with a tf.custom_gradient."},
        "points": {"type": "integer", "minimum": 1, "description": "How many points were evaluated."},
        "methods": {
            "type": "object",
            "description": "Each requested method (jacobian, rows, finite_difference): how it ran, or why it failed.",
            "additionalProperties": {
                "type": "object",
                "required": ["status", "reason"],
                "properties": {
                    "status": {"type": "string", "description": "ok, or failed."},
                    "reason": {"type": ["string", "null"], "description": "Why it failed."},
                    "outputs": {"type": "array", "items": {"type": "integer"}},
                    "strategy": {"type": ["string", "null"]},
                    "dtype": {"type": ["string", "null"]},
                    "seconds": {"type": ["number", "null"]},
                    "array": {"type": ["string", "null"],
                              "description": "Where its array is: arrays.npz, a .npy file, or null (not kept)."},
                },
            },
        },
        "measures": _MEASURES,
        "group_measures": {
            "oneOf": [{"type": "null"}, _MEASURES],
            "description": "The feature groups' measures in the layout of measures, group names in place of input "
                           "names: sums of the members' (RMS: the root of their summed squares; positive_share "
                           "null). null without groups.",
        },
        "categories": {
            "type": "object",
            "description": "Held input -> the measures over the points of each of its values (inputs with 2 to 20 "
                           "distinct values, when the per-point derivatives were kept): values, counts, and "
                           "measure -> output -> input -> one value per category.",
            "additionalProperties": {"type": "object", "required": ["values", "counts", "measures"]},
        },
        "discrete": {
            "type": "object",
            "description": "methods.discrete: held input -> its values, the points per value, and mean_effect: "
                           "output -> [a][b] the mean change of the output over the points with value a when the "
                           "input takes value b instead; the per-point outputs are the arrays.npz array named.",
            "additionalProperties": {"type": "object", "required": ["values", "counts", "mean_effect", "array"]},
        },
        "global": {
            "type": "object",
            "required": ["sobol_total_bound", "active_subspace"],
            "description": "Global sensitivity from the derivatives.",
            "properties": {
                "sobol_total_bound": {
                    "type": ["object", "null"],
                    "required": ["per_output", "confidence", "poincare_constants", "output_variance"],
                    "description": "Upper bounds on the total Sobol' indices, C_i nu_i / V (C_i the Poincare "
                                   "constant of input i's distribution, nu_i its DGSM, V the output's variance): "
                                   "per_output -> output -> input -> bound (null where the input's distribution "
                                   "is unknown); confidence in the same layout as [low, high]; groups -> output "
                                   "-> group -> the sum of its members' bounds. null when no input's "
                                   "distribution is known.",
                },
                "active_subspace": {
                    "type": ["object", "null"],
                    "required": ["per_output", "scale"],
                    "description": "Per output: eigenvalues (descending) of the mean outer product of the "
                                   "gradients with respect to the inputs scaled by their std, eigenvalue_intervals "
                                   "(bootstrap over batches of points; null when the batch matrices do not fit) and the leading eigenvectors "
                                   "(n weights each, in inputs.names order; all of them in arrays.npz's "
                                   "active_subspace_eigenvectors [k, n, n]), for the first 20 outputs. null above "
                                   "2,000 inputs or when the matrices do not fit the memory budget.",
                },
            },
        },
        "rankings": {
            "type": "object",
            "description": "Measure -> input names from most to least sensitive, overall and per output (at most 100).",
            "additionalProperties": {
                "type": "object",
                "required": ["overall", "per_output"],
                "properties": {"overall": _NAMES, "per_output": {"type": "object", "additionalProperties": _NAMES}},
            },
        },
        "agreement": {"type": ["object", "null"],
                      "description": "Finite differences against automatic derivatives: shares within tolerance, "
                                     "the worst entries; null unless both ran."},
        "nonfinite": {"type": "object", "description": "NaN/Inf scans of the outputs and each method's array.",
                      "additionalProperties": _SCAN},
        "dead_inputs": {**_NAMES, "description": "Inputs with a zero derivative everywhere."},
        "baseline": {"type": ["object", "null"], "description": "The comparison with a previous run, if any."},
        "warnings": {**_NAMES, "description": "What may make the numbers differ from the truth."},
        "notes": {**_NAMES, "description": "How the run went (engine choices, fallbacks, array storage)."},
        "timings": {"type": "object", "description": "Seconds per stage.",
                    "additionalProperties": {"type": ["number", "array", "object", "null"]}},
        "memory": {"type": "object", "description": "The memory plan: budget, array bytes, storage, chunking, "
                                                    "peak RSS."},
        "provenance": {
            "type": "object",
            "description": "What produced the run: spec, model, points and file sha256, versions, machine, seed, "
                           "command.",
            "properties": {"spec_sha256": {"type": "string"}, "model_sha256": {"type": ["string", "null"]},
                           "points_sha256": {"type": "string", "description": "sha256 of the points as read, "
                                             "little-endian float64 in C order (arrays.npz's points give the same)."},
                           "files": {"type": "array", "description": "Every file read: spec key, path relative to "
                                     "the spec's folder, sha256.",
                                     "items": {"type": "object", "required": ["key", "path", "sha256"]}},
                           "reproduce": {"type": ["array", "null"], "items": {"type": "string"},
                                         "description": "The command, to run in the spec's folder."},
                           "machine": {"type": "object", "description": "CPU model and cores."},
                           "run_seconds": {"type": ["number", "null"]},
                           "seed": {"type": ["integer", "null"], "description": "A sample's seed."},
                           "design": {"enum": ["random", "sobol", "halton", "lhs", None],
                                      "description": "A sample's method: random draws, a scrambled Sobol' or "
                                                     "Halton sequence, a Latin hypercube; null for given points."},
                           "created": {"type": "string"}, "versions": {"type": "object"},
                           "command": {"type": ["array", "null"], "items": {"type": "string"}}},
        },
    },
}


def results_schema() -> dict[str, Any]:
    """The JSON Schema of results.json (``sensreport schema --results`` prints it)."""
    return RESULTS_SCHEMA
