"""A share of successes out of n, with its 95% Wilson score interval.

Live accuracy rests on however many decisions reviewers happened to label, often a few dozen:
a bare ratio would read 1.000 on three reviews. The Wilson interval stays inside [0, 1] and
behaves at small n and at shares near 0 or 1, where the normal approximation does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Z_95 = 1.959963984540054  # the standard normal quantile for a two-sided 95% interval

# Below this many observations a share is shown as "not enough feedback" (and not exported as
# a gauge): at n=20 the 95% interval around 0.9 is still about 0.70-0.97 wide.
MIN_N = 20


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` (n > 0)."""
    if n <= 0:
        raise ValueError("a Wilson interval needs at least one observation")
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} is not between 0 and n={n}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``n``; the share and its interval are None when n is 0."""

    successes: int
    n: int

    @property
    def share(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.successes, self.n) if self.n else None

    @property
    def enough(self) -> bool:
        """Whether ``n`` reaches :data:`MIN_N`, the least a figure is shown as meaningful on."""
        return self.n >= MIN_N

    def to_dict(self) -> dict[str, Any]:
        interval = self.interval
        return {
            "successes": self.successes,
            "n": self.n,
            "share": self.share,
            "low": interval[0] if interval else None,
            "high": interval[1] if interval else None,
            "enough": self.enough,
        }
