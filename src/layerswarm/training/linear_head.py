"""A new head fitted on the frozen backbone's features before any fine-tuning.

Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution" (ICLR 2022): a randomly initialised head sends large, arbitrary gradients
into the pretrained layers during the first steps of fine-tuning and distorts their features;
fitting the head first on the frozen features (linear probing, LP) and only then fine-tuning
(FT) avoids it. This module does the LP step the way the paper does: the head's input is
computed once for every training image (no augmentation, the backbone in eval mode), normalised
as the fine-tune will normalise it: the BatchNorm layers of units that train use batch
statistics of the target images, so theirs are re-estimated on them; those of frozen units keep
the source's statistics (they stay in eval mode, bit-identical). A head fitted on the other
statistics fits features the fine-tune never computes (on digits at 32 px, fitted for a
network whose every layer is re-estimated and loaded into a frozen one: 63 % validation
accuracy at fitting, 19 % in the network; fitted on what the frozen network computes: 86 %).
Then a multinomial logistic regression is fitted on it to convergence, its L2 strength chosen
by validation accuracy. It is cheap (one forward pass over the training and validation images,
then seconds of L-BFGS on a small matrix), deterministic, and never sees the test split.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.imageset import ImageSet
from ..errors import LayerswarmError
from .augment import BatchTransform
from .optim import reestimate_bn
from .trainer import eval_batches

# L2 strengths tried for the head (0.5 x l2 x the squared weights, added to the mean loss): the
# validation split picks one. Kumar et al. tune the inverse (scikit-learn's C) the same way.
L2_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1)


@dataclass
class LinearHead:
    """The fitted head: its parameters (state-dict keys of the model) and how it was chosen."""

    state: dict[str, torch.Tensor]
    l2: float
    val_accuracy: float

    def load_into(self, model: nn.Module) -> None:
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in self.state.items():
                params[name].copy_(value.to(params[name].device, params[name].dtype))

    def info(self) -> dict:
        return {"head_l2": self.l2, "head_val_accuracy": self.val_accuracy}


def last_linear(model: nn.Module, head: list[str]) -> str:
    """Module path of the linear layer that makes the logits: the last ``nn.Linear`` of the head."""
    linears = [
        f"{path}.{sub}" if sub else path
        for path in head
        for sub, m in model.get_submodule(path).named_modules()
        if isinstance(m, nn.Linear)
    ]
    if not linears:
        raise LayerswarmError(
            f"the model's head ({', '.join(head)}) has no linear layer to fit on features: "
            "use a cold head (--fitness-head cold) or another strategy"
        )
    return linears[-1]


def _trained_norms(model: nn.Module, frozen: Sequence[str]) -> list[nn.Module]:
    """The BatchNorm layers of ``model`` outside the ``frozen`` module paths."""
    return [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and not any(name == path or name.startswith(path + ".") for path in frozen)
    ]


def target_statistics(
    model: nn.Module, data: ImageSet, transform: BatchTransform, batch_size: int, frozen: Sequence[str] = ()
) -> nn.Module:
    """A copy of ``model`` whose BatchNorm layers outside ``frozen`` hold the statistics of
    ``data`` instead of the source task's: the statistics the fine-tune normalises with, since its
    trained units' BatchNorm layers run on batch statistics of the target images (a head fitted on
    the source's would fit features full fine-tuning never computes: on digits at 32 px it is at
    chance after the first step), while its frozen ones keep the source's."""
    if not _trained_norms(model, frozen):
        return model
    copy_ = copy.deepcopy(model)
    device = next(copy_.parameters()).device
    reestimate_bn(
        copy_, _trained_norms(copy_, frozen), (x for x, _ in eval_batches(data, transform, batch_size, device))
    )
    return copy_


def head_inputs(
    model: nn.Module, linear: str, data: ImageSet, transform: BatchTransform, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the final linear layer sees for every example of ``data`` (eval mode, no augmentation)."""
    captured: list[torch.Tensor] = []
    handle = model.get_submodule(linear).register_forward_pre_hook(
        lambda _m, args: captured.append(args[0].detach().flatten(1).double().cpu())
    )
    was_training = model.training
    model.eval()
    labels = []
    try:
        with torch.inference_mode():
            for x, y in eval_batches(data, transform, batch_size, next(model.parameters()).device):
                model(x)
                labels.append(y.cpu())
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured), torch.cat(labels)


def _logistic_regression(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, max_iter: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by L-BFGS from zero weights (deterministic)."""
    weight = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return weight.detach(), bias.detach()


def fit_linear_head(
    model: nn.Module,
    head: list[str],
    train: ImageSet,
    val: ImageSet,
    transform: BatchTransform,
    batch_size: int = 256,
    l2_grid: tuple[float, ...] = L2_GRID,
    frozen: Sequence[str] = (),
) -> LinearHead:
    """Fit the head's last linear layer on ``model``'s features of ``train`` as a fine-tune that
    keeps the modules at ``frozen`` in eval mode computes them (no path frozen: full
    fine-tuning's); the L2 strength with the best ``val`` accuracy wins (the stronger one on a
    tie). ``model`` is left unchanged: load the result with :meth:`LinearHead.load_into`."""
    linear = last_linear(model, head)
    layer = model.get_submodule(linear)
    if layer.bias is None:  # the centring of the features folds into the bias
        raise LayerswarmError(f"the head's linear layer {linear} has no bias: a fitted head needs one")
    target = target_statistics(model, train, transform, batch_size, frozen)
    x_train, y_train = head_inputs(target, linear, train, transform, batch_size)
    x_val, y_val = head_inputs(target, linear, val, transform, batch_size)
    # Raw features, as scikit-learn's logistic regression takes them: standardising would divide the
    # many features that are (nearly) constant on a small target set by their tiny spread, and the
    # huge weights that follow blow the logits up as soon as fine-tuning moves those features.
    num_classes = layer.out_features
    best: tuple[float, float, torch.Tensor, torch.Tensor] | None = None
    for l2 in sorted(l2_grid, reverse=True):
        w, b = _logistic_regression(x_train, y_train, num_classes, l2)
        acc = ((x_val @ w.T + b).argmax(1) == y_val).double().mean().item()
        if best is None or acc > best[1]:
            best = (l2, acc, w, b)
    assert best is not None
    l2, acc, weight, bias = best
    state = {f"{linear}.weight": weight.float(), f"{linear}.bias": bias.float()}
    return LinearHead(state, l2, acc)
