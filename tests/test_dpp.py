"""DPP kernels and the exact k-DPP samplers, checked against direct float64 references."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.stats import chi2

import MNIST as M


def direct_rbf(vectors: np.ndarray, beta: float, eps: float) -> np.ndarray:
    """exp(-beta ||v_a - v_b||^2) + eps [a = b] by explicit differences. vectors: (M, N)."""
    diffs = vectors[:, None, :] - vectors[None, :, :]
    return np.exp(-beta * (diffs**2).sum(-1)) + eps * np.eye(len(vectors))


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
    got, _ = M.edge_kernels(
        torch.from_numpy(W1), torch.from_numpy(X.T @ X), beta="auto"
    )
    for h in range(2):
        columns = (X * W1[h]).T
        distances = ((columns[:, None, :] - columns[None, :, :]) ** 2).sum(-1)
        upper = distances[np.triu_indices(6, k=1)]
        beta = (
            1.0 / np.sort(upper)[(len(upper) - 1) // 2]
        )  # torch's median is the lower one
        np.testing.assert_allclose(
            got[h].numpy(), direct_rbf(columns, beta, 0.01), rtol=1e-10, atol=1e-12
        )


def test_kernel_stats_of_a_diagonal_and_a_coupled_kernel() -> None:
    far = torch.from_numpy(np.random.default_rng(4).normal(scale=100.0, size=(50, 8)))
    for beta, diagonal in ((0.3, True), ("auto", False)):
        stats = M.KernelStats()
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


def kernels_sampled_by(
    method: str, inputs: M.PruningInputs, monkeypatch: pytest.MonkeyPatch
) -> torch.Tensor:
    """Every kernel that METHODS[method] hands to the sampler, stacked: (B, n, n)."""
    seen = []
    prepare = M.prepare_k_dpp

    def spy(
        L: torch.Tensor, backend: str, ks: Sequence[int] = ()
    ) -> M.BlockProposals | M.DppySpectra:
        seen.append(L.clone())
        return prepare(L, backend, ks)

    monkeypatch.setattr(M, "prepare_k_dpp", spy)
    M.draw_mask(M.METHODS[method], inputs, 3, 0.3, seed=1)
    return torch.cat(seen)


def small_inputs(hidden: int, images: int, seed: int, scale: float) -> M.PruningInputs:
    rng = np.random.default_rng(seed)
    model = M.TwoLayerMLP(hidden)
    with torch.no_grad():
        model.w1.weight.copy_(
            torch.from_numpy(rng.normal(scale=scale, size=(hidden, 784)))
        )
        model.w1.bias.copy_(torch.from_numpy(rng.normal(size=hidden)))
    X = torch.from_numpy(rng.normal(size=(images, 784)).astype(np.float32))
    return M.PruningInputs(model, X, X[:5], torch.zeros(5, dtype=torch.long))


def test_dpp_edge_samples_the_edge_kernels_of_its_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What runs is what is checked: the kernels dpp_edge samples, against exp(-0.3 d) + 0.01 I
    with d the squared distances between the weighted columns w_hi x_i, computed directly."""
    inputs = small_inputs(hidden=2, images=40, seed=2, scale=0.02)
    got = kernels_sampled_by("dpp_edge", inputs, monkeypatch)
    X, W1 = inputs.train_x.double().numpy(), inputs.W1.double().numpy()
    assert got.shape == (2, 784, 784)
    for h in range(2):
        distances = cdist((X * W1[h]).T, (X * W1[h]).T, "sqeuclidean")
        expected = np.exp(-0.3 * distances) + 0.01 * np.eye(784)
        np.testing.assert_allclose(got[h].numpy(), expected, rtol=1e-10, atol=1e-12)


