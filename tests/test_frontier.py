"""The frontier methods and the quality-diversity DPP against references computed here, in
float64, from their published rules: Wanda's and the node quality's scores, exact greedy OBS
with its sub-Hessian inverted afresh at every step (and least squares when undamped),
ThiNet's greedy step by enumeration, and the exact k-DPP law of diag(q) K diag(q)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import (
    chi_square_p_value,
    direct_rbf,
    draw_one,
    exact_k_dpp_law,
    kernels_sampled_by,
    layered_mlp,
    numpy_layer_inputs,
)

import MNIST as M


@pytest.fixture(scope="module")
def layered() -> tuple[M.MLP, torch.Tensor]:
    return layered_mlp(11, 3)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The k largest of each row (ties: the lower index), as a bool mask."""
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    mask = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask


@pytest.mark.parametrize("layer", [1, 2])
def test_wanda_and_the_node_quality_are_their_definitions(
    layered: tuple[M.MLP, torch.Tensor], layer: int
) -> None:
    model, X = layered
    inputs = M.PruningInputs(model, X, layer=layer)
    A = numpy_layer_inputs(model, X, layer)
    W = model.layers[layer - 1].weight.detach().double().numpy()
    W_next = model.layers[layer].weight.detach().double().numpy()
    wanda = np.abs(W) * np.sqrt((A**2).sum(0))  # |w_hi| ||a_i||
    Y = 1.0 / (
        1.0 + np.exp(-(A @ W.T + model.layers[layer - 1].bias.detach().double().numpy()))
    )
    quality = np.sqrt((W_next**2).sum(0)) * np.sqrt((Y**2).sum(0))  # ||W_next[:, h]|| ||y_h||
    for k in (1, 3, 5):
        got = draw_one(M.METHODS["wanda_edge"], inputs, k, 0.3, seed=0)
        assert np.array_equal(got.numpy(), top_k(wanda, k))
        got = draw_one(M.METHODS["quality_node"], inputs, k, 0.3, seed=0)
        assert np.array_equal(got.numpy(), top_k(quality, k))
    np.testing.assert_allclose(M.edge_quality(inputs).numpy(), wanda, rtol=1e-5)
    np.testing.assert_allclose(M.node_quality(inputs).numpy(), quality, rtol=1e-5)


def fresh_obs(
    A: np.ndarray, w: np.ndarray, removals: int, damping: float
) -> tuple[list[int], np.ndarray]:
    """Greedy OBS on one row, every step from scratch: H = A^T A + lambda I; with R removed,
    the kept weights are the constrained minimiser of (v - w)^T H (v - w), v_R = 0, i.e.
    v_S = w_S + H_SS^-1 H_SR w_R; the next removal is argmin over S of v_q^2 / [H_SS^-1]_qq."""
    G = A.T @ A
    H = G + damping * np.mean(np.diag(G)) * np.eye(len(w))
    removed: list[int] = []
    v = w.copy()
    for _ in range(removals):
        S = [i for i in range(len(w)) if i not in removed]
        inverse = np.linalg.inv(H[np.ix_(S, S)])
        costs = v[S] ** 2 / np.diag(inverse)
        removed.append(S[int(np.argmin(costs))])
        S = [i for i in range(len(w)) if i not in removed]
        v = np.zeros_like(w)
        v[S] = w[S] + np.linalg.solve(H[np.ix_(S, S)], H[np.ix_(S, removed)] @ w[removed])
    return removed, v


@pytest.mark.parametrize("damping", [0.01, 0.0])
def test_obs_removes_what_a_fresh_inverse_of_the_kept_hessian_removes(damping: float) -> None:
    """12 inputs, 7 nodes (two chunks), 9 removals: past the shrinking of the matrices."""
    rng = np.random.default_rng(5)
    A = rng.normal(size=(60, 12)) @ rng.normal(size=(12, 12))  # correlated inputs
    W = rng.normal(size=(7, 12))
    order, weights = M.obs_removal_order(
        torch.from_numpy(W), torch.from_numpy(A.T @ A), 9, damping=damping, chunk_size=4
    )
    for h in range(7):
        removed, v = fresh_obs(A, W[h], 9, damping)
        assert order[h].tolist() == removed
        np.testing.assert_allclose(weights[h].numpy(), v, rtol=1e-8, atol=1e-10)


def test_undamped_obs_leaves_the_least_squares_weights_of_the_kept_columns() -> None:
    rng = np.random.default_rng(6)
    A = rng.normal(size=(80, 12))
    W = rng.normal(size=(3, 12))
    order, weights = M.obs_removal_order(
        torch.from_numpy(W), torch.from_numpy(A.T @ A), 8, damping=0.0
    )
    for h in range(3):
        kept = np.setdiff1d(np.arange(12), order[h].numpy())
        expected = np.zeros(12)
        expected[kept] = np.linalg.lstsq(A[:, kept], A @ W[h], rcond=None)[0]
        np.testing.assert_allclose(weights[h].numpy(), expected, rtol=1e-9, atol=1e-12)


