"""A researcher's own study, end to end through MNIST.py: a registered method, two small
networks, a plan of their own naming that method as primary, the reports and figures (the
method in its own colour); --plan checked before a sweep runs; a sweep killed mid-write
resumed with every finished mask and no row twice."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_HIDDEN, Run, first_k_edges

import MNIST as M
import report

OWN_PLAN = """
[endpoint]
column = "accuracy"

[tests]
margin = 2.0
margin_reweighted = 0.5

[primary]
parts = [{ architecture = "784-12-10", layer = 1 }]
comparisons = [
    { claim = "M", first = "first_k_edges", second = "random_edge" },
    { claim = "C", first = "dpp_edge (beta 0.3)", second = "random_edge" },
]

[claims]
M = "keeping the first k inputs beats keeping k at random"
"""


def networks(workdir: Path) -> str:
    """Two 784-12-10 networks of their own seeds, briefly trained on the small data."""
    data = M.load_data(workdir / "data")
    paths = []
    for seed in (31, 32):
        torch.manual_seed(seed)
        model = M.MLP([SMALL_HIDDEN])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for epoch in range(2):
            M.train_epoch(model, optimizer, data.train_images, data.train_labels, 50, epoch, 99)
        extra = {"dataset": data.name, "data_fingerprint": data.fingerprint}
        M.save_checkpoint(workdir / f"own_{seed}.pt", model, extra)
        paths.append(f"own_{seed}.pt")
    return ",".join(paths)


@pytest.fixture
def own_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "METHODS", dict(M.METHODS))
    M.register_method("first_k_edges", kind="edge", draw=first_k_edges, deterministic=True)


def sweep(paths: str, out: str, *extra: str) -> list[str]:
    return [
        *("--procedure", "sweep", "--trained_weights", paths, "--levels", "40,80"),
        *("--methods", "first_k_edges,random_edge,dpp_edge", "--num-masks", "2"),
        *("--no-progress", "--out-dir", out, *extra),
    ]


def test_a_study_of_one_s_own_runs_end_to_end(
    cli: Callable[..., Run], workdir: Path, own_method: None
) -> None:
    (workdir / "own_plan.toml").write_text(OWN_PLAN)
    run = cli(*sweep(networks(workdir), "own_study", "--plan", "own_plan.toml"))
    assert run.code == 0, run.err
    folder = workdir / "own_study"
    statistics = (folder / "statistics.md").read_text()
    assert "Plan: own_plan.toml." in statistics.splitlines()[2]
    with (folder / "statistics.csv").open(newline="") as f:
        tests = list(csv.DictReader(f))
    primary = {
        (t["claim"], t["first"], t["reweighting"]) for t in tests if t["analysis"] == "primary"
    }
    assert primary == {
        (claim, first, rw)
        for claim, first in (("M", "first_k_edges"), ("C", "dpp_edge (beta 0.3)"))
        for rw in ("False", "True")
    }
    assert {t["networks"] for t in tests if t["analysis"] == "primary"} == {"2"}
    assert "* **M.** Keeping the first k inputs beats keeping k at random." in statistics
    for name in ("sweep.png", "forest.png", "claim_M.png", "claim_C.png"):
        assert (folder / name).read_bytes().startswith(b"\x89PNG"), name
    # the method's own colour, drawn in sweep.png
    rows = report.read_csv(folder / "sweep.csv")
    styles = report.method_styles(rows, report.shown_groups(rows, report.NO_PLAN))
    colour, _, line = styles["first_k_edges"]
    assert line == "-" and colour not in {
        c for g, (c, *_) in styles.items() if g != "first_k_edges"
    }
    import matplotlib.image

    pixels = matplotlib.image.imread(folder / "sweep.png")[..., :3]
    target = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    assert (np.abs(pixels - target).max(-1) < 0.02).sum() > 50


def test_a_plan_naming_a_method_the_sweep_lacks_stops_it_before_it_runs(
    cli: Callable[..., Run], workdir: Path, own_method: None
) -> None:
    (workdir / "typo_plan.toml").write_text(OWN_PLAN.replace('"first_k_edges"', '"first_k"'))
    run = cli(*sweep("small.pt", "typo_study", "--plan", "typo_plan.toml"))
    assert run.code == 2 and len(run.err.splitlines()) == 1
    assert "primary.comparisons[0].first" in run.err and "first_k" in run.err
    assert not (workdir / "typo_study" / "sweep.csv").exists()
    (workdir / "bad_plan.toml").write_text(OWN_PLAN.replace("margin = 2.0", "margin = -2.0"))
    run = cli(*sweep("small.pt", "typo_study", "--plan", "bad_plan.toml"))
    assert run.code == 2 and "tests.margin" in run.err and len(run.err.splitlines()) == 1
    run = cli("--procedure", "test", "--trained_weights", "small.pt", "--plan", "x.toml")
    assert run.code == 2 and "--plan only applies to --procedure sweep" in run.err


def test_a_sweep_killed_mid_write_resumes_with_every_finished_mask_once(
    cli: Callable[..., Run], workdir: Path
) -> None:
    args = sweep("small.pt", "killed").copy()
    args[args.index("first_k_edges,random_edge,dpp_edge")] = "random_edge,dpp_node"
    assert cli(*args).code == 0
    path = workdir / "killed" / "sweep.csv"
    whole = path.read_bytes()
    lines = whole.splitlines(keepends=True)
    rows = report.read_csv(path)
    for finished in (2, 5):  # masks on disk; the kill tore the next mask's first or second row
        for torn_row in (0, 1):
            head = b"".join(lines[: 1 + 2 * finished + torn_row])
            partial = lines[1 + 2 * finished + torn_row][:37]
            path.write_bytes(head + partial)
            run = cli(*args)
            assert run.code == 0, run.err
            assert "dropped a torn last line" in run.out
            assert f"{finished} masks done earlier" in run.out
            assert path.read_bytes() == whole
            assert report.read_csv(path) == rows
