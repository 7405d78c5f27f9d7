"""Continue a finished search with other settings for what comes after it, without searching again.

    python benchmarks/branch_run.py runs/digits-paper-p3-s0 runs/digits-sel10-s0 --patience 3 \\
        --set search.final_select=3 --set search.select_epochs=10 --set preset=null --baselines-from \
            runs/digits-paper-p3-val-s0
    layerswarm search $COMMON --seed 0 --final-select 3 --select-epochs 10 --resume runs/digits-sel10-s0

A search is deterministic for its seed, so the records of a finished one are the start of any
run with the same search settings. This writes a new run folder holding SRC's search
evaluations up to where ``--patience P`` stops (benchmarks/patience_replay.py; all of them with
P = 0) and SRC's config.json with ``search.method.patience = P`` and the ``--set`` changes (dotted
keys, of today's layout or the flat one: ``search.final_select`` is ``search.selection.top``), and no
searcher state, final or selection. ``layerswarm search --resume`` on it tells the searcher those
evaluations again (running none), then runs the rest: the final selection, the final
fine-tune, the baselines (``--baselines-from``: a folder whose baselines/ to copy, same seed and
final recipe, so they are not fine-tuned again). ``--select-epochs`` was measured so
(docs/results/digits.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from layerswarm.config_utils import set_dotted
from layerswarm.io import atomic_write_json, atomic_write_text, read_jsonl
from layerswarm.run.config import RunConfig

sys.path.insert(0, str(Path(__file__).parent))
from patience_replay import replay  # noqa: E402


def branch(src: Path, out: Path, patience: int, changes: dict[str, object], baselines_from: Path | None = None) -> int:
    """Write the branched run folder ``out``; returns how many search evaluations it holds."""
    if out.exists():
        raise SystemExit(f"'{out}' exists: pick a new folder")
    records = [r for r in read_jsonl(src / "evaluations.jsonl") if not r.get("phase")]
    if patience > 0:
        stop = replay(src, patience)["stop"]
        records = [r for r in records if r["generation"] <= stop]
    # in today's layout, each key at its place (a key of the flat layout too: search.final_select)
    config = RunConfig.migrate(json.loads((src / "config.json").read_text()))
    for key, value in {"search.method.patience": patience, **changes}.items():
        set_dotted(config, RunConfig.current_key(key), value)
    out.mkdir(parents=True)
    atomic_write_text(out / "evaluations.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    atomic_write_json(out / "config.json", config)
    if baselines_from is not None:
        shutil.copytree(baselines_from / "baselines", out / "baselines", ignore=shutil.ignore_patterns("summary.json"))
    return len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="a finished search run folder")
    parser.add_argument("out", type=Path, help="the new run folder")
    parser.add_argument("--patience", type=int, default=0, help="keep the evaluations up to where this patience stops")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a config.json change, e.g. search.selection.top=3 (value as JSON)",
    )
    parser.add_argument("--baselines-from", type=Path, default=None, help="copy this run folder's baselines/")
    args = parser.parse_args()
    changes = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    n = branch(args.src, args.out, args.patience, changes, args.baselines_from)
    print(
        f"{args.out}: {n} search evaluations of {args.src}; layerswarm search --resume {args.out} (with the "
        "run's options)"
    )


if __name__ == "__main__":
    main()
