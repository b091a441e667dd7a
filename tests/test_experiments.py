"""Budgets, many masks and the resumable sweep."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_HIDDEN, Run

import MNIST as M


def test_budget_formula_reproduces_the_original_table() -> None:
    original = {
        50: 69,
        100: 148,
        150: 228,
        200: 307,
        250: 387,
        300: 466,
        350: 545,
        400: 625,
    }
    assert {k: M.matched_edges_per_node(k, 500) for k in original} == original
    assert [M.level_to_k("node", level, 500) for level in (10, 50, 80)] == [
        50,
        250,
        400,
    ]
    assert [M.level_to_k("edge", level, 500) for level in (10, 50, 80)] == [
        69,
        387,
        625,
    ]
    table = M.budget_table(500, [10, 50])
    assert "| 10% | 50 | 39700 (10.00%) | 69 | 39500 (9.95%) |" in table


PRUNE = ["--procedure", "test", "--trained_weights", "small.pt", "--no-progress"]


def test_num_masks_repeats_exactly_and_matches_single_seeds(
    cli: Callable[..., Run],
) -> None:
    args = [*PRUNE, "--pruning_choice", "dpp_edge", "--k", "40", "--reweighting"]
    first = cli(*args, "--num-masks", "3", "--seed", "7")
    assert first.code == 0, first.err
    assert cli(*args, "--num-masks", "3", "--seed", "7").out == first.out
    assert (
        "dpp_edge k=40 over 3 masks:" in first.out and "with reweighting" in first.out
    )
    mask_2 = [
        line
        for line in first.out.splitlines()
        if line.startswith("Mask 2/3 (seed 8): After")
    ]
    single = [
        line
        for line in cli(*args, "--seed", "8").out.splitlines()
        if line.startswith("After")
    ]
    assert mask_2[0].removeprefix("Mask 2/3 (seed 8): ") == single[0]


def test_deterministic_choice_is_evaluated_once(cli: Callable[..., Run]) -> None:
    run = cli(
        *PRUNE, "--pruning_choice", "importance_node", "--k", "5", "--num-masks", "4"
    )
    assert run.code == 0 and "deterministic" in run.out and "Mask" not in run.out


def test_a_practically_uniform_node_kernel_is_reported_and_beta_auto_is_not(
    cli: Callable[..., Run],
) -> None:
    run = cli(*PRUNE, "--pruning_choice", "dpp_node", "--k", "5")
    assert "node kernels (1): beta 0.3" in run.out
    assert "so the 5-DPP is within" in run.out and "i.e. random pruning" in run.err
    run = cli(*PRUNE, "--pruning_choice", "dpp_node", "--k", "5", "--beta", "auto")
    assert "node kernels (1)" in run.out and "random pruning" not in run.err


SWEEP = [
    "--procedure",
    "sweep",
    "--trained_weights",
    "small.pt",
    "--levels",
    "25,50",
    "--num-masks",
    "2",
    "--no-progress",
]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_writes_csv_table_and_figure(
    cli: Callable[..., Run], workdir: Path
) -> None:
    assert cli(*SWEEP, "--out-dir", "full").code == 0
    rows = read_rows(workdir / "full" / "sweep.csv")
    # 4 random methods x 2 levels x 2 masks + 2 importance methods x 2 levels x 1, each with
    # and without reweighting
    assert len(rows) == (4 * 2 * 2 + 2 * 2) * 2
    assert {r["method"] for r in rows} == set(M.METHODS)
    dpp_node_25 = [
        r for r in rows if r["method"] == "dpp_node" and r["level"] == "25.0"
    ]
    assert {r["k"] for r in dpp_node_25} == {"3"}
    assert {r["remaining_weights"] for r in dpp_node_25} == {str(3 * 794)}
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    png = (workdir / "full" / "sweep.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    table = (workdir / "full" / "sweep.md").read_text()
    assert table.count("| dpp_edge (beta 0.3) |") == 2 and "± " in table


def test_sweep_rows_are_what_single_runs_print(
    cli: Callable[..., Run], workdir: Path
) -> None:
    """A sweep row (dpp_edge, 50%, mask 1) holds what --procedure test prints for its k and seed."""
    assert cli(*SWEEP, "--methods", "dpp_edge", "--out-dir", "one_method").code == 0
    rows = read_rows(workdir / "one_method" / "sweep.csv")
    row = next(
        r
        for r in rows
        if r["level"] == "50.0" and r["mask"] == "1" and r["reweighting"] == "True"
    )
    run = cli(
        *PRUNE,
        "--pruning_choice",
        "dpp_edge",
        "--k",
        row["k"],
        "--seed",
        row["seed"],
        "--reweighting",
    )
    after = next(
        line for line in run.out.splitlines() if line.startswith("After reweighting")
    )
    assert f"({100 * float(row['accuracy']):.2f}%)" in after


def test_interrupted_sweep_resumes_with_only_the_missing_rows(
    cli: Callable[..., Run], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    methods = ["--methods", "random_edge,dpp_node,importance_node"]
    assert cli(*SWEEP, *methods, "--out-dir", "clean").code == 0
    clean = read_rows(workdir / "clean" / "sweep.csv")

    real = M.reweighted_copy
    calls = {"n": 0}

    def interrupt_on_fourth_call(*args: object, **kwargs: object) -> M.TwoLayerMLP:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(M, "reweighted_copy", interrupt_on_fourth_call)
    run = cli(*SWEEP, *methods, "--out-dir", "resumed")
    assert run.code == 130 and "keeps the masks finished so far" in run.err
    partial = read_rows(workdir / "resumed" / "sweep.csv")
    assert len(partial) == 6 and partial == clean[:6]
    # no figure, no table, no temporary file
    assert sorted(p.name for p in (workdir / "resumed").iterdir()) == ["sweep.csv"]

    monkeypatch.setattr(M, "reweighted_copy", real)
    run = cli(*SWEEP, *methods, "--out-dir", "resumed")
    assert "3 masks done earlier" in run.out
    assert read_rows(workdir / "resumed" / "sweep.csv") == clean


def test_sweep_refuses_to_mix_results_of_another_run(
    cli: Callable[..., Run], workdir: Path
) -> None:
    assert cli(*SWEEP, "--methods", "random_node", "--out-dir", "mixed").code == 0
    before = (workdir / "mixed" / "sweep.csv").read_bytes()
    torch.manual_seed(1)
    M.save_checkpoint(workdir / "other.pt", M.TwoLayerMLP(hidden_size=SMALL_HIDDEN))
    other = [a if a != "small.pt" else "other.pt" for a in SWEEP]
    run = cli(*other, "--methods", "random_node", "--out-dir", "mixed")
    assert run.code == 2 and "--trained_weights small.pt" in run.err
    assert (workdir / "mixed" / "sweep.csv").read_bytes() == before


def test_level_accuracy_table_uses_sample_std() -> None:
    rows = [
        {
            "method": "m",
            "beta": "",
            "node_features": "",
            "reweighting": "False",
            "level": "10",
            "accuracy": str(a),
            "percent_kept": "10",
        }
        for a in (0.5, 0.7)
    ]
    ((level, kept, mean, std, n),) = M.summarize_sweep(rows)[("m", False)]
    assert (level, kept, n) == (10.0, 10.0, 2) and mean == pytest.approx(60.0)
    assert std == pytest.approx(np.std([50.0, 70.0], ddof=1))
