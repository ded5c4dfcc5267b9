"""Make the sequence example: a small LSTM over 12 months of three named features.

One ``keras.Input(shape=(12, 3), name="series")`` (months x features: ``balance``,
``utilization``, ``late_payments``), an ``LSTM`` layer and a sigmoid head
``p_default``. Trained briefly on synthetic data with a fixed seed and saved as
``model.keras``, with the 60 customers the spec reads (``points.npz``, one array
``series`` of shape [60, 12, 3]).

Run from anywhere: ``python examples/sequence/make_model.py`` (needs TensorFlow).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = Path(__file__).resolve().parent
MONTHS, FEATURES = 12, ("balance", "utilization", "late_payments")


def synthetic(n: int, rng: np.random.Generator) -> np.ndarray:
    """[n, 12, 3]: a balance (kUSD) that drifts, a utilization in [0, 1], late payments (counts, as floats)."""
    balance = np.cumsum(rng.normal(0, 0.4, (n, MONTHS)), axis=1) + rng.uniform(1, 6, (n, 1))
    utilization = np.clip(rng.beta(2, 3, (n, 1)) + np.cumsum(rng.normal(0, 0.03, (n, MONTHS)), axis=1), 0, 1)
    late = rng.poisson(0.15, (n, MONTHS)).astype(float)
    return np.stack([balance, utilization, late], axis=2)


def target(series: np.ndarray) -> np.ndarray:
    """Recent months weigh more: the default probability follows the last quarter's utilization and lateness."""
    weights = np.linspace(0.2, 1.0, MONTHS)
    logit = (-2.0 + 2.5 * (series[:, :, 1] * weights).sum(1) / weights.sum() + 0.9 * (series[:, -3:, 2]).sum(1)
             - 0.05 * series[:, -1, 0])
    return 1 / (1 + np.exp(-logit))


def build() -> keras.Model:
    series = keras.Input(shape=(MONTHS, len(FEATURES)), name="series")
    h = keras.layers.LSTM(8, name="lstm")(series)
    p_default = keras.layers.Dense(1, activation="sigmoid", name="p_default")(h)
    return keras.Model(series, p_default, name="payments")


def main() -> None:
    rng = np.random.default_rng(3)
    keras.utils.set_random_seed(3)
    train = synthetic(3000, rng)
    p = target(train)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    model.fit(train.astype("float32"), (rng.uniform(size=len(p)) < p).astype("float32"), epochs=3, batch_size=64,
              verbose=0)
    model.save(HERE / "model.keras")
    np.savez(HERE / "points.npz", series=synthetic(60, np.random.default_rng(5)).astype("float32"))
    print(f"wrote {HERE / 'model.keras'} and points.npz ({tf.__version__})")


if __name__ == "__main__":
    main()
