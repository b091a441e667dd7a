"""Least-squares reweighting against independent references (numpy lstsq, scikit-learn)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression

import MNIST as M


def lstsq_edge_reference(X: np.ndarray, W1: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per node: w_S + d, d the minimum-norm lstsq solution of X_S d ~ X w - X_S w_S (N rows)."""
    out = np.zeros_like(W1)
    for h in range(len(W1)):
        S = np.flatnonzero(mask[h])
        residual = X @ W1[h] - X[:, S] @ W1[h, S]
        out[h, S] = W1[h, S] + np.linalg.lstsq(X[:, S], residual, rcond=None)[0]
    return out


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_edge_reweighting_matches_lstsq_on_the_rows() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 30))
    W1 = rng.normal(size=(6, 30))
    mask = np.zeros((6, 30), dtype=bool)
    for h in range(6):
        mask[h, rng.choice(30, 12, replace=False)] = True
    got = M.reweight_edges(
        torch.from_numpy(W1), torch.from_numpy(mask), torch.from_numpy(X.T @ X)
    ).numpy()
    assert relative_error(got, lstsq_edge_reference(X, W1, mask)) < 1e-6
    assert (got[~mask] == 0).all()


def test_edge_reweighting_with_singular_gram_block() -> None:
    """Constant border pixels make several columns identical, so G_SS is singular."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 25))
    X[:, :8] = -0.4242  # eight identical constant columns
    W1 = rng.normal(size=(4, 25))
    mask = np.zeros((4, 25), dtype=bool)
    mask[:, :5] = True  # five of the identical columns kept ...
    mask[:, 10:16] = True  # ... plus six ordinary ones
    G = torch.from_numpy(X.T @ X)
    assert np.linalg.matrix_rank((X.T @ X)[np.ix_(mask[0], mask[0])]) < mask[0].sum()
    got = M.reweight_edges(torch.from_numpy(W1), torch.from_numpy(mask), G).numpy()
    assert relative_error(got, lstsq_edge_reference(X, W1, mask)) < 1e-6


def test_edge_reweighting_falls_back_to_the_pseudo_inverse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the Cholesky factorisation of G_SS + s QQ^T reports failure (numerically
    indefinite), the eigendecomposition's pseudo-inverse gives the same minimum-norm solution."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(150, 25))
    X[:, :6] = 0.37  # identical columns: G_SS singular, as with MNIST's blank pixels
    W1 = rng.normal(size=(4, 25))
    mask = np.zeros((4, 25), dtype=bool)
    mask[:, :3] = mask[:, 8:18] = True
    factorise = torch.linalg.cholesky_ex
    failures = []

    def failing_for_the_first_node(
        A: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        factor, info = factorise(A)
        info[0] = 1
        failures.append(len(A))
        return factor, info

    monkeypatch.setattr(torch.linalg, "cholesky_ex", failing_for_the_first_node)
    got = M.reweight_edges(
        torch.from_numpy(W1), torch.from_numpy(mask), torch.from_numpy(X.T @ X)
    )
    assert failures == [
        4
    ]  # one batch of four nodes, the first one solved by the fallback
    assert relative_error(got.numpy(), lstsq_edge_reference(X, W1, mask)) < 1e-6


def test_edge_reweighting_is_exact_when_nothing_is_pruned() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 20))
    W1 = torch.from_numpy(rng.normal(size=(3, 20)))
    full = torch.ones(3, 20, dtype=torch.bool)
    got = M.reweight_edges(W1, full, torch.from_numpy(X.T @ X))
    torch.testing.assert_close(got, W1, rtol=0, atol=0)


def test_edge_reweighting_reproduces_the_layer_when_pruned_inputs_are_redundant() -> (
    None
):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(120, 10))
    X = np.hstack(
        [base, base @ rng.normal(size=(10, 5))]
    )  # last 5 columns are combinations
    W1 = rng.normal(size=(2, 15))
    mask = np.zeros((2, 15), dtype=bool)
    mask[:, :10] = True
    got = M.reweight_edges(
        torch.from_numpy(W1), torch.from_numpy(mask), torch.from_numpy(X.T @ X)
    ).numpy()
    np.testing.assert_allclose(X @ got.T, X @ W1.T, rtol=1e-8, atol=1e-8)


def node_setup(
    seed: int, H: int = 12, N: int = 300
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = 1 / (1 + np.exp(-rng.normal(size=(N, H))))
    return A, rng.normal(size=(10, H)), rng.normal(size=10), rng.permutation(H) < H // 2


def test_node_reweighting_matches_one_regression_per_pruned_node() -> None:
    A, W2, b2, keep = node_setup(4)
    new_W2, new_b2 = M.reweight_nodes(*map(torch.from_numpy, (A, keep, W2, b2)))
    ref_W2, ref_b2 = W2.copy(), b2.copy()
    ref_W2[:, ~keep] = 0.0
    for p in np.flatnonzero(
        ~keep
    ):  # the original's approach: scikit-learn, one node at a time
        fit = LinearRegression().fit(A[:, keep], A[:, p])
        ref_W2[:, keep] += np.outer(W2[:, p], fit.coef_)
        ref_b2 += W2[:, p] * fit.intercept_
    np.testing.assert_allclose(new_W2.numpy(), ref_W2, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(new_b2.numpy(), ref_b2, rtol=1e-8, atol=1e-10)


def test_node_reweighting_keeps_logits_when_nothing_is_pruned() -> None:
    A, W2, b2, _ = node_setup(5)
    keep = np.ones(A.shape[1], dtype=bool)
    new_W2, new_b2 = M.reweight_nodes(*map(torch.from_numpy, (A, keep, W2, b2)))
    np.testing.assert_allclose(new_W2.numpy(), W2, rtol=1e-12)
    np.testing.assert_allclose(new_b2.numpy(), b2, rtol=1e-12)


def test_node_reweighting_is_exact_for_linearly_dependent_nodes() -> None:
    A, W2, b2, keep = node_setup(6)
    kept = np.flatnonzero(keep)
    A[:, ~keep] = (
        0.2 + A[:, kept[: (~keep).sum()]] * 0.5
    )  # pruned = affine maps of kept nodes
    new_W2, new_b2 = M.reweight_nodes(*map(torch.from_numpy, (A, keep, W2, b2)))
    np.testing.assert_allclose(
        A @ new_W2.numpy().T + new_b2.numpy(), A @ W2.T + b2, rtol=1e-8, atol=1e-8
    )


def test_edge_reweighting_matches_lstsq_on_real_mnist(real_mnist_dir: Path) -> None:
    """Full MNIST (67 constant pixels: G_SS singular) and DPP masks of a briefly trained layer."""
    data = M.load_data(real_mnist_dir)
    X, y = data.train_images, data.train_labels
    torch.manual_seed(0)
    model = M.TwoLayerMLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.07, momentum=0.9)
    with contextlib.redirect_stdout(io.StringIO()):
        M.train_epoch(model, optimizer, X, y, 1000, 1, log_interval=10**9)
    W1 = model.w1.weight.detach()[:4].double()
    G = M.gram_matrix(X)
    mask = M.dpp_edge_mask(W1, G, k=387, beta=0.3, seed=0)
    got = M.reweight_edges(W1, mask, G).numpy()
    expected = lstsq_edge_reference(X.double().numpy(), W1.numpy(), mask.numpy())
    assert relative_error(got, expected) < 1e-6
