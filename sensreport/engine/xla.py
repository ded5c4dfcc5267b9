"""XLA per kernel: off, on, or chosen by timing on the first chunk (:func:`autotune_xla`).

A timing only ever chooses between two variants of the same kernel that both work: a
kernel XLA cannot compile runs without XLA (and says so), whatever decided to try it.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .kernels import strategy_name
from .runtime import as_numpy, first_line

#: Autotuning runs only when one plain call of the first chunk takes at least this long:
#: below it, XLA's compile time (0.1-0.6 s) cannot pay off within a run.
AUTOTUNE_MIN_SECONDS = 0.002
#: Timed calls per variant; the fastest counts (the machine's noise is one-sided).
AUTOTUNE_REPEATS = 10
#: Timing stops after AUTOTUNE_MIN_REPEATS rounds once one variant is at least this much
#: faster (time ratio): a clear difference does not need ten rounds to show.
AUTOTUNE_MIN_REPEATS = 3
AUTOTUNE_CLEAR = 0.8
#: XLA must be at least this much faster (time ratio) to be chosen, so that timing noise
#: alone does not switch it on (its compile time is already paid by then).
AUTOTUNE_MARGIN = 0.97

Key = tuple[str, str]  # (kernel, dtype)


class XlaChoices:
    """A target's XLA state per kernel: the setting, what tuning chose, what XLA refused."""

    def __init__(self, setting: bool | str = "auto"):
        if setting not in (True, False, "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto', got {setting!r}")
        self.setting = setting
        self.chosen: dict[Key, bool] = {}  # autotuned: kernel -> XLA faster?
        self.refused: set[Key] = set()  # kernels XLA could not compile: they run without it

    def use(self, key: Key) -> bool:
        """Whether the kernel ``key`` runs with XLA now."""
        if key in self.refused or key[0] == "evaluate":
            return False
        return self.setting is True or (self.setting == "auto" and self.chosen.get(key, False))

    def tuned(self, key: Key) -> bool:
        return self.setting != "auto" or key in self.chosen


def _fastest(kernels: list, args: tuple, repeats: int, done: Callable[[list[float]], bool] | None = None) -> list[float]:
    """The fastest of ``repeats`` timed calls of each kernel, calls interleaved.

    ``done(best)``, asked after each round from the ``AUTOTUNE_MIN_REPEATS``-th on, may
    end the timing early.
    """
    best = [np.inf] * len(kernels)
    for r in range(repeats):
        for i, kernel in enumerate(kernels):
            t0 = time.perf_counter()
            as_numpy(kernel(*args)[0])
            best[i] = min(best[i], time.perf_counter() - t0)
        if done is not None and r + 1 >= AUTOTUNE_MIN_REPEATS and done(best):
            break
    return best


def autotune_xla(target, kind: str, make_args: Callable[[], tuple]) -> list[str]:
    """With ``jit_compile="auto"``: time ``kind`` with and without XLA; keep the faster.

    ``make_args()`` builds the first chunk's arguments; it is called only when the
    kernel has not been tuned yet, so tuned calls pay nothing.

    Each variant is called once to trace or compile it, then both are timed over
    ``AUTOTUNE_REPEATS`` interleaved rounds (the fastest call of each counts; timing
    stops after ``AUTOTUNE_MIN_REPEATS`` rounds once one variant is faster by a clear
    ``AUTOTUNE_CLEAR`` ratio); XLA is chosen when it takes less than
    ``AUTOTUNE_MARGIN`` of the plain kernel's time. The choice is remembered on the
    target, so a run tunes each kernel once. Returns notes for the results.
    """
    choices: XlaChoices = target.xla
    key = (kind, target.dtype)
    if choices.tuned(key):
        return []
    choices.chosen[key] = False
    args = make_args()
    plain_kernel = target.kernel(kind, target.dtype, jit=False)
    plain_kernel(*args)  # traces
    plain = _fastest([plain_kernel], args, 1)[0]
    if plain < AUTOTUNE_MIN_SECONDS:
        return []
    xla_kernel = target.kernel(kind, target.dtype, jit=True)
    if key in choices.refused:  # tracing for XLA failed: the target noted it
        return []
    try:
        xla_kernel(*args)  # compiles (a refusal at this first call falls back by itself and is noted)
    except Exception as exc:  # noqa: BLE001 - XLA cannot compile every op
        choices.refused.add(key)
        return [f"XLA could not compile {strategy_name(kind)} ({first_line(exc)}); it runs without XLA."]
    if key in choices.refused:
        return []

    # interleaved, so that a burst of load elsewhere hits both variants alike
    def clear(best):
        return min(best) < AUTOTUNE_CLEAR * max(best)

    plain, xla = _fastest([plain_kernel, xla_kernel], args, AUTOTUNE_REPEATS, clear)
    faster = xla < AUTOTUNE_MARGIN * plain
    choices.chosen[key] = faster
    chosen = "with" if faster else "without"
    return [f"{strategy_name(kind)} runs {chosen} XLA (first chunk: {plain * 1e3:.1f} ms without, {xla * 1e3:.1f} ms with)."]
