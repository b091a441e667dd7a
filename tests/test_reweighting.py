"""Least-squares reweighting against independent references (numpy lstsq, scikit-learn)."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression

import MNIST as M


def lstsq_edge_reference(X: np.ndarray, W1: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per node: w_S + d, d the minimum-norm lstsq solution of X_S d ~ X w - X_S w_S
    (N rows)."""
    out = np.zeros_like(W1)
    for h in range(len(W1)):
        S = np.flatnonzero(mask[h])
        residual = X @ W1[h] - X[:, S] @ W1[h, S]
        out[h, S] = W1[h, S] + np.linalg.lstsq(X[:, S], residual, rcond=None)[0]
    return out


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def reweight(X: np.ndarray, W1: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """M.reweight_edges on numpy arrays, G = X^T X."""
    systems = M.GramSystems.of(torch.from_numpy(X.T @ X))
    return M.reweight_edges(torch.from_numpy(W1), torch.from_numpy(mask), systems).numpy()


@pytest.mark.parametrize("k", [12, 21])
def test_edge_reweighting_matches_lstsq_on_the_rows(k: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 30))
    W1 = rng.normal(size=(6, 30))
    mask = np.zeros((6, 30), dtype=bool)
    for h in range(6):
        mask[h, rng.choice(30, k, replace=False)] = True
    got = reweight(X, W1, mask)
    assert relative_error(got, lstsq_edge_reference(X, W1, mask)) < 1e-6
    assert (got[~mask] == 0).all()


@pytest.mark.parametrize("last", [16, 22])
def test_edge_reweighting_with_singular_gram_block(last: int) -> None:
    """Constant border pixels make several columns identical, so G_SS is singular; keeping
    five of eight identical columns also leaves G a null direction that S holds only in part."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 25))
    X[:, :8] = -0.4242  # eight identical constant columns
    W1 = rng.normal(size=(4, 25))
    mask = np.zeros((4, 25), dtype=bool)
    mask[:, :5] = True  # five of the identical columns kept ...
    mask[:, 10:last] = True  # ... plus ordinary ones
    assert np.linalg.matrix_rank((X.T @ X)[np.ix_(mask[0], mask[0])]) < mask[0].sum()
    got = reweight(X, W1, mask)
    assert relative_error(got, lstsq_edge_reference(X, W1, mask)) < 1e-6


def test_edge_reweighting_folds_copies_and_keeps_other_dependencies() -> None:
    """Two groups of copies (folded: GramSystems.original), two columns that are combinations
    of others, one of them of a copied column, and a near-copy (left to the null space and
    the solve), against lstsq. Where a null direction runs through a column kept g times, the
    minimum-norm solution weights it by 1/g: node 1 keeps column 4 three times."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(120, 30))
    X[:, :4] = X[:, [4]]  # columns 0-4: five copies of one column
    X[:, 20:23] = 0.5  # three constant columns
    X[:, 25] = X[:, 10] - 2.0 * X[:, 11]
    X[:, 26] = X[:, 12]
    X[0, 26] += 1e-3  # a near-copy, not a copy
    X[:, 27] = X[:, 4] + X[:, 13]  # a combination through the copied column
    systems = M.GramSystems.of(torch.from_numpy(X.T @ X))
    original = systems.original.tolist()
    assert original[:5] == [0] * 5 and original[20:23] == [20] * 3
    assert original[26] == 26 and systems.Z.shape[1] == 2  # the two combinations
    W1 = rng.normal(size=(8, 30))
    mask = np.zeros((8, 30), dtype=bool)
    for h in range(8):
        mask[h, rng.choice(30, 18, replace=False)] = True
    mask[0, [0, 2, 4, 10, 11, 25]] = True  # copies and the whole dependency kept
    mask[1, [1, 3, 4, 13, 27]] = True  # three copies in the other dependency
    mask[1, [0, 2]] = False
    got = reweight(X, W1, mask)
    assert relative_error(got, lstsq_edge_reference(X, W1, mask)) < 1e-6


