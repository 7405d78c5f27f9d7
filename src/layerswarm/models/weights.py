"""Safe loading of local checkpoints: safetensors, or torch files with ``weights_only=True``."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from ..errors import LayerswarmError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, never unpickling arbitrary objects."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, ValueError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LayerswarmError(
            f"cannot read weights file '{path}' safely ({first[:120]}): pass a safetensors file "
            "or a torch state_dict saved with torch.save(model.state_dict())"
        ) from err
    # Common wrappers: {"state_dict": ...} or {"model": ...}.
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LayerswarmError(f"weights file '{path}' holds no state_dict of tensors: save model.state_dict()")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights_file(model: nn.Module, path: str | Path, model_name: str) -> None:
    """Load ``path`` into ``model``; keys of its classifier may differ (they are replaced)."""
    state = read_state_dict(path)
    target = model.state_dict()
    head_keys = set()
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        head_keys = {f"{n}.{k}" for n, m in model.named_modules() if m is head for k in m.state_dict()}
    missing = [k for k in target if k not in state and k not in head_keys]
    wrong = [k for k in target if k in state and k not in head_keys and state[k].shape != target[k].shape]
    if missing or wrong:
        example = (wrong or missing)[0]
        raise LayerswarmError(
            f"weights file '{path}' does not fit model '{model_name}': {len(missing)} missing and "
            f"{len(wrong)} mis-shaped tensors (e.g. {example}); pass weights saved from this architecture"
        )
    fitting = {k: v for k, v in state.items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(fitting, strict=False)
