"""A search on a real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``, what
Ray's own tests use) loses its second node mid-generation and still finishes with the result
of an uninterrupted local run: the evaluations the dead node held are retried on the head."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from layerswarm.cli import main
from layerswarm.io import read_jsonl

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

PARTICLES, GENERATIONS = 4, 2
LOOPBACK = "127.0.0.1"
ARGS = [
    "--model",
    "test_efficientnet",
    "--weights",
    "none",
    "--data",
    "digits",
    "--image-size",
    "16",
    "--train-per-class",
    "10",
    "--val-per-class",
    "5",
    "--max-test",
    "40",
    "--batch-size",
    "16",
    "--searcher",
    "pso",
    "--particles",
    str(PARTICLES),
    "--generations",
    str(GENERATIONS),
    "--fitness-epochs",
    "2",
    "--final-epochs",
    "1",
    "--device",
    "cpu",
    "--cpus-per-trial",
    "1",
    "--retries",
    "3",
    "--seed",
    "0",
    "--quiet",
]


def _evaluations(out) -> dict[int, dict]:
    return {r["number"]: r for r in read_jsonl(out / "evaluations.jsonl")}


@pytest.mark.slow
def test_search_on_a_two_node_cluster_survives_losing_a_node(tmp_path):
    local = tmp_path / "local"
    assert main(["search", *ARGS, "--out", str(local)]) == 0

    # Every node and the search's driver on the loopback address: nothing leaves this machine.
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": LOOPBACK})
    try:
        second = cluster.add_node(num_cpus=2, node_ip_address=LOOPBACK)
        cluster.wait_for_nodes()
        address = cluster.address
        assert address.startswith(f"{LOOPBACK}:"), address
        out = tmp_path / "ray"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # driver on loopback
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "layerswarm.cli",
                "search",
                *ARGS,
                "--backend",
                "ray",
                "--address",
                address,
                "--out",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 600
        while not (out / "evaluations.jsonl").exists() or len(_evaluations(out)) < 1:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no evaluation finished in time"
            time.sleep(0.05)
        cluster.remove_node(second)  # mid-generation 1: its running evaluations die with it
        removed_after = len(_evaluations(out))
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr[-3000:]
    finally:
        cluster.shutdown()

    a, b = _evaluations(local), _evaluations(out)
    assert removed_after < len(a), "the node went after the search: nothing was tested"
    assert sorted(a) == sorted(b) == list(range(len(a))) and len(a) >= PARTICLES * GENERATIONS
    assert all(r["error"] is None for r in b.values()), [r["error"] for r in b.values()]
    for n in a:
        for key in ("mask", "position", "fitness"):
            assert a[n][key] == b[n][key], (n, key)
    fa, fb = (json.loads((d / "final" / "metrics.json").read_text()) for d in (local, out))
    assert fa["mask"] == fb["mask"] and fa["test_accuracy"] == fb["test_accuracy"]
    assert json.loads((out / "config.json").read_text())["search"]["executor"]["address"] == address
