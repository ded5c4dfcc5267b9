"""Bounded memory on an image model: a full run whose Jacobian does not fit the budget.

    .venv/bin/python benchmarks/bench_memory.py [--points 1000] [--budget 256MiB]

Builds a small CNN on 64x64x3 images with 10 outputs (seeded, untrained: the numbers
are not the point), writes 1,000 seeded image points, and runs the real `sensreport run`
pipeline with the given memory budget. The full Jacobian [1000, 10, 12288] is 0.49 GB in
float32, more than half of a 256 MiB budget, so the run streams its measures over chunks
and keeps no full array. Prints the plan, the time, and peak RSS above the baseline of
a process that has imported TensorFlow and loaded the model.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the checkout's sensreport, like bench_engine.py
    sys.path.insert(0, str(ROOT))


def rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--budget", default="256MiB")
    ap.add_argument("--arrays", default="auto", choices=["auto", "memory", "disk", "none"])
    args = ap.parse_args()

    import numpy as np

    from sensreport import engine
    from sensreport.spec import parse_size

    engine.tensorflow()
    import keras

    work = Path(tempfile.mkdtemp(prefix="sensreport-mem-"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64, 64, 3)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ], name="image_cnn")
    model.save(work / "cnn.keras")
    np.save(work / "points.npy", np.random.default_rng(1).uniform(0, 1, (args.points, 64, 64, 3)).astype("float32"))
    spec = work / "spec.yaml"
    spec.write_text(
        "title: Image model under a memory budget\n"
        "model: {keras: cnn.keras}\n"
        "inputs: {points: {npy: points.npy}}\n"
        "methods: {jacobian: {mode: auto}}\n"
        f"execution: {{memory_budget: {args.budget}, arrays: {args.arrays}}}\n"
    )
    # baseline: TensorFlow imported, the model loaded and called once, the points in memory
    keras.saving.load_model(work / "cnn.keras")(np.load(work / "points.npy")[:2])
    baseline = rss_peak()
    from sensreport import checks
    from sensreport.outputs import write_outputs
    from sensreport.runner import compute
    from sensreport.spec import load_spec

    t0 = time.perf_counter()
    parsed = load_spec(spec)
    result = compute(parsed)
    computed = rss_peak()
    checks.apply(result, parsed.checks, None)
    write_outputs(result, work / "out", "cdn")
    seconds = time.perf_counter() - t0
    peak = rss_peak()
    doc = json.loads((work / "out" / "results.json").read_text())
    budget = parse_size(args.budget)
    full = args.points * 10 * 64 * 64 * 3 * 4
    print(f"points {args.points}, inputs {64 * 64 * 3}, outputs 10; full Jacobian {full / 2**30:.2f} GiB (float32)")
    print(f"budget {budget / 2**20:.0f} MiB; plan: arrays={doc['memory']['arrays']}, "
          f"{doc['memory']['chunk_points']} points per chunk, {doc['methods']['jacobian']['model_calls']} model calls, "
          f"strategy {doc['methods']['jacobian']['strategy']}")
    print(f"run time {seconds:.1f} s ({args.points / doc['timings']['jacobian']:.1f} points/s for the Jacobian)")
    points_mib = args.points * 64 * 64 * 3 * 4 / 2**20
    print(f"peak RSS {peak / 2**20:.0f} MiB; baseline {baseline / 2**20:.0f} MiB (TensorFlow, model, points file)")
    print(f"growth while computing: {(computed - baseline) / 2**20:.0f} MiB = {(computed - baseline) / budget:.0%} "
          f"of the budget, of which the points (float32, as in the file) take {points_mib:.0f} MiB")
    print(f"growth while writing report.html, results.json, arrays.npz: {(peak - computed) / 2**20:.0f} MiB more")
    print(f"status {result.status}; top inputs overall (mean_abs): {doc['rankings']['mean_abs']['overall'][:3]}")
    print(f"outputs in {work / 'out'}")
    sys.exit(0 if result.status == "ok" else 1)


if __name__ == "__main__":
    main()