def fail_first_factorisation(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """torch.linalg.cholesky_ex reports failure, and leaves NaN, for the first matrix of its
    first call; returns the batch sizes of its calls."""
    factorise = torch.linalg.cholesky_ex
    calls: list[int] = []

    def failing(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        factor, info = factorise(A)
        if not calls:
            factor[0], info[0] = math.nan, 1
        calls.append(len(A))
        return factor, info

    monkeypatch.setattr(torch.linalg, "cholesky_ex", failing)
    return calls


def test_edge_reweighting_falls_back_to_the_pseudo_inverse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the Cholesky factorisation of G_SS + c QQ^T reports failure (numerically
    indefinite), the eigendecomposition's pseudo-inverse gives the same minimum-norm
    solution."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(150, 25))
    X[:, :6] = 0.37  # identical columns: G_SS singular, as with MNIST's blank pixels
    W1 = rng.normal(size=(4, 25))
    mask = np.zeros((4, 25), dtype=bool)
    mask[:, :3] = mask[:, 8:18] = True
    calls = fail_first_factorisation(monkeypatch)
    got = reweight(X, W1, mask)
    assert calls == [4]  # one batch of four nodes, the first one solved by the fallback
    assert relative_error(got, lstsq_edge_reference(X, W1, mask)) < 1e-6


def test_edge_reweighting_is_exact_when_nothing_is_pruned() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 20))
    W1 = rng.normal(size=(3, 20))
    got = reweight(X, W1, np.ones((3, 20), dtype=bool))
    np.testing.assert_array_equal(got, W1)


def test_edge_reweighting_reproduces_the_layer_when_pruned_inputs_are_redundant() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(120, 10))
    X = np.hstack([base, base @ rng.normal(size=(10, 5))])  # last 5: combinations
    W1 = rng.normal(size=(2, 15))
    mask = np.zeros((2, 15), dtype=bool)
    mask[:, :10] = True
    got = reweight(X, W1, mask)
    np.testing.assert_allclose(X @ got.T, X @ W1.T, rtol=1e-8, atol=1e-8)


