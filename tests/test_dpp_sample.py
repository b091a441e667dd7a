"""dpp_sample.py: the exact k-DPP samplers against the law by enumeration (chi-square
tests over all subsets), its parts, its bounds, and what it refuses."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import (
    ROOT,
    chi_square_p_value,
    exact_k_dpp_law,
    random_kernel,
    rngs_for,
    seeds_for,
)

import dpp_sample as D


@pytest.mark.parametrize("k", [3, 5])
def test_torch_sampler_follows_the_exact_k_dpp_law(k: int) -> None:
    L = random_kernel(7, seed=3)
    draws = 20_000
    seeds = np.random.SeedSequence(11).spawn(draws)
    batch = torch.from_numpy(L).expand(draws, 7, 7)
    samples = D.sample_k_dpp(batch, k, seeds).numpy()
    assert chi_square_p_value(samples, exact_k_dpp_law(L, k)) > 1e-4


def weakly_coupled_kernel(seed: int) -> np.ndarray:
    """7 items: 0-3 strongly coupled, 4-6 with every normalised coupling in (0.3, 0.4)."""
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(7, 7))
    F[4:] = np.eye(7)[4:] * 1.5 + 0.3 * rng.normal(size=(3, 7))
    F[:4, 4:] *= 0.2
    return F @ F.T


@pytest.mark.parametrize("k", [3, 5])
def test_rejection_from_the_block_proposal_gives_the_exact_law(k: int) -> None:
    """With threshold 0.5 items 4-6 lose their couplings in the proposal, whose law is then
    far from the k-DPP's (the first check shows the chi-square test can tell); the Fischer
    acceptance step must restore the exact law."""
    L = weakly_coupled_kernel(0)
    draws = 12_000
    batch = torch.from_numpy(L).expand(draws, 7, 7)
    singleton = D.weakly_coupled(batch, 0.5)
    assert singleton[0].tolist() == [False] * 4 + [True] * 3
    law = exact_k_dpp_law(L, k)
    proposals = D.sample_k_dpp_blocks(
        D.BlockSpectrum.of(batch, singleton), k, rngs_for(draws, 5)
    )
    proposed = torch.nonzero(proposals)[:, 1].reshape(-1, k).numpy()
    assert chi_square_p_value(proposed, law) < 1e-5
    samples = D.sample_k_dpp(batch, k, seeds_for(draws, 11), threshold=0.5).numpy()
    assert chi_square_p_value(samples, law) > 1e-4


def test_fallback_to_the_dense_proposal_keeps_the_law(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """threshold 1 makes every item a singleton: the diagonal proposal is rejected so often
    that many kernels reach MAX_PROPOSALS and are sampled densely; the law stays exact."""
    L = 0.1 * random_kernel(7, seed=9) + 0.9  # normalised couplings near 0.9
    calls = []
    original = D.BlockSpectrum.of

    def counting(kernels: torch.Tensor, singleton: torch.Tensor) -> D.BlockSpectrum:
        calls.append(bool(singleton.any()))
        return original(kernels, singleton)

    monkeypatch.setattr(D.BlockSpectrum, "of", counting)
    samples = D.sample_k_dpp(
        torch.from_numpy(L).expand(4000, 7, 7), 3, seeds_for(4000, 3), threshold=1.0
    ).numpy()
    assert calls == [True, False]  # the diagonal proposal, then the dense fallback
    assert chi_square_p_value(samples, exact_k_dpp_law(L, 3)) > 1e-4


def test_eigenvector_selection_follows_the_product_law() -> None:
    """P(J) proportional to prod_J lambda_j over |J| = k, for a spectrum spanning 1e-6..1e3."""
    eigvals = np.array([1e-6, 0.01, 0.5, 1.0, 3.0, 1e3])
    subsets = list(itertools.combinations(range(6), 3))
    weights = np.array([np.prod(eigvals[list(s)]) for s in subsets])
    law = dict(zip(subsets, weights / weights.sum()))
    law = {s: p for s, p in law.items() if p > 1e-9}  # the rest is never drawn
    selected = D.select_eigenvectors(
        torch.from_numpy(eigvals).expand(20_000, 6), 3, rngs_for(20_000, 4)
    )
    assert (selected.sum(1) == 3).all()
    chosen = torch.nonzero(selected)[:, 1].reshape(-1, 3).numpy()
    assert all(tuple(row) in law for row in chosen)
    assert chi_square_p_value(chosen, law) > 1e-4


def test_projection_sampler_follows_det_k_s_with_padded_ranks() -> None:
    """Rows of one batch with ranks 2 and 3 (zero-padded columns): P(S) = det(K_S), |S| = r."""
    Q, _ = np.linalg.qr(np.random.default_rng(10).normal(size=(6, 3)))
    V = np.zeros((2, 6, 3))
    V[0, :, :2], V[1] = Q[:, :2], Q
    draws = 10_000
    batch = torch.from_numpy(V).repeat(draws, 1, 1)
    rank = torch.tensor([2, 3]).repeat(draws)
    uniforms = torch.from_numpy(np.random.default_rng(6).random((2 * draws, 3)))
    drawn = D.sample_projection_dpp(batch, rank, uniforms)
    for row, r in ((0, 2), (1, 3)):
        K = V[row] @ V[row].T
        subsets = list(itertools.combinations(range(6), r))
        law = {s: np.linalg.det(K[np.ix_(s, s)]) for s in subsets}
        assert abs(sum(law.values()) - 1.0) < 1e-9
        rows = drawn[row::2]
        assert (rows.sum(1) == r).all()
        chosen = torch.nonzero(rows)[:, 1].reshape(-1, r).numpy()
        assert chi_square_p_value(chosen, law) > 1e-4


def test_dppy_backend_follows_the_exact_k_dpp_law() -> None:
    L = random_kernel(7, seed=4)
    seeds = np.random.SeedSequence(12).spawn(4000)
    samples = D.prepare_k_dpp(torch.from_numpy(L).expand(4000, 7, 7), "dppy").sample(3, seeds)
    samples = samples.numpy()
    assert chi_square_p_value(samples, exact_k_dpp_law(L, 3)) > 1e-4


def test_sampler_is_seeded_and_returns_k_distinct_indices() -> None:
    L = torch.from_numpy(random_kernel(30, seed=5)).expand(4, 30, 30)
    seeds = np.random.SeedSequence(7).spawn(4)
    first = D.sample_k_dpp(L, 10, seeds)
    again = D.sample_k_dpp(L, 10, np.random.SeedSequence(7).spawn(4))
    other = D.sample_k_dpp(L, 10, np.random.SeedSequence(8).spawn(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    for row in first:
        assert len(set(row.tolist())) == 10 and row.min() >= 0 and row.max() < 30


def assert_valid_sample(sample: torch.Tensor, n: int, k: int) -> None:
    assert sample.shape[-1] == k
    for row in sample.reshape(-1, k):
        assert len(set(row.tolist())) == k and 0 <= int(row.min()) and int(row.max()) < n


@pytest.mark.parametrize("k", [1, 20])
def test_sampler_handles_k_1_and_k_n_and_float32(k: int) -> None:
    L = torch.from_numpy(random_kernel(20, seed=6)).float().unsqueeze(0)
    assert_valid_sample(D.sample_k_dpp(L, k, seeds_for(1, 0)), 20, k)


def test_sampler_handles_k_far_above_the_number_of_large_eigenvalues() -> None:
    rng = np.random.default_rng(7)
    F = rng.normal(size=(784, 50))
    L = torch.from_numpy(F @ F.T + 0.01 * np.eye(784)).unsqueeze(0)
    assert_valid_sample(D.sample_k_dpp(L, 387, seeds_for(1, 1)), 784, 387)


def test_dppy_backend_failure_is_a_sampling_error() -> None:
    """dppy's elementary symmetric polynomials overflow on a rank-50 kernel plus 0.01 I."""
    rng = np.random.default_rng(7)
    F = rng.normal(size=(784, 50))
    L = torch.from_numpy(F @ F.T + 0.01 * np.eye(784)).unsqueeze(0)
    with pytest.raises(D.SamplingError, match="dppy failed on a kernel"):
        D.prepare_k_dpp(L, "dppy").sample(387, np.random.SeedSequence(0).spawn(1))


