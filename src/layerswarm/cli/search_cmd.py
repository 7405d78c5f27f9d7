"""``layerswarm search``: its options, and the run configuration they (and --config, --resume) build."""

from __future__ import annotations

from pathlib import Path

import click

from ..config_utils import get_dotted, merge_settings, set_dotted
from ..errors import LayerswarmError, RunFailed
from ..io import read_json
from .common import (
    CONFIG_FILE,
    PRESET_CHOICES,
    RUN_DEFAULTS,
    DataConfig,
    Interrupted,
    ModelConfig,
    PSOConfig,
    RunConfig,
    SearchConfig,
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
    pso_options,
    search_options,
    speed_options,
    train_options,
)
from .listeners import RunListener
from .options import default_recipe_for_model, pop_config

# Every option but the few below is generated from a config field (its help and default):
# search_options from SearchConfig, pso_options from PSOConfig, the others from the model, data,
# training and speed configs; RunConfig() is what this command runs without options.
_PSO = PSOConfig()


@app.command()
@model_options
@data_options
@train_options
@speed_options
@click.option(
    "--preset",
    type=click.Choice(PRESET_CHOICES),
    default=None,
    help="a named configuration; 'paper': Algorithm 1 of the paper exactly (random init, "
    "10x12 PSO, 5 fitness epochs, 110 final, --recipe paper, no patience, no final "
    "selection, no baselines); flags given win",
)
@search_options
@click.option(
    "--particles",
    "pso_particles",
    type=click.IntRange(min=1),
    default=None,
    help=f"PSO swarm size n (default {_PSO.particles}); other searchers: masks per batch (default: their own)",
)
@pso_options
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=None,
    help=f"fitness evaluations of the search, any searcher (default: {_PSO.budget}; pso: particles x generations)",
)
@click.option(
    "--fitness-epochs",
    type=click.IntRange(min=1),
    default=RUN_DEFAULTS.fitness.epochs,
    show_default=True,
    help="maxEpoch: epochs of each fitness fine-tune (the paper's 5; 10 ranks masks "
    "better on their own, yet the swarm at 5 found the better masks: "
    "docs/concepts/defaults.md)",
)
@click.option(
    "--final-epochs",
    type=click.IntRange(min=1),
    default=RUN_DEFAULTS.final.epochs,
    show_default=True,
    help="epochs of the final fine-tune",
)
@click.option(
    "--seed",
    type=int,
    default=RUN_DEFAULTS.seed,
    show_default=True,
    help="seed of the search, the head and the training",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="output folder (default runs/search-<model>-<data>)",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="continue the run in this folder; options given with it must match the run, except the final "
    "fine-tune's before it starts, --retries, --max-failed-share and --address "
    "(applied and recorded in config.json)",
)
@click.option(
    "--overwrite", is_flag=True, help="replace the run already in --out (its files go once the new run starts)"
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="settings from a YAML or JSON file with a run's config.json keys; options "
    "given here override it, keys it leaves out take the defaults (in a run's own "
    "config.json: as that run ran)",
)
@click.option("--quiet", is_flag=True, help="only warnings and the result: no progress bars or log lines")
@click.option("--tensorboard", is_flag=True, help="write TensorBoard logs to OUT/tensorboard")
def search(**kw) -> None:
    """Search a freeze/fine-tune mask on train/val (the paper's PSO), fine-tune it and the baselines, test them."""
    quiet, tensorboard, overwrite = kw.pop("quiet"), kw.pop("tensorboard"), kw.pop("overwrite")
    config_file, resume_dir = kw.pop("config_file"), kw.pop("resume_dir")
    _setup_logging(quiet)
    given = _given_options()
    typed = set(given)  # on the command line (the preset adds its own options to given)
    if {"fitness_epochs", "search_fitness_steps"} <= given:
        raise LayerswarmError("--fitness-epochs and --fitness-steps both give the fitness budget: pass one")
    given |= _apply_preset(kw, given)  # the preset's options count as given: over a --config file
    if resume_dir and (config_file or overwrite):
        raise LayerswarmError(
            f"--resume excludes {'--config' if config_file else '--overwrite'}: a resumed run keeps "
            "its own config.json (pass the options to change alone)"
        )
    if resume_dir and "out_dir" in given and Path(kw["out_dir"]) != Path(resume_dir):
        raise LayerswarmError(
            f"--resume {resume_dir} and --out {kw['out_dir']} name different folders: pass --resume alone"
        )
    if tensorboard:
        _need_module("tensorboard", "--tensorboard", "report")
    if resume_dir or kw["out_dir"]:  # another run writes there: say so before anything heavy
        from ..run.lock import refuse_if_locked

        refuse_if_locked(resume_dir or kw["out_dir"])
    base, source = None, resume_dir or config_file  # the run (or file) these options change
    if resume_dir:
        if not (Path(resume_dir) / CONFIG_FILE).is_file():
            raise LayerswarmError(
                f"nothing to resume in '{resume_dir}': no {CONFIG_FILE} there "
                f"(start a run with: layerswarm search --out {resume_dir})"
            )
        base = read_json(Path(resume_dir) / CONFIG_FILE)
    elif config_file:
        from ..run.rundir import read_config_file

        base = read_config_file(config_file)
    if base is not None:  # a file of the earlier flat layout: its keys at their place now
        base = RunConfig.migrate(base)
    if base is not None and "search_searcher" not in given and isinstance(base.get("search"), dict):
        method = base["search"].get("method")  # its options may come alone
        kw["search_searcher"] = method.get("name", "pso") if isinstance(method, dict) else "pso"
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
        result = run_search(
            cfg,
            out_dir,
            resume=bool(resume_dir),
            overwrite=overwrite,
            meta=_meta(),
            on_evaluation=listeners.on_evaluation,
            on_final_epoch=listeners.on_final_epoch,
            on_fitness_epoch=listeners.on_fitness_epoch,
        )
    except KeyboardInterrupt as err:  # state is saved after every evaluation: nothing finished is lost
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        if not (Path(out_dir) / CONFIG_FILE).is_file():
            raise Interrupted(f"{what} before the run started: nothing was written") from err
        raise Interrupted(
            f"{what}: progress is saved in {out_dir}; continue with: layerswarm search --resume {out_dir}"
        ) from err
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
    scored = (
        "val accuracy" if cfg.search.fitness.score == "accuracy" else "val accuracy + its rise since the middle epoch"
    )
    click.echo(f"search fitness ({scored}): {result['fitness']:.4f}")
    click.echo(f"final test accuracy: {result['test_accuracy']:.4f}")
    if result.get("baselines"):  # the searched mask next to the hand-picked strategies, and who won
        from ..run.baselines import describe

        click.echo("\n".join(describe(result["baselines"])))
    click.echo(f"results in {out_dir}")


