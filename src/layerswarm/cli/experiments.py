"""The experiments: compare (strategies), race (searchers), bench (speed-ups)."""

from __future__ import annotations

import click

from ..errors import LayerswarmError
from .common import (
    COMPARE_DEFAULTS,
    CompareConfig,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    _setup_logging,
    app,
    data_options,
    model_options,
    train_options,
)
from .options import dataclass_options, default_recipe_for_model, pop_config


@app.command()
@model_options
@data_options(without=("data",))
@train_options(without=("test_every",))
@click.option(
    "--data",
    "datasets",
    multiple=True,
    required=True,
    help="a dataset (as for search); repeat --data for several columns",
)
@click.option(
    "--strategies",
    default=",".join(COMPARE_DEFAULTS.strategies),
    show_default=True,
    help="comma-separated strategies (layerswarm strategies)",
)
@click.option(
    "--option", "options", multiple=True, help="strategy option STRATEGY.KEY=VALUE, e.g. pso.particles=4 (repeatable)"
)
@dataclass_options(CompareConfig, ["repeats", "seed", "resplit"], prefix="compare_")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=COMPARE_DEFAULTS.train.epochs,
    show_default=True,
    help="epochs of every fine-tune",
)
@click.option(
    "--test-every",
    type=click.IntRange(min=1),
    default=COMPARE_DEFAULTS.train.evaluation.test_every,
    show_default=True,
    help="test every N epochs (5: the early-accuracy column)",
)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder; rerun to resume"
)
@click.option("--quiet", is_flag=True, help="only the table")
def compare(**kw) -> None:
    """Run strategies on identical splits, schedules and seeds; write results.md and results.csv."""

    _setup_logging(kw["quiet"])
    click.echo(compare_from_cli(kw), nl=False)


@app.command()
@model_options
@data_options
@train_options
@click.option(
    "--table",
    "table_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="fitness table (JSONL): every mask's real fitness (with --live: the masks trained so far, default "
    "OUT/fitness.jsonl)",
)
@click.option(
    "--live", is_flag=True, help="train each mask when a searcher first meets it (no complete table needed; resumable)"
)
@click.option(
    "--build-table", is_flag=True, help="first evaluate the masks missing from --table (real training; resumable)"
)
@click.option(
    "--searchers",
    default="pso,random,tpe,ga,greedy,exhaustive",
    show_default=True,
    help="comma-separated searchers to race; NAME:key=value/key=value adds options, e.g. greedy:start=random",
)
@click.option("--budget", type=int, default=120, show_default=True, help="fitness evaluations per run (PSO's n x G)")
@click.option(
    "--ask-batch", type=int, default=10, show_default=True, help="masks per ask where a searcher batches (PSO's n)"
)
@click.option("--seeds", type=int, default=20, show_default=True, help="runs per searcher, seeds 0..N-1")
@click.option("--frozen-units", default="", help="comma-separated units pinned frozen, not searched (race a sub-space)")
@click.option(
    "--fitness-epochs", type=int, default=1, show_default=True, help="epochs of one fitness evaluation (the table's)"
)
@click.option(
    "--final-seeds", type=int, default=0, show_default=True, help="fine-tune and test the best masks of seeds 0..N-1"
)
@click.option("--final-epochs", type=int, default=5, show_default=True, help="epochs of those final fine-tunes")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="seed of the head, the data splits and the training"
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="output folder: summary.json, runs.json, race.png",
)
def race(**kw) -> None:
    """Race the searchers at one budget on a table of real fitness values.

    Measured races: docs/results/searcher-race.md."""
    from ..race import RaceConfig, race_command

    _setup_logging(False)
    seed = kw.pop("seed")
    model = pop_config(ModelConfig, kw, prefix="model_")
    data = pop_config(DataConfig, kw, prefix="data_", seed=seed)
    default_recipe_for_model(kw, model.name)
    train = pop_config(TrainConfig, kw, prefix="train_", seed=seed)
    run_cfg = RunConfig(
        model=model,
        data=data,
        fitness=train.replace(epochs=kw["fitness_epochs"]),
        final=train.replace(epochs=kw["final_epochs"]),
        seed=seed,
    )
    cfg = RaceConfig(
        searchers=[n.strip() for n in kw["searchers"].split(",") if n.strip()],
        budget=kw["budget"],
        fitness_epochs=kw["fitness_epochs"],
        batch_size=kw["ask_batch"],
        seeds=kw["seeds"],
        frozen_units=[int(u) for u in kw["frozen_units"].split(",") if u.strip()],
    )
    if kw["table_path"] is None and not kw["live"]:
        raise LayerswarmError("race needs --table FILE (a fitness table), or --live to train masks as they are met")
    text = race_command(
        run_cfg,
        cfg,
        kw["table_path"],
        kw["out_dir"],
        build=kw["build_table"],
        final_seeds=kw["final_seeds"],
        echo=lambda line: click.echo(line, err=True),
        live=kw["live"],
    )
    click.echo(text)
    click.echo(f"results in {kw['out_dir']} (race.png, summary.json, runs.json)")


