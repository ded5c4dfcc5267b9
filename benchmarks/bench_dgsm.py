"""DGSM accuracy: sensreport's squared rms over a Sobol' design against SALib's dgsm, on Ishigami.

    .venv/bin/python benchmarks/bench_dgsm.py                      # N = 2^10, 2^12, 2^14, 2^17
    .venv/bin/python benchmarks/bench_dgsm.py --quick              # N = 2^10 only
    .venv/bin/python benchmarks/bench_dgsm.py --sizes 1024,4096 --markdown out.md

The Ishigami function f(x) = sin x1 + a sin^2 x2 + b x3^4 sin x1, a = 7, b = 0.1, each
x_i uniform on [-pi, pi], has closed-form derivative-based global sensitivity measures
nu_i = E[(df/dx_i)^2] (Sobol' and Kucherenko 2009). With df/dx1 = cos x1 (1 + b x3^4),
df/dx2 = a sin 2 x2 and df/dx3 = 4 b x3^3 sin x1, independence and E[x^k] = pi^k/(k+1)
for even k give

    nu_1 = E[cos^2 x1] E[(1 + b x3^4)^2] = (1 + 2 b pi^4/5 + b^2 pi^8/9) / 2
    nu_2 = a^2 E[sin^2 2 x2]            = a^2 / 2
    nu_3 = 16 b^2 E[x3^6] E[sin^2 x1]    = 8 b^2 pi^6 / 7

(checked at start-up against a 10^6-point Monte Carlo of the derivatives).

At each N, both sides get N points:

* sensreport: ``sensreport.run(spec, write=False)`` of a spec with
  ``inputs.points.sample: {n: N, method: sobol}`` and ``methods.jacobian`` (float64
  automatic derivatives), DGSM = ``result.measures["rms"] ** 2``;
* SALib (the ``bench`` extra, ``pip install 'sensreport[bench]'``; skipped when it is
  missing): ``SALib.sample.finite_diff.sample(problem, N)`` (an unscrambled Sobol'
  sequence and a forward difference per input, N (d + 1) model evaluations) and
  ``SALib.analyze.dgsm.analyze``, whose ``vi`` is the DGSM.

Prints, per N and input, each side's DGSM and its relative error to the closed form,
and each side's seconds (sensreport's include its run's stages, not TensorFlow's import).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

A, B = 7.0, 0.1
NAMES = ["x1", "x2", "x3"]
BOUNDS = [-math.pi, math.pi]


def closed_form(a: float = A, b: float = B) -> np.ndarray:
    """nu_i = E[(df/dx_i)^2] of the Ishigami function with inputs uniform on [-pi, pi]."""
    pi = math.pi
    return np.array([(1 + 2 * b * pi ** 4 / 5 + b ** 2 * pi ** 8 / 9) / 2, a ** 2 / 2, 8 * b ** 2 * pi ** 6 / 7])


def ishigami_np(x: np.ndarray) -> np.ndarray:
    return np.sin(x[:, 0]) + A * np.sin(x[:, 1]) ** 2 + B * x[:, 2] ** 4 * np.sin(x[:, 0])


def ishigami_tf(x):
    """The model sensreport differentiates, written for one point."""
    import tensorflow as tf

    return tf.sin(x[0]) + A * tf.sin(x[1]) ** 2 + B * x[2] ** 4 * tf.sin(x[0])


def self_check(points: int = 1_000_000, seed: int = 0) -> None:
    """The closed forms against a plain Monte Carlo of the squared derivatives."""
    x = np.random.default_rng(seed).uniform(-math.pi, math.pi, (points, 3))
    grad = np.stack([np.cos(x[:, 0]) * (1 + B * x[:, 2] ** 4), A * np.sin(2 * x[:, 1]),
                     4 * B * x[:, 2] ** 3 * np.sin(x[:, 0])], axis=1)
    sq = grad ** 2
    mc, se = sq.mean(axis=0), sq.std(axis=0) / math.sqrt(points)
    exact = closed_form()
    z = np.abs(mc - exact) / se
    if not (z < 5).all():
        raise SystemExit(f"closed-form DGSM {exact} disagree with a Monte Carlo {mc} (z {z})")


@dataclass
class Case:
    n: int
    sensreport: np.ndarray
    sensreport_s: float
    salib: np.ndarray | None
    salib_s: float | None


def sensreport_dgsm(n: int, seed: int = 17) -> tuple[np.ndarray, float]:
    import sensreport

    spec = {"title": f"Ishigami DGSM, {n} Sobol' points",
            "model": {"callable": ishigami_tf, "dtype": "float64", "output_names": ["f"]},
            "inputs": {"names": NAMES, "points": {"sample": {
                "n": n, "seed": seed, "method": "sobol", "distributions": {"default": {"uniform": BOUNDS}}}}},
            "methods": {"jacobian": {"mode": "auto"}},
            "sensitivity": {"measures": ["rms"]}}
    t0 = time.perf_counter()
    result = sensreport.run(spec, write=False)
    seconds = time.perf_counter() - t0
    return np.asarray(result.measures["rms"][0], dtype=np.float64) ** 2, seconds


def have_salib() -> bool:
    return importlib.util.find_spec("SALib") is not None


def salib_dgsm(n: int, seed: int = 17) -> tuple[np.ndarray, float]:
    from SALib.analyze import dgsm
    from SALib.sample import finite_diff

    problem = {"num_vars": 3, "names": NAMES, "bounds": [BOUNDS] * 3}
    t0 = time.perf_counter()
    x = finite_diff.sample(problem, n, seed=seed)
    y = ishigami_np(x)
    found = dgsm.analyze(problem, x, y, seed=seed)
    return np.asarray(found["vi"], dtype=np.float64), time.perf_counter() - t0


def run_case(n: int, salib: bool = True) -> Case:
    ours, ours_s = sensreport_dgsm(n)
    theirs, theirs_s = salib_dgsm(n) if salib else (None, None)
    return Case(n, ours, ours_s, theirs, theirs_s)


def table(cases: list[Case]) -> str:
    exact = closed_form()
    lines = ["| N | input | closed form | sensreport | rel. error | SALib | rel. error | seconds (sensreport / SALib) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for c in cases:
        for j, name in enumerate(NAMES):
            ours = c.sensreport[j]
            row = [f"2^{int(math.log2(c.n))}" if c.n & (c.n - 1) == 0 else f"{c.n:,}", name, f"{exact[j]:.4f}",
                   f"{ours:.4f}", f"{abs(ours - exact[j]) / exact[j]:.1e}"]
            if c.salib is not None:
                row += [f"{c.salib[j]:.4f}", f"{abs(c.salib[j] - exact[j]) / exact[j]:.1e}"]
            else:
                row += ["—", "—"]
            times = f"{c.sensreport_s:.2f} / {c.salib_s:.2f}" if c.salib_s is not None else f"{c.sensreport_s:.2f} / —"
            row.append(times if j == 0 else "")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,4096,16384,131072", help="points per case, comma-separated")
    ap.add_argument("--quick", action="store_true", help="N = 1,024 only")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    sizes = [1024] if args.quick else [int(s) for s in args.sizes.split(",")]
    self_check()
    salib = have_salib()
    if not salib:
        print("SALib is not installed (pip install 'sensreport[bench]'): its columns stay empty")
    sensreport_dgsm(64)  # TensorFlow's import and first tracing are not the measure's cost
    cases = [run_case(n, salib) for n in sizes]
    text = table(cases)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
