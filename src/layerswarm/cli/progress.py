"""Live progress of a search: tqdm bars with time left, and one log line per evaluation.

Bars (search, generation, particle, epoch; then the final fine-tune's epochs) are drawn only
when stderr is a terminal and ``quiet`` is off: a log file or a CI job gets the log lines
alone. ``quiet`` silences the lines too.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from tqdm.auto import tqdm

from .listeners import Listeners, RunListener
from .tensorboard import TensorBoardLogger

__all__ = ["Listeners", "RunListener", "SearchProgress", "format_evaluation", "search_budget", "search_listeners"]

MAX_MASK_CHARS = 64  # longer masks are summarised in the log line


def search_budget(searcher: str, options: dict) -> tuple[int | None, int | None]:
    """``(generations, per generation)`` of a search, or ``None`` where the options do not say."""
    if "particles" in options and "generations" in options:
        return int(options["generations"]), int(options["particles"])
    if "population" in options:  # a GA: its generations ask only masks not seen yet, so their count is open
        return None, int(options["population"])
    if "trials" in options:
        batch = int(options.get("batch_size") or 1)
        return math.ceil(int(options["trials"]) / batch), batch
    return None, None


def format_evaluation(record: dict, best: float, generations: int | None = None, per_gen: int | None = None) -> str:
    """``gen  2/12  particle  3/10  fitness 0.8125  best 0.8400  mask 0110... (12/18)  41.2s``."""
    gen = f"{record['generation'] + 1:>2}" + (f"/{generations}" if generations else "")
    part = f"{record['particle'] + 1:>2}" + (f"/{per_gen}" if per_gen else "")
    where = f"gen {gen}  particle {part}"
    if record.get("generation", 0) < 0:  # asked before the searcher's first generation (--init baselines)
        where = f"init {record.get('init') or ''}"
    mask = record.get("mask") or []
    bits = "".join(map(str, mask))
    if len(bits) > MAX_MASK_CHARS:
        bits = bits[:MAX_MASK_CHARS] + "..."
    if record.get("fitness") is None:
        status = "DIVERGED" if record.get("status") == "diverged" else "FAILED"
        fit = f"{status} ({record.get('error') or 'error'})"
    else:
        fit = f"fitness {record['fitness']:.4f}  best {best:.4f}"
    return f"{where}  {fit}  mask {bits} ({sum(mask)}/{len(mask)})  {record.get('seconds', 0.0):.1f}s"


def _num(value: float | None) -> float:
    return float("nan") if value is None else value


def format_final_epoch(record: dict, epochs: int | None = None) -> str:
    test = f"  test {record['test_accuracy']:.4f}" if record.get("test_accuracy") is not None else ""
    of = f"/{epochs}" if epochs else ""
    return (
        f"final epoch {record['epoch']:>3}{of}  loss {record['train_loss']:.4f}  "
        f"val {_num(record.get('val_accuracy')):.4f}{test}  lr {record.get('lr', float('nan')):.2g}"
    )


class SearchProgress(RunListener):
    """Bars and log lines of one ``run_search``.

    ``done``: evaluations already finished (a resumed run) so the bars start where it stopped.
    ``bars``: force bars on or off (default: on when ``file`` is a terminal and not ``quiet``).
    """

    def __init__(
        self,
        generations: int | None,
        per_generation: int | None,
        fitness_epochs: int | None,
        final_epochs: int | None,
        done: int = 0,
        quiet: bool = False,
        file: TextIO | None = None,
        bars: bool | None = None,
        total: int | None = None,
    ) -> None:
        self.file = file if file is not None else sys.stderr
        self.quiet = quiet
        self.bars = (not quiet and _isatty(self.file)) if bars is None else bars
        self.generations, self.per_generation = generations, per_generation
        self.fitness_epochs, self.final_epochs = fitness_epochs, final_epochs
        self.best = -math.inf
        total = total or (generations * per_generation if generations and per_generation else None)
        opts: dict[str, Any] = {"file": self.file, "disable": not self.bars, "dynamic_ncols": True}
        gen_done, in_gen = divmod(done, per_generation) if per_generation else (0, done)
        self.search = tqdm(total=total, initial=done, desc="search", unit="eval", position=0, **opts)
        self.generation = tqdm(
            total=generations, initial=gen_done, desc="generation", unit="gen", position=1, leave=False, **opts
        )
        self.particle = tqdm(
            total=per_generation, initial=in_gen, desc="particle", unit="eval", position=2, leave=False, **opts
        )
        self.epoch = tqdm(total=fitness_epochs, desc="epoch", unit="ep", position=3, leave=False, **opts)
        self._current_gen = gen_done
        self._final: tqdm | None = None
        self._opts = opts

    @classmethod
    def for_config(cls, cfg, done: int = 0, quiet: bool = False, **kw: Any) -> SearchProgress:
        """From a :class:`layerswarm.run.search.RunConfig`."""
        generations, per_gen = search_budget(cfg.search.method.name, cfg.search.method.options or {})
        total = (cfg.search.method.options or {}).get("trials")  # evaluations, where the searcher has a budget
        return cls(
            generations, per_gen, cfg.fitness.epochs, cfg.final.epochs, done=done, quiet=quiet, total=total, **kw
        )

    def write(self, line: str) -> None:
        if not self.quiet:
            tqdm.write(line, file=self.file)  # above the bars, which are redrawn below it

    def on_fitness_epoch(self, record: dict) -> None:
        self.epoch.update(1)
        self.epoch.set_postfix(val=f"{_num(record.get('val_accuracy')):.3f}", refresh=False)

    def on_evaluation(self, record: dict) -> None:
        if record.get("fitness") is not None:
            self.best = max(self.best, float(record["fitness"]))
        gen = int(record.get("generation", 0))
        if gen < 0:  # a mask asked before the first generation (--init baselines): counted, no generation
            self.search.update(1)
            self.epoch.reset(total=self.fitness_epochs)
            self.write(format_evaluation(record, self.best, self.generations, self.per_generation))
            return
        if gen != self._current_gen:  # a new generation began (robust to any batch size)
            self.generation.update(gen - self._current_gen)
            self.particle.reset(total=self.per_generation)
            self._current_gen = gen
        self.particle.update(1)
        if self.per_generation and self.particle.n >= self.per_generation:
            self.generation.update(1)
            self.particle.reset(total=self.per_generation)
            self._current_gen = gen + 1
        self.search.update(1)
        if math.isfinite(self.best):
            self.search.set_postfix(best=f"{self.best:.4f}", refresh=False)
        self.epoch.reset(total=self.fitness_epochs)
        self.write(format_evaluation(record, self.best, self.generations, self.per_generation))

    def on_final_epoch(self, record: dict) -> None:
        if self._final is None:
            for bar in (self.epoch, self.particle, self.generation):
                bar.close()
            self._final = tqdm(
                total=self.final_epochs, desc="final fine-tune", unit="ep", position=1, leave=False, **self._opts
            )
        self._final.update(1)
        if record.get("test_accuracy") is not None:
            self._final.set_postfix(test=f"{record['test_accuracy']:.3f}", refresh=False)
        self.write(format_final_epoch(record, self.final_epochs))

    def close(self, result: dict | None = None) -> None:
        for bar in (self.epoch, self.particle, self.generation, self._final, self.search):
            if bar is not None:
                bar.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def search_listeners(cfg, out_dir, quiet: bool = False, tensorboard: bool = False) -> Listeners:
    """Progress (and TensorBoard under ``OUT/tensorboard``) for ``layerswarm search``."""
    from pathlib import Path

    from ..io import read_jsonl

    out = Path(out_dir)
    done = len(read_jsonl(out / "evaluations.jsonl"))
    listeners: list[RunListener] = [SearchProgress.for_config(cfg, done=done, quiet=quiet)]
    if tensorboard:
        listeners.append(TensorBoardLogger(out / "tensorboard", cfg.to_dict()))
    return Listeners(listeners)