@app.command()
@click.option("--quick", "preset", flag_value="quick", default=True, help="small swarm, minutes on a CPU (default)")
@click.option(
    "--swarm",
    "preset",
    flag_value="swarm",
    help="the paper's swarm n=10, G=12 with maxEpoch=2: where memo and prefix cache pay (about 1.5 h per seed "
    "on 1 CPU core)",
)
@click.option(
    "--full", "preset", flag_value="full", help="the paper's swarm: n=10, G=12, maxEpoch=5, 110 final epochs (GPU)"
)
@click.option(
    "--seeds",
    default="0,1,2",
    show_default=True,
    help="comma-separated seeds: reference and approximate run for each, exact for the first",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), default=None, help="write the results to this JSON file"
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps")
@click.option("--threads", type=int, default=None, help="torch CPU threads for every run (default: torch's)")
@click.option("--data-root", default=None, help="folder of the Fashion-MNIST idx files")
@click.option("--no-throughput", is_flag=True, help="skip the trainer-vs-bare-loop throughput measurement")
@click.option("--no-exact", is_flag=True, help="skip the exact run (more seeds of reference and approximate only)")
@click.option(
    "--ablation",
    is_flag=True,
    help="also run each approximate speed-up alone, every seed: what each costs in test accuracy",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="where layerswarm's runs evaluate particles: ray runs a generation's evaluations in parallel "
    "(--threads each) on a local Ray of all cores; the reference stays one process on --threads",
)
def bench(
    preset: str,
    seeds: str,
    json_path: str | None,
    device: str,
    threads: int | None,
    data_root: str | None,
    no_throughput: bool,
    no_exact: bool,
    ablation: bool,
    backend: str,
) -> None:
    """Benchmark: plain Algorithm 1 vs layerswarm exact vs approximate (EfficientNet-Lite0, Fashion-MNIST)."""
    from ..bench import format_table, run_bench

    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError as err:
        raise LayerswarmError(f"--seeds '{seeds}' is not a list of integers: pass e.g. --seeds 0,1,2") from err
    if not seed_list:
        raise LayerswarmError("--seeds is empty: pass at least one seed, e.g. --seeds 0")
    result = run_bench(
        preset,
        seed_list,
        device=device,
        json_path=json_path,
        data_root=data_root,
        threads=threads,
        backend=backend,
        throughput=not no_throughput,
        exact=not no_exact,
        ablation=ablation,
        log=lambda line: click.echo(line, err=True),
    )
    click.echo(format_table(result))


def compare_from_cli(kw: dict) -> str:
    """Build the configuration from the ``compare`` command's keywords, run it, return the table."""
    from ..run.compare import RunSpec, parse_options, parse_strategies, run_compare

    quiet, out_dir, seed = kw.pop("quiet"), kw.pop("out_dir"), kw.pop("compare_seed")
    model = pop_config(ModelConfig, kw, prefix="model_")
    data = [pop_config(DataConfig, dict(kw), prefix="data_", data=d, seed=seed) for d in kw.pop("datasets")]
    default_recipe_for_model(kw, model.name)
    train = pop_config(
        TrainConfig, kw, prefix="train_", seed=seed, epochs=kw.pop("epochs"), test_every=kw.pop("test_every")
    )
    cfg = CompareConfig(
        model=model,
        data=data,
        strategies=parse_strategies(kw.pop("strategies")),
        options=parse_options(kw.pop("options")),
        train=train,
        repeats=kw.pop("compare_repeats"),
        seed=seed,
        resplit=kw.pop("compare_resplit"),
    )

    def started(spec: RunSpec) -> None:
        if not quiet:
            click.echo(
                f"[{spec.dataset} repeat {spec.repeat + 1}/{cfg.repeats}] {spec.strategy}: training ...", err=True
            )

    def finished(spec: RunSpec, metrics: dict, reused: bool) -> None:
        if quiet:
            return
        how = "done before, reused" if reused else f"{metrics.get('wall_seconds', metrics['seconds']):.0f} s"
        click.echo(
            f"[{spec.dataset} repeat {spec.repeat + 1}/{cfg.repeats}] {spec.strategy}: "
            f"test {metrics['test_accuracy']:.4f} ({how})",
            err=True,
        )

    table = run_compare(cfg, out_dir, on_run=finished, on_start=started)
    return table.markdown() + f"\nresults in {out_dir}/results.md and results.csv\n"
