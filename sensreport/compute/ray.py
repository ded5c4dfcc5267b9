"""The same sweep on a Ray cluster: chunks of points on workers, partial reductions merged.

Jacobians at different points are independent, so each worker computes whole chunks
with the very :func:`sensreport.compute.sweep.run_chunk` the local engine uses and returns its
:class:`~sensreport.compute.sweep.Partial`; the driver merges them in chunk order, so a Ray run
and a local run give the same measures (to float rounding).

* Each worker is a Ray actor that loads the model once, from bytes shipped through
  Ray's object store (a ``.keras`` file, a SavedModel folder packed as a tar archive,
  or a callable's ``.py`` file): workers need no access to the spec's paths.
* A worker that dies is replaced by a new one (which loads the model again) and every
  chunk it had not finished is computed again; after ``max_retries`` deaths the run
  fails with a :class:`~sensreport.errors.ComputeError`, never with a partial result.
* Ray is imported only here, only when ``execution.engine: ray`` asks for it.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ComputeError, InputError
from ..spec import ModelSpec
from .plan import Plan
from .sweep import Sink, empty_partial

INSTALL_HINT = "Ray is not installed: pip install 'sensreport[ray]' (on the driver and on every node)."


@dataclass(frozen=True)
class RayConfig:
    """``execution.ray`` with defaults filled in."""

    address: str | None = None  # None: start a local cluster; "auto"; "ray://host:port"
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    chunk_points: int | None = None  # default: the plan's chunk size
    max_retries: int = 3  # dead workers replaced (their unfinished chunks computed again)


def require_ray():
    try:
        import ray
    except ImportError:
        raise InputError("execution.engine", INSTALL_HINT) from None
    return ray


def model_payload(spec: ModelSpec) -> tuple[bytes, str]:
    """The model's bytes and file name, to rebuild it on a worker that cannot see our paths."""
    if spec.kind == "callable":
        where, _, name = spec.target.rpartition(":")
        if not where.endswith(".py"):
            return b"", ""  # package.module:NAME must be installed on the workers
        return Path(where).read_bytes(), Path(where).name
    path = Path(spec.target)
    if path.is_dir():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(path, arcname=path.name)
        return buf.getvalue(), path.name + ".tar"
    return path.read_bytes(), path.name


def _unpack(spec: ModelSpec, payload: bytes, name: str, folder: Path) -> ModelSpec:
    if not name:
        return spec
    target = folder / name
    if name.endswith(".tar"):
        with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
            tar.extractall(folder, filter="data")
        target = folder / name[: -len(".tar")]
    else:
        target.write_bytes(payload)
    if spec.kind == "callable":
        return replace(spec, target=f"{target}:{spec.target.rpartition(':')[2]}")
    return replace(spec, target=str(target))


class Worker:
    """One Ray actor: loads the model once, then computes chunks on request."""

    def __init__(self, spec: ModelSpec, payload_refs: list, name: str, point_shape: tuple[int, ...], jit: bool,
                 threads: int, binding=None):
        import ray

        from .. import engine
        from ..inputs.models import load_model

        t0 = time.perf_counter()
        # the model bytes come as a reference inside a list and are fetched here, once per
        # worker: the driver keeps the reference alive for the whole run
        payload = ray.get(payload_refs[0])
        engine.tensorflow(threads)  # the thread pools are sized before TensorFlow's first tensor
        self._dir = tempfile.mkdtemp(prefix="sensreport-worker-")
        local = _unpack(spec, payload, name, Path(self._dir))
        self.target = load_model(local, point_shape, jit_compile=jit, binding=binding).target
        self.load_seconds = time.perf_counter() - t0

    def pid(self) -> int:
        return os.getpid()

    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "load_seconds": self.load_seconds}

    def run(self, plan: Plan, x: np.ndarray, y: np.ndarray, offset: int, keep: bool):
        from .sweep import run_chunk

        values: dict[str, np.ndarray] = {}
        sink = (lambda name, sl, v: values.__setitem__(name, v)) if keep else None
        t0 = time.perf_counter()
        partial = run_chunk(self.target, plan, x, y, offset, sink=sink)
        return offset, partial, values, time.perf_counter() - t0