class _Deferred(RunListener):
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


# Options -> the config.json keys they set (the first: the key holding the option's value, which a
# preset's key sets): PREFIX_FIELD options by their prefix (FIELD: the setting's flat name, read
# at its place in the groups: RunConfig.current_key), the others by name.
_PREFIX_PARTS = {
    "model_": ["model"],
    "data_": ["data"],
    "train_": ["fitness", "final"],
    "speed_": ["speed"],
    "search_": ["search"],
    "pso_": ["search.options"],
}
_KEYS = {
    "fitness_epochs": ["fitness.epochs", "search.fitness.steps"],
    "final_epochs": ["final.epochs"],
    "seed": ["seed", "data.splits.seed", "fitness.seed", "final.seed"],
    "search_searcher": ["search.method.name", "search.method.options"],
    "search_space": ["search.method.space", "search.method.ladder"],  # a space brings its ladder
    "budget": ["search.method.options", "search.method.name"],
    "preset": ["preset"],
}
_RUN_PARTS = ("model", "data", "fitness", "final", "search", "seed", "speed", "preset")
# an option a preset leaves alone when the user gave its alternative (a budget in steps)
_ALTERNATIVES = {"fitness_epochs": {"search_fitness_steps"}, "search_fitness_steps": {"fitness_epochs"}}


def _option_keys(name: str) -> list[str]:
    if name in _KEYS:
        return _KEYS[name]
    for prefix, parts in _PREFIX_PARTS.items():
        if name.startswith(prefix):
            return [RunConfig.current_key(f"{part}.{name[len(prefix) :]}") for part in parts]
    return []


def _flag(name: str) -> str:
    """The command-line flag of option ``name`` (``pso_c1`` -> ``--c1``)."""
    return next((p.opts[0] for p in search.params if p.name == name), name)


def _is_pso_option(name: str) -> bool:
    return name.startswith("pso_")


