"""Deeper networks: a 784-32-16-8-10 MLP the tests train on their own small data, each of its
hidden layers pruned, checked against references computed here in float64 from the weights
(the layer's inputs recomputed with numpy, never read from MNIST.py); budgets against a hand
count; a registered method, export, sweeps and reports at other layers and depths."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    Run,
    draw_one,
    first_k_edges,
    kernels_sampled_by,
    numpy_layer_inputs,
    synthetic_digits,
)
from scipy.spatial.distance import cdist

import MNIST as M
import report

SIZES = (32, 16, 8)  # 784-32-16-8-10


@pytest.fixture(scope="module")
def deep() -> tuple[M.MLP, torch.Tensor, M.Evaluation]:
    """784-32-16-8-10 trained for 8 epochs on 240 synthetic digits, its 240 training images
    and 60 test images."""
    images, labels = synthetic_digits(300, seed=7)
    X, y = M.normalise(images), torch.as_tensor(labels, dtype=torch.int64)
    torch.manual_seed(4)
    model = M.MLP(SIZES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for epoch in range(8):
        M.train_epoch(model, optimizer, X[:240], y[:240], 40, epoch, log_interval=10**9)
    model.eval()
    return model, X[:240], M.Evaluation(X[240:], y[240:], batch_size=25)


def test_the_layer_view_is_the_layer_its_inputs_and_the_layer_above(
    deep: tuple[M.MLP, torch.Tensor, M.Evaluation],
) -> None:
    model, X, _ = deep
    inputs = M.PruningInputs(model, X, layer=2)
    assert inputs.W.shape == (16, 32) and inputs.W_next.shape == (8, 16)
    assert inputs.shape == M.LayerShape(inputs=32, nodes=16, above=8)
    A = numpy_layer_inputs(model, X, 2)
    np.testing.assert_allclose(inputs.inputs().double().numpy(), A, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inputs.gram().numpy(), A.T @ A, rtol=1e-5)
    top = M.PruningInputs(model, X, layer=3)
    assert top.W_next.shape == (10, 8) and torch.equal(top.W_next, model.w4.weight)


def test_layer_2_edge_kernels_are_distances_between_weighted_inputs(
    deep: tuple[M.MLP, torch.Tensor, M.Evaluation], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernels dpp_edge samples at layer 2, against exp(-beta d) + 0.01 I, d the squared
    distances between the columns w_hi a_i of the layer's real inputs A, computed directly."""
    model, X, _ = deep
    inputs = M.PruningInputs(model, X, layer=2)
    got = kernels_sampled_by("dpp_edge", inputs, monkeypatch)
    A, W = numpy_layer_inputs(model, X, 2), inputs.W.double().numpy()
    assert got.shape == (16, 32, 32)
    for h in range(16):
        weighted = (A * W[h]).T  # (32, N): the N-long vectors w_hi a_i
        expected = np.exp(-0.3 * cdist(weighted, weighted, "sqeuclidean")) + 0.01 * np.eye(32)
        np.testing.assert_allclose(got[h].numpy(), expected, rtol=1e-5, atol=1e-6)
    off_diagonal = got[:, ~torch.eye(32, dtype=torch.bool)]
    assert 0.01 < off_diagonal.mean() < 0.99  # kernels worth testing


def test_layer_2_edge_reweighting_is_lstsq_on_the_rows(
    deep: tuple[M.MLP, torch.Tensor, M.Evaluation],
) -> None:
    """Through the pipeline: the reweighted layer 2 of a random_edge mask against numpy's
    least squares of each node's output A w on its kept columns A_S, over the N rows."""
    model, X, evaluation = deep
    inputs = M.PruningInputs(model, X, layer=2)
    mask = draw_one(M.METHODS["random_edge"], inputs, 11, 0.3, seed=3)
    result = M.prune_with_mask(inputs, evaluation, "edge", mask, reweighting=True)
    A, W = numpy_layer_inputs(model, X, 2), inputs.W.double().numpy()
    expected = np.zeros_like(W)
    for h, kept in enumerate(mask.numpy()):
        expected[h, kept] = np.linalg.lstsq(A[:, kept], A @ W[h], rcond=None)[0]
    got = result.model.w2.weight.detach().double().numpy()
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()
    for other in (1, 3, 4):  # nothing else changes
        assert torch.equal(
            result.model.layers[other - 1].weight, model.layers[other - 1].weight
        )