def sweep_ray(
    model: ModelSpec,
    point_shape: tuple[int, ...],
    jit: bool,
    plan: Plan,
    x: np.ndarray,
    y: np.ndarray,
    cfg: RayConfig,
    *,
    sink: Sink | None = None,
    keep_preview: int = 0,
    progress: Callable[[int], None] | None = None,
    on_result: Callable[[int, list[int]], None] | None = None,
    binding=None,
):
    """Run the plan's chunks on Ray workers; return (merged Partial, facts about the run).

    ``sink`` receives raw values as chunks arrive (only shipped back when the plan keeps
    arrays, or for the first ``keep_preview`` points). ``on_result(done, pids)`` is
    called after each finished chunk with the first workers' process ids (a seam for
    tests that kill workers). ``binding`` maps the points onto a model's named tensors
    (:class:`~sensreport.inputs.tensors.Binding`), as on the driver.
    """
    ray = require_ray()
    facts: dict[str, Any] = {"engine": "ray"}
    t0 = time.perf_counter()
    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        if cfg.address is None:
            kwargs["num_cpus"] = max(1, int(round(cfg.workers * cfg.cpus_per_worker)))
        else:
            kwargs["address"] = cfg.address
        try:
            ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - connection problems are the user's to fix
            raise InputError("execution.ray.address", f"cannot start or reach a Ray cluster: {exc}") from None
        started = True
    facts["start_seconds"] = time.perf_counter() - t0
    actors: list = []
    try:
        payload, name = model_payload(model)
        payload_ref = ray.put(payload)
        threads = max(1, int(cfg.cpus_per_worker))
        remote = ray.remote(num_cpus=cfg.cpus_per_worker, num_gpus=cfg.gpus_per_worker or None)(Worker)

        def new_actor():
            return remote.remote(model, [payload_ref], name, tuple(point_shape or ()), jit, threads, binding)

        actors.extend(new_actor() for _ in range(cfg.workers))
        t1 = time.perf_counter()
        infos = ray.get([a.info.remote() for a in actors])
        facts["workers"] = cfg.workers
        facts["model_load_seconds"] = [i["load_seconds"] for i in infos]
        pids = [i["pid"] for i in infos]
        facts["workers_ready_seconds"] = time.perf_counter() - t1
        chunk = cfg.chunk_points or plan.chunk_points
        plan_ref = ray.put(plan)
        keep = plan.arrays != "none"
        starts = list(range(0, len(x), chunk))
        pending: dict[Any, tuple[int, int]] = {}  # ref -> (chunk start, actor slot)

        def submit(start: int, slot: int) -> None:
            stop = min(len(x), start + chunk)
            ref = actors[slot].run.remote(plan_ref, x[start:stop], y[start:stop], start, keep or start < keep_preview)
            pending[ref] = (start, slot)

        for i, start in enumerate(starts):
            submit(start, i % len(actors))
        partials: dict[int, Any] = {}
        chunk_seconds = []
        restarts = 0
        t2 = time.perf_counter()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            start, slot = pending.pop(ref)
            try:
                offset, partial, values, seconds = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                # the worker died: start a new one in its slot and give it every chunk the
                # dead one had not finished; results already merged stay as they are
                restarts += 1
                if restarts > cfg.max_retries:
                    raise ComputeError(
                        "execution.ray",
                        f"Ray workers died {restarts} times (the last while computing points {start}-"
                        f"{min(len(x), start + chunk) - 1}; {type(exc).__name__}), more than "
                        f"execution.ray.max_retries = {cfg.max_retries}; no result was written. Check the "
                        "workers' memory (execution.memory_budget) and logs.",
                    ) from None
                lost = [start] + [s for r, (s, sl) in list(pending.items()) if sl == slot]
                for r in [r for r, (_, sl) in pending.items() if sl == slot]:
                    del pending[r]
                actors[slot] = new_actor()
                for s_ in lost:
                    submit(s_, slot)
                continue
            except ray.exceptions.RayTaskError as exc:
                raise ComputeError("execution.ray", f"a chunk failed on a Ray worker: {exc.cause!r}") from None
            partials[offset] = partial
            chunk_seconds.append(seconds)
            if sink is not None:
                for method, v in values.items():
                    sink(method, slice(offset, offset + len(v)), v)
            if progress is not None:
                progress(partial.points * len(plan.methods))
            if on_result is not None:
                on_result(len(partials), pids)
        if sorted(partials) != starts:  # pragma: no cover - a bookkeeping error must never pass as a result
            raise ComputeError("execution.ray", "chunks went missing on the Ray cluster; no result was written")
        facts["restarts"] = restarts
        facts["compute_seconds"] = time.perf_counter() - t2
        facts["chunks"] = len(partials)
        facts["chunk_points"] = chunk
        facts["median_chunk_seconds"] = float(np.median(chunk_seconds)) if chunk_seconds else None
        total = empty_partial(plan)
        for offset in sorted(partials):  # chunk order: the sums are added as the local sweep adds them
            total.merge(partials[offset])
        return total, facts
    finally:
        # the workers go whatever happened: on a cluster that outlives the run, a failed
        # run's actors would hold their CPUs until the garbage collector dropped the last
        # handle (never, while a later run's freeze holds it), and the next run's actors
        # would wait for those CPUs for ever
        for a in actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001 - an actor that is already gone
                pass
        if started:
            ray.shutdown()