def test_dpp_node_samples_the_kernel_of_the_preactivations_without_bias(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inputs = small_inputs(hidden=8, images=30, seed=3, scale=0.005)
    got = kernels_sampled_by("dpp_node", inputs, monkeypatch)
    Z = inputs.train_x.double().numpy() @ inputs.W1.double().numpy().T  # no bias
    assert got.shape == (1, 8, 8)
    off_diagonal = got[0].numpy()[~np.eye(8, dtype=bool)]
    assert (
        0.01 < off_diagonal.min() and off_diagonal.max() < 0.99
    )  # a kernel worth testing
    np.testing.assert_allclose(
        got[0].numpy(), direct_rbf(Z.T, 0.3, 0.01), rtol=1e-10, atol=1e-12
    )


def random_kernel(n: int, seed: int) -> np.ndarray:
    A = np.random.default_rng(seed).normal(size=(n, n))
    return A @ A.T / n + 0.1 * np.eye(n)


def exact_k_dpp_law(L: np.ndarray, k: int) -> dict[tuple[int, ...], float]:
    subsets = list(itertools.combinations(range(len(L)), k))
    dets = np.array([np.linalg.det(L[np.ix_(s, s)]) for s in subsets])
    return dict(zip(subsets, dets / dets.sum()))


def chi_square_p_value(samples: np.ndarray, law: dict[tuple[int, ...], float]) -> float:
    counts = dict.fromkeys(law, 0)
    for row in samples:
        counts[tuple(sorted(int(i) for i in row))] += 1
    observed = np.array([counts[s] for s in law], dtype=float)
    expected = np.array([law[s] for s in law]) * len(samples)
    statistic = ((observed - expected) ** 2 / expected).sum()
    return float(chi2.sf(statistic, df=len(law) - 1))


@pytest.mark.parametrize("k", [3, 5], ids=["direct", "complement"])
def test_torch_sampler_follows_the_exact_k_dpp_law(k: int) -> None:
    L = random_kernel(7, seed=3)
    draws = 20_000
    seeds = np.random.SeedSequence(11).spawn(draws)
    batch = torch.from_numpy(L).expand(draws, 7, 7)
    samples = M.sample_k_dpp(batch, k, seeds).numpy()
    assert chi_square_p_value(samples, exact_k_dpp_law(L, k)) > 1e-4


def weakly_coupled_kernel(seed: int) -> np.ndarray:
    """7 items: 0-3 strongly coupled, 4-6 with every normalised coupling in (0.3, 0.4)."""
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(7, 7))
    F[4:] = np.eye(7)[4:] * 1.5 + 0.3 * rng.normal(size=(3, 7))
    F[:4, 4:] *= 0.2
    return F @ F.T


