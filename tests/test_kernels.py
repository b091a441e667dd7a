"""MNIST.py's DPP kernels against direct float64 references, the kernels its DPP methods
actually sample, and masks drawn together equal to masks drawn alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import direct_rbf, kernels_sampled_by, small_inputs
from scipy.spatial.distance import cdist

import dpp_sample
import MNIST as M


def test_edge_kernels_match_direct_pairwise_distances() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6))  # N = 40 images, 6 "pixels"
    W1 = rng.normal(scale=0.3, size=(3, 6))
    G = torch.from_numpy(X.T @ X)
    got, beta = M.edge_kernels(torch.from_numpy(W1), G, beta=0.3)
    assert beta.tolist() == [0.3] * 3
    for h in range(3):
        weighted_columns = (X * W1[h]).T  # row i is w_hi * x_i, an N-long vector
        np.testing.assert_allclose(
            got[h].numpy(),
            direct_rbf(weighted_columns, 0.3, 0.01),
            rtol=1e-10,
            atol=1e-12,
        )


def test_node_kernel_matches_direct_pairwise_distances() -> None:
    rng = np.random.default_rng(1)
    Z = rng.normal(scale=0.5, size=(30, 5))  # N = 30 images, H = 5 nodes
    got, beta = M.node_kernel(torch.from_numpy(Z.T @ Z), beta=0.7)
    assert got.shape == (1, 5, 5) and beta.tolist() == [0.7]
    np.testing.assert_allclose(
        got[0].numpy(), direct_rbf(Z.T, 0.7, 0.01), rtol=1e-10, atol=1e-12
    )


def test_beta_auto_is_the_median_heuristic_per_kernel() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 6))
    W1 = rng.normal(size=(2, 6))
    got, _ = M.edge_kernels(torch.from_numpy(W1), torch.from_numpy(X.T @ X), beta="auto")
    for h in range(2):
        columns = (X * W1[h]).T
        distances = ((columns[:, None, :] - columns[None, :, :]) ** 2).sum(-1)
        upper = distances[np.triu_indices(6, k=1)]
        beta = 1.0 / np.sort(upper)[(len(upper) - 1) // 2]  # torch's median is the lower one
        np.testing.assert_allclose(
            got[h].numpy(), direct_rbf(columns, beta, 0.01), rtol=1e-10, atol=1e-12
        )


def test_kernel_stats_of_a_diagonal_and_a_coupled_kernel() -> None:
    far = torch.from_numpy(np.random.default_rng(4).normal(scale=100.0, size=(50, 8)))
    for beta, diagonal in ((0.3, True), ("auto", False)):
        stats = dpp_sample.KernelStats()
        L, beta_used = M.node_kernel(far.T @ far, beta)
        stats.update(L, beta_used)
        eigvals = torch.linalg.eigvalsh(L[0])
        participation = float(eigvals.sum() ** 2 / eigvals.square().sum())
        assert abs(stats.effective_rank - participation) < 1e-9
        assert stats.practically_uniform(4) == diagonal
        if diagonal:
            assert stats.offdiag_max == 0.0 and stats.coupling == 0.0
            assert abs(stats.effective_rank - 8) < 1e-9 and stats.uniformity(4) == 0.0
        assert "effective rank" in stats.line("node", 4)


def test_dpp_edge_samples_the_edge_kernels_of_its_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What runs is what is checked: the kernels dpp_edge samples, against exp(-0.3 d) + 0.01 I
    with d the squared distances between the weighted columns w_hi x_i, computed directly."""
    inputs = small_inputs(hidden=2, images=40, seed=2, scale=0.02)
    got = kernels_sampled_by("dpp_edge", inputs, monkeypatch)
    X, W = inputs.train_x.double().numpy(), inputs.W.double().numpy()
    assert got.shape == (2, 784, 784)
    for h in range(2):
        distances = cdist((X * W[h]).T, (X * W[h]).T, "sqeuclidean")
        expected = np.exp(-0.3 * distances) + 0.01 * np.eye(784)
        np.testing.assert_allclose(got[h].numpy(), expected, rtol=1e-10, atol=1e-12)


def test_dpp_node_samples_the_kernel_of_the_preactivations_without_bias(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inputs = small_inputs(hidden=8, images=30, seed=3, scale=0.005)
    got = kernels_sampled_by("dpp_node", inputs, monkeypatch)
    Z = inputs.train_x.double().numpy() @ inputs.W.double().numpy().T  # no bias
    assert got.shape == (1, 8, 8)
    off_diagonal = got[0].numpy()[~np.eye(8, dtype=bool)]
    assert 0.01 < off_diagonal.min() and off_diagonal.max() < 0.99  # a kernel worth testing
    np.testing.assert_allclose(
        got[0].numpy(), direct_rbf(Z.T, 0.3, 0.01), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("chunk_size, draws_at_once", [(2, 1), (5, 3)])
def test_edge_masks_drawn_together_are_those_drawn_alone(
    chunk_size: int, draws_at_once: int
) -> None:
    """One kernel build for many (k, seed) gives, bit for bit, the mask each draw gives alone
    (in chunks of 3 nodes, not 2 or 5, one draw at a time, not 1 or 3 together); k = 700
    takes the projection sampler's complement path."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(50, 784))
    G = torch.from_numpy(X.T @ X)
    W1 = torch.from_numpy(rng.normal(scale=0.02, size=(5, 784)))
    draws = [(10, 1), (10, 2), (300, 1), (600, 1)] + [(700, s) for s in range(3, 7)]
    together = M.dpp_edge_masks(
        W1, G, draws, beta=0.3, chunk_size=chunk_size, draws_at_once=draws_at_once
    )
    for (k, seed), mask in zip(draws, together):
        assert (mask.sum(1) == k).all()
        alone = M.dpp_edge_masks(W1, G, [(k, seed)], beta=0.3, chunk_size=3)[0]
        assert torch.equal(mask, alone)
    assert not torch.equal(together[0], together[1])


def test_node_masks_drawn_together_are_those_drawn_alone() -> None:
    inputs = small_inputs(hidden=20, images=30, seed=4, scale=0.005)
    draws = [(5, 1), (5, 2), (12, 1), (19, 7)]
    together = M.dpp_node(inputs, draws, M.Setting("auto")).masks
    for (k, seed), keep in zip(draws, together):
        assert int(keep.sum()) == k
        assert torch.equal(keep, M.dpp_node(inputs, [(k, seed)], M.Setting("auto")).masks[0])
