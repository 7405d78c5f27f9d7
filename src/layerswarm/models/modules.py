"""Module surgery shared by the model builders and the prefix cache."""

from __future__ import annotations

from torch import nn


def replace_module(model: nn.Module, path: str, new: nn.Module) -> None:
    """Put ``new`` where the module at dotted ``path`` sits in ``model`` (``ModuleList`` items included)."""
    parent_path, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent_path) if parent_path else model, attr, new)
