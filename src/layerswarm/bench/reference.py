"""The benchmark's reference: Algorithm 1 written plainly, with no caching of any kind.

Written independently of layerswarm's searcher, trainer and executors, on purpose: it is the
yardstick that the exact speed-ups must match. It shares only what defines the problem: the
model and its pretrained weights, the layer units, and the batch transform (the augmentation
semantics: a generator seeded per fine-tune draws the epoch order, then each batch's crops
and flips), so that a mask has one true fitness.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.imageset import ImageSet
from ..training.augment import BatchTransform
from ..training.config import TrainConfig
from ..units.units import Unit


def plain_finetune(
    model: nn.Module,
    start: dict,
    units: list[Unit],
    mask: list[int],
    train: ImageSet,
    cfg: TrainConfig,
    transform: BatchTransform,
) -> nn.Module:
    """Fine-tune from ``start`` for ``cfg.epochs`` epochs; frozen units: no grad, eval mode."""
    model.load_state_dict(start)
    frozen = {p for u, bit in zip(units, mask, strict=True) if not bit for p in u.params}
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
        p.grad = None
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.optim.lr,
        momentum=cfg.optim.momentum,
        weight_decay=cfg.optim.weight_decay,
    )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.optim.step_size, gamma=cfg.optim.gamma)
    gen = torch.Generator(device=train.inputs.device.type).manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        model.train()
        for u, bit in zip(units, mask, strict=True):
            for m in u.modules if not bit else []:
                model.get_submodule(m).eval()
        order = torch.randperm(len(train), generator=gen, device=train.inputs.device)
        for i in range(0, len(train), cfg.optim.batch_size):
            idx = order[i : i + cfg.optim.batch_size]
            if len(idx) < 2:
                continue
            x = transform(train.inputs[idx], train=True, generator=gen)
            loss = F.cross_entropy(model(x), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model


@torch.no_grad()
def plain_accuracy(model: nn.Module, data: ImageSet, transform: BatchTransform, batch_size: int) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        logits = model(transform(data.inputs[i : i + batch_size], train=False))
        correct += int((logits.argmax(1) == data.labels[i : i + batch_size]).sum())
    return correct / len(data)


def reference_search(
    model: nn.Module,
    units: list[Unit],
    train: ImageSet,
    val: ImageSet,
    cfg: TrainConfig,
    transform: BatchTransform,
    particles: int,
    generations: int,
    seed: int,
    c1: float = 1.5,
    c2: float = 1.5,
    w_start: float = 1.4,
    w_end: float = 0.7,
) -> dict:
    """Algorithm 1: x ~ U(0,1), v ~ U(-0.5,0.5); each generation every particle is fine-tuned
    ``cfg.epochs`` epochs and scored on ``val``; then v <- w v + c1 r1 (p - x) + c2 r2 (g - x),
    x <- clip(x + v, 0, 1), w falling linearly from 1.4 to 0.7."""
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    n, L = particles, len(units)
    rng = np.random.Generator(np.random.PCG64(seed))
    x = rng.random((n, L))
    v = rng.uniform(-0.5, 0.5, (n, L))
    p, p_fit, g, g_fit = x.copy(), np.full(n, -np.inf), x[0].copy(), -np.inf
    evaluations = []
    for t in range(generations):
        for j in range(n):
            mask = [int(b) for b in x[j] > 0.5]
            t0 = time.perf_counter()
            plain_finetune(model, start, units, mask, train, cfg, transform)
            fit = plain_accuracy(model, val, transform, cfg.evaluation.eval_batch_size)
            evaluations.append(
                {"generation": t, "particle": j, "mask": mask, "fitness": fit, "seconds": time.perf_counter() - t0}
            )
            if fit > p_fit[j]:
                p[j], p_fit[j] = x[j], fit
            if fit > g_fit:
                g, g_fit = x[j].copy(), fit
        w = w_start - (w_start - w_end) * t / max(generations - 1, 1)
        r = rng.random((n, 2, L))
        v = w * v + c1 * r[:, 0] * (p - x) + c2 * r[:, 1] * (g - x)
        x = np.clip(x + v, 0.0, 1.0)
    model.load_state_dict(start)
    return {"best_mask": [int(b) for b in g > 0.5], "best_fitness": float(g_fit), "evaluations": evaluations}
