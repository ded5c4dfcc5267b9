"""Make the structured example: a keras.io-style credit model with one Input per feature.

Four numeric features (each its own ``keras.Input(shape=(1,))``, scaled by a
``Normalization`` layer adapted to the data), an integer ``region`` through an
``Embedding``, and two heads: ``p_default`` (the probability of default) and ``risk``
(two scores). Trained briefly on synthetic data with a fixed seed, saved as
``model.keras`` and exported as a SavedModel (``saved_model/``), with the points the
spec reads (``points.csv``, 120 applicants) and the same points as ``points.npz``.

Run from anywhere: ``python examples/structured/make_model.py`` (needs TensorFlow).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = Path(__file__).resolve().parent
NUMERIC = ("age", "income", "debt_ratio", "tenure")
REGIONS = 5


def synthetic(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "age": rng.uniform(21, 70, n),
        "income": rng.lognormal(3.6, 0.45, n),  # kUSD
        "debt_ratio": rng.beta(2, 5, n),
        "tenure": rng.exponential(6.0, n),  # years with the bank
        "region": rng.integers(0, REGIONS, n),
    }


def targets(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    region_effect = np.array([0.0, 0.4, -0.3, 0.8, 0.1])[d["region"]]
    logit = -1.0 + 3.5 * d["debt_ratio"] - 0.02 * (d["income"] - 40) - 0.05 * d["tenure"] + 0.01 * (
        d["age"] - 45) + region_effect
    p = 1 / (1 + np.exp(-logit))
    risk = np.stack([logit, 0.5 * d["debt_ratio"] * d["income"] / 40], axis=1)
    return p, risk


def build(train: dict[str, np.ndarray]) -> keras.Model:
    inputs, scaled = {}, []
    for name in NUMERIC:
        inp = keras.Input(shape=(1,), name=name)
        norm = keras.layers.Normalization(name=f"{name}_norm")
        norm.adapt(train[name].reshape(-1, 1).astype("float32"))
        inputs[name] = inp
        scaled.append(norm(inp))
    region = keras.Input(shape=(1,), name="region", dtype="int32")
    emb = keras.layers.Flatten()(keras.layers.Embedding(REGIONS, 3, name="region_embedding")(region))
    h = keras.layers.Concatenate()(scaled + [emb])
    h = keras.layers.Dense(24, activation="gelu")(h)
    h = keras.layers.Dense(16, activation="relu")(h)
    p_default = keras.layers.Dense(1, activation="sigmoid", name="p_default")(h)
    risk = keras.layers.Dense(2, name="risk")(h)
    return keras.Model([*inputs.values(), region], {"p_default": p_default, "risk": risk}, name="credit")


def main() -> None:
    rng = np.random.default_rng(7)
    keras.utils.set_random_seed(7)
    train = synthetic(4000, rng)
    p, risk = targets(train)
    model = build(train)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss={"p_default": "binary_crossentropy", "risk": "mse"})
    feed = {k: v.reshape(-1, 1).astype("int32" if k == "region" else "float32") for k, v in train.items()}
    model.fit(feed, {"p_default": (rng.uniform(size=len(p)) < p).astype("float32"), "risk": risk.astype("float32")},
              epochs=4, batch_size=64, verbose=0)
    model.save(HERE / "model.keras")
    model.export(str(HERE / "saved_model"), verbose=False)
    points = synthetic(120, np.random.default_rng(11))
    with open(HERE / "points.csv", "w") as fh:
        cols = ["region", *NUMERIC]  # any column order: matched to the inputs by name
        fh.write(",".join(cols) + "\n")
        for i in range(120):
            fh.write(",".join(str(int(points[c][i])) if c == "region" else f"{points[c][i]:.6g}" for c in cols) + "\n")
    np.savez(HERE / "points.npz", **{k: (v.astype("int32") if k == "region" else v).reshape(-1, 1)
                                     for k, v in points.items()})
    print(f"wrote {HERE / 'model.keras'}, {HERE / 'saved_model'}, points.csv and points.npz ({tf.__version__})")


if __name__ == "__main__":
    main()
