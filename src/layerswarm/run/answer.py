"""The run's answer (``layerswarm search --answer``): which fine-tuned model a search answers with.

``mask`` (the paper): the searched mask's final fine-tune. ``validation``: the best by final
validation accuracy among the searched mask and the baselines (:mod:`layerswarm.run.baselines`),
written to ``DIR/answer.json``, which ``layerswarm predict`` and ``export`` follow. A short
fitness ranks masks poorly (docs/concepts/fitness.md) while a whole fine-tune's validation ranks
them well, and the baselines are fine-tuned anyway. Test accuracies only report the choice.
"""

from __future__ import annotations

ANSWERS = ("mask", "validation")
ANSWER_FILE = "answer.json"
SEARCHED = "search"  # the searched mask's name among the candidates


def choose_answer(final: dict, baselines: dict[str, dict]) -> str:
    """The candidate with the highest final validation accuracy: ``"search"`` (the searched mask)
    or a baseline's name. A tie keeps the searched mask (then the earlier baseline). Test
    accuracies are not read."""
    best, best_val = SEARCHED, final.get("val_accuracy")
    for name, metrics in baselines.items():
        val = metrics.get("val_accuracy")
        if val is not None and (best_val is None or val > best_val):
            best, best_val = name, val
    return best


def answer_record(final: dict, baselines: dict[str, dict], baselines_dir: str) -> dict:
    """``answer.json``: the chosen candidate, its model folder (relative to the run; a baseline's is
    under ``baselines_dir``), mask and accuracies, and every candidate's validation accuracy."""
    name = choose_answer(final, baselines)
    metrics = final if name == SEARCHED else baselines[name]
    return {
        "answer": name,
        "model_dir": "final" if name == SEARCHED else f"{baselines_dir}/{name}/final",
        "strategy": metrics.get("strategy"),
        "mask": metrics.get("mask"),
        "units": metrics.get("units"),
        # a --space lr plan's rates, which export follows too
        **({} if metrics.get("lr_multipliers") is None else {"lr_multipliers": metrics["lr_multipliers"]}),
        "val_accuracy": metrics.get("val_accuracy"),
        "test_accuracy": metrics["test_accuracy"],
        "validation": {SEARCHED: final.get("val_accuracy"), **{n: m.get("val_accuracy") for n, m in baselines.items()}},
    }
