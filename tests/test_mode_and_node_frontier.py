"""The DPP's mode (greedy MAP) and the node frontier (interpolative decomposition, structured
OBS, FLAP) against references computed here in float64 from their published rules: greedy MAP
by log det recomputed afresh for every candidate, and brute force on small kernels; scipy's
column-pivoted QR and the ID's interpolation matrix; structured OBS with the kept
sub-Hessian inverted afresh at every step; FLAP's score and compensated bias by hand; the link
between greedy DPP MAP on a linear kernel and pivoted QR; every method at any layer, with and
without reweighting, and claims E and F in a sweep's report."""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import (
    Run,
    direct_rbf,
    draw_one,
    layered_mlp,
    numpy_layer_inputs,
    random_kernel,
    synthetic_digits,
    tiny_evaluation,
)

import MNIST as M

NEW_METHODS = ("dpp_map_edge", "dpp_map_node", "id_node", "obs_node", "flap_node")


@pytest.fixture(scope="module")
def layered() -> tuple[M.MLP, torch.Tensor]:
    return layered_mlp(12, 4)


def naive_greedy_map(
    L: np.ndarray, steps: int, preference: np.ndarray | None = None
) -> list[int]:
    """Greedy MAP with every candidate's gain det(L_{S+i}) / det(L_S) recomputed from
    scratch; gains equal to rounding (1e-13 of the largest diagonal) go to the largest
    preference (else the lower index)."""
    chosen: list[int] = []
    preference = np.zeros(len(L)) if preference is None else preference
    scale = L.diagonal().max()
    for _ in range(steps):
        before = np.linalg.det(L[np.ix_(chosen, chosen)]) if chosen else 1.0
        gains = {
            i: np.linalg.det(L[np.ix_(chosen + [i], chosen + [i])]) / before
            for i in range(len(L))
            if i not in chosen
        }
        best = max(gains.values())
        tied = [i for i, gain in gains.items() if gain >= best - 1e-13 * scale]
        chosen.append(max(tied, key=lambda i: (preference[i], -i)))
    return chosen


