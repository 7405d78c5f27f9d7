"""``layerswarm search``: its options, and the run configuration they (and --config, --resume) build."""

from __future__ import annotations

from pathlib import Path

import click

from ..config_utils import get_dotted, set_dotted
from ..errors import LayerswarmError, RunFailed
from ..fitness.evaluation import FITNESS_SCORES
from ..io import read_json
from ..models.config import ModelConfig
from ..run.answer import ANSWERS
from .common import (
    CONFIG_FILE,
    PRESET_CHOICES,
    SEARCHER_CHOICES,
    DataConfig,
    Interrupted,
    SpeedConfig,
    Terminated,
    TrainConfig,
    _apply_recipe,
    _given_options,
    _meta,
    _need_module,
    _setup_logging,
    app,
    data_options,
    model_options,
    speed_options,
    train_options,
)
from .options import default_recipe_for_model, pop_config

# The default search (docs/concepts/defaults.md: 3-seed tables against the baselines, 2 benchmarks):
# the paper's swarm (10 x 12 PSO, 5 fitness epochs, random start), then the baselines, and the best
# of the searched mask and the baselines by final validation accuracy answers. Every other searcher
# gets the swarm's number of evaluations unless --budget says otherwise. The swarm stops after 3
# generations without a better fitness: on Fashion-MNIST it had found its mask by then on every seed
# (the same runs, cheaper), on digits it stops 1.4-4.4 final fine-tunes earlier with masks as good.
PSO_PARTICLES, PSO_GENERATIONS = 10, 12
PATIENCE = 3
DEFAULT_BUDGET = PSO_PARTICLES * PSO_GENERATIONS
SPACE_CHOICES = ("mask", "lr")  # layerswarm.searchers.space.SPACES


@app.command()
@model_options
@data_options
@train_options
@speed_options
@click.option("--preset", type=click.Choice(PRESET_CHOICES), default=None,
              help="a named set of options; 'paper': the paper's Algorithm 1 exactly (random init, "
                   "10x12 PSO, 5 fitness epochs, 110 final, --recipe paper, no final selection, "
                   "no baselines); flags given win")
@click.option("--searcher", type=click.Choice(SEARCHER_CHOICES), default="pso", show_default=True,
              help="searcher (docs/concepts/searchers.md); pso is the paper's and measured best "
                   "(docs/concepts/defaults.md)")
@click.option("--space", type=click.Choice(SPACE_CHOICES), default="mask", show_default=True,
              help="what the search chooses per unit: 'mask', frozen or fine-tuned (the paper), "
                   "or 'lr', a level of --ladder: frozen, or fine-tuned at lr x that multiplier "
                   "(best_mask.json: lr_multipliers)")
@click.option("--ladder", default=None,
              help="the learning-rate multipliers of --space lr, rising from 0 (frozen) and "
                   "holding 1 (default 0,0.3,1,3)")
@click.option("--particles", type=click.IntRange(min=1), default=None,
              help=f"PSO swarm size n (default {PSO_PARTICLES}); other searchers: masks per batch (default: their own)")
@click.option("--generations", type=click.IntRange(min=1), default=PSO_GENERATIONS, show_default=True, help="PSO generations G")
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help=f"fitness evaluations of the search, any searcher (default: {DEFAULT_BUDGET}; pso: particles x generations)")
@click.option("--c1", type=float, default=1.5, show_default=True, help="PSO cognitive factor")
@click.option("--c2", type=float, default=1.5, show_default=True, help="PSO social factor")
@click.option("--inertia-start", type=float, default=1.4, show_default=True, help="inertia weight at the first generation")
@click.option("--inertia-end", type=float, default=0.7, show_default=True, help="inertia weight at the last generation")
@click.option("--velocity-max", type=float, default=None, help="optional bound on |velocity| per dimension")
@click.option("--fitness-epochs", type=click.IntRange(min=1), default=5, show_default=True,
              help="maxEpoch: epochs of each fitness fine-tune (the paper's 5; 10 ranks masks better on their own, yet "
                   "the swarm at 5 found the better masks: docs/concepts/defaults.md)")