def test_obs_edge_keeps_what_survives_its_removals(layered: tuple[M.MLP, torch.Tensor]) -> None:
    """One pass serves every k: the mask at k keeps all but the first d - k removed."""
    model, X = layered
    inputs = M.PruningInputs(model, X, layer=2)
    draws = [(9, 0), (4, 0), (2, 0)]
    masks = M.draw_masks(M.METHODS["obs_edge"], inputs, draws, M.Setting()).masks
    order, _ = M.obs_removal_order(inputs.W, inputs.gram(), 10)
    for k, mask in zip((9, 4, 2), masks):
        expected = torch.ones(6, 12, dtype=torch.bool)
        expected.scatter_(1, order[:, : 12 - k], False)
        assert torch.equal(mask, expected)
    assert (masks[1] <= masks[0]).all() and (masks[2] <= masks[1]).all()


def test_thinet_is_its_greedy_step_enumerated(layered: tuple[M.MLP, torch.Tensor]) -> None:
    """At every step, the node whose removal (with those removed before) leaves the least
    squared error of the layer above's pre-activations, sum_x ||sum_c W_next[:, c] y_c(x)||^2,
    summed explicitly over the training images."""
    model, X = layered
    for layer in (1, 2):
        inputs = M.PruningInputs(model, X, layer=layer)
        Y = numpy_layer_inputs(model, X, layer + 1)  # the layer's activations, (N, H)
        W_next = model.layers[layer].weight.detach().double().numpy()
        H = Y.shape[1]
        removed: list[int] = []
        for _ in range(H - 1):
            errors = {
                c: float(((Y[:, removed + [c]] @ W_next[:, removed + [c]].T) ** 2).sum())
                for c in range(H)
                if c not in removed
            }
            removed.append(min(errors, key=errors.get))
        got = M.thinet_removal_order(inputs.W_next, inputs.activation_gram()[1:, 1:], H - 1)
        assert got.tolist() == removed
        keep = draw_one(M.METHODS["thinet_node"], inputs, 2, 0.3, seed=0)
        assert sorted(torch.nonzero(~keep).squeeze(-1).tolist()) == sorted(removed[: H - 2])


def quality_kernel_reference(K: np.ndarray, q: np.ndarray) -> np.ndarray:
    return q[:, None] * K * q[None, :]


def test_qdpp_samples_the_exact_k_dpp_law_of_its_quality_diversity_kernels(
    layered: tuple[M.MLP, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Layer 2 (12 inputs, 6 nodes): the kernels qdpp_edge and qdpp_node hand the sampler are
    diag(q) K diag(q), K the RBF kernel of the DPP method and q the quality, all recomputed
    here; and 3,000 node draws of k = 3 follow that kernel's k-DPP law (chi-square over all
    20 subsets)."""
    model, X = layered
    inputs = M.PruningInputs(model, X, layer=2)
    A = numpy_layer_inputs(model, X, 2)
    Y = numpy_layer_inputs(model, X, 3)
    W = inputs.W.double().numpy()
    W_next = inputs.W_next.double().numpy()
    beta = 0.3 / len(X)  # couples the nodes: a law worth testing
    got = kernels_sampled_by("qdpp_edge", inputs, monkeypatch, node_features="activation")
    for h in range(6):
        weighted = (A * W[h]).T
        q = np.abs(W[h]) * np.sqrt((A**2).sum(0))
        expected = quality_kernel_reference(direct_rbf(weighted, 0.3, 0.01), q / q.max())
        np.testing.assert_allclose(got[h].numpy(), expected, rtol=1e-5, atol=1e-7)
    q = np.sqrt((W_next**2).sum(0)) * np.sqrt((Y**2).sum(0))
    L = quality_kernel_reference(direct_rbf(Y.T, beta, 0.01), q / q.max())
    draws = [(3, seed) for seed in range(3000)]
    setting = M.Setting(f"{beta * len(X):g}/N", "activation")
    masks = M.dpp_node(inputs, draws, setting, quality=M.node_quality).masks
    samples = np.array([torch.nonzero(mask).squeeze(-1).numpy() for mask in masks])
    assert chi_square_p_value(samples, exact_k_dpp_law(L, 3)) > 1e-3
    # and the test can tell: neither the diversity nor the quality alone is this law
    diversity_only = direct_rbf(Y.T, beta, 0.01)
    assert chi_square_p_value(samples, exact_k_dpp_law(diversity_only, 3)) < 1e-6
    assert chi_square_p_value(samples, exact_k_dpp_law(np.diag(np.diag(L)), 3)) < 1e-6


def test_items_of_quality_zero_are_kept_only_when_k_needs_them() -> None:
    """An edge kernel with two dead inputs (weight 0, quality 0) among eight: at k = 6 every
    draw keeps all six live ones; at k = 7 exactly one dead one too."""
    rng = np.random.default_rng(8)
    X = torch.from_numpy(rng.normal(size=(40, 8)))
    W = torch.from_numpy(rng.normal(size=(1, 8)))
    W[0, [2, 5]] = 0.0
    G = X.T @ X
    quality = W.abs() * G.diagonal().sqrt()
    draws = [(6, seed) for seed in range(20)] + [(7, seed) for seed in range(20)]
    masks = M.dpp_edge_masks(W, G, draws, beta="auto", quality=quality)
    for (k, _), mask in zip(draws, masks):
        dead = int(mask[0, [2, 5]].sum())
        assert int(mask.sum()) == k and dead == k - 6
