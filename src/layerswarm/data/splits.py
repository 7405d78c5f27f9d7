"""Stratified, seeded index splits.

Every function works on a label vector and returns sorted index arrays, so the same
split can be applied to file lists before decoding (decode only what is used).
Each stage draws from its own random stream ``(seed, stage)``: changing one setting
(e.g. ``train_per_class``) never reshuffles an earlier stage (e.g. the validation set).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from layerswarm.errors import LayerswarmError

if TYPE_CHECKING:
    from layerswarm.data.config import DataConfig

# Independent random streams per stage of a split.
STAGE_TEST = 1
STAGE_VAL = 2
STAGE_TRAIN = 3
STAGE_CAP = 4
STAGE_POOL = 5

ArrayLike = np.ndarray | torch.Tensor | Sequence[int]


def _as_labels(labels: ArrayLike) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy().astype(np.int64, copy=False)
    return np.asarray(labels, dtype=np.int64)


def _rng(seed: int, stage: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stage])


def _shuffled_by_class(labels: np.ndarray, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Indices of each class (classes in increasing order), each list shuffled."""
    return {int(c): rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}


def fraction_count(n: int, fraction: float) -> int:
    """How many of ``n`` images a fraction takes: rounded, and leaving both sides non-empty
    whenever ``n >= 2`` (a class of one image stays on the kept side)."""
    if n < 2 or fraction <= 0:
        return 0
    k = int(np.floor(n * fraction + 0.5))
    return min(max(k, 1), n - 1)


def _class_name(c: int, classes: Sequence[str] | None) -> str:
    return classes[c] if classes is not None and 0 <= c < len(classes) else str(c)


def stratified_split(
    labels: ArrayLike,
    counts_or_fraction: int | float,
    seed: int,
    *,
    stage: int = STAGE_TEST,
    classes: Sequence[str] | None = None,
    fix: str = "lower --train-per-class/--val-per-class",
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into ``(taken, rest)``, per class.

    An ``int`` takes exactly that many of every class (error if a class has fewer);
    a ``float`` in (0, 1) takes that fraction of every class (see :func:`fraction_count`).
    """
    y = _as_labels(labels)
    rng = _rng(seed, stage)
    taken: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    is_count = isinstance(counts_or_fraction, (int, np.integer)) and not isinstance(counts_or_fraction, bool)
    for c, idx in _shuffled_by_class(y, rng).items():
        if is_count:
            k = int(counts_or_fraction)
            if len(idx) < k:
                raise LayerswarmError(
                    f"class '{_class_name(c, classes)}' has {len(idx)} images but {k} were asked: {fix}"
                )
        else:
            k = fraction_count(len(idx), float(counts_or_fraction))
        taken.append(idx[:k])
        rest.append(idx[k:])
    return _sorted_cat(taken), _sorted_cat(rest)


def take_per_class(
    labels: ArrayLike,
    k: int,
    seed: int,
    *,
    stage: int = STAGE_TRAIN,
    classes: Sequence[str] | None = None,
    fix: str = "lower --train-per-class/--val-per-class",
) -> np.ndarray:
    """Exactly ``k`` seeded indices of every class (sorted); error if a class has fewer."""
    return stratified_split(labels, int(k), seed, stage=stage, classes=classes, fix=fix)[0]


def subsample_stratified(labels: ArrayLike, n: int, seed: int, *, stage: int = STAGE_CAP) -> np.ndarray:
    """At most ``n`` indices with class proportions kept (largest-remainder allocation)."""
    y = _as_labels(labels)
    if n >= len(y):
        return np.arange(len(y))
    rng = _rng(seed, stage)
    by_class = _shuffled_by_class(y, rng)
    sizes = np.array([len(v) for v in by_class.values()], dtype=np.float64)
    quota = sizes * (n / sizes.sum())
    alloc = np.floor(quota).astype(np.int64)
    # hand the leftover slots to the largest remainders; ties broken by class order
    order = np.argsort(-(quota - alloc), kind="stable")
    alloc[order[: n - int(alloc.sum())]] += 1
    return _sorted_cat([idx[:k] for idx, k in zip(by_class.values(), alloc, strict=True)])


def train_val_indices(
    labels: ArrayLike,
    *,
    seed: int,
    val_per_class: int | None,
    val_fraction: float,
    train_per_class: int | None,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hold validation out of a training pool, then take the few-shot training images.

    Validation: ``val_per_class`` images of every class, or else ``val_fraction`` of it.
    Training: ``train_per_class`` of what is left, or all of it. Counts are checked
    first so that a too-small class is reported with both numbers asked.
    """
    y = _as_labels(labels)
    counts = {int(c): int(n) for c, n in zip(*np.unique(y, return_counts=True), strict=True)}
    for c, n in counts.items():
        val_k = val_per_class if val_per_class is not None else fraction_count(n, val_fraction)
        need = val_k + (train_per_class if train_per_class is not None else 1)
        if n >= need:
            continue
        name = _class_name(c, classes)
        train_part = f"train_per_class={train_per_class}" if train_per_class is not None else "at least 1 to train"
        if val_per_class is not None:
            asked = f"{need} were asked (val_per_class={val_per_class} + {train_part})"
        else:
            asked = f"{need} are needed (val_fraction={val_fraction} holds out {val_k} + {train_part})"
        raise LayerswarmError(
            f"class '{name}' has {n} training images but {asked}: "
            "lower --train-per-class/--val-per-class (or --val-fraction)"
        )
    val_spec: int | float = val_per_class if val_per_class is not None else val_fraction
    val_idx, rest = stratified_split(y, val_spec, seed, stage=STAGE_VAL, classes=classes)
    if train_per_class is None:
        return rest, val_idx
    train_idx = rest[take_per_class(y[rest], train_per_class, seed, stage=STAGE_TRAIN, classes=classes)]
    return np.sort(train_idx), val_idx


def split_pools(
    labels: np.ndarray, train_pool: np.ndarray, test_idx: np.ndarray, cfg: DataConfig, classes: Sequence[str]
) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` indices into ``labels``: validation then the few-shot
    training images from ``train_pool`` (the config's counts and seed), and ``test_idx``
    capped at ``cfg.splits.max_test`` (a stratified sample)."""
    tr, va = train_val_indices(
        labels[train_pool],
        seed=cfg.splits.seed,
        val_per_class=cfg.splits.val_per_class,
        val_fraction=cfg.splits.val_holdout_fraction,
        train_per_class=cfg.splits.train_per_class,
        classes=classes,
    )
    if cfg.splits.max_test is not None:
        test_idx = test_idx[subsample_stratified(labels[test_idx], cfg.splits.max_test, cfg.splits.seed)]
    return {"train": train_pool[tr], "val": train_pool[va], "test": test_idx}


def _sorted_cat(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(parts)).astype(np.int64, copy=False)
