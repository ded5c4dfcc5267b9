"""Provenance of a run: what produced it, so that an auditor can reproduce it."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .inputs import LoadedModel, Points, file_sha256
from .spec import Spec


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


#: ``sensreport run`` options that take a value, and those of them that are paths.
_VALUE_OPTIONS = {"--out", "-o", "--plotlyjs", "--baseline", "--fail-on", "--engine", "--ray-address", "--workers",
                  "--timeout"}
_PATH_OPTIONS = {"--out", "-o", "--baseline"}


def points_sha256(values: np.ndarray) -> str:
    """sha256 of the points as read, as little-endian float64 in C order.

    The same digest comes from the ``points`` array in ``arrays.npz``:
    ``hashlib.sha256(np.ascontiguousarray(points, dtype="<f8").tobytes()).hexdigest()``
    (float32 points convert to float64 exactly, and flattening keeps the order). Hashed a
    block of points at a time: the whole array widened and copied to bytes cost 0.36 s
    at 100,000 x 128 points.
    """
    a = np.asarray(values)
    digest = hashlib.sha256()
    if a.ndim == 0 or not len(a):
        digest.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
        return digest.hexdigest()
    step = max(1, (1 << 20) // max(1, a[0].size))  # 8 MiB of float64 per block
    for start in range(0, len(a), step):
        digest.update(np.ascontiguousarray(a[start : start + step], dtype="<f8"))  # C order, block after block
    return digest.hexdigest()


def input_files(spec: Spec, loaded: LoadedModel) -> list[dict[str, Any]]:
    """Every file the run read, with the spec key naming it, its path relative to the
    spec's folder and its sha256 (a folder's: of its files' names and bytes)."""
    files: list[tuple[str, Path, str | None]] = []
    if spec.path is not None:
        files.append(("spec", Path(spec.path), spec.sha256))
    if spec.model.obj is None and spec.model.kind in ("keras", "saved_model"):
        files.append((f"model.{spec.model.kind}", Path(spec.model.target), loaded.sha256))
    elif spec.model.obj is None and spec.model.kind == "callable":
        module = spec.model.target.rsplit(":", 1)[0]
        if module.endswith(".py"):
            files.append(("model.callable", Path(module), None))
    if spec.points.kind in ("csv", "npy") and spec.points.path is not None:
        files.append((f"inputs.points.{spec.points.kind}", Path(spec.points.path), None))
    baseline = (spec.checks.get("baseline") or {}).get("path")
    if baseline is not None:
        files.append(("checks.baseline.path", Path(baseline), None))
    out = []
    for key, path, digest in files:
        if digest is None and not path.exists():
            continue
        out.append({"key": key, "path": _relative(path, spec.base_dir),
                    "sha256": digest if digest is not None else file_sha256(path)})
    return out


def reproduce_command(command: list[str] | None, cwd: str, spec: Spec) -> list[str] | None:
    """The command that reproduces the run from the spec's folder: the spec and every path
    option relative to that folder, so the command holds no absolute path of this machine."""
    if spec.path is None:
        return None
    if not command:
        return ["sensreport", "run", Path(spec.path).name]
    args = list(command)
    out = [args[0] if "/" not in args[0] else "sensreport"]
    i, positional = 1, False
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if a in _VALUE_OPTIONS and i + 1 < len(args):
            nxt = args[i + 1]
            out += [a, _relative(Path(cwd) / nxt, spec.base_dir) if a in _PATH_OPTIONS else nxt]
            i += 2
            continue
        if eq and name in _PATH_OPTIONS:
            out.append(f"{name}={_relative(Path(cwd) / value, spec.base_dir)}")
        elif not a.startswith("-") and a != "run" and not positional:
            positional = True
            out.append(_relative(Path(cwd) / a, spec.base_dir))
        else:
            out.append(a)
        i += 1
    return out


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(Path(path).resolve(), Path(base).resolve())
    except ValueError:  # another drive (Windows)
        return str(path)


def machine() -> dict[str, Any]:
    """The CPU this run used: its model, the cores of the machine and those this process may use."""
    cpu = platform.processor() or None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu or platform.machine() or None, "cores": os.cpu_count(), "usable_cores": usable,
            "architecture": platform.machine() or None}


def arrays_sha256(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """sha256 of each model input's values as read (``points_<input>`` of ``arrays.npz``):
    numbers as their stored dtype's C-order bytes, text as UTF-8 joined by U+001F."""
    out = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        data = ("\x1f".join(map(str, a.ravel())).encode() if a.dtype.kind in "OUS"
                else np.ascontiguousarray(a).tobytes())
        out[name] = hashlib.sha256(data).hexdigest()
    return out


def provenance(spec: Spec, loaded: LoadedModel, points: Points, command: list[str] | None,
               run_seconds: float | None = None, flat: np.ndarray | None = None,
               arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """``flat``: the differentiated points ``[P, n]`` (the ``points`` of arrays.npz) when
    they are not ``points.values`` (a model with named inputs); ``arrays``: every model
    input's values as read, by name."""
    values = points.values if points.values is not None else flat
    tf_version = sys.modules["tensorflow"].__version__ if "tensorflow" in sys.modules else None
    cwd = os.getcwd()
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spec_path": str(spec.path) if spec.path else None,
        "spec_sha256": spec.sha256,
        "model_sha256": loaded.sha256,
        "points_source": points.source,
        "points_sha256": points_sha256(values),
        "points_shape": list(values.shape),
        "points_sha256_by_input": arrays_sha256(arrays or {}),
        "files": input_files(spec, loaded),
        "seed": points.seed,
        "design": points.design,  # a sample's method (random, sobol, halton, lhs); None for given points
        "command": command,
        "cwd": cwd,
        "reproduce": reproduce_command(command, cwd, spec),
        "run_seconds": run_seconds,
        "versions": {
            "sensreport": _version("sensreport"),
            "python": platform.python_version(),
            "tensorflow": tf_version,
            "keras": _version("keras"),
            "numpy": np.__version__,
            "jinja2": _version("jinja2"),
            "plotly": _version("plotly"),
        },
        "platform": platform.platform(),
        "machine": machine(),
    }
