"""Shared fixtures: paths, a CLI runner, and small spec writers."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ARTIFACTS = ROOT / "tests" / "_artifacts"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def cli():
    """Invoke the real command line in-process; returns click's Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from sensreport.cli import main

    def invoke(*args: str):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec (dedented YAML) and any extra files into tmp_path; return the spec path."""

    def write(text: str, name: str = "spec.yaml", **files: str) -> Path:
        for fname, content in files.items():
            (tmp_path / fname.replace("__", ".")).write_text(textwrap.dedent(content))
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


FUNCTIONS = '''
import numpy as np
import tensorflow as tf

def poly(x):
    return tf.stack([x[0] ** 3 - 2 * x[0] * x[1], x[1] ** 2])

def nan_at_zero(x):
    return tf.sqrt(x)          # derivative is infinite at 0

def blackbox(x):
    return tf.numpy_function(lambda a: np.sin(a), [x], x.dtype)

def broken(x):
    raise RuntimeError("model exploded")
'''


@pytest.fixture
def functions_py():
    return FUNCTIONS
