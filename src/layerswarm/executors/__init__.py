"""Where fitness evaluations run: in this process, or on Ray."""

from .base import Executor
from .local import LocalExecutor, evaluate_with_retries

__all__ = ["Executor", "LocalExecutor", "evaluate_with_retries"]