def test_sampler_handles_nearly_identical_items_and_extreme_spectra() -> None:
    n = 60
    identical = torch.full((n, n), 1.0, dtype=torch.float64) + 0.01 * torch.eye(
        n, dtype=torch.float64
    )
    Q, _ = torch.linalg.qr(torch.from_numpy(np.random.default_rng(8).normal(size=(n, n))))
    spread = Q @ torch.diag(torch.logspace(-12, 12, n, dtype=torch.float64)) @ Q.T
    spread = (spread + spread.T) / 2
    for L in (identical, spread, 1e-200 * identical, 1e200 * identical):
        assert_valid_sample(D.sample_k_dpp(L.unsqueeze(0), 30, seeds_for(1, 2)), n, 30)


def test_the_reference_path_follows_the_exact_k_dpp_law() -> None:
    L = random_kernel(6, seed=8)
    samples = D.sample_k_dpp_spectral(
        torch.from_numpy(L).expand(6000, 6, 6), 3, seeds_for(6000, 9)
    ).numpy()
    assert chi_square_p_value(samples, exact_k_dpp_law(L, 3)) > 1e-4


def test_bad_sizes_and_backends_are_value_errors() -> None:
    L = torch.from_numpy(random_kernel(5, seed=1)).unsqueeze(0)
    for k in (0, 6):
        with pytest.raises(ValueError, match="must lie in 1..5"):
            D.sample_k_dpp(L, k, seeds_for(1, 0))
        with pytest.raises(ValueError, match="must lie in 1..5"):
            D.sample_k_dpp_spectral(L, k, seeds_for(1, 0))
    with pytest.raises(ValueError, match="backend 'numpy'"):
        D.prepare_k_dpp(L, "numpy")


