"""Budgets, many masks, the resumable sweep, and the sweep's masks drawn from one kernel
build against the same masks drawn one at a time."""

from __future__ import annotations

import copy
import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_HIDDEN, Run, draw_one, synthetic_digits

import dpp_sample
import MNIST as M
import report


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
    shape = M.LayerShape.of(M.mnist_sizes([500]), 1)
    assert {k: M.matched_edges_per_node(k, shape) for k in original} == original
    assert [M.level_to_k("node", level, shape) for level in (10, 50, 80)] == [
        50,
        250,
        400,
    ]
    assert [M.level_to_k("edge", level, shape) for level in (10, 50, 80)] == [
        69,
        387,
        625,
    ]
    table = M.budget_table(M.mnist_sizes([500]), 1, [10, 50])
    assert "| 10% | 50 | 39700 (10.00%) | 69 | 39500 (9.95%) |" in table


PRUNE = ["--procedure", "test", "--trained_weights", "small.pt", "--no-progress"]


def test_num_masks_repeats_exactly_and_matches_single_seeds(
    cli: Callable[..., Run],
) -> None:
    args = [*PRUNE, "--pruning_choice", "dpp_edge", "--k", "40", "--reweighting"]
    first = cli(*args, "--num-masks", "3", "--seed", "7")
    assert first.code == 0, first.err
    assert cli(*args, "--num-masks", "3", "--seed", "7").out == first.out
    assert "dpp_edge k=40 over 3 masks:" in first.out and "with reweighting" in first.out
    mask_2 = [
        line for line in first.out.splitlines() if line.startswith("Mask 2/3 (seed 8): After")
    ]
    single = [
        line for line in cli(*args, "--seed", "8").out.splitlines() if line.startswith("After")
    ]
    assert mask_2[0].removeprefix("Mask 2/3 (seed 8): ") == single[0]


def test_deterministic_choice_is_evaluated_once(cli: Callable[..., Run]) -> None:
    run = cli(*PRUNE, "--pruning_choice", "importance_node", "--k", "5", "--num-masks", "4")
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


