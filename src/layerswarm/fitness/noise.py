"""How noisy a measured accuracy is, and when two of them differ by more than that noise.

One rule, used everywhere a fitness or a test accuracy is compared (``best_mask.json``'s
``within_noise``, final selection, the baselines' verdict):

* An accuracy p measured on n images has the binomial standard error sqrt(p (1 - p) / n).
* The mean of R repeats (other seeds for the head and the batch order, the same images) has
  se = sqrt(p (1 - p) / n + s^2 / R), s the sample standard deviation over the repeats
  (ddof 1): the seed noise the repeats measure plus the image-sample noise they cannot average
  away. Conservative (s contains some image noise too); R = 1 is the binomial se alone.
* Two values a, b (standard errors se_a, se_b) are *within noise* when
  |a - b| <= NOISE_Z * sqrt(se_a^2 + se_b^2); only a larger gap makes one better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

NOISE_Z = 2.0  # gaps up to 2 combined standard errors are noise


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` over ``n`` images (0 for n < 1)."""
    if n < 1 or p is None or not math.isfinite(p):
        return 0.0
    p = min(max(p, 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / n)


def repeats_se(values: Sequence[float], n: int, image_se: float | None = None) -> float:
    """Standard error of the mean of ``values`` (repeats on the same ``n`` images).
    ``image_se``: the image-sample part when the values are not plain accuracies (a 'trend'
    fitness); default the binomial se of their mean."""
    mean = math.fsum(values) / len(values)
    spread = 0.0
    if len(values) > 1:
        spread = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values)
    return math.sqrt((binomial_se(mean, n) if image_se is None else image_se) ** 2 + spread)


def combined_se(*ses: float | None) -> float:
    """Standard error of a difference of independent values (missing ones count 0)."""
    return math.sqrt(sum((s or 0.0) ** 2 for s in ses))


def within_noise(a: float, se_a: float | None, b: float, se_b: float | None) -> bool:
    """``a`` and ``b`` are not told apart by their noise (module doc)."""
    return abs(a - b) <= NOISE_Z * combined_se(se_a, se_b)


def verdict(ours: float, se_ours: float | None, theirs: float, se_theirs: float | None) -> str:
    """'won', 'tied' (within noise) or 'lost'."""
    if within_noise(ours, se_ours, theirs, se_theirs):
        return "tied"
    return "won" if ours > theirs else "lost"


def plan_key(record: dict) -> tuple[int, ...]:
    """What an ``evaluations.jsonl`` line evaluated: its ``levels`` in a level space, else its
    mask."""
    return tuple(record["mask"] if record.get("levels") is None else record["levels"])


def _levels_of(record: dict) -> dict:
    """``{"levels": ...}`` of a level space's line, else nothing (a mask line stays as it was)."""
    return {} if record.get("levels") is None else {"levels": list(record["levels"])}


def distinct_masks(records: list[dict]) -> dict[tuple[int, ...], dict]:
    """The first successful search evaluation of each mask (each plan: :func:`plan_key`)
    (``evaluations.jsonl`` lines; a final selection's, with a ``phase``, are left out)."""
    out: dict[tuple[int, ...], dict] = {}
    for r in records:
        if r.get("fitness") is not None and not r.get("phase"):
            out.setdefault(plan_key(r), r)
    return out


def best_with_noise(records: list[dict], mask: list[int], fitness: float) -> dict:
    """``best_mask.json``'s noise fields: the best fitness's standard error and the other masks
    whose fitness is within noise of it (best first), so that none is called better or worse.
    ``mask``: the best plan's key (:func:`plan_key`: its levels in a level space)."""
    masks = distinct_masks(records)
    best = masks.get(tuple(mask))
    se = best.get("fitness_se") if best is not None else None
    close = [
        {"mask": list(r["mask"]), **_levels_of(r), "fitness": r["fitness"], "fitness_se": r.get("fitness_se")}
        for m, r in masks.items()
        if list(m) != list(mask) and within_noise(fitness, se, r["fitness"], r.get("fitness_se"))
    ]
    close.sort(key=lambda r: -r["fitness"])
    return {
        "fitness_se": se,
        "within_noise": close,
        "noise_rule": f"|f - best| <= {NOISE_Z:g} x sqrt(se^2 + se_best^2)",
    }