def uniform_distance(L: np.ndarray, k: int) -> float:
    """Total variation distance between the k-DPP of L and the uniform law, by enumeration."""
    law = exact_k_dpp_law(L, k)
    return 0.5 * sum(abs(p - 1.0 / len(law)) for p in law.values())


@pytest.mark.parametrize("coupling", [0.002, 0.02, 0.05])
def test_the_uniformity_bound_holds_and_is_the_stated_one(coupling: float) -> None:
    """L = 1.01 (I + c (J - I)), n = 8: F = c (J - I) has largest row sum 7c and Frobenius
    norm c sqrt(56) (the bound takes the smaller), spectral norm 7c."""
    n = 8
    F = coupling * (np.ones((n, n)) - np.eye(n))
    L = 1.01 * (np.eye(n) + F)
    rho = float(D.coupling_bound(torch.from_numpy(L).unsqueeze(0))[0])
    assert rho == pytest.approx(min(7 * coupling, coupling * math.sqrt(56)), rel=1e-12)
    for k in (2, 4, 6):
        bound = D.uniformity_bound(rho, k)
        assert bound == pytest.approx(math.tanh(k * math.atanh(rho)), rel=1e-12)
        assert uniform_distance(L, k) <= bound
    assert D.uniformity_bound(1.5, 3) == 1.0


def test_the_uniformity_bound_on_a_random_weakly_coupled_kernel() -> None:
    rng = np.random.default_rng(3)
    F = rng.normal(scale=0.01, size=(7, 7))
    L = np.eye(7) + (F + F.T) / 2 * (1 - np.eye(7))
    rho = float(D.coupling_bound(torch.from_numpy(L).unsqueeze(0))[0])
    # an upper bound of ||F||
    assert rho >= np.abs(np.linalg.eigvalsh(L - np.eye(7))).max()
    for k in (2, 3, 5):
        assert uniform_distance(L, k) <= D.uniformity_bound(rho, k)


def test_the_library_stands_alone() -> None:
    """dpp_sample imports neither MNIST.py nor report.py, nor dppy until asked for it."""
    code = (
        "import sys, dpp_sample; "
        "print(sorted(m for m in ('MNIST', 'report', 'dppy') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_draws_sampled_together_are_the_draws_sampled_alone() -> None:
    """sample_draws: batches of one k (at_once 1, 2 or 3) and of several k side by side give,
    bit for bit, what each draw gives alone from its kernels."""
    L = torch.stack([torch.from_numpy(random_kernel(12, seed=s)) for s in range(3)])
    sampler = D.prepare_k_dpp(L)
    draws = [(k, seeds_for(3, seed)) for k, seed in [(4, 1), (4, 2), (9, 1), (4, 3), (2, 7)]]
    alone = [sampler.sample(k, seeds) for k, seeds in draws]
    for at_once in (1, 2, 3):
        together = D.sample_draws(sampler, draws, at_once)
        assert all(torch.equal(a, b) for a, b in zip(together, alone))
    assert not torch.equal(alone[0], alone[1])