def _apply_preset(kw: dict, given: set[str]) -> set[str]:
    """Set every option of the preset named by ``kw["preset"]`` (layerswarm.run.presets) that is
    not in ``given`` (on the command line); returns the names it set: they now count as given."""
    if kw.get("preset") is None:
        return set()
    from ..run.presets import preset_values

    values = {RunConfig.current_key(k): v for k, v in preset_values(kw["preset"]).items()}
    applied = set()
    for name in kw:
        keys = _option_keys(name)
        alternative_given = given & _ALTERNATIVES.get(name, set())
        if name in given or alternative_given or not keys or keys[0] not in values:
            continue
        kw[name] = values[keys[0]]
        applied.add(name)
    return applied | {"preset"}


def _run_config(base: dict, flags, given: set[str], source: str):
    """The run configuration of ``base`` (a config.json or --config file) with every option given
    on the command line taken from ``flags`` (the configuration those options build).

    A key ``base`` lacks takes the library's default, but in a run's own config.json (it holds
    the command line, ``versions``, ...) a search setting added since it ran is read as that run
    ran (``SearchConfig.legacy``). ``base`` is in today's layout (``RunConfig.migrate``)."""
    from ..run.rundir import META_KEYS

    unknown = sorted(set(base) - set(_RUN_PARTS) - set(META_KEYS))
    if unknown:
        raise LayerswarmError(f"'{source}' has unknown keys {unknown}: use {', '.join(_RUN_PARTS)}")
    defaults = RunConfig().to_dict()
    if any(key in base for key in META_KEYS):
        for key, value in SearchConfig.legacy.items():
            set_dotted(defaults["search"], key, value)
    merged = merge_settings(RunConfig, defaults, {k: base[k] for k in _RUN_PARTS if k in base})
    flag_values = flags.to_dict()
    method = (base.get("search") or {}).get("method")
    searcher = (method if isinstance(method, dict) else {}).get("name", "pso")
    for name in sorted(given):
        keys = _option_keys(name)
        if _is_pso_option(name) and not given & {"search_searcher", "budget"}:
            if searcher != "pso":
                raise LayerswarmError(
                    f"{_flag(name)} is a PSO option but '{source}' uses searcher "
                    f"'{searcher}': pass --searcher and --budget instead"
                )
        elif _is_pso_option(name):
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
        raise LayerswarmError(
            f"'{source}' is not a layerswarm run configuration ({err}): write the keys of a run's config.json"
        ) from err


def _search_config(kw: dict, typed: set[str]):
    """The run configuration the options build; ``typed``: the options on the command line."""
    seed = kw.pop("seed")
    model = pop_config(ModelConfig, kw, prefix="model_")
    data = pop_config(DataConfig, kw, prefix="data_", seed=seed)
    default_recipe_for_model(kw, model.name)
    train = pop_config(TrainConfig, kw, prefix="train_", seed=seed)
    particles = kw.pop("pso_particles")  # None: PSO's n, or the other searcher's own batch size
    pso = pop_config(PSOConfig, kw, prefix="pso_", particles=particles or PSOConfig().particles)
    # the PSO settings that have an option, in config.json's order
    names = ("c1", "c2", "inertia_start", "inertia_end", "velocity_max", "particles", "generations")
    options = {k: getattr(pso, k) for k in names}
    searcher, budget = kw.pop("search_searcher"), kw.pop("budget")
    pso_only = sorted(name for name in typed if _is_pso_option(name) and name != "pso_particles")
    if searcher != "pso" and pso_only:  # would be silently ignored
        raise LayerswarmError(
            f"{_flag(pso_only[0])} is a PSO option and the searcher is '{searcher}': add --searcher pso, or drop it"
        )
    if searcher != "pso" or budget is not None:  # every searcher's config from one budget
        from ..searchers import config_for_budget

        # particles None: the searcher's own batch size
        sized = config_for_budget(searcher, budget or PSOConfig().budget, particles)
        options = {**options, **sized} if searcher == "pso" else sized
    cfg = RunConfig(
        model=model,
        data=data,
        fitness=train.replace(epochs=kw.pop("fitness_epochs")),
        final=train.replace(epochs=kw.pop("final_epochs")),
        search=pop_config(SearchConfig, kw, prefix="search_", searcher=searcher, options=options),
        seed=seed,
        speed=pop_config(SpeedConfig, kw, prefix="speed_"),
        preset=kw.pop("preset", None),
    )
    out_dir = kw.pop("out_dir") or f"runs/search-{model.name.replace(':', '_')}-{Path(data.data).name}"
    return cfg, out_dir
