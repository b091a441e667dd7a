"""Baselines, budgets, many masks and the resumable sweep."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_mnist_idx

import MNIST as M


def test_importance_edge_keeps_the_largest_magnitudes() -> None:
    W1 = torch.tensor([[0.1, -0.9, 0.3, 0.0, -0.5], [2.0, 0.0, -1.0, 0.2, 0.1]])
    W1 = torch.cat([W1, torch.zeros(2, 779)], dim=1)
    mask = M.importance_edge(W1, 2)
    assert mask[0, :5].tolist() == [False, True, False, False, True]
    assert mask[1, :5].tolist() == [True, False, True, False, False]
    assert (mask.sum(1) == 2).all()


def test_importance_node_keeps_the_largest_mean_outgoing_weights() -> None:
    W2 = torch.zeros(10, 6)
    W2[:, 1], W2[0, 3], W2[:, 4] = (
        -1.0,
        8.0,
        0.5,
    )  # mean |.|: node 1 = 1.0, node 3 = 0.8, node 4 = 0.5
    assert M.importance_node(W2, 2).tolist() == [False, True, False, True, False, False]


def test_random_node_keeps_k_and_is_seeded() -> None:
    keep = M.random_node(30, 7, seed=5)
    assert int(keep.sum()) == 7 and torch.equal(keep, M.random_node(30, 7, seed=5))


@pytest.mark.parametrize("choice", M.PRUNING_CHOICES)
def test_every_choice_keeps_exactly_the_promised_budget(choice: str) -> None:
    torch.manual_seed(0)
    inputs = M.PruningInputs(
        M.TwoLayerMLP(9),
        torch.randn(40, 784),
        torch.randn(5, 784),
        torch.zeros(5, dtype=torch.long),
        8,
    )
    k = 4 if choice.endswith("_node") else 33
    edge_mask, node_keep = M.draw_mask(choice, inputs, k, 0.3, seed=1)
    if choice.endswith("_node"):
        assert int(node_keep.sum()) == 4 and torch.equal(
            edge_mask, node_keep.unsqueeze(1).expand(9, 784)
        )
        assert M.count_remaining_weights(edge_mask, node_keep) == (4 * 794, 9 * 794)
    else:
        assert node_keep.all() and (edge_mask.sum(1) == 33).all()
        assert M.count_remaining_weights(edge_mask, node_keep) == (33 * 9 + 90, 9 * 794)


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
    assert [M.level_to_k("dpp_node", level, 500) for level in (10, 50, 80)] == [
        50,
        250,
        400,
    ]
    assert [M.level_to_k("random_edge", level, 500) for level in (10, 50, 80)] == [
        69,
        387,
        625,
    ]
    table = M.budget_table(500, [10, 50])
    assert "| 10% | 50 | 39700 (10.00%) | 69 | 39500 (9.95%) |" in table


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    write_mnist_idx(folder / "data")
    torch.manual_seed(0)
    M.save_checkpoint(folder / "small.pt", M.TwoLayerMLP(hidden_size=12))
    return folder


def pruning(*extra: str) -> list[str]:
    return [
        "--procedure",
        "test",
        "--hidden-size",
        "12",
        "--trained_weights",
        "small.pt",
        "--no-progress",
        *extra,
    ]


def test_num_masks_repeats_exactly_and_matches_single_seeds(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workdir)
    args = pruning(
        "--pruning_choice",
        "dpp_edge",
        "--k",
        "40",
        "--num-masks",
        "3",
        "--reweighting",
        "--seed",
        "7",
    )
    assert M.main(args) == 0
    first = capsys.readouterr().out
    assert M.main(args) == 0
    assert capsys.readouterr().out == first
    assert "dpp_edge k=40 over 3 masks:" in first and "with reweighting" in first
    mask_lines = [
        line
        for line in first.splitlines()
        if line.startswith("Mask 2/3 (seed 8): After")
    ]
    assert (
        M.main(
            pruning(
                "--pruning_choice",
                "dpp_edge",
                "--k",
                "40",
                "--reweighting",
                "--seed",
                "8",
            )
        )
        == 0
    )
    single = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("After")
    ]
    assert mask_lines[0].removeprefix("Mask 2/3 (seed 8): ") == single[0]


def test_deterministic_choice_is_evaluated_once(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workdir)
    assert (
        M.main(
            pruning(
                "--pruning_choice", "importance_node", "--k", "5", "--num-masks", "4"
            )
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "deterministic" in out and "Mask" not in out


def test_diagonal_node_kernel_is_reported_and_beta_auto_is_not(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workdir)
    assert M.main(pruning("--pruning_choice", "dpp_node", "--k", "5")) == 0
    captured = capsys.readouterr()
    assert (
        "node kernels (1): beta 0.3" in captured.out
        and "numerically diagonal" in captured.err
    )
    assert (
        M.main(pruning("--pruning_choice", "dpp_node", "--k", "5", "--beta", "auto"))
        == 0
    )
    captured = capsys.readouterr()
    assert (
        "node kernels (1)" in captured.out
        and "numerically diagonal" not in captured.err
    )


SWEEP = [
    "--procedure",
    "sweep",
    "--hidden-size",
    "12",
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
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    assert M.main([*SWEEP, "--out-dir", "full"]) == 0
    rows = read_rows(workdir / "full" / "sweep.csv")
    # 4 random methods x 2 levels x 2 masks + 2 importance methods x 2 levels x 1, each with and without reweighting
    assert len(rows) == (4 * 2 * 2 + 2 * 2) * 2
    assert {r["method"] for r in rows} == set(M.PRUNING_CHOICES)
    dpp_node_25 = [
        r for r in rows if r["method"] == "dpp_node" and r["level"] == "25.0"
    ]
    assert {r["k"] for r in dpp_node_25} == {"3"} and {
        r["remaining_weights"] for r in dpp_node_25
    } == {str(3 * 794)}
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    png = (workdir / "full" / "sweep.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    table = (workdir / "full" / "sweep.md").read_text()
    assert table.count("| dpp_edge |") == 2 and "± " in table


def test_interrupted_sweep_resumes_with_only_the_missing_rows(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workdir)
    methods = ["--methods", "random_edge,dpp_node,importance_node"]
    assert M.main([*SWEEP, *methods, "--out-dir", "clean"]) == 0
    clean = read_rows(workdir / "clean" / "sweep.csv")

    real = M.reweighted_model
    calls = {"n": 0}

    def interrupt_on_fourth_call(*args: object, **kwargs: object) -> M.TwoLayerMLP:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(M, "reweighted_model", interrupt_on_fourth_call)
    assert M.main([*SWEEP, *methods, "--out-dir", "resumed"]) == 130
    partial = read_rows(workdir / "resumed" / "sweep.csv")
    assert len(partial) == 6 and partial == clean[:6]
    assert not (workdir / "resumed" / "sweep.png").exists()
    assert sorted(p.name for p in (workdir / "resumed").iterdir()) == [
        "sweep.csv"
    ]  # no temporary files

    monkeypatch.setattr(M, "reweighted_model", real)
    capsys.readouterr()
    assert M.main([*SWEEP, *methods, "--out-dir", "resumed"]) == 0
    assert "3 masks done earlier" in capsys.readouterr().out
    assert read_rows(workdir / "resumed" / "sweep.csv") == clean


def test_sweep_refuses_to_mix_results_of_another_run(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workdir)
    assert M.main([*SWEEP, "--methods", "random_node", "--out-dir", "mixed"]) == 0
    before = (workdir / "mixed" / "sweep.csv").read_bytes()
    assert (
        M.main(
            [*SWEEP, "--methods", "random_node", "--out-dir", "mixed", "--beta", "0.5"]
        )
        == 2
    )
    assert "--beta" in capsys.readouterr().err
    assert (workdir / "mixed" / "sweep.csv").read_bytes() == before


def test_level_accuracy_table_uses_sample_std() -> None:
    rows = [
        {
            "method": "m",
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