@click.option("--final-epochs", type=click.IntRange(min=1), default=110, show_default=True, help="epochs of the final fine-tune")
@click.option("--init", type=click.Choice(("baselines", "random")), default="random", show_default=True,
              help="first masks asked: 'baselines' puts linear, full and last-k (k = 1, 2, 4, units/4) among them, so "
                   "the search's best fitness is never below theirs; 'random' is the paper's (measured better with "
                   "the swarm: docs/concepts/defaults.md)")
@click.option("--final-select", type=click.IntRange(min=0), default=0, show_default=True,
              help="before the final fine-tune, re-evaluate the top K distinct masks with fresh seeds and fine-tune the "
                   "best by the mean of all its evaluations (phase 'selection' in evaluations.jsonl); 0: off")
@click.option("--patience", type=click.IntRange(min=0), default=PATIENCE, show_default=True,
              help="end the search after this many generations (batches of asks) in a row without a better fitness; "
                   "0: off, the whole budget (the paper)")
@click.option("--select-repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="fresh-seed evaluations of each mask in the final selection")
@click.option("--select-epochs", type=click.IntRange(min=1), default=None,
              help="epochs of each final-selection evaluation (default: --fitness-epochs); another budget ranks the candidates "
                   "by the selection's fitness alone (10 ranks masks better than 5: "
                   "docs/concepts/fitness.md)")
@click.option("--baselines", default="linear,full,last-k", show_default=True,
              help="after the final fine-tune, fine-tune these with the same recipe, split and seed and compare "
                   "(DIR/baselines/NAME/; last-k: k = half the units, last-k:K another k; any strategy, e.g. l2sp); none: skip")
@click.option("--answer", type=click.Choice(ANSWERS), default="validation", show_default=True,
              help="the run's answer: 'validation', the best by final validation accuracy among the searched mask and "
                   "the --baselines (answer.json; predict and export follow it; the test split only reports it), or "
                   "'mask', the searched mask's fine-tune (the paper)")
@click.option("--fitness-steps", type=click.IntRange(min=1), default=None,
              help="the fitness budget in optimizer steps instead of --fitness-epochs (an epoch is another number of "
                   "steps on every dataset size): ceil(steps / steps per epoch) epochs, both saved in config.json")
@click.option("--fitness-repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="evaluations averaged per fitness, each with other seeds for the head and the batch order")
@click.option("--fitness-score", type=click.Choice(FITNESS_SCORES), default="accuracy", show_default=True,
              help="the fitness of a mask: 'accuracy', validation accuracy after the fitness fine-tune (the paper), or "
                   "'trend', that plus its rise since the middle epoch, which ranks a still-climbing mask above one "
                   "that has flattened (docs/concepts/fitness.md)")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True, help="retries of a failing evaluation")
@click.option("--max-failed-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="stop (exit 1, resumable) when more than this share of the evaluations has "
                   "failed, or every one of the first batch (docs/guides/faults.md); 1: only the "
                   "latter")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="run evaluations here, one at a time, or in parallel on Ray")
@click.option("--address", default=None, help="Ray cluster to join (auto, ray://HOST:10001); default: start Ray on this machine")
@click.option("--cpus-per-trial", type=click.IntRange(min=1), default=None, help="CPU cores (torch threads) per evaluation; default all cores locally, 1 per Ray task")
@click.option("--gpus-per-trial", type=click.FloatRange(min=0), default=0.0, show_default=True, help="GPUs per Ray evaluation (0.5: two share a GPU); needs --device cuda")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the search, the head and the training")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="output folder (default runs/search-<model>-<data>)")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), default=None,
              help="continue the run in this folder; options given with it must match the run, except the final "
                   "fine-tune's before it starts, --retries, --max-failed-share and --address "
                   "(applied and recorded in config.json)")