def test_node_reweighting_at_the_last_hidden_layer_keeps_the_logits_of_redundant_nodes(
    deep: tuple[M.MLP, torch.Tensor, M.Evaluation],
) -> None:
    """Layer 3 (8 nodes) with node 5 a copy of node 1 and node 6 constant (zero incoming
    weights): pruning both, node reweighting folds them into the others and the intercept, so
    the logits stay those of the unpruned network."""
    model, X, evaluation = deep
    redundant = M.MLP(SIZES)
    redundant.load_state_dict(model.state_dict())
    with torch.no_grad():
        redundant.w3.weight[5], redundant.w3.bias[5] = model.w3.weight[1], model.w3.bias[1]
        redundant.w3.weight[6] = 0.0
    keep = torch.ones(8, dtype=torch.bool)
    keep[[5, 6]] = False
    inputs = M.PruningInputs(redundant, X, layer=3)
    result = M.prune_with_mask(inputs, evaluation, "node", keep, reweighting=True)
    test_x = evaluation.images
    with torch.no_grad():
        torch.testing.assert_close(result.model(test_x), redundant(test_x), rtol=0, atol=1e-5)
        assert (result.model.w4.weight[:, [5, 6]] == 0).all()
        masked = M.masked_copy(redundant, 3, "node", keep)
        assert not torch.allclose(masked(test_x), redundant(test_x), atol=1e-3)


@pytest.mark.parametrize("reweighting", [False, True])
def test_a_node_pruned_middle_layer_exports_a_smaller_network_that_reloads_alone(
    deep: tuple[M.MLP, torch.Tensor, M.Evaluation], tmp_path: Path, reweighting: bool
) -> None:
    model, X, evaluation = deep
    inputs = M.PruningInputs(model, X, layer=2)
    keep = draw_one(M.METHODS["dpp_node"], inputs, 5, "auto", seed=2)
    pruned = M.prune_with_mask(inputs, evaluation, "node", keep, reweighting).model
    M.save_checkpoint(tmp_path / "small.pt", M.export_pruned(pruned, 2, "node", keep))
    small, _ = M.load_checkpoint(tmp_path / "small.pt")
    assert small.architecture == "784-32-5-8-10"
    with torch.no_grad():
        torch.testing.assert_close(
            small(evaluation.images), pruned(evaluation.images), rtol=1e-5, atol=1e-5
        )


def test_budgets_against_a_hand_count_at_two_layers(
    deep: tuple[M.MLP, torch.Tensor, M.Evaluation],
) -> None:
    """Layer 2 (d 32, H 16, 8 above) and layer 3 (d 16, H 8, 10 above) at 50%: the weights of
    the layer and the one above that the pruned networks hold, counted entry by entry."""
    model, X, evaluation = deep
    # by hand: layer 2 holds 16 (32 + 8) = 640; 8 nodes keep 8 (32 + 8) = 320 and
    # e = floor((320 - 16 * 8) / 16) = 12 edges per node keep 16 (12 + 8) = 320;
    # layer 3 holds 8 (16 + 10) = 208; 4 nodes keep 4 (16 + 10) = 104 and
    # e = floor((104 - 8 * 10) / 8) = 3 edges per node keep 8 (3 + 10) = 104
    hand = {2: (640, 8, 320, 12, 320), 3: (208, 4, 104, 3, 104)}
    for layer, (total, nodes, node_weights, edges, edge_weights) in hand.items():
        shape = M.LayerShape.of(M.mnist_sizes(SIZES), layer)
        assert shape.total_weights == total
        assert M.level_to_k("node", 50, shape) == nodes
        assert M.level_to_k("edge", 50, shape) == edges
        row = f"| 50% | {nodes} | {node_weights} (50.00%) | {edges} | {edge_weights} (50.00%) |"
        assert row in M.budget_table(M.mnist_sizes(SIZES), layer, [50])
        inputs = M.PruningInputs(model, X, layer=layer)
        for kind, k, expected in (("node", nodes, node_weights), ("edge", edges, edge_weights)):
            mask = draw_one(M.METHODS[f"random_{kind}"], inputs, k, 0.3, seed=1)
            result = M.prune_with_mask(inputs, evaluation, kind, mask, reweighting=False)
            assert (result.remaining_weights, result.total_weights) == (expected, total)
            kept = M.export_pruned(result.model, layer, kind, mask)
            own, above = kept.layers[layer - 1].weight, kept.layers[layer].weight
            counted = int((own != 0).sum()) + above.numel()
            assert counted == expected


