"""Shared by the benchmarks: warm repeated timing and one printed line per measurement."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def timed(function: Callable[[], object], repeats: int, warmup: int = 3) -> np.ndarray:
    """Milliseconds of ``repeats`` calls of ``function`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return np.array(times)


def report(name: str, times: np.ndarray) -> None:
    print(f"{name:<34} median {np.median(times):8.1f} ms   p95 {np.percentile(times, 95):8.1f} ms   (n={len(times)})")