@click.option("--overwrite", is_flag=True, help="replace the run already in --out (its files go once the new run starts)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="settings from a YAML or JSON file with a run's config.json keys; options given here override it")
@click.option("--quiet", is_flag=True, help="only warnings and the result: no progress bars or log lines")
@click.option("--tensorboard", is_flag=True, help="write TensorBoard logs to OUT/tensorboard")
def search(**kw) -> None:
    """Search a freeze/fine-tune mask on train/val (the paper's PSO), fine-tune it and the baselines, test them."""
    quiet, tensorboard, overwrite = kw.pop("quiet"), kw.pop("tensorboard"), kw.pop("overwrite")
    config_file, resume_dir = kw.pop("config_file"), kw.pop("resume_dir")
    _setup_logging(quiet)
    given = _given_options()
    typed = set(given)  # on the command line (the preset adds its own options to given)
    if {"fitness_epochs", "fitness_steps"} <= given:
        raise LayerswarmError("--fitness-epochs and --fitness-steps both give the fitness budget: pass one")
    from ..run.presets import apply_preset

    given |= apply_preset(kw, given)  # the preset's options count as given: they override a --config file
    if resume_dir and (config_file or overwrite):
        raise LayerswarmError(f"--resume excludes {'--config' if config_file else '--overwrite'}: a resumed run keeps "
                              "its own config.json (pass the options to change alone)")
    if resume_dir and "out_dir" in given and Path(kw["out_dir"]) != Path(resume_dir):
        raise LayerswarmError(f"--resume {resume_dir} and --out {kw['out_dir']} name different folders: pass --resume alone")
    if tensorboard:
        _need_module("tensorboard", "--tensorboard", "report")
    if resume_dir or kw["out_dir"]:  # another run writes there: say so before anything heavy
        from ..run.lock import refuse_if_locked

        refuse_if_locked(resume_dir or kw["out_dir"])
    base, source = None, resume_dir or config_file  # the run (or file) these options change
    if resume_dir:
        if not (Path(resume_dir) / CONFIG_FILE).is_file():
            raise LayerswarmError(f"nothing to resume in '{resume_dir}': no {CONFIG_FILE} there "
                                  f"(start a run with: layerswarm search --out {resume_dir})")
        base = read_json(Path(resume_dir) / CONFIG_FILE)
    elif config_file:
        from ..run.rundir import read_config_file

        base = read_config_file(config_file)
    if base is not None and "searcher" not in given and isinstance(base.get("search"), dict):
        kw["searcher"] = base["search"].get("searcher", "pso")  # its searcher's options may be given alone
    flags, default_out = _search_config(kw, typed)
    cfg = flags if base is None else _run_config(base, flags, given, source=source)
    out_dir = resume_dir or default_out
    from ..run.search import run_search
    from .listeners import Listeners
    from .progress import search_listeners

    listeners = Listeners([search_listeners(cfg, out_dir, quiet=quiet)])
    if tensorboard:  # opened at the first event: no folder before the run has started
        listeners.listeners.append(_Deferred(lambda: _tensorboard(out_dir, cfg)))
    result = None
    try:
        result = run_search(cfg, out_dir, resume=bool(resume_dir), overwrite=overwrite, meta=_meta(),
                            on_evaluation=listeners.on_evaluation, on_final_epoch=listeners.on_final_epoch,
                            on_fitness_epoch=listeners.on_fitness_epoch)
    except KeyboardInterrupt as err:  # state is saved after every evaluation: nothing finished is lost
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        if not (Path(out_dir) / CONFIG_FILE).is_file():
            raise Interrupted(f"{what} before the run started: nothing was written") from err
        raise Interrupted(f"{what}: progress is saved in {out_dir}; continue with: "
                          f"layerswarm search --resume {out_dir}") from err
    except RunFailed as err:  # a fault mid-run: the files stay, the run goes on after the fix
        if err.resumable and (Path(out_dir) / CONFIG_FILE).is_file():
            resume = f"layerswarm search --resume {out_dir}"
            raise RunFailed(f"{err}; then continue with: {resume}") from err
        raise
    finally:
        listeners.close(result)
    mask = "".join(map(str, result["mask"]))
    click.echo(f"best mask ({sum(result['mask'])}/{len(result['mask'])} units fine-tuned): {mask}")
    if result.get("lr_multipliers"):  # --space lr: each unit's rate, a multiple of --lr
        rates = " ".join(f"{r:g}" for r in result["lr_multipliers"])
        click.echo(f"lr multipliers per unit: {rates}")
    scored = "val accuracy" if cfg.search.fitness_score == "accuracy" else "val accuracy + its rise since the middle epoch"
    click.echo(f"search fitness ({scored}): {result['fitness']:.4f}")
    click.echo(f"final test accuracy: {result['test_accuracy']:.4f}")
    if result.get("baselines"):  # the searched mask next to the hand-picked strategies, and who won
        from ..run.baselines import describe

        click.echo("\n".join(describe(result["baselines"])))
    click.echo(f"results in {out_dir}")


class _Deferred:
    """A run listener built at its first event (TensorBoard writes its folder when created)."""

    def __init__(self, make) -> None:
        self.make, self.inner = make, None

    def _get(self):
        if self.inner is None:
            self.inner = self.make()
        return self.inner

    def on_fitness_epoch(self, record: dict) -> None:
        self._get().on_fitness_epoch(record)

    def on_evaluation(self, record: dict) -> None:
        self._get().on_evaluation(record)

    def on_final_epoch(self, record: dict) -> None:
        self._get().on_final_epoch(record)

    def close(self, result: dict | None = None) -> None:
        if self.inner is not None:
            self.inner.close(result)


def _tensorboard(out_dir: str, cfg):
    from .tensorboard import TensorBoardLogger

    return TensorBoardLogger(Path(out_dir) / "tensorboard", cfg.to_dict())


# Options of ``search`` -> the config.json keys they set (besides model_*, data_*, train_*, speed_*).
_SEARCH_KEYS = {
    "fitness_epochs": ["fitness.epochs", "search.fitness_steps"], "fitness_steps": ["search.fitness_steps"], "final_epochs": ["final.epochs"],
    "seed": ["seed", "data.seed", "fitness.seed", "final.seed"],
    "fitness_repeats": ["search.fitness_repeats"], "fitness_score": ["search.fitness_score"], "init": ["search.init"],
    "final_select": ["search.final_select"], "select_repeats": ["search.select_repeats"],
    "select_epochs": ["search.select_epochs"], "baselines": ["search.baselines"],
    "answer": ["search.answer"], "patience": ["search.patience"],
    # --space brings its ladder, as --searcher brings its options
    "space": ["search.space", "search.ladder"], "ladder": ["search.ladder"],
    "retries": ["search.retries"], "backend": ["search.backend"], "address": ["search.address"],
    "max_failed_share": ["search.max_failed_share"],
    "cpus_per_trial": ["search.cpus_per_trial"], "gpus_per_trial": ["search.gpus_per_trial"],
    "searcher": ["search.searcher", "search.options"], "budget": ["search.searcher", "search.options"],
    "preset": ["preset"],
}
# search options that are SearchConfig fields of the same name
_SEARCH_FIELDS = ("fitness_repeats", "fitness_score", "fitness_steps", "init", "final_select", "select_repeats",
                  "select_epochs", "baselines", "answer", "patience", "max_failed_share", "space",
                  "ladder")
_PSO_OPTIONS = ("particles", "generations", "c1", "c2", "inertia_start", "inertia_end", "velocity_max")
_RUN_PARTS = ("model", "data", "fitness", "final", "search", "seed", "speed", "preset")


def _option_keys(name: str) -> list[str]:
    for prefix, parts in (("model_", ["model"]), ("data_", ["data"]), ("train_", ["fitness", "final"]),
                          ("speed_", ["speed"])):
        if name.startswith(prefix):
            return [f"{part}.{name[len(prefix):]}" for part in parts]
    if name in _PSO_OPTIONS:
        return [f"search.options.{name}"]
    return _SEARCH_KEYS.get(name, [])


def _run_config(base: dict, flags, given: set[str], source: str):
    """The run configuration of ``base`` (a config.json or --config file) with every option given
    on the command line taken from ``flags`` (the configuration those options build)."""
    from ..run.rundir import META_KEYS
    from ..run.search import RunConfig

    unknown = sorted(set(base) - set(_RUN_PARTS) - set(META_KEYS))
    if unknown:
        raise LayerswarmError(f"'{source}' has unknown keys {unknown}: use {', '.join(_RUN_PARTS)}")
    defaults = RunConfig().to_dict()
    merged = {k: ({**defaults[k], **base[k]} if isinstance(defaults[k], dict) and isinstance(base.get(k), dict)
                  else base.get(k, defaults[k])) for k in _RUN_PARTS}
    flag_values = flags.to_dict()
    searcher = (base.get("search") or {}).get("searcher", "pso")
    for name in sorted(given):
        keys = _option_keys(name)
        if name in _PSO_OPTIONS and not given & {"searcher", "budget"}:
            if searcher != "pso":
                raise LayerswarmError(f"--{name.replace('_', '-')} is a PSO option but '{source}' uses searcher "
                                      f"'{searcher}': pass --searcher and --budget instead")
        elif name in _PSO_OPTIONS:
            keys = []  # --searcher/--budget bring the whole options
        for key in keys:
            set_dotted(merged, key, get_dotted(flag_values, key))
    if "train_recipe" in given:  # a recipe given over a file: its settings, then the options given
        for part in ("fitness", "final"):
            _apply_recipe(merged[part], flag_values[part])
    try:
        return RunConfig.from_dict(merged)
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, LayerswarmError):
            raise LayerswarmError(f"'{source}': {err}") from err
        raise LayerswarmError(f"'{source}' is not a layerswarm run configuration ({err}): "
                              "write the keys of a run's config.json") from err