# ---------------------------------------------------------------------------------------------
# The command line at other layers and depths
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deep_checkpoints(workdir: Path) -> Path:
    """deep_a.pt and deep_b.pt (784-12-6-10) and small_b.pt (784-12-10) beside the workdir's
    small.pt, untrained, of different seeds."""
    for name, sizes, seed in (
        ("deep_a", [12, 6], 1),
        ("deep_b", [12, 6], 2),
        ("small_b", [12], 3),
    ):
        torch.manual_seed(seed)
        model = M.MLP(sizes)
        with torch.no_grad():
            for linear in model.layers:
                linear.bias.normal_()
        M.save_checkpoint(workdir / f"{name}.pt", model)
    return workdir


def test_a_registered_method_prunes_layer_2(
    deep_checkpoints: Path, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(M, "METHODS", dict(M.METHODS))
    M.register_method("first_k_edges", "edge", first_k_edges, deterministic=True)
    out = deep_checkpoints / "deep_first_k.pt"
    args = ["--procedure", "test", "--trained_weights", "deep_a.pt", "--prune-layer", "2"]
    run = cli(*args, "--pruning_choice", "first_k_edges", "--k", "5", "--reweighting")
    assert run.code == 0, run.err
    assert f"{6 * 5 + 10 * 6}/{6 * (12 + 10)} weights remain" in run.out
    run = cli(*args, "--pruning_choice", "first_k_edges", "--k", "5", "--save-pruned", str(out))
    assert run.code == 0, run.err
    model, meta = M.load_checkpoint(out)
    assert meta["pruning"]["layer"] == 2 and meta["w2_mask"].shape == (6, 12)
    assert (model.w2.weight[:, 5:] == 0).all() and (model.w1.weight != 0).any()
    too_many = cli(*args, "--pruning_choice", "first_k_edges", "--k", "13")
    assert too_many.code == 2 and "12 incoming edges per node of hidden layer 2" in too_many.err


@pytest.mark.parametrize("choice", list(M.METHODS))
def test_every_method_runs_at_each_layer_of_a_deeper_network(
    choice: str, deep_checkpoints: Path, cli: Callable[..., Run]
) -> None:
    for layer in ("1", "2"):
        args = ["--procedure", "test", "--trained_weights", "deep_a.pt", "--prune-layer", layer]
        run = cli(*args, "--pruning_choice", choice, "--k", "4", "--reweighting")
        assert run.code == 0, run.err
        assert "After reweighting" in run.out


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_sweep_and_its_report_over_two_depths_keep_them_apart(
    deep_checkpoints: Path, cli: Callable[..., Run]
) -> None:
    """Two networks of each depth, both layers of the deeper ones: three parts, each tested
    over its own two networks, never one test over two parts."""
    networks = "small.pt,small_b.pt,deep_a.pt,deep_b.pt"
    common = ["--procedure", "sweep", "--no-progress", "--levels", "30,60", "--num-masks", "2"]
    methods = ["--methods", "dpp_edge,random_edge,random_node,importance_node"]
    run = cli(*common, *methods, "--trained_weights", networks, "--out-dir", "two_depths")
    assert run.code == 0, run.err
    deeper = cli(
        *common,
        *methods,
        "--trained_weights",
        "deep_a.pt,deep_b.pt",
        "--prune-layer",
        "2",
        "--out-dir",
        "layer_2",
    )
    assert deeper.code == 0, deeper.err
    out = deep_checkpoints / "two_depths_and_layers"
    assert (
        report.main(
            [
                str(deep_checkpoints / "two_depths"),
                str(deep_checkpoints / "layer_2"),
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    rows = read_rows(out / "sweep.csv")
    parts = {(r["architecture"], r["layer"]) for r in rows}
    assert parts == {("784-12-10", "1"), ("784-12-6-10", "1"), ("784-12-6-10", "2")}
    layer_2 = [r for r in rows if r["layer"] == "2" and r["method"] == "random_node"]
    assert {r["k"] for r in layer_2 if r["level"] == "30.0"} == {"2"}  # round(0.3 * 6)
    tests = read_rows(out / "statistics.csv")
    assert {(t["architecture"], t["layer"]) for t in tests} == parts
    assert {t["networks"] for t in tests} == {"2"}
    statistics = (out / "statistics.md").read_text()
    assert "never tested or averaged together" in statistics
    assert "## Claim C, secondary (784-12-6-10, hidden layer 2 pruned)" in statistics
    table = (out / "sweep.md").read_text()
    assert table.count("Test accuracy (%) of 2 networks") == 3
    for architecture, layer in parts:
        assert (out / f"claim_C_{architecture}_layer{layer}.png").stat().st_size > 10_000
