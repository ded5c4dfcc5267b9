"""One verdict: the exit code, the CLI summary, results.json and the report's banner agree
for every check status (pass, warn, fail, error, off) under each --fail-on value."""

from __future__ import annotations

import html
import json
import re

import pytest

# Each case: the spec's model and checks, the check whose status it sets, that status,
# and the exit code under --fail-on fail and --fail-on warn.
FUNCTIONS = '''
import tensorflow as tf

def both(x):          # every input matters (batched: x is [B, 2])
    return tf.stack([x[:, 0] ** 2 + x[:, 1], tf.sin(x[:, 1])], axis=1)

def ignores_x1(x):    # x1 is a dead input: the dead_inputs check (severity warn)
    return tf.stack([x[:, 0] ** 2, 3.0 * x[:, 0]], axis=1)

@tf.custom_gradient
def _wrong_square(x):
    return x ** 2, lambda dy: dy * 3.0 * x    # d(x^2)/dx is 2x, not 3x

def wrong_gradient(x):  # automatic derivatives disagree with finite differences
    return tf.stack([_wrong_square(x[:, 0]) + x[:, 1], x[:, 1] ** 3], axis=1)
'''
POINTS = "[[0.5, 1.0], [1.5, -0.5], [-1.0, 2.0], [0.8, 0.3]]"
CASES = {
    # name: (function, extra spec text, check id, its status, exit codes {fail, warn}, verdict status)
    "pass": ("both", "", "dead_inputs", "pass", {"fail": 0, "warn": 0}, "passed"),
    "warn": ("ignores_x1", "", "dead_inputs", "warn", {"fail": 0, "warn": 1}, "passed_with_warnings"),
    "fail": ("wrong_gradient", "", "fd_vs_ad", "fail", {"fail": 1, "warn": 1}, "failed"),
    "error": ("both", "checks: {baseline: {path: missing/results.json}}\n", "baseline", "error",
              {"fail": 0, "warn": 0}, "passed"),
    # the same disagreeing model with the check turned off: it appears nowhere
    "off": ("wrong_gradient", "checks: {fd_vs_ad: false}\n", "fd_vs_ad", None, {"fail": 0, "warn": 0}, "passed"),
    "info_raised": ("ignores_x1", "checks: {dead_inputs: {severity: info}}\n", "dead_inputs", "info",
                    {"fail": 0, "warn": 0}, "passed"),
}


def _spec(fn: str, extra: str) -> str:
    # reverse mode follows the custom gradient, as GradientTape does
    return (f"title: Verdict {fn}\nmodel: {{callable: f.py:{fn}, batched: true}}\ninputs: {{points: {{values: {POINTS}}}}}\n"
            f"methods: {{jacobian: {{mode: reverse}}, finite_difference: {{}}}}\n{extra}")


def _banner(page: str) -> tuple[str, str]:
    m = re.search(r'<div id="verdict" class="verdict verdict-(\w+)" role="status">\s*<strong>(.*?)</strong>', page, re.S)
    assert m, "the report has no verdict banner"
    return m.group(1), html.unescape(m.group(2))


@pytest.mark.parametrize("fail_on", ["fail", "warn"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_exit_code_cli_results_and_report_agree(case, fail_on, cli, write_spec, tmp_path):
    fn, extra, check_id, status, codes, verdict = CASES[case]
    spec = write_spec(_spec(fn, extra), f__py=FUNCTIONS)
    out = tmp_path / "out"
    r = cli("run", spec, "--out", out, "--fail-on", fail_on)
    doc = json.loads((out / "results.json").read_text())
    page = (out / "report.html").read_text()

    # the check's status, as the checks stage decided it, or nowhere when turned off
    found = [c for c in doc["checks"] if c["id"] == check_id]
    if status is None:
        assert not found
        assert f'data-check="{check_id}"' not in page and "FAIL" not in page.split('id="checks"')[1].split("</table>")[0]
    else:
        assert [c["status"] for c in found] == [status]
        assert f'data-check="{check_id}"' in page

    # one verdict, everywhere
    v = doc["verdict"]
    assert v["status"] == verdict and v["exit_codes"] == codes and v["fail_on"] == fail_on
    assert r.exit_code == codes[fail_on] == v["exit_code"], r.output
    assert r.stdout.startswith(f"sensreport: {v['headline']} (exit {codes[fail_on]});")
    tone, headline = _banner(page)
    assert headline == v["headline"]
    assert tone == ("fail" if codes[fail_on] else "warn" if v["warning"] else "pass")
    assert f"exit code {codes[fail_on]}" in page


def test_the_headline_names_what_decided_it(cli, write_spec, tmp_path):
    spec = write_spec(_spec("wrong_gradient", ""), f__py=FUNCTIONS)
    r = cli("run", spec, "--out", tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["verdict"]["headline"] == "Check failed: fd_vs_ad"
    assert doc["verdict"]["failing"] == ["fd_vs_ad"] and r.exit_code == 1
    fd = next(c for c in doc["checks"] if c["id"] == "fd_vs_ad")
    assert fd["key"] == "checks.fd_vs_ad" and fd["items"]  # the worst entries are named
