"""Input distributions: what a sample draws its points from, or what given points were drawn from.

A leaf module (numpy and, lazily, scipy only): the spec builds :class:`Distribution`
objects, the sampler maps a design's uniform numbers through :meth:`Distribution.ppf`,
and global-sensitivity measures take :meth:`Distribution.variance` and
:meth:`Distribution.poincare_constant` from them.

Poincaré constants
------------------
A distribution ``mu`` satisfies a Poincaré inequality with constant ``C`` when
``Var f(X) <= C E[f'(X)^2]`` for every smooth ``f`` of ``X ~ mu``. With the DGSM
``nu_i = E[(df/dx_i)^2]`` of independent inputs it bounds the total Sobol' index:
``S_T,i <= C_i nu_i / V`` (Sobol' and Kucherenko 2009; Lamboni, Iooss, Popelin and
Gamboa 2013). The optimal constants used here:

- uniform on ``[a, b]``: ``(b - a)^2 / pi^2`` (the first Neumann eigenvalue of the
  interval; Sobol' and Kucherenko 2009);
- normal with std ``s``: ``s^2`` (the Gaussian Poincaré inequality);
- truncated normal with std ``s`` on ``[a, b]``: ``min(s^2, (b - a)^2 / pi^2)``. It is
  log-concave, so both the Bakry-Emery bound (a density ``exp(-V)`` with ``V'' >= 1/s^2``
  gives ``s^2``) and the Payne-Weinberger bound (a log-concave measure on an interval of
  length ``L`` gives ``L^2 / pi^2``) hold (Lamboni et al. 2013, table 1);
- triangular on ``[a, b]``: ``(b - a)^2 / pi^2``, its density being log-concave on an
  interval (Payne and Weinberger 1960);
- lognormal: none. Its tail is heavier than exponential, so no finite constant exists
  (:meth:`Distribution.poincare_constant` returns None).

References
----------
I. M. Sobol' and S. Kucherenko, "Derivative based global sensitivity measures and their
link with global sensitivity indices", Math. Comput. Simul. 79 (2009) 3009-3017.

M. Lamboni, B. Iooss, A.-L. Popelin and F. Gamboa, "Derivative-based global sensitivity
measures: general links with Sobol' indices and numerical tests", Math. Comput. Simul. 87
(2013) 45-54.

L. E. Payne and H. F. Weinberger, "An optimal Poincaré inequality for convex domains",
Arch. Rational Mech. Anal. 5 (1960) 286-292.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Each kind and the numbers its spec entry gives, in order.
KINDS: dict[str, tuple[str, ...]] = {
    "uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "lognormal": ("mu", "sigma"),
    "truncnormal": ("mean", "std", "low", "high"),
    "triangular": ("low", "mode", "high"),
}


@dataclass(frozen=True)
class Distribution:
    """One input's distribution, as a spec writes it (``{truncnormal: [0, 1, -2, 2]}``).

    ``params``: uniform ``[low, high]``; normal ``[mean, std]``; lognormal ``[mu, sigma]``
    of the logarithm; truncnormal ``[mean, std, low, high]`` (the mean and std of the
    normal before truncation); triangular ``[low, mode, high]``.
    """

    kind: str
    params: tuple[float, ...]

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """The inverse CDF at ``u`` in (0, 1), as float64."""
        u = np.asarray(u, dtype=np.float64)
        p = self.params
        if self.kind == "uniform":
            return p[0] + (p[1] - p[0]) * u
        from scipy import stats  # lazily: `sensreport validate` needs no scipy

        if self.kind == "normal":
            return stats.norm.ppf(u, loc=p[0], scale=p[1])
        if self.kind == "lognormal":
            return stats.lognorm.ppf(u, s=p[1], scale=math.exp(p[0]))
        if self.kind == "truncnormal":
            mean, std, low, high = p
            return stats.truncnorm.ppf(u, (low - mean) / std, (high - mean) / std, loc=mean, scale=std)
        if self.kind == "triangular":
            low, mode, high = p
            return stats.triang.ppf(u, (mode - low) / (high - low), loc=low, scale=high - low)
        raise ValueError(f"unknown distribution kind {self.kind!r}")

    def mean(self) -> float:
        p = self.params
        if self.kind == "uniform":
            return (p[0] + p[1]) / 2
        if self.kind == "normal":
            return p[0]
        if self.kind == "lognormal":
            return math.exp(p[0] + p[1] ** 2 / 2)
        if self.kind == "triangular":
            return sum(p) / 3
        return float(self._truncnorm().mean())

    def variance(self) -> float:
        p = self.params
        if self.kind == "uniform":
            return (p[1] - p[0]) ** 2 / 12
        if self.kind == "normal":
            return p[1] ** 2
        if self.kind == "lognormal":
            return math.expm1(p[1] ** 2) * math.exp(2 * p[0] + p[1] ** 2)
        if self.kind == "triangular":
            a, c, b = p
            return (a * a + b * b + c * c - a * b - a * c - b * c) / 18
        return float(self._truncnorm().var())

    def poincare_constant(self) -> float | None:
        """The constant ``C`` of ``Var f <= C E[f'^2]`` (see the module's docstring);
        None for the lognormal, which has none."""
        p = self.params
        if self.kind == "uniform":
            return (p[1] - p[0]) ** 2 / math.pi ** 2
        if self.kind == "normal":
            return p[1] ** 2
        if self.kind == "truncnormal":
            return min(p[1] ** 2, (p[3] - p[2]) ** 2 / math.pi ** 2)
        if self.kind == "triangular":
            return (p[2] - p[0]) ** 2 / math.pi ** 2
        return None

    def describe(self) -> str:
        """A few words: ``uniform on [0, 1]``, ``normal (mean 0, std 2)``."""
        p = [f"{v:g}" for v in self.params]
        if self.kind == "uniform":
            return f"uniform on [{p[0]}, {p[1]}]"
        if self.kind == "normal":
            return f"normal (mean {p[0]}, std {p[1]})"
        if self.kind == "lognormal":
            return f"lognormal (log has mean {p[0]}, std {p[1]})"
        if self.kind == "truncnormal":
            return f"normal (mean {p[0]}, std {p[1]}) truncated to [{p[2]}, {p[3]}]"
        return f"triangular on [{p[0]}, {p[2]}] with mode {p[1]}"

    def to_json(self) -> dict[str, list[float]]:
        """As written in a spec: ``{"uniform": [0.0, 1.0]}``."""
        return {self.kind: [float(v) for v in self.params]}

    def _truncnorm(self):
        from scipy import stats

        mean, std, low, high = self.params
        return stats.truncnorm((low - mean) / std, (high - mean) / std, loc=mean, scale=std)


def problem(kind: str, params: list[float] | tuple[float, ...]) -> str | None:
    """What is wrong with a distribution's numbers (the spec names the key), or None."""
    if kind not in KINDS:
        return f"expected one of {', '.join(KINDS)}, got {kind!r}"
    want = KINDS[kind]
    if len(params) != len(want):
        return f"expected {len(want)} numbers [{', '.join(want)}], got {len(params)}"
    p = [float(v) for v in params]
    if not all(math.isfinite(v) for v in p):
        return None  # said once for every number of the spec
    if kind == "uniform" and not p[0] < p[1]:
        return f"expected low < high, got [{params[0]}, {params[1]}]"
    if kind in ("normal", "truncnormal") and not p[1] > 0:
        return f"expected a positive std, got {params[1]}"
    if kind == "lognormal" and not p[1] > 0:
        return f"expected a positive sigma (the std of the logarithm), got {params[1]}"
    if kind == "truncnormal" and not p[2] < p[3]:
        return f"expected low < high, got low {params[2]} and high {params[3]}"
    if kind == "triangular" and not (p[0] <= p[1] <= p[2] and p[0] < p[2]):
        return f"expected low <= mode <= high with low < high, got [{', '.join(map(str, params))}]"
    spread = {"uniform": lambda: p[1] - p[0], "normal": lambda: abs(p[0]) + 10 * p[1],
              "lognormal": lambda: math.exp(p[0] + 10 * p[1]) if p[0] + 10 * p[1] < 709 else math.inf,
              "truncnormal": lambda: p[3] - p[2], "triangular": lambda: p[2] - p[0]}[kind]()
    if not math.isfinite(spread):
        return f"[{', '.join(map(str, params))}] overflows: the values drawn would not be finite numbers"
    return None


def from_json(entry: dict[str, list[float]]) -> Distribution:
    """A spec's ``{kind: [numbers]}`` (already validated) as a :class:`Distribution`."""
    (kind, params), = entry.items()
    return Distribution(kind, tuple(float(v) for v in params))


def resolve(mapping: dict[str, Distribution], names: list[str]) -> list[Distribution | None]:
    """Each flattened input name's distribution: by the name, else by its tensor's name
    (the text before ``[``: ``numeric`` for ``numeric[3]``), else ``default``, else None."""
    out: list[Distribution | None] = []
    for name in names:
        dist = mapping.get(name)
        if dist is None:
            dist = mapping.get(name.split("[", 1)[0])
        if dist is None:
            dist = mapping.get("default")
        out.append(dist)
    return out