def _search_config(kw: dict, typed: set[str]):
    """The run configuration the options build; ``typed``: the options on the command line."""
    from ..run.search import RunConfig, SearchConfig

    seed = kw.pop("seed")
    model = pop_config(ModelConfig, kw, prefix="model_")
    data = pop_config(DataConfig, kw, prefix="data_", seed=seed)
    default_recipe_for_model(kw, model.name)
    train = pop_config(TrainConfig, kw, prefix="train_", seed=seed)
    options = {k: kw.pop(k) for k in ("c1", "c2", "inertia_start", "inertia_end", "velocity_max")}
    particles = kw.pop("particles")  # None: PSO's n, or the other searcher's own batch size
    options.update(particles=particles or PSO_PARTICLES, generations=kw.pop("generations"))
    searcher, budget = kw.pop("searcher"), kw.pop("budget")
    if kw.get("ladder") is not None:  # "0,0.3,1,3" -> numbers (checked as a ladder by SearchConfig)
        from ..searchers.space import parse_ladder

        kw["ladder"] = list(parse_ladder(kw["ladder"]))
    pso_only = sorted(typed & set(_PSO_OPTIONS) - {"particles"})
    if searcher != "pso" and pso_only:  # would be silently ignored
        raise LayerswarmError(f"--{pso_only[0].replace('_', '-')} is a PSO option and the searcher is '{searcher}': "
                              f"add --searcher pso, or drop it")
    if searcher != "pso" or budget is not None:  # every searcher's config from one budget
        from ..searchers import config_for_budget

        sized = config_for_budget(searcher, budget or DEFAULT_BUDGET, particles)  # None: the searcher's own batch
        options = {**options, **sized} if searcher == "pso" else sized
    cfg = RunConfig(
        model=model, data=data,
        fitness=train.replace(epochs=kw.pop("fitness_epochs")),
        final=train.replace(epochs=kw.pop("final_epochs")),
        search=SearchConfig(searcher=searcher, options=options, retries=kw.pop("retries"), backend=kw.pop("backend"),
                            address=kw.pop("address"), cpus_per_trial=kw.pop("cpus_per_trial"),
                            gpus_per_trial=kw.pop("gpus_per_trial"),
                            **{k: kw.pop(k) for k in _SEARCH_FIELDS if k in kw}),  # absent: SearchConfig's defaults
        seed=seed,
        speed=pop_config(SpeedConfig, kw, prefix="speed_"),
        preset=kw.pop("preset", None),
    )
    out_dir = kw.pop("out_dir") or f"runs/search-{model.name.replace(':', '_')}-{Path(data.data).name}"
    return cfg, out_dir
