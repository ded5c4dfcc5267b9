"""Spec validation: every problem at once, each with its key, line and a useful message."""

from __future__ import annotations

import json

import pytest

from sensreport.errors import SpecError
from sensreport.spec import load_spec, parse_size, parse_spec, schema

GOOD = """\
model:
  callable: f.py:poly
inputs:
  names: [a, b]
  points:
    values: [[1, 2]]
methods:
  jacobian: {mode: forward}
  finite_difference:
"""


def problems(path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [p.format() for p in info.value.problems]


def test_valid_spec_resolves_paths_against_its_folder(write_spec, tmp_path, monkeypatch):
    path = write_spec(GOOD, f__py="def poly(x):\n    return x\n")
    monkeypatch.chdir("/")
    spec = load_spec(path)
    assert spec.model.target == f"{tmp_path / 'f.py'}:poly"
    assert spec.jacobian_mode == "forward"
    assert spec.fd_scheme == "central" and spec.fd_step == "auto"
    assert spec.rows_outputs is None
    assert spec.report_dir == tmp_path / "report"
    assert spec.model.dtype == "float64" and spec.model.batched is False


def test_every_problem_reported_at_once_with_lines(write_spec):
    path = write_spec(
        """\
        version: 1
        model:
          keras: missing.keras
          batched: true
        inputs:
          points:
            csv: nope.csv
        methods:
          jacobain: {mode: auto}
          finite_difference: {step: big, scheme: centre}
        report:
          plotly: cdn
        """
    )
    assert problems(path) == [
        f"line 3: model.keras: file not found: {path.parent / 'missing.keras'}",
        "line 4: model.batched: only applies to model.callable (Keras and SavedModel models are batched)",
        f"line 7: inputs.points.csv: file not found: {path.parent / 'nope.csv'}",
        "line 9: methods.jacobain: unknown key 'jacobain' (did you mean 'jacobian'?)",
        'line 10: methods.finite_difference.scheme: expected one of central, forward, got "centre"',
        'line 10: methods.finite_difference.step: expected "auto" or a positive number, got "big"',
        "line 12: report.plotly: unknown key 'plotly' (did you mean 'plotlyjs'?)",
    ]


@pytest.mark.parametrize(
    "change, expected",
    [
        (("jacobian: {mode: forward}", "jacobian: {mode: sideways}"),
         "line 8: methods.jacobian.mode: expected one of auto, forward, reverse, forward-pfor, forward-tiled, reverse-pfor, reverse-tiled, got \"sideways\""),
        (("finite_difference:", "finite_difference: {step: -1}"),
         "line 9: methods.finite_difference.step: expected \"auto\" or a positive number, got -1"),
        (("names: [a, b]", "names: a"), 'line 4: inputs.names: expected array, got "a"'),
        (("values: [[1, 2]]", "values: [[1, 2]]\n    csv: x.csv"),
         "line 5: inputs.points: give exactly one of values, csv, npy, npz, sample (got values, csv)"),
        (("callable: f.py:poly", "callable: f.py"),
         'line 2: model.callable: expected "FILE.py:NAME" or "package.module:NAME", got "f.py"'),
        (("callable: f.py:poly", "callable: g.py:poly"), "model.callable: file not found"),
        (("model:\n", "model:\n  saved_model: f.py\n"),
         "line 1: model: give exactly one of keras, saved_model, callable (got saved_model, callable)"),
        (("inputs:", "inputz:"), "line 3: inputz: unknown key 'inputz' (did you mean 'inputs'?)"),
        (("finite_difference:", "finite_difference:\nexecution: {compress_arrays: gzip}"),
         'line 10: execution.compress_arrays: expected boolean, got "gzip"'),
    ],
)
def test_single_problem_messages(write_spec, change, expected):
    path = write_spec(GOOD.replace(*change), f__py="def poly(x):\n    return x\n")
    found = problems(path)
    assert any(expected in p for p in found), found


def test_rows_output_names_checked_against_output_names(write_spec):
    path = write_spec(
        GOOD.replace("  finite_difference:\n", "  rows: {outputs: [p_defalt]}\n").replace(
            "callable: f.py:poly", "callable: f.py:poly\n  output_names: [p_default, p_late]"
        ),
        f__py="def poly(x):\n    return x\n",
    )
    assert problems(path) == [
        "line 10: methods.rows.outputs[0]: 'p_defalt' is not in model.output_names (did you mean 'p_default'?)"
    ]


def test_sample_needs_a_distribution_per_input(write_spec):
    path = write_spec(
        GOOD.replace("values: [[1, 2]]", "sample: {n: 5, seed: 1, distributions: {a: {uniform: [2, 1]}, c: {normal: [0, 1]}}}"),
        f__py="def poly(x):\n    return x\n",
    )
    found = problems(path)
    assert "line 6: inputs.points.sample.distributions.c: not an input name" in found
    assert "line 6: inputs.points.sample.distributions: no distribution for b (add them or a 'default')" in found
    assert "line 6: inputs.points.sample.distributions.a.uniform: expected low < high, got [2, 1]" in found


def test_malformed_yaml_and_non_mapping(write_spec):
    assert problems(write_spec("model: [unclosed\n")) == ["line 2: not valid YAML: expected ',' or ']', but got '<stream end>'"]
    assert problems(write_spec("- just\n- a list\n")) == ["the spec must be a YAML mapping with keys model, inputs, methods"]


def test_duplicate_keys_are_reported(write_spec):
    path = write_spec(GOOD + "methods:\n  jacobian: {}\n", f__py="def poly(x):\n    return x\n")
    assert "line 10: methods: duplicate key (YAML keeps the last one)" in problems(path)


def test_missing_spec_file(tmp_path):
    assert problems(tmp_path / "nope.yaml") == [f"spec file not found: {tmp_path / 'nope.yaml'}"]


def test_spec_from_a_mapping(tmp_path):
    (tmp_path / "f.py").write_text("def poly(x):\n    return x\n")
    spec = parse_spec({"model": {"callable": "f.py:poly"}, "inputs": {"points": {"values": [1.0]}},
                       "methods": {"finite_difference": None}}, base_dir=tmp_path)
    assert spec.fd_scheme == "central" and spec.jacobian_mode is None


def test_compress_arrays_is_off_unless_the_spec_turns_it_on(write_spec):
    f = {"f__py": "def poly(x):\n    return x\n"}
    assert load_spec(write_spec(GOOD, **f)).compress_arrays is False
    assert load_spec(write_spec(GOOD + "execution: {compress_arrays: true}\n", name="c.yaml", **f)).compress_arrays


def test_sizes():
    assert parse_size("4GiB") == 4 * 2**30
    assert parse_size("512MB") == 512 * 10**6
    assert parse_size(1000) == 1000


def test_schema_is_json_and_documents_every_top_level_key():
    doc = json.loads(json.dumps(schema()))
    assert set(doc["properties"]) == {"version", "title", "description", "model", "inputs", "methods",
                                      "sensitivity", "report", "checks", "execution"}


def test_readme_documents_every_spec_key():
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()

    def keys(node, prefix=""):
        for name, sub in node.get("properties", {}).items():
            yield prefix + name
            yield from keys(sub, prefix + name + ".")

    missing = [k for k in keys(schema()) if f"`{k}`" not in readme and f"`{k.rsplit('.', 1)[-1]}`" not in readme]
    assert not missing, f"undocumented spec keys: {missing}"


def test_spec_modes_are_the_engines_modes():
    from sensreport import engine

    modes = schema()["properties"]["methods"]["properties"]["jacobian"]["properties"]["mode"]["enum"]
    assert modes == list(engine.MODES)
