"""Per-tensor distribution checks against a framework's own initialization.

Every tensor is pooled over several seeds on both sides (the service's seeds, the framework's
seeds) and compared with a two-sample Kolmogorov–Smirnov test (p > 1e-3). Tensors the framework
fills with constants (zeros, ones, norm statistics) must be equal element for element instead.
``POOL`` is the number of values per side the pooling aims at: with 2·10^5 values a side, a 5%
error in the standard deviation of a normal gives p < 1e-10 (``test_ks_catches_5pct_std``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

P_MIN = 1e-3
POOL = 200_000


def seeds_for(numel: int, cap: int) -> int:
    """How many seeds to pool so that about ``POOL`` values are compared (at most ``cap``)."""
    return max(2, min(cap, math.ceil(POOL / max(numel, 1))))


def check(name: str, ours: list, theirs: list) -> float:
    """Assert that two pooled samples of one tensor come from the same distribution.

    Returns the KS p-value (1.0 for constant tensors, which are compared exactly).
    """
    ours = [np.asarray(x, dtype=np.float64) for x in ours]
    theirs = [np.asarray(x, dtype=np.float64) for x in theirs]
    # Sizes, not shapes: the values are pooled, and a request may carry a kernel in the flat
    # 2-D form its initializer sees (orthogonal), reshaped by the client afterwards.
    assert ours[0].size == theirs[0].size, f"{name}: size {ours[0].size} != {theirs[0].size}"
    constant = all(np.array_equal(t, theirs[0]) for t in theirs[1:])
    if constant:
        for o in ours:
            np.testing.assert_array_equal(o.ravel(), theirs[0].ravel(),
                                          err_msg=f"{name}: constant differs")
        return 1.0
    a = np.concatenate([o.ravel() for o in ours])
    b = np.concatenate([t.ravel() for t in theirs])
    p = stats.ks_2samp(a, b).pvalue
    assert p > P_MIN, (f"{name}: KS p = {p:.3g} (n = {a.size}, {b.size}); "
                       f"std {a.std():.5g} vs {b.std():.5g}, mean {a.mean():.4g} vs {b.mean():.4g}")
    return p
