"""The spec's JSON Schema, its measures and the checks' defaults: what a spec may say."""

from __future__ import annotations

from typing import Any

MEASURES = ("mean_abs", "rms", "std_scaled", "elasticity", "positive_share")

def _numbers(*names: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "number"}, "minItems": len(names), "maxItems": len(names),
            "x-expected": f"{len(names)} numbers [{', '.join(names)}]"}


_DIST = {
    "type": "object",
    "description": "A distribution: {uniform: [low, high]}, {normal: [mean, std]}, {lognormal: [mu, sigma]} "
                   "(of the logarithm), {truncnormal: [mean, std, low, high]} or {triangular: [low, mode, high]}.",
    "properties": {
        "uniform": _numbers("low", "high"),
        "normal": _numbers("mean", "std"),
        "lognormal": _numbers("mu", "sigma"),
        "truncnormal": _numbers("mean", "std", "low", "high"),
        "triangular": _numbers("low", "mode", "high"),
    },
    "additionalProperties": False,
}

#: inputs.points.sample.method: how the sample's uniform numbers are made
DESIGNS = ("random", "sobol", "halton", "lhs")

SEVERITY = {"enum": ["fail", "warn", "info"]}


def _switchable(properties: dict[str, Any]) -> dict[str, Any]:
    """A check's schema: ``false`` (off) or a mapping of its thresholds and a severity."""
    properties = {**properties, "severity": SEVERITY}
    return {"anyOf": [{"const": False}, {"type": "object", "additionalProperties": False, "properties": properties}],
            "x-expected": f"false or a mapping with {', '.join(properties)}"}


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://sensreport.invalid/spec-v1.json",
    "title": "sensreport spec",
    "description": "A sensitivity-analysis run: the model, the input points, the methods and the report.",
    "type": "object",
    "required": ["model", "inputs", "methods"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1, "description": "Spec format version; 1."},
        "title": {"type": "string", "description": "Report title."},
        "description": {"type": "string", "description": "Markdown shown at the top of the report."},
        "model": {
            "type": "object",
            "description": "Exactly one of keras, saved_model, callable.",
            "additionalProperties": False,
            "properties": {
                "keras": {"type": "string", "description": "Path to a .keras file (from Python: or a keras.Model)."},
                "saved_model": {"type": "string", "description": "Path to a SavedModel directory."},
                "callable": {
                    "type": "string",
                    "description": "FILE.py:NAME or package.module:NAME, a function of a tf tensor (from Python: or "
                                   "the function itself).",
                },
                "signature": {"type": "string", "description": "SavedModel signature (default serving_default)."},
                "input_key": {"type": "string", "description": "SavedModel signature input to differentiate."},
                "output_key": {"type": "string", "description": "SavedModel signature output to differentiate."},
                "batched": {
                    "type": "boolean",
                    "description": "callable only: true if the function takes a batch of points.",
                },
                "dtype": {
                    "enum": ["float32", "float64"],
                    "description": "callable only: dtype of derivatives (default float64).",
                },
                "output_names": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "output_units": {"type": "object", "additionalProperties": {"type": "string"},
                                 "description": "Name -> unit (kUSD, years, probability): shown in axis titles, tables, "
                                                "hover texts and the summary."},
            },
        },
        "inputs": {
            "type": "object",
            "required": ["points"],
            "additionalProperties": False,
            "properties": {
                "names": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "fixed": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                          "description": "Model inputs held at each point's value, not differentiated (integer, "
                                         "boolean and string inputs always are)."},
                "groups": {"type": "object", "minProperties": 1,
                           "description": "Group name -> input names or patterns (numeric[*]); group measures "
                                          "sum their members'.",
                           "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
                "axes": {"type": "object", "minProperties": 1,
                         "description": "Sequence input name -> its named axes: time (a count or one label per "
                                        "step) and feature (one name per feature).",
                         "additionalProperties": {
                             "type": "object", "additionalProperties": False, "minProperties": 1,
                             "properties": {
                                 "time": {"oneOf": [{"type": "integer", "minimum": 1},
                                                    {"type": "array", "minItems": 1,
                                                     "items": {"type": ["string", "number"]}}]},
                                 "feature": {"type": "array", "minItems": 1, "items": {"type": "string"}}}}},
                "units": {"type": "object", "additionalProperties": {"type": "string"},
                                 "description": "Name -> unit (kUSD, years, probability): shown in axis titles, tables, "
                                                "hover texts and the summary."},
                "distributions": {
                    "type": "object", "minProperties": 1,
                    "description": "Input name (or tensor name, or 'default') -> the distribution the given points "
                                   "were drawn from (values, csv, npy, npz); a sample's are in its distributions.",
                    "additionalProperties": _DIST,
                },
                "points": {
                    "type": "object",
                    "description": "Exactly one of values, csv, npy, npz, sample.",
                    "additionalProperties": False,
                    "properties": {
                        "values": {"type": "array", "minItems": 1,
                                   "description": "A list of points, or of mappings input name -> value for a model "
                                                  "with named inputs (from Python: or a numpy array or a pandas "
                                                  "DataFrame)."},
                        "csv": {"type": "string", "description": "CSV file; the header gives input names."},
                        "npy": {"type": "string", "description": ".npy file of shape [points, *input_shape]."},
                        "npz": {"type": "string", "description": ".npz file with one array [points, *shape] per "
                                                                "model input, named by the input."},
                        "sample": {
                            "type": "object",
                            "required": ["n", "distributions"],
                            "additionalProperties": False,
                            "properties": {
                                "n": {"type": "integer", "minimum": 1},
                                "seed": {"type": "integer", "minimum": 0},
                                "method": {"enum": list(DESIGNS),
                                           "description": "random (default: independent draws), sobol, halton "
                                                          "(scrambled low-discrepancy sequences) or lhs (Latin "
                                                          "hypercube); mapped through each input's inverse CDF."},
                                "distributions": {
                                    "type": "object",
                                    "description": "Input name -> distribution; 'default' applies to the rest.",
                                    "additionalProperties": _DIST,
                                },
                            },
                        },
                    },
                },
            },
        },
        "methods": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "jacobian": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "properties": {"mode": {"enum": ["auto", "forward", "reverse", "forward-pfor", "forward-tiled",
                                                      "reverse-pfor", "reverse-tiled"]}},
                },
                "rows": {
                    "type": "object",
                    "required": ["outputs"],
                    "additionalProperties": False,
                    "properties": {
                        "outputs": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": ["string", "integer"]},
                            "description": "Output names or 0-based indices.",
                        }
                    },
                },
                "finite_difference": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "properties": {
                        "scheme": {"enum": ["central", "forward"]},
                        "step": {
                            "anyOf": [{"const": "auto"}, {"type": "number", "exclusiveMinimum": 0}],
                            "x-expected": '"auto" or a positive number',
                        },
                    },
                },
                "discrete": {
                    "type": "object",
                    "required": ["inputs"],
                    "additionalProperties": False,
                    "description": "Discrete effects: the change of every output when a held input takes each "
                                   "other value seen in the points.",
                    "properties": {"inputs": {"type": "array", "minItems": 1, "items": {"type": "string"},
                                              "description": "Held inputs (categories) to vary."}},
                },
            },
        },
        "sensitivity": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "measures": {"type": "array", "items": {"enum": list(MEASURES)}, "minItems": 1},
                "confidence": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                               "description": "Level of the confidence intervals of every measure, share, rank, "
                                              "Sobol' bound and eigenvalue (default 0.95)."},
            },
        },
        "report": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "dir": {"type": "string", "description": "Output folder (default: report)."},
                "plotlyjs": {"enum": ["inline", "cdn"]},
                "templates": {"type": "string",
                              "description": "A folder of Jinja templates that replace the built-in ones of the same name."},
                "mlflow": {
                    # a boolean or a mapping: properties apply to the mapping only, so errors name the key
                    "type": ["boolean", "object"],
                    "additionalProperties": False,
                    "properties": {
                        "experiment": {"type": "string", "minLength": 1,
                                       "description": "MLflow experiment name (created when missing); default "
                                                      "MLflow's own (MLFLOW_EXPERIMENT_NAME or Default)."},
                        "run_name": {"type": "string", "minLength": 1,
                                     "description": "Name of the MLflow run (default: the spec's title)."},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"},
                                 "description": "Extra tags for the MLflow run: name -> text."},
                    },
                    "description": "Log the run to MLflow's tracking URI: the report, results.json, the spec, the "
                                   "verdict, the leading measure as metrics, the checks as tags (true, false or "
                                   "a mapping with experiment, run_name, tags).",
                },
            },
        },
        "checks": {
            "type": "object",
            "description": "Checks with thresholds and severities; the CLI exits 1 when one fails.",
            "additionalProperties": False,
            "properties": {
                "fd_vs_ad": _switchable({
                    "max_z": {"type": "number", "exclusiveMinimum": 0,
                              "description": "Entries agree within this many estimated FD errors (default 3)."},
                    "max_rel_error": {"type": "number", "exclusiveMinimum": 0,
                                      "description": "An extra bound on each entry's relative error."},
                    "min_share": {"type": "number", "minimum": 0, "maximum": 1},
                }),
                "nonfinite": _switchable({}),
                "dead_inputs": _switchable({"max_count": {"type": "integer", "minimum": 0}}),
                "ranking_stability": _switchable({"min_spearman": {"type": "number", "minimum": -1, "maximum": 1},
                                                  "min_overlap": {"type": "number", "minimum": 0, "maximum": 1}}),
                "direction_changes": _switchable({"min_minority": {"type": "number", "exclusiveMinimum": 0,
                                                                   "maximum": 0.5}}),
                "warnings": _switchable({}),
                "baseline": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "path": {"type": "string", "description": "A previous run's results.json."},
                        "measure": {"enum": list(MEASURES)},
                        "max_rel_change": {"type": "number", "minimum": 0},
                        "top_k": {"type": "integer", "minimum": 1},
                        "max_top_k_changes": {"type": "integer", "minimum": 0},
                        "min_rank_correlation": {"type": "number", "minimum": -1, "maximum": 1},
                        "severity": SEVERITY,
                    },
                },
            },
        },
        "execution": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "memory_budget": {
                    "anyOf": [
                        {"type": "integer", "minimum": 1},
                        {"type": "string", "pattern": r"^\s*[0-9.]+\s*([KMGT]i?B|B)?\s*$"},
                    ],
                    "x-expected": "bytes as a number or a size such as 4GiB or 512MiB",
                },
                "timeout": {
                    "type": "number", "exclusiveMinimum": 0,
                    "x-expected": "a number of seconds > 0",
                    "description": "Seconds the run may take; past them it stops with exit 3 and writes nothing.",
                },
                "arrays": {
                    "enum": ["auto", "memory", "disk", "none"],
                    "description": "Keep the full derivative arrays: auto (in memory if they fit), memory, "
                    "disk (.npy files written chunk by chunk), none (measures streamed).",
                },
                "compress_arrays": {
                    "type": "boolean",
                    "description": "Compress arrays.npz (zlib): smaller files, several seconds per 100 MB to "
                    "write; derivatives of float models rarely compress much. Default false.",
                },
                "xla": {"enum": [True, False, "auto"],
                        "description": "Compile derivative kernels with XLA: false (default: reproducible numbers), "
                        "true, or auto (when a timing on the first chunk finds it faster)."},
                "engine": {"enum": ["local", "ray"], "description": "local (default, in-process) or ray."},
                "ray": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "address": {"type": ["string", "null"],
                                    "description": "None: start a local cluster; auto; ray://host:port."},
                        "workers": {"type": "integer", "minimum": 1},
                        "cpus_per_worker": {"type": "number", "exclusiveMinimum": 0},
                        "gpus_per_worker": {"type": "number", "minimum": 0},
                        "chunk_points": {"type": "integer", "minimum": 1},
                        "max_retries": {"type": "integer", "minimum": 0},
                    },
                },
            },
        },
    },
}


CHECK_DEFAULTS: dict[str, dict[str, Any]] = {
    # every smooth entry within 3 estimated errors (kinks are findings, not failures)
    "fd_vs_ad": {"max_z": 3.0, "max_rel_error": None, "min_share": 1.0, "severity": "fail"},
    "nonfinite": {"severity": "fail"},
    "dead_inputs": {"max_count": 0, "severity": "warn"},
    # the report's findings about the per-point derivatives: information unless a spec raises them
    "ranking_stability": {"min_spearman": 0.5, "min_overlap": 0.5, "severity": "info"},
    "direction_changes": {"min_minority": 0.1, "severity": "info"},
    "warnings": {"severity": "info"},
    # measure None: the run's leading measure (the one every view ranks by)
    "baseline": {"path": None, "measure": None, "max_rel_change": 0.25, "top_k": 5,
                 "max_top_k_changes": 0, "min_rank_correlation": None, "severity": "fail"},
}



def schema() -> dict[str, Any]:
    """The JSON Schema of a spec (``sensreport schema`` prints it)."""
    return SCHEMA