def seeds_for(draws: int, seed: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(seed).spawn(draws)


def rngs_for(draws: int, seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds_for(draws, seed)]


@pytest.mark.parametrize("k", [3, 5])
def test_rejection_from_the_block_proposal_gives_the_exact_law(k: int) -> None:
    """With threshold 0.5 items 4-6 lose their couplings in the proposal, whose law is then
    far from the k-DPP's (the first check shows the chi-square test can tell); the Fischer
    acceptance step must restore the exact law."""
    L = weakly_coupled_kernel(0)
    draws = 12_000
    batch = torch.from_numpy(L).expand(draws, 7, 7)
    singleton = M.weakly_coupled(batch, 0.5)
    assert singleton[0].tolist() == [False] * 4 + [True] * 3
    law = exact_k_dpp_law(L, k)
    proposals = M.sample_k_dpp_blocks(
        M.BlockSpectrum.of(batch, singleton), k, rngs_for(draws, 5)
    )
    proposed = torch.nonzero(proposals)[:, 1].reshape(-1, k).numpy()
    assert chi_square_p_value(proposed, law) < 1e-5
    samples = M.sample_k_dpp(batch, k, seeds_for(draws, 11), threshold=0.5).numpy()
    assert chi_square_p_value(samples, law) > 1e-4


def test_fallback_to_the_dense_proposal_keeps_the_law(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """threshold 1 makes every item a singleton: the diagonal proposal is rejected so often
    that many kernels reach MAX_PROPOSALS and are sampled densely; the law stays exact."""
    L = 0.1 * random_kernel(7, seed=9) + 0.9  # normalised couplings near 0.9
    calls = []
    original = M.BlockSpectrum.of

    def counting(kernels: torch.Tensor, singleton: torch.Tensor) -> M.BlockSpectrum:
        calls.append(bool(singleton.any()))
        return original(kernels, singleton)

    monkeypatch.setattr(M.BlockSpectrum, "of", counting)
    samples = M.sample_k_dpp(
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
    selected = M.select_eigenvectors(
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
    drawn = M.sample_projection_dpp(batch, rank, uniforms)
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
    samples = M.prepare_k_dpp(torch.from_numpy(L).expand(4000, 7, 7), "dppy").sample(
        3, seeds
    )
    samples = samples.numpy()
    assert chi_square_p_value(samples, exact_k_dpp_law(L, 3)) > 1e-4


def test_sampler_is_seeded_and_returns_k_distinct_indices() -> None:
    L = torch.from_numpy(random_kernel(30, seed=5)).expand(4, 30, 30)
    seeds = np.random.SeedSequence(7).spawn(4)
    first = M.sample_k_dpp(L, 10, seeds)
    again = M.sample_k_dpp(L, 10, np.random.SeedSequence(7).spawn(4))
    other = M.sample_k_dpp(L, 10, np.random.SeedSequence(8).spawn(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    for row in first:
        assert len(set(row.tolist())) == 10 and row.min() >= 0 and row.max() < 30


def assert_valid_sample(sample: torch.Tensor, n: int, k: int) -> None:
    assert sample.shape[-1] == k
    for row in sample.reshape(-1, k):
        assert (
            len(set(row.tolist())) == k and 0 <= int(row.min()) and int(row.max()) < n
        )


@pytest.mark.parametrize("k", [1, 20])
def test_sampler_handles_k_1_and_k_n_and_float32(k: int) -> None:
    L = torch.from_numpy(random_kernel(20, seed=6)).float().unsqueeze(0)
    assert_valid_sample(M.sample_k_dpp(L, k, seeds_for(1, 0)), 20, k)


def test_sampler_handles_k_far_above_the_number_of_large_eigenvalues() -> None:
    rng = np.random.default_rng(7)
    F = rng.normal(size=(784, 50))
    L = torch.from_numpy(F @ F.T + 0.01 * np.eye(784)).unsqueeze(0)
    assert_valid_sample(M.sample_k_dpp(L, 387, seeds_for(1, 1)), 784, 387)


def test_dppy_backend_failure_is_one_clear_error() -> None:
    rng = np.random.default_rng(7)
    F = rng.normal(size=(784, 50))
    L = torch.from_numpy(F @ F.T + 0.01 * np.eye(784)).unsqueeze(0)
    with pytest.raises(M.UsageError, match="--dpp-backend torch"):
        M.prepare_k_dpp(L, "dppy").sample(387, np.random.SeedSequence(0).spawn(1))


def test_sampler_handles_nearly_identical_items_and_extreme_spectra() -> None:
    n = 60
    identical = torch.full((n, n), 1.0, dtype=torch.float64) + 0.01 * torch.eye(
        n, dtype=torch.float64
    )
    Q, _ = torch.linalg.qr(
        torch.from_numpy(np.random.default_rng(8).normal(size=(n, n)))
    )
    spread = Q @ torch.diag(torch.logspace(-12, 12, n, dtype=torch.float64)) @ Q.T
    spread = (spread + spread.T) / 2
    for L in (identical, spread, 1e-200 * identical, 1e200 * identical):
        assert_valid_sample(M.sample_k_dpp(L.unsqueeze(0), 30, seeds_for(1, 2)), n, 30)


@pytest.mark.parametrize("chunk_size, draws_at_once", [(2, 1), (5, 3)])
def test_edge_masks_drawn_together_are_those_drawn_alone(
    chunk_size: int, draws_at_once: int
) -> None:
    """One kernel build for many (k, seed) gives, bit for bit, the mask each draw gives alone
    (in chunks of 3 nodes, not 2 or 5, one draw at a time, not 1 or 3 side by side); k = 700
    takes the projection sampler's complement path, and the draws together pay for
    ComplementForms, so their acceptance tests run on the complements, alone on S."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(50, 784))
    G = torch.from_numpy(X.T @ X)
    W1 = torch.from_numpy(rng.normal(scale=0.02, size=(5, 784)))
    draws = [(10, 1), (10, 2), (300, 1), (600, 1)] + [(700, s) for s in range(3, 7)]
    assert M.complement_pays(784, [k for k, _ in draws])
    assert not M.complement_pays(784, [700])
    together = M.dpp_edge_masks(
        W1, G, draws, beta=0.3, chunk_size=chunk_size, draws_at_once=draws_at_once
    )
    for (k, seed), mask in zip(draws, together):
        assert (mask.sum(1) == k).all()
        alone = M.dpp_edge_masks(W1, G, [(k, seed)], beta=0.3, chunk_size=3)[0]
        assert torch.equal(mask, alone)
    assert not torch.equal(together[0], together[1])


def test_complement_acceptance_ratio_equals_the_direct_one() -> None:
    """log det(L_S) - log det(Lb_S) from the inverses on the items left out
    (ComplementForms) equals fischer_log_ratio's, from a Cholesky factorisation of L_S, for
    proposals of more than half the items."""
    n, B = 40, 6
    L = torch.stack([torch.from_numpy(random_kernel(n, seed=s)) for s in range(B)])
    proposals = M.BlockProposals.of(L, threshold=0.3, complement=True)
    assert proposals.singleton.any(1).all() and (~proposals.singleton).any(1).all()
    forms = proposals.complement
    assert forms is not None and forms.usable.all()
    rows = torch.arange(B)
    rng = np.random.default_rng(0)
    for k in (21, 30, 39):
        chosen = torch.zeros(B, n, dtype=torch.bool)
        for b in range(B):
            chosen[b, rng.permutation(n)[:k]] = True
        ratio, valid = forms.log_ratio(
            L, proposals.spectrum, rows, proposals.singleton, chosen
        )
        direct = M.fischer_log_ratio(L, rows, proposals.singleton, chosen)
        assert valid.all() and (direct < -1e-3).all()
        torch.testing.assert_close(ratio, direct, rtol=1e-9, atol=1e-9)


def test_acceptance_on_the_complement_keeps_the_exact_law() -> None:
    """With ComplementForms, proposals of 5 of 7 items are tested on the 2 left out."""
    L = weakly_coupled_kernel(0)
    draws = 12_000
    batch = torch.from_numpy(L).expand(draws, 7, 7)
    proposals = M.BlockProposals.of(batch, 0.5, complement=True)
    assert proposals.complement is not None and proposals.complement.usable.all()
    samples = proposals.sample(5, seeds_for(draws, 13)).numpy()
    assert chi_square_p_value(samples, exact_k_dpp_law(L, 5)) > 1e-4


def test_complement_forms_are_prepared_when_they_pay() -> None:
    sweep = [69, 148, 228, 307, 387, 466, 545, 625, 704] * 3  # a default sweep's draws
    assert M.complement_pays(784, sweep)
    assert not M.complement_pays(
        784, [704]
    )  # the inverses cost more than one draw saves
    assert not M.complement_pays(784, [392] * 100)  # no proposal of more than half


def test_node_masks_drawn_together_are_those_drawn_alone() -> None:
    inputs = small_inputs(hidden=20, images=30, seed=4, scale=0.005)
    draws = [(5, 1), (5, 2), (12, 1), (19, 7)]
    together = M.dpp_node_draws(inputs, draws, "auto")
    for (k, seed), keep in zip(draws, together):
        assert int(keep.sum()) == k
        assert torch.equal(keep, M.dpp_node(inputs, k, "auto", seed))
