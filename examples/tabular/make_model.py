"""Train the small credit model used by examples/tabular (run once; outputs are committed).

    python examples/tabular/make_model.py

Synthetic applicants with a known rule: default risk rises with debt ratio and late
payments and falls with income and years employed; age barely matters. The model has
two sigmoid outputs, p_default and p_late. Everything is seeded.
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NAMES = ["age", "income_k", "debt_ratio", "late_payments", "years_employed"]


def applicants(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack(
        [
            rng.uniform(21, 75, n),  # age, years
            rng.lognormal(np.log(55), 0.4, n),  # income, thousands per year
            rng.beta(2, 5, n),  # debt ratio, 0..1
            rng.poisson(1.0, n).astype(float),  # late payments last year
            rng.gamma(2.0, 4.0, n),  # years employed
        ],
        axis=1,
    )


def labels(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    age, income, debt, late, years = x.T
    z_default = -2.0 + 4.0 * debt + 0.6 * late - 0.02 * (income - 55) - 0.05 * years + 0.002 * (age - 45)
    z_late = -1.5 + 1.5 * debt + 0.9 * late - 0.01 * (income - 55)
    p = 1 / (1 + np.exp(-np.stack([z_default, z_late], axis=1)))
    return (rng.uniform(size=p.shape) < p).astype("float32")


def main() -> None:
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(7)
    keras.utils.set_random_seed(7)
    x = applicants(20000, rng)
    y = labels(x, rng)
    norm = keras.layers.Normalization(name="standardize")
    norm.adapt(x.astype("float32"))
    model = keras.Sequential(
        [
            keras.Input((len(NAMES),), name="applicant"),
            norm,
            keras.layers.Dense(32, activation="tanh"),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(2, activation="sigmoid", name="risk"),
        ],
        name="credit",
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(x.astype("float32"), y, epochs=8, batch_size=256, verbose=0)
    model.save(HERE / "credit.keras")

    audit = applicants(40, np.random.default_rng(11))
    header = ",".join(NAMES)
    np.savetxt(HERE / "points.csv", audit, delimiter=",", header=header, comments="", fmt="%.4f")
    print("loss", model.evaluate(x.astype("float32"), y, verbose=0), "tf", tf.__version__)


if __name__ == "__main__":
    main()
