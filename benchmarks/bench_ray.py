"""Ray scale-out on this machine: 1 vs 2 workers, start-up overhead reported apart.

    .venv/bin/python benchmarks/bench_ray.py [--points 4000] [--chunk 250]

Runs the same spec (an MLP 64 -> 256 -> 256 -> 32, full Jacobians by automatic
differentiation) locally and on a local Ray cluster with 1 and 2 workers (1 CPU each),
checks the results agree, and prints: cluster start, worker start (TensorFlow import
plus model load), compute time, per-chunk cost and result size. The numbers feed the
scaling estimate in docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=4000)
    ap.add_argument("--chunk", type=int, default=250)
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    from sensreport import engine, runner
    from sensreport.spec import load_spec

    engine.tensorflow()
    import keras
    import ray

    work = Path(tempfile.mkdtemp(prefix="sensreport-ray-"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="tanh"),
                              keras.layers.Dense(256, activation="tanh"), keras.layers.Dense(32)])
    model.save(work / "mlp.keras")
    np.save(work / "points.npy", np.random.default_rng(1).normal(size=(args.points, 64)).astype("float32"))
    base = ("model: {keras: mlp.keras}\ninputs: {points: {npy: points.npy}}\n"
            "methods: {jacobian: {mode: auto}}\nexecution: {arrays: none, ")
    (work / "local.yaml").write_text(base + "}\n")
    (work / "ray.yaml").write_text(base + f"engine: ray, ray: {{chunk_points: {args.chunk}}}}}\n")

    t0 = time.perf_counter()
    local = runner.compute(load_spec(work / "local.yaml"))
    local_s = local.timings["derivatives"]
    print(f"workload: MLP 64->256->256->32, {args.points} points, full Jacobian [P, 32, 64] float32, "
          f"chunks of {args.chunk} points")
    print(f"local engine (in-process, 2 cores): derivatives {local_s:.2f} s "
          f"(whole compute {time.perf_counter() - t0:.2f} s)")

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    cluster_start = time.perf_counter() - t0
    print(f"Ray local cluster start: {cluster_start:.2f} s")
    spec = load_spec(work / "ray.yaml")
    rows = []
    for workers in (1, 2):
        import dataclasses

        s = dataclasses.replace(spec, ray={**spec.ray, "workers": workers})
        result = runner.compute(s)
        facts = result.memory["execution"]
        for name, values in local.measures.items():
            np.testing.assert_allclose(result.measures[name], values, rtol=1e-4, err_msg=name)
        rows.append((workers, facts))
        print(f"{workers} worker(s): workers ready {facts['workers_ready_seconds']:.2f} s "
              f"(model load {max(facts['model_load_seconds']):.2f} s each), compute {facts['compute_seconds']:.2f} s, "
              f"{facts['chunks']} chunks, median chunk {facts['median_chunk_seconds'] * 1e3:.1f} ms; measures agree")
    one, two = rows[0][1]["compute_seconds"], rows[1][1]["compute_seconds"]
    per_chunk = rows[0][1]["median_chunk_seconds"]
    result_bytes = 2 * 5 * 32 * 64 * 8  # a chunk's partial: five measure sums and counts [32, 64] float64
    print(f"speed-up 1 -> 2 workers: {one / two:.2f}x (compute only); local / 2 workers: {local_s / two:.2f}x")
    print(f"per chunk: {per_chunk * 1e3:.1f} ms compute, ~{result_bytes / 1024:.0f} KiB partial result "
          f"(arrays: none), {args.chunk * 64 * 4 / 1024:.0f} KiB of points in")
    ray.shutdown()


if __name__ == "__main__":
    main()