def test_sweep_writes_csv_table_and_figure(cli: Callable[..., Run], workdir: Path) -> None:
    assert cli(*SWEEP, "--out-dir", "full").code == 0
    rows = read_rows(workdir / "full" / "sweep.csv")
    # 6 methods of random masks x 2 levels x 2 masks + 11 deterministic ones x 2 levels x 1,
    # each with and without reweighting
    assert sum(m.deterministic for m in M.METHODS.values()) == 11
    assert len(rows) == (6 * 2 * 2 + 11 * 2) * 2
    assert {r["method"] for r in rows} == set(M.METHODS)
    dpp_node_25 = [r for r in rows if r["method"] == "dpp_node" and r["level"] == "25.0"]
    assert {r["k"] for r in dpp_node_25} == {"3"}
    assert {r["remaining_weights"] for r in dpp_node_25} == {str(3 * 794)}
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    png = (workdir / "full" / "sweep.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    table = (workdir / "full" / "sweep.md").read_text()
    assert table.count("| dpp_edge (beta 0.3) |") == 2 and "± " in table


def test_sweep_rows_are_what_single_runs_print(cli: Callable[..., Run], workdir: Path) -> None:
    """A sweep row (dpp_edge, 50%, mask 1) holds what --procedure test prints for its k and
    seed."""
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
    after = next(line for line in run.out.splitlines() if line.startswith("After reweighting"))
    assert f"({100 * float(row['accuracy']):.2f}%)" in after


def test_interrupted_sweep_resumes_with_only_the_missing_rows(
    cli: Callable[..., Run], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    methods = ["--methods", "random_edge,dpp_node,importance_node"]
    assert cli(*SWEEP, *methods, "--out-dir", "clean").code == 0
    clean = read_rows(workdir / "clean" / "sweep.csv")

    real = M.reweighted_copy
    calls = {"n": 0}

    def interrupt_on_fourth_call(*args: object, **kwargs: object) -> M.MLP:
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
    M.save_checkpoint(workdir / "other.pt", M.MLP([SMALL_HIDDEN]))
    other = [a if a != "small.pt" else "other.pt" for a in SWEEP]
    run = cli(*other, "--methods", "random_node", "--out-dir", "mixed")
    assert run.code == 2 and "--trained_weights small.pt" in run.err
    assert (workdir / "mixed" / "sweep.csv").read_bytes() == before


def small_network(workdir: Path, name: str, seed: int) -> str:
    """A 784-12-10 network of its own seed saved as name in workdir; returns name."""
    torch.manual_seed(seed)
    M.save_checkpoint(workdir / name, M.MLP([SMALL_HIDDEN]))
    return name


def test_a_network_retrained_at_the_same_path_is_not_resumed(
    cli: Callable[..., Run], workdir: Path
) -> None:
    """Same path, other weights: the earlier rows belong to another network (by fingerprint)."""
    path = small_network(workdir, "retrained.pt", seed=5)
    args = [*SWEEP[:3], path, *SWEEP[4:], "--methods", "random_node", "--out-dir", "retrained"]
    assert cli(*args).code == 0
    before = (workdir / "retrained" / "sweep.csv").read_bytes()
    small_network(workdir, "retrained.pt", seed=6)
    run = cli(*args)
    assert run.code == 2 and "other weights at --trained_weights retrained.pt" in run.err
    assert len(run.err.splitlines()) == 1
    assert (workdir / "retrained" / "sweep.csv").read_bytes() == before


def test_masks_of_another_seed_are_not_resumed(cli: Callable[..., Run], workdir: Path) -> None:
    args = [*SWEEP, "--methods", "random_node", "--out-dir", "seeded"]
    assert cli(*args).code == 0
    run = cli(*args, "--seed", "2")
    assert run.code == 2 and "masks drawn with --seed 1" in run.err


def test_a_sweep_of_several_networks_names_each_row_s_network(
    cli: Callable[..., Run], workdir: Path
) -> None:
    paths = [small_network(workdir, f"study_{seed}.pt", seed) for seed in (11, 12)]
    args = [*SWEEP[:3], ",".join(paths), *SWEEP[4:], "--methods", "random_node,importance_node"]
    run = cli(*args, "--out-dir", "two_networks")
    assert run.code == 0, run.err
    rows = read_rows(workdir / "two_networks" / "sweep.csv")
    fingerprints = {
        path: M.weights_fingerprint(M.load_checkpoint(workdir / path)[0]) for path in paths
    }
    assert {(r["checkpoint"], r["network"]) for r in rows} == set(fingerprints.items())
    assert len(rows) == 2 * (2 * 2 + 2) * 2  # per network: 2 levels x (2 masks + 1)
    assert "2 networks, the unit of every test" in run.out


def test_shards_together_are_the_sweep_bit_for_bit(
    cli: Callable[..., Run], workdir: Path
) -> None:
    """Three shards of a sweep of two networks: disjoint, and their rows are the unsharded
    sweep's rows; report.py merges them into one report (a part alone writes none). Its six
    parts (network, method setting) cannot be cut into seven."""
    paths = ",".join(small_network(workdir, f"shard_{seed}.pt", seed) for seed in (21, 22))
    args = [*SWEEP[:3], paths, *SWEEP[4:], "--methods", "dpp_node,random_node,importance_edge"]
    assert cli(*args, "--out-dir", "unsharded").code == 0
    whole = read_rows(workdir / "unsharded" / "sweep.csv")
    parts = []
    for i in (1, 2, 3):
        assert cli(*args, "--shard", f"{i}/3", "--out-dir", f"shard_{i}").code == 0
        parts.append(read_rows(workdir / f"shard_{i}" / "sweep.csv"))
        assert not (workdir / f"shard_{i}" / "statistics.md").exists()
    assert all(parts) and sum(len(part) for part in parts) == len(whole)
    sharded = sorted(tuple(row.values()) for part in parts for row in part)
    assert sharded == sorted(tuple(row.values()) for row in whole)
    folders = [str(workdir / f"shard_{i}") for i in (1, 2, 3)]
    assert report.main([*folders, "--out-dir", str(workdir / "merged")]) == 0
    merged = (workdir / "merged" / "statistics.md").read_text()
    assert merged == (workdir / "unsharded" / "statistics.md").read_text()
    too_many = cli(*args, "--shard", "7/7", "--out-dir", "shard_7")
    assert too_many.code == 2 and "--shard 7/7: this sweep has 6 parts" in too_many.err
    assert len(too_many.err.strip().splitlines()) == 1


@pytest.mark.parametrize("problem", ["other data set", "same weights"])
def test_a_sweep_s_networks_share_a_data_set_and_are_different(
    problem: str, cli: Callable[..., Run], workdir: Path
) -> None:
    first = small_network(workdir, "shared_a.pt", seed=31)
    if problem == "other data set":
        torch.manual_seed(32)
        record = {"dataset": "Fashion-MNIST"}
        M.save_checkpoint(workdir / "shared_b.pt", M.MLP([SMALL_HIDDEN]), record)
    else:
        (workdir / "shared_b.pt").write_bytes((workdir / first).read_bytes())
    args = [*SWEEP[:3], f"{first},shared_b.pt", *SWEEP[4:], "--out-dir", "shared"]
    run = cli(*args)
    assert run.code == 2 and len(run.err.splitlines()) == 1 and "shared_b.pt" in run.err
    assert not (workdir / "shared" / "sweep.csv").exists()


def test_node_settings_are_the_exact_settings_of_node_dpp_methods(
    cli: Callable[..., Run], workdir: Path
) -> None:
    settings = "auto:activation,10/N:preactivation"
    run = cli(*SWEEP, "--methods", "dpp_node", "--node-settings", settings, "--out-dir", "ns")
    assert run.code == 0, run.err
    rows = read_rows(workdir / "ns" / "sweep.csv")
    assert {(r["beta"], r["node_features"]) for r in rows} == {
        ("auto", "activation"),
        ("10/N", "preactivation"),
    }


# ---------------------------------------------------------------------------------------------
# The oracle: the sweep as it was drawn before one kernel build served all of a method's masks
# (a full kernel build per mask, node reweighting on the N rows, G's null space found again
# for every edge mask, copies of columns not folded).
# ---------------------------------------------------------------------------------------------


def per_mask_dpp_node(
    inputs: M.PruningInputs, k: int, beta: float | str, seed: int
) -> torch.Tensor:
    """dpp_node drawn alone, its kernel from the N x H float64 pre-activations Z."""
    Z = inputs.train_x.to(torch.float64) @ inputs.W.to(torch.float64).T
    L, _ = M.node_kernel(Z.T @ Z, beta, len(inputs.train_x))
    kernel = dpp_sample.prepare_k_dpp(L, inputs.dpp_backend)
    keep = torch.zeros(len(inputs.W), dtype=torch.bool)
    keep[kernel.sample(k, [np.random.SeedSequence(seed)])[0]] = True
    return keep


def rows_lstsq_reweight_nodes(
    activations: torch.Tensor, keep: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares of the pruned activations on [1, kept activations] over the N rows."""
    A = activations.to(torch.float64)
    design = torch.cat([torch.ones(len(A), 1, dtype=A.dtype), A[:, keep]], dim=1)
    coef = torch.linalg.lstsq(design, A[:, ~keep], driver="gelsd").solution
    W2d, b2d = W2.to(torch.float64), b2.to(torch.float64)
    new_W2 = torch.zeros_like(W2d)
    new_W2[:, keep] = W2d[:, keep] + W2d[:, ~keep] @ coef[1:].T
    return new_W2.to(W2.dtype), (b2d + W2d[:, ~keep] @ coef[0]).to(b2.dtype)


def per_mask_reweight_edges(
    W1: torch.Tensor, mask: torch.Tensor, G: torch.Tensor
) -> torch.Tensor:
    """The normal equations G_SS delta = G_SR w_R of every node solved by the pseudo-inverse
    (all nodes keep the same number of edges)."""
    W = W1.to(torch.float64)
    rhs_all = torch.where(mask, torch.zeros_like(W), W) @ G
    kept = torch.nonzero(mask)[:, 1].reshape(len(W), -1)  # (H, k)
    G_SS = G[kept.unsqueeze(-1), kept.unsqueeze(-2)]
    rhs = rhs_all.gather(1, kept).unsqueeze(-1)
    result = torch.where(mask, W, torch.zeros_like(W))
    result.scatter_add_(1, kept, M.pinv_solve(G_SS, rhs).squeeze(-1))
    return result.to(W1.dtype)


@torch.no_grad()
def sweep_per_mask(
    inputs: M.PruningInputs, evaluation: M.Evaluation, cells: list[M.Cell]
) -> dict[tuple[str, float, int], tuple[torch.Tensor, int, int]]:
    """(method, level, index) -> (mask, correct masked, correct reweighted), drawn alone."""
    results = {}
    for cell in cells:
        method = cell.method
        if method.name == "dpp_node":
            mask = per_mask_dpp_node(inputs, cell.k, cell.setting.beta, cell.seed)
        else:
            mask = draw_one(method, inputs, cell.k, cell.setting.beta, cell.seed)
        pruned = M.masked_copy(inputs.model, 1, method.kind, mask)
        reweighted = copy.deepcopy(pruned)
        if method.reconstruct is not None:  # flap_node's bias compensation, masked only
            method.reconstruct(pruned, inputs, mask)
        if method.kind == "node":
            W2, b2 = inputs.W_next, inputs.model.w2.bias.detach()
            activations = inputs.model.hidden(inputs.train_x, 1)
            new_W2, new_b2 = rows_lstsq_reweight_nodes(activations, mask, W2, b2)
            reweighted.w2.weight.copy_(new_W2)
            reweighted.w2.bias.copy_(new_b2)
        else:
            reweighted.w1.weight.copy_(per_mask_reweight_edges(inputs.W, mask, inputs.gram()))
        key = (method.name, cell.level, cell.index)
        correct = [int(evaluation.evaluate(net)[1].sum()) for net in (pruned, reweighted)]
        results[key] = (mask, *correct)
    return results


def test_the_sweep_drawn_from_one_kernel_build_is_the_sweep_drawn_per_mask() -> None:
    """Every method, 2 levels x 2 masks, H = 10, beta auto: the same masks and masked
    accuracies as drawn alone, and reweighted accuracies within one test image."""
    images, labels = synthetic_digits(240, seed=5)
    X = M.normalise(images)
    torch.manual_seed(2)
    model = M.MLP([10])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    y = torch.as_tensor(labels, dtype=torch.int64)
    for epoch in range(3):
        M.train_epoch(model, optimizer, X[:200], y[:200], 50, epoch, log_interval=10**9)
    evaluation = M.Evaluation(X[200:], y[200:], batch_size=20)
    cells = M.sweep_cells(list(M.METHODS), [30, 70], 2, 3, (784, 10, 10), betas=("auto",))
    before = sweep_per_mask(M.PruningInputs(model, X[:200]), evaluation, cells)
    after = {
        (cell.method.name, cell.level, cell.index): (
            result.mask,
            int(result.right.sum()),
            int(result.reweighted_right.sum()),
        )
        for cell, result, _ in M.run_cells(
            M.PruningInputs(model, X[:200]), evaluation, cells, reweighting=True
        )
    }
    assert len(after) == 6 * 2 * 2 + 11 * 2 and after.keys() == before.keys()
    for key, (mask, masked, reweighted) in after.items():
        mask_before, masked_before, reweighted_before = before[key]
        assert torch.equal(mask, mask_before), key
        assert masked == masked_before, key
        assert abs(reweighted - reweighted_before) <= 1, key