def node_setup(
    seed: int, H: int = 12, N: int = 300
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = 1 / (1 + np.exp(-rng.normal(size=(N, H))))
    return A, rng.normal(size=(10, H)), rng.normal(size=10), rng.permutation(H) < H // 2


def reweight_nodes(
    A: np.ndarray, keep: np.ndarray, W2: np.ndarray, b2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """M.reweight_nodes from the Gram matrix of [1, A], as the pipeline calls it."""
    design = np.hstack([np.ones((len(A), 1)), A])
    systems = M.GramSystems.of(torch.from_numpy(design.T @ design))
    new_W2, new_b2 = M.reweight_nodes(systems, *map(torch.from_numpy, (keep, W2, b2)))
    return new_W2.numpy(), new_b2.numpy()


def lstsq_node_reference(
    A: np.ndarray, keep: np.ndarray, W2: np.ndarray, b2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The minimum-norm least squares on the N rows of [1, A_kept], all pruned nodes at once."""
    design = np.hstack([np.ones((len(A), 1)), A[:, keep]])
    coef = np.linalg.lstsq(design, A[:, ~keep], rcond=None)[0]  # (1 + k, H - k)
    ref_W2, ref_b2 = np.zeros_like(W2), b2 + W2[:, ~keep] @ coef[0]
    ref_W2[:, keep] = W2[:, keep] + W2[:, ~keep] @ coef[1:].T
    return ref_W2, ref_b2


def test_node_reweighting_matches_one_regression_per_pruned_node() -> None:
    A, W2, b2, keep = node_setup(4)
    new_W2, new_b2 = reweight_nodes(A, keep, W2, b2)
    ref_W2, ref_b2 = W2.copy(), b2.copy()
    ref_W2[:, ~keep] = 0.0
    # the original's approach: scikit-learn, one pruned node at a time
    for p in np.flatnonzero(~keep):
        fit = LinearRegression().fit(A[:, keep], A[:, p])
        ref_W2[:, keep] += np.outer(W2[:, p], fit.coef_)
        ref_b2 += W2[:, p] * fit.intercept_
    np.testing.assert_allclose(new_W2, ref_W2, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(new_b2, ref_b2, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dependency", ["none", "identical units", "constant unit"])
def test_node_reweighting_is_the_minimum_norm_lstsq_on_the_rows(
    dependency: str,
) -> None:
    """Full rank, and rank deficient: two identical kept units (the regression may split their
    weight any way; the minimum-norm solution splits it evenly), or a kept unit that is
    constant, hence collinear with the intercept."""
    A, W2, b2, keep = node_setup(7)
    kept = np.flatnonzero(keep)
    if dependency == "identical units":
        A[:, kept[1]] = A[:, kept[0]]
    if dependency == "constant unit":
        A[:, kept[2]] = 0.73
    design = np.hstack([np.ones((len(A), 1)), A[:, keep]])
    assert (np.linalg.matrix_rank(design) < design.shape[1]) == (dependency != "none")
    new_W2, new_b2 = reweight_nodes(A, keep, W2, b2)
    ref_W2, ref_b2 = lstsq_node_reference(A, keep, W2, b2)
    np.testing.assert_allclose(new_W2, ref_W2, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(new_b2, ref_b2, rtol=1e-7, atol=1e-9)


def test_node_reweighting_keeps_logits_when_nothing_is_pruned() -> None:
    A, W2, b2, _ = node_setup(5)
    new_W2, new_b2 = reweight_nodes(A, np.ones(A.shape[1], dtype=bool), W2, b2)
    np.testing.assert_allclose(new_W2, W2, rtol=1e-12)
    np.testing.assert_allclose(new_b2, b2, rtol=1e-12)


def test_node_reweighting_is_exact_for_linearly_dependent_nodes() -> None:
    A, W2, b2, keep = node_setup(6)
    kept = np.flatnonzero(keep)
    A[:, ~keep] = 0.2 + A[:, kept[: (~keep).sum()]] * 0.5  # pruned = affine maps of kept
    new_W2, new_b2 = reweight_nodes(A, keep, W2, b2)
    np.testing.assert_allclose(A @ new_W2.T + new_b2, A @ W2.T + b2, rtol=1e-8, atol=1e-8)


def test_hidden_gram_is_that_of_the_activations_with_an_intercept() -> None:
    torch.manual_seed(3)
    model = M.MLP([7])
    X = torch.randn(50, 784)
    design = np.hstack([np.ones((50, 1)), model.hidden(X, 1).detach().double().numpy()])
    got = M.gram_matrix(X, lambda x: model.hidden(x, 1), intercept=True, chunk_rows=16).numpy()
    np.testing.assert_allclose(got, design.T @ design, rtol=1e-6)  # float32 activations


@pytest.fixture(scope="module")
def real_layer(
    real_mnist_dir: Path,
) -> tuple[torch.Tensor, torch.Tensor, M.GramSystems]:
    """Full MNIST (67 constant pixels: G singular) and a layer trained for one epoch."""
    data = M.load_data(real_mnist_dir)
    X, y = data.train_images, data.train_labels
    torch.manual_seed(0)
    model = M.MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.07, momentum=0.9)
    with contextlib.redirect_stdout(io.StringIO()):
        M.train_epoch(model, optimizer, X, y, 1000, 1, log_interval=10**9)
    return X, model.w1.weight.detach().double(), M.GramSystems.of(M.gram_matrix(X))


def test_edge_reweighting_matches_lstsq_on_real_mnist(
    real_layer: tuple[torch.Tensor, torch.Tensor, M.GramSystems],
) -> None:
    """DPP masks of four nodes, k = 387, against least squares on the 60,000 rows."""
    X, W1, systems = real_layer
    mask = M.dpp_edge_masks(W1[:4], systems.G, [(387, 0)], beta=0.3)[0]
    got = M.reweight_edges(W1[:4], mask, systems).numpy()
    expected = lstsq_edge_reference(X.double().numpy(), W1[:4].numpy(), mask.numpy())
    assert relative_error(got, expected) < 1e-6