def mask_of(items: list[int] | np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[list(items)] = True
    return mask


# The DPP's mode ------------------------------------------------------------------------------
def test_greedy_map_is_greedy_log_det_and_within_its_bound_of_the_mode() -> None:
    """On random kernels the order is greedy by log det recomputed afresh. Against brute force
    over all k-subsets: exact at k = 1 and on a diagonal kernel, and never below the known
    bound det(L_opt) / (k!)^2 (greedy volume is within k! of the largest: Civril &
    Magdon-Ismail 2009). Ties go to the largest preference, then the lower index."""
    for seed, n in ((1, 8), (2, 9), (3, 12)):
        L = random_kernel(n, seed)
        order = M.greedy_map_order(torch.from_numpy(L)[None])[0].tolist()
        assert order[: n - 1] == naive_greedy_map(L, n - 1)
        for k in range(1, 5):
            best = max(
                np.linalg.det(L[np.ix_(s, s)]) for s in itertools.combinations(range(n), k)
            )
            greedy = np.linalg.det(L[np.ix_(order[:k], order[:k])])
            assert greedy >= best / math.factorial(k) ** 2 - 1e-12
            if k == 1:
                assert greedy == pytest.approx(best)
    diagonal = np.diag([0.5, 3.0, 1.0, 2.0, 0.1])
    assert M.greedy_map_order(torch.from_numpy(diagonal)[None])[0].tolist()[:3] == [1, 3, 2]
    ties = torch.eye(4, dtype=torch.float64)[None]
    assert M.greedy_map_order(ties)[0].tolist() == [0, 1, 2, 3]
    preference = torch.tensor([[0.1, 0.7, 0.3, 0.7]])
    assert M.greedy_map_order(ties, preference)[0].tolist() == [1, 3, 2, 0]


@pytest.mark.parametrize("beta", [0.03, "auto", "linear"])
def test_dpp_map_edge_is_the_greedy_map_of_each_node_s_dpp_edge_kernel(
    layered: tuple[M.MLP, torch.Tensor], beta: object
) -> None:
    """Layer 2 (12 inputs, 6 nodes): each node's kernel recomputed from explicit differences
    (or inner products, linear), then naive greedy MAP."""
    model, X = layered
    inputs = M.PruningInputs(model, X, layer=2)
    A = numpy_layer_inputs(model, X, 2)
    W = inputs.W.double().numpy()
    for h in range(6):
        weighted = (A * W[h]).T  # (12, N): edge i's contribution w_hi a_i over the images
        if beta == "linear":
            L = weighted @ weighted.T / len(X)
        else:
            distances = ((weighted[:, None] - weighted[None]) ** 2).sum(-1)
            upper = distances[np.triu_indices(12, 1)]
            value = 1.0 / np.sort(upper)[(len(upper) - 1) // 2] if beta == "auto" else beta
            L = direct_rbf(weighted, value, 0.01)
        length = np.abs(W[h]) * np.sqrt((A**2).sum(0))  # ties: the longest w_hi a_i first
        expected = naive_greedy_map(L, 9, length)
        for k in (1, 4, 9):
            mask = draw_one(M.METHODS["dpp_map_edge"], inputs, k, beta, seed=0)[h]
            np.testing.assert_array_equal(mask.numpy(), mask_of(expected[:k], 12))


@pytest.mark.parametrize(
    "setting", [(0.003, "activation"), ("auto", "preactivation"), ("linear", "preactivation")]
)
def test_dpp_map_node_is_the_greedy_map_of_dpp_node_s_kernel(
    layered: tuple[M.MLP, torch.Tensor], setting: tuple[object, str]
) -> None:
    """Layer 1 (12 nodes): the node kernel from explicit differences of the nodes' vectors
    (the linear one their covariance: the layer above has a bias), then naive greedy MAP."""
    model, X = layered
    beta, features = setting
    inputs = M.PruningInputs(model, X, layer=1)
    A = numpy_layer_inputs(model, X, 1)
    W = inputs.W.double().numpy()
    b = model.w1.bias.detach().double().numpy()
    Z = A @ W.T if features == "preactivation" else 1.0 / (1.0 + np.exp(-(A @ W.T + b)))
    if beta == "linear":
        centred = Z - Z.mean(0)
        L = centred.T @ centred / len(X)
    else:
        distances = ((Z.T[:, None] - Z.T[None]) ** 2).sum(-1)
        upper = distances[np.triu_indices(12, 1)]
        value = 1.0 / np.sort(upper)[(len(upper) - 1) // 2] if beta == "auto" else beta
        L = direct_rbf(Z.T, value, 0.01)
    centred = Z - Z.mean(0) if beta == "linear" else Z
    expected = naive_greedy_map(L, 10, (centred**2).sum(0))  # ties: the longest vector first
    for k in (1, 5, 10):
        mask = draw_one(M.METHODS["dpp_map_node"], inputs, k, beta, 0, node_features=features)
        np.testing.assert_array_equal(mask.numpy(), mask_of(expected[:k], 12))


# The node frontier ---------------------------------------------------------------------------
def test_id_node_keeps_the_pivots_of_a_column_pivoted_qr(
    layered: tuple[M.MLP, torch.Tensor],
) -> None:
    """scipy's column-pivoted QR of the activations with a column of ones kept first (the
    layer above has a bias): the pivots of the centred activations."""
    model, X = layered
    for layer, H in ((1, 12), (2, 6)):
        inputs = M.PruningInputs(model, X, layer=layer)
        Y = numpy_layer_inputs(model, X, layer + 1)
        _, _, pivots = scipy.linalg.qr(Y - Y.mean(0), pivoting=True, mode="economic")
        for k in range(1, H):
            mask = draw_one(M.METHODS["id_node"], inputs, k, 0.3, seed=0)
            np.testing.assert_array_equal(mask.numpy(), mask_of(pivots[:k], H))


def test_id_node_reweighted_is_the_id_s_interpolation(
    layered: tuple[M.MLP, torch.Tensor],
) -> None:
    """With --reweighting the layer above becomes W_S + W_P T^T, bias b + W_P (mean_P -
    T^T mean_S), T = R11^-1 R12 the interpolation matrix of the pivoted QR: within 1e-6."""
    model, X = layered
    inputs = M.PruningInputs(model, X, layer=1)
    Y = numpy_layer_inputs(model, X, 2)
    centred = Y - Y.mean(0)
    _, R, pivots = scipy.linalg.qr(centred, pivoting=True, mode="economic")
    W_next = model.w2.weight.detach().double().numpy()
    b_next = model.w2.bias.detach().double().numpy()
    for k in (3, 7):
        S, P = pivots[:k], pivots[k:]
        T = scipy.linalg.solve_triangular(R[:k, :k], R[:k, k:])  # centred Y_P = Y_S T
        expected_W = np.zeros_like(W_next)
        expected_W[:, S] = W_next[:, S] + W_next[:, P] @ T.T
        expected_b = b_next + W_next[:, P] @ (Y.mean(0)[P] - T.T @ Y.mean(0)[S])
        keep = draw_one(M.METHODS["id_node"], inputs, k, 0.3, seed=0)
        result = M.prune_with_mask(inputs, tiny_evaluation(), "node", keep, reweighting=True)
        above = result.model.w2
        np.testing.assert_allclose(above.weight.detach().double(), expected_W, atol=1e-6)
        np.testing.assert_allclose(above.bias.detach().double(), expected_b, atol=1e-6)


def test_obs_node_is_greedy_structured_obs_recomputed_naively(
    layered: tuple[M.MLP, torch.Tensor],
) -> None:
    """At every step, with the kept set K (the intercept always in it): H_K = H[K, K] of the
    damped Hessian of [1, Y] inverted afresh, the compensated weights W H[:, K] H_K^-1 of
    [b, W_next], and the node removed the one of least ||w_c||^2 / [H_K^-1]_cc."""
    model, X = layered
    for layer in (1, 2):
        inputs = M.PruningInputs(model, X, layer=layer)
        Y = numpy_layer_inputs(model, X, layer + 1)
        ones_Y = np.hstack([np.ones((len(Y), 1)), Y])
        gram = ones_Y.T @ ones_Y
        H = gram + M.OBS_DAMPING * np.diag(gram)[1:].mean() * np.eye(len(gram))
        above = model.layers[layer]
        W = np.hstack(
            [
                above.bias.detach().double().numpy()[:, None],
                above.weight.double().detach().numpy(),
            ]
        )
        kept, removed = list(range(len(gram))), []
        for _ in range(len(gram) - 2):
            H_K_inv = np.linalg.inv(H[np.ix_(kept, kept)])
            compensated = W @ H[:, kept] @ H_K_inv
            costs = {
                c: (compensated[:, i] ** 2).sum() / H_K_inv[i, i]
                for i, c in enumerate(kept)
                if c != 0
            }
            c = min(costs, key=costs.get)
            kept.remove(c)
            removed.append(c - 1)
        nodes = len(gram) - 1
        for k in (1, nodes // 2):
            keep = draw_one(M.METHODS["obs_node"], inputs, k, 0.3, seed=0)
            expected = ~mask_of(removed[: nodes - k], nodes)
            np.testing.assert_array_equal(keep.numpy(), expected)


def test_flap_node_keeps_the_largest_fluctuations_and_compensates_the_bias(
    layered: tuple[M.MLP, torch.Tensor],
) -> None:
    """Score: the activation's variance times the outgoing weights' squared norm (FLAP's
    sample variance up to N / (N - 1), the same for every node).
    Without reweighting the pruned network is the kept nodes plus, in the bias above, each
    pruned node's mean activation times its outgoing weights: the layer above's
    pre-activations by hand."""
    model, X = layered
    inputs = M.PruningInputs(model, X, layer=1)
    Y = numpy_layer_inputs(model, X, 2)
    W_next = model.w2.weight.detach().double().numpy()
    b_next = model.w2.bias.detach().double().numpy()
    scores = Y.var(0) * (W_next**2).sum(0)
    np.testing.assert_allclose(M.flap_scores(inputs).numpy(), scores, rtol=1e-6)
    for k in (2, 6, 11):
        keep = draw_one(M.METHODS["flap_node"], inputs, k, 0.3, seed=0).numpy()
        np.testing.assert_array_equal(keep, mask_of(np.argsort(-scores)[:k], 12))
        result = M.prune_with_mask(
            inputs,
            tiny_evaluation(),
            "node",
            torch.from_numpy(keep),
            reweighting=False,
            reconstruct=M.flap_compensation,
        )
        bias = b_next + W_next[:, ~keep] @ Y.mean(0)[~keep]
        expected = Y[:, keep] @ W_next[:, keep].T + bias
        with torch.no_grad():
            got = result.model.w2(result.model.hidden(X, 1)).double().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_greedy_dpp_map_on_the_linear_kernel_is_pivoted_qr(
    layered: tuple[M.MLP, torch.Tensor],
) -> None:
    """The link: on the linear kernel of the activations (their covariance, as the layer
    above has a bias), greedy DPP MAP by log det and scipy's pivoted QR of the centred
    activations pick the same nodes, and so do dpp_map_node and id_node, at every k."""
    model, X = layered
    for layer, H in ((1, 12), (2, 6)):
        inputs = M.PruningInputs(model, X, layer=layer)
        Y = numpy_layer_inputs(model, X, layer + 1)
        centred = Y - Y.mean(0)
        greedy = naive_greedy_map(centred.T @ centred / len(Y), H - 1)
        pivots = scipy.linalg.qr(centred, pivoting=True, mode="economic")[2]
        assert greedy == pivots[: H - 1].tolist()
        for k in range(1, H):
            mode = draw_one(M.METHODS["dpp_map_node"], inputs, k, "linear", 0, "activation")
            decomposition = draw_one(M.METHODS["id_node"], inputs, k, 0.3, seed=0)
            assert torch.equal(mode, decomposition)
            np.testing.assert_array_equal(mode.numpy(), mask_of(greedy[:k], H))


# Any layer, any flag, every report ------------------------------------------------------------
def test_the_new_methods_run_at_every_layer_with_and_without_reweighting() -> None:
    """784-32-16-8-10: every layer, both reweighting states, through the one pipeline."""
    images, _ = synthetic_digits(100, seed=13)
    torch.manual_seed(5)
    model = M.MLP([32, 16, 8])
    X = M.normalise(images)
    for layer, name in itertools.product((1, 2, 3), NEW_METHODS):
        method = M.METHODS[name]
        inputs = M.PruningInputs(model, X, layer=layer)
        shape = M.LayerShape.of(model.sizes, layer)
        k = max(1, (shape.inputs if method.kind == "edge" else shape.nodes) // 2)
        cell = M.Cell(method, k, 1, M.Setting(0.3, "preactivation"), layer)
        ((_, result, _),) = M.run_cells(inputs, tiny_evaluation(), [cell], reweighting=True)
        kept = result.mask.sum(-1) if method.kind == "edge" else result.mask.sum()
        assert (kept == k).all() and result.reweighted_accuracy is not None, (layer, name)


def test_a_sweep_with_them_tests_claims_e_and_f(cli: Callable[..., Run], workdir: Path) -> None:
    methods = (
        "dpp_edge,dpp_map_edge,wanda_edge,dpp_node,dpp_map_node,id_node,obs_node,flap_node"
    )
    run = cli(
        *("--procedure", "sweep", "--trained_weights", "small.pt", "--levels", "40,80"),
        *("--methods", methods, "--num-masks", "2", "--betas", "0.3,linear"),
        *("--node-features", "activation", "--no-progress", "--out-dir", "mode_sweep"),
    )
    assert run.code == 0, run.err
    with (workdir / "mode_sweep" / "statistics.csv").open(newline="") as f:
        tests = list(csv.DictReader(f))
    pairs = {(t["claim"], t["first"], t["second"]) for t in tests}
    for beta, setting in (("0.3", "0.3, activation"), ("linear", "linear, activation")):
        assert ("F", f"dpp_map_edge (beta {beta})", f"dpp_edge (beta {beta})") in pairs
        assert ("F", f"dpp_map_node (beta {setting})", f"dpp_node (beta {setting})") in pairs
        for frontier in ("id_node", "obs_node", "flap_node"):
            assert ("E", f"dpp_node (beta {setting})", frontier) in pairs
    assert not any(
        t["claim"] == "F" and "0.3" in t["first"] and "linear" in t["second"] for t in tests
    )
    assert (workdir / "mode_sweep" / "claim_F.png").read_bytes().startswith(b"\x89PNG")


def test_the_new_methods_run_on_the_deep_network_at_both_layers(
    cli: Callable[..., Run], real_mnist_dir: Path
) -> None:
    """784-500-500-10 of the second study (results/nets), layers 1 and 2, each method at 50%
    kept, with and without reweighting (--reweighting prints both)."""
    net = Path(__file__).resolve().parents[1] / "results" / "nets" / "mnist_deep_seed1.pt"
    for layer, name in itertools.product((1, 2), NEW_METHODS):
        kind = M.METHODS[name].kind
        k = M.level_to_k(kind, 50.0, M.LayerShape.of(M.mnist_sizes([500, 500]), layer))
        run = cli(
            *(
                "--procedure",
                "test",
                "--trained_weights",
                str(net),
                "--prune-layer",
                str(layer),
            ),
            *("--pruning_choice", name, "--k", str(k), "--reweighting", "--no-progress"),
            *("--data-dir", str(real_mnist_dir)),
        )
        assert run.code == 0, (layer, name, run.err)
        before = next(line for line in run.out.splitlines() if line.startswith("Before"))
        after = next(line for line in run.out.splitlines() if line.startswith("After"))
        accuracy = [float(line.rsplit("(", 1)[1].rstrip("%)")) for line in (before, after)]
        assert all(10.0 < a <= 100.0 for a in accuracy), (layer, name, accuracy)
