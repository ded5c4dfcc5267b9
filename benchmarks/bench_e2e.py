"""End to end: a whole `sensreport run` process against a minimal hand-written script.

    .venv/bin/python benchmarks/bench_e2e.py                 # 1,000 / 4,096 / 100,000 points, 3 repeats
    .venv/bin/python benchmarks/bench_e2e.py --quick         # 1,000 and 4,096 points, 1 repeat
    .venv/bin/python benchmarks/bench_e2e.py --sizes 4096 --fd --repeats 5 --markdown out.md

Builds a seeded Keras MLP 128 -> 256 -> 256 -> 64 (tanh) in a temporary folder and
seeded points, then for every case runs, as separate processes, alternating A B C A B C:

* A: ``python -m sensreport run spec.yaml --out DIR --quiet`` (Jacobians only, or with
  finite differences: ``--fd``); up to 4,096 points the arrays are kept
  (``execution.arrays: auto``), at 100,000 points ``execution.arrays: none``;
* B: the minimal script: import TensorFlow, load the model, run ``batch_jacobian`` in a
  ``tf.function`` over chunks (and, with ``--fd``, the same ``4n + 1`` perturbed model
  evaluations per point sensreport's central differences make, differenced in float64
  with the error estimate from the step ``2h``), and save the same arrays with
  ``np.savez`` (``points``, ``outputs``, ``jacobian``, ``finite_difference``,
  ``finite_difference_error``); with the arrays not kept it saves ``points``,
  ``outputs`` and the mean |dy/dx| it reduced on the way;
* C: the same minimal script with ``TF_CPU_ALLOCATOR_USE_BFC=true`` in its environment,
  the allocator sensreport asks TensorFlow for (TensorFlow's default CPU allocator gives
  every large tensor back to the system when it is freed, so each chunk's Jacobian is
  faulted into memory again); the stricter reference, so that no ratio is won by the
  allocator alone.

Prints, per case, the medians of the whole-process wall times and the ratios A/B and A/C, and the
per-stage ``timings`` of the last run's ``results.json``; also the time to
``sensreport --help``. Everything is a whole process: start-up, imports and writing
the files are counted for both.

Run with the project's environment; unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE if
they are set (they slow numpy's BLAS on some machines), for both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

N_IN, N_OUT, HIDDEN = 128, 64, 256

SETUP = r'''
import sys
import numpy as np
import keras
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((%(n)d,)), keras.layers.Dense(%(h)d, activation="tanh"),
                          keras.layers.Dense(%(h)d, activation="tanh"), keras.layers.Dense(%(m)d)], name="mlp")
model.save(sys.argv[1])
for arg in sys.argv[2:]:
    path, count = arg.split("=")
    np.save(path, np.random.default_rng(int(count)).normal(size=(int(count), %(n)d)).astype("float32"))
'''

MINIMAL = r'''
import sys
import numpy as np
import tensorflow as tf
import keras

model_path, points_path, out, keep, fd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5] == "1"
model = keras.saving.load_model(model_path)
x = np.load(points_path)
P, n = x.shape

@tf.function(input_signature=[tf.TensorSpec([None, n], tf.float32)])
def jac(xb):
    with tf.GradientTape() as tape:
        tape.watch(xb)
        y = model(xb)
    return y, tape.batch_jacobian(y, xb)

chunk = 2048
ys, total = [], None
J = None
for s in range(0, P, chunk):
    y, j = jac(x[s:s + chunk])
    ys.append(y.numpy())
    if keep:
        if J is None:
            J = np.empty((P,) + tuple(j.shape[1:]), np.float32)
        J[s:s + len(y)] = j.numpy()
    else:
        part = tf.reduce_sum(tf.abs(j), axis=0).numpy().astype(np.float64)
        total = part if total is None else total + part
y = np.concatenate(ys)
arrays = {"points": x, "outputs": y}
if keep:
    arrays["jacobian"] = J
else:
    arrays["mean_abs"] = total / P

if fd:
    m = y.shape[1]
    eps = float(np.finfo(np.float32).eps)
    h = (eps ** (1 / 3) * np.maximum(np.abs(x), x.std(0))).astype(np.float64)

    @tf.function(input_signature=[tf.TensorSpec([None, n], tf.float32), tf.TensorSpec([None, n], tf.float32)])
    def central(xb, hb):
        b = tf.shape(xb)[0]
        eye = tf.eye(n, dtype=xb.dtype)
        steps = tf.stack([hb, -hb, 2 * hb, -2 * hb], 1)[:, :, :, None] * eye  # [b, 4, n, n]
        xs = xb[:, None, None, :] + steps
        applied = tf.cast(tf.linalg.diag_part(xs - xb[:, None, None, :]), tf.float64)  # [b, 4, n]
        rows = tf.concat([tf.reshape(xs, [-1, n]), xb], 0)
        out = tf.cast(model(rows), tf.float64)
        yp = tf.reshape(out[: b * 4 * n], [b, 4, n, -1])
        d1 = (yp[:, 0] - yp[:, 1]) / (applied[:, 0] - applied[:, 1])[:, :, None]
        d2 = (yp[:, 2] - yp[:, 3]) / (applied[:, 2] - applied[:, 3])[:, :, None]
        return tf.transpose(d1, [0, 2, 1]), tf.transpose(tf.abs(d2 - d1), [0, 2, 1])

    F = np.empty((P, m, n)) if keep else None
    E = np.empty((P, m, n)) if keep else None
    fchunk = 64
    for s in range(0, P, fchunk):
        f, e = central(x[s:s + fchunk], h[s:s + fchunk].astype(np.float32))
        if keep:
            F[s:s + fchunk], E[s:s + fchunk] = f.numpy(), e.numpy()
    if keep:
        arrays["finite_difference"], arrays["finite_difference_error"] = F, E
        arrays["finite_difference_step"] = h
np.savez(out + "/arrays.npz", **arrays)
'''


def run(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # 1: a check failed (the report is written)
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{' '.join(cmd[:4])} ... exited {proc.returncode}")
    return seconds


def spec_text(points: str, fd: bool, arrays: str) -> str:
    methods = "{jacobian: {mode: auto}" + (", finite_difference: {scheme: central, step: auto}}" if fd else "}")
    return ("title: End-to-end benchmark\n"
            "model: {keras: mlp.keras}\n"
            f"inputs: {{points: {{npy: {points}}}}}\n"
            f"methods: {methods}\n"
            f"execution: {{arrays: {arrays}}}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,4096,100000", help="points per case, comma-separated")
    ap.add_argument("--fd", action="store_true", help="also cases with finite differences (4,096 points or fewer)")
    ap.add_argument("--fd-sizes", default="1000,4096", help="points of the finite-difference cases")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1,000 and 4,096 points, 1 repeat")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeats = "1000,4096", 1
    sizes = [int(s) for s in args.sizes.split(",") if s]
    fd_sizes = [int(s) for s in args.fd_sizes.split(",") if s] if args.fd else []
    cases = [(p, False) for p in sizes] + [(p, True) for p in fd_sizes]

    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(var, None)
    env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)
    bfc_env = dict(env, TF_CPU_ALLOCATOR_USE_BFC="true")
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="sensreport-e2e-"))
    (work / "setup.py").write_text(SETUP % {"n": N_IN, "h": HIDDEN, "m": N_OUT})
    (work / "minimal.py").write_text(MINIMAL)
    counts = sorted({p for p, _ in cases})
    print(f"# setup in {work}", file=sys.stderr)
    subprocess.run([py, str(work / "setup.py"), str(work / "mlp.keras"),
                    *(f"{work / f'points{p}.npy'}={p}" for p in counts)], env=env, check=True)

    help_times = [run([py, "-m", "sensreport", "--help"], env) for _ in range(3)]
    rows, stage_rows = [], []
    for points, fd in cases:
        keep = points <= 4096
        arrays = "auto" if keep else "none"
        name = f"{points:,} points, {'Jacobian + FD' if fd else 'Jacobian'}, arrays {'kept' if keep else 'none'}"
        spec = work / f"spec-{points}-{int(fd)}.yaml"
        spec.write_text(spec_text(f"points{points}.npy", fd, arrays))
        out_a, out_b = work / f"out-a-{points}-{int(fd)}", work / f"out-b-{points}-{int(fd)}"
        out_b.mkdir(exist_ok=True)
        a_cmd = [py, "-m", "sensreport", "run", str(spec), "--out", str(out_a), "--quiet"]
        b_cmd = [py, str(work / "minimal.py"), str(work / "mlp.keras"), str(work / f"points{points}.npy"),
                 str(out_b), "1" if keep else "0", "1" if fd else "0"]
        a, b, c = [], [], []
        for r in range(args.repeats):
            a.append(run(a_cmd, env))
            b.append(run(b_cmd, env))
            c.append(run(b_cmd, bfc_env))
            print(f"# {name}: round {r + 1}: sensreport {a[-1]:.2f} s, minimal {b[-1]:.2f} s, "
                  f"minimal with the BFC allocator {c[-1]:.2f} s", file=sys.stderr)
        ma, mb, mc = statistics.median(a), statistics.median(b), statistics.median(c)
        doc = json.loads((out_a / "results.json").read_text())
        sizes_mb = {f: (out_a / f).stat().st_size / 1e6 for f in ("report.html", "results.json", "arrays.npz")}
        rows.append((name, ma, mb, mc, sizes_mb))
        stage_rows.append((name, doc["timings"]))

    lines = [f"MLP {N_IN} -> {HIDDEN} -> {HIDDEN} -> {N_OUT} (tanh), whole processes, medians of {args.repeats} "
             "alternating runs:", "",
             "| case | sensreport run (A) | minimal script (B) | minimal, BFC allocator (C) | A/B | A/C "
             "| report.html | results.json | arrays.npz |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, ma, mb, mc, mbs in rows:
        lines.append(f"| {name} | {ma:.2f} s | {mb:.2f} s | {mc:.2f} s | {ma / mb:.2f}x | {ma / mc:.2f}x "
                     f"| {mbs['report.html']:.1f} MB | {mbs['results.json']:.2f} MB | {mbs['arrays.npz']:.1f} MB |")
    lines += ["", f"`sensreport --help`: {statistics.median(help_times):.2f} s (median of 3).", "",
              "Per-stage `timings` of the last run (seconds, from results.json):", ""]
    keys = list(dict.fromkeys(k for _, t in stage_rows for k in t))
    lines.append("| stage | " + " | ".join(n for n, _ in stage_rows) + " |")
    lines.append("|---|" + "---:|" * len(stage_rows))
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{t[k]:.3f}" if k in t else "—" for _, t in stage_rows) + " |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
