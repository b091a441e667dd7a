"""Exact k-DPP sampling: a small library, independent of what its kernels describe.

The law. For a kernel L (n x n, symmetric positive semi-definite) and a size k, a k-DPP draws
a subset S of k items with P(S) = det(L_S) / sum over |T| = k of det(L_T): subsets of items
that L finds similar are unlikely together (Kulesza & Taskar, "Determinantal Point Processes
for Machine Learning", 2012).

The reference path (sample_k_dpp_spectral; the dppy backend is the same path, drawn by dppy):
eigendecompose L = sum_j lambda_j v_j v_j^T, choose k eigenvectors J with P(J) proportional
to prod_J lambda_j (select_eigenvectors, Algorithm 8), then draw the projection DPP onto
span(v_J) (sample_projection_dpp, Algorithm 1). Eigenvectors are chosen by Bernoulli trials
conditioned on k successes: no elementary symmetric polynomial is formed, so nothing
overflows or underflows whatever k and the spectrum.

The default path (BlockProposals; prepare_k_dpp, sample_k_dpp) is faster and draws from the
same law. Items whose normalised couplings |L_ij| / sqrt(L_ii L_jj) to all others are weak
lose them in a proposal kernel Lb, block diagonal, so only its one dense block needs an
eigendecomposition. A proposal S, an exact draw from Lb's k-DPP, is accepted with
probability det(L_S) / det(Lb_S), at most 1 by Fischer's inequality. Why that is exact:
P(S proposed and accepted) = [det(Lb_S) / Z_b] [det(L_S) / det(Lb_S)] = det(L_S) / Z_b, which
is proportional to the k-DPP of L; rejected draws start over, so an accepted S has exactly
that law, whatever the threshold that made the block (it sets only the cost). After
MAX_PROPOSALS rejections a draw proposes from L itself, which is never rejected.

Reproducible: each draw has its own random stream, from its seed, so a sample depends only on
its kernel, k and seed, not on what is drawn with it or in which batch (but for rounding,
whose effect on a draw has a probability of order 1e-11). Tests pin recorded samples and
check the law by chi-square tests over all subsets of small kernels.

    seeds = np.random.SeedSequence(0).spawn(len(L))
    S = sample_k_dpp(L, k, seeds)                    # L: (B, n, n) -> (B, k) item indices
    sampler = prepare_k_dpp(L)                       # once per batch of kernels ...
    S = sampler.sample(k, seeds)                     # ... then for any number of (k, seeds)

Imports torch and numpy, and dppy when its backend is asked for.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

# the proposal drops the couplings of items whose normalised couplings all lie below this
# (any value keeps the law exact; it sets only the cost)
COUPLING_THRESHOLD = 0.1
# proposals per draw before the kernel itself is the proposal (never rejected)
MAX_PROPOSALS = 16
# draws of one k that sample_draws samples together, as one batch: fewer steps, more memory
DRAWS_AT_ONCE = 3
# a k-DPP provably within this total variation distance of uniform over k-subsets counts as
# uniform, for practical purposes (uniformity_bound)
PRACTICALLY_UNIFORM = 0.05
BACKENDS = ("torch", "dppy")


class SamplingError(ValueError):
    """A backend could not draw from a kernel (dppy's polynomials overflow on wide spectra)."""


def side_by_side(work: Callable[[int], None], count: int, device: torch.device) -> None:
    """work(0), ..., work(count - 1). On the CPU the calls run side by side, one single-threaded
    call per core (for eigendecompositions of matrices of a few hundred rows faster than one
    multi-threaded call after another), and the results do not depend on the core count.
    Meanwhile torch runs single-threaded; work must only write to its own slots of shared
    tensors."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1 or count < 2:
        for index in range(count):
            work(index)
        return
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(count)))
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------
# How far a k-DPP is from uniform
# ----------------------------------------------------------------------------------------------


def coupling_bound(L: torch.Tensor) -> torch.Tensor:
    """An upper bound rho of the spectral norm of F = D^-1/2 L D^-1/2 - I, the kernel's
    normalised couplings (D its diagonal): the smaller of F's largest absolute row sum and
    its Frobenius norm. L: (B, M, M) -> (B,)."""
    scale = L.diagonal(dim1=-2, dim2=-1).clamp(min=torch.finfo(L.dtype).tiny).rsqrt()
    F = L.abs().mul_(scale.unsqueeze(-1)).mul_(scale.unsqueeze(-2))
    F.diagonal(dim1=-2, dim2=-1).zero_()
    return torch.minimum(F.sum(-1).amax(-1), torch.linalg.matrix_norm(F))


def uniformity_bound(rho: float, k: int) -> float:
    """How far, at most, the k-DPP of a kernel with couplings rho (coupling_bound) is from the
    k-DPP of its diagonal alone, P(S) proportional to prod_S L_ii, in total variation: from
    the uniform law over k-subsets when the diagonal is constant.

    With L = D^1/2 (I + F) D^1/2 and ||F|| <= rho < 1, every principal k x k block of I + F
    has its eigenvalues in [1 - rho, 1 + rho] (Cauchy interlacing), so the ratios
    det(L_S) / det(D_S), |S| = k, lie within a factor R = ((1 + rho) / (1 - rho))^k of each
    other, and so do the ratios of the two laws' probabilities. A law whose ratios to another
    lie in [1/R, R] is within (R - 1) / (R + 1) = tanh(k atanh(rho)) of it in total
    variation. 1 (no bound) when rho >= 1.
    """
    return math.tanh(k * math.atanh(rho)) if rho < 1.0 else 1.0


def offdiagonal_sum_and_max(L: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Per-kernel sums (B,) and the overall largest of the off-diagonal entries of a batch of
    kernels (B, M, M), M > 1, computed with the diagonal masked in place (no M x M copy)."""
    diagonal = L.diagonal(dim1=-2, dim2=-1)
    saved = diagonal.clone()
    diagonal.zero_()
    sums = L.sum((-2, -1))
    diagonal.fill_(-math.inf)
    largest = float(L.max())
    diagonal.copy_(saved)
    return sums, largest


@dataclass
class KernelStats:
    """Running one-line summary of a family of DPP kernels: how far from uniform they sample.

    The effective rank is the participation ratio (sum lambda)^2 / sum lambda^2 of the
    eigenvalues, = tr(L)^2 / ||L||_F^2: M for a multiple of I, 1 for rank one. coupling: the
    largest coupling_bound of the family, from which uniformity(k) bounds how far its k-DPPs
    are from those of their diagonals (uniform where constant_diagonal: every kernel's
    diagonal is constant, to 1e-12); beta: the mean of a parameter the caller passes per
    kernel (an RBF kernel's beta; nan for kernels without one).
    """

    count: int = 0
    offdiag_mean_sum: float = 0.0
    offdiag_max: float = 0.0
    effective_rank_sum: float = 0.0
    beta_sum: float = 0.0
    coupling: float = 0.0
    constant_diagonal: bool = True

    def update(self, L: torch.Tensor, beta: torch.Tensor) -> None:
        """L: (B, M, M), beta: (B,)."""
        M = L.shape[-1]
        diagonal = L.diagonal(dim1=-2, dim2=-1)
        trace = diagonal.sum(-1)
        spread = diagonal.amax(-1) - diagonal.amin(-1)
        self.constant_diagonal &= bool((spread <= 1e-12 * diagonal.amax(-1)).all())
        self.count += len(L)
        if M > 1:
            sums, largest = offdiagonal_sum_and_max(L)
            self.offdiag_mean_sum += float(sums.sum()) / (M * (M - 1))
            self.offdiag_max = max(self.offdiag_max, largest)
            self.coupling = max(self.coupling, float(coupling_bound(L).max()))
        frobenius2 = torch.linalg.matrix_norm(L).square()
        self.effective_rank_sum += float((trace.square() / frobenius2).sum())
        self.beta_sum += float(beta.sum())

    @property
    def effective_rank(self) -> float:
        return self.effective_rank_sum / max(self.count, 1)

    @property
    def beta(self) -> float:
        """The mean beta of the family's kernels."""
        return self.beta_sum / max(self.count, 1)

    def uniformity(self, k: int) -> float:
        """Bound of the total variation distance of the family's k-DPPs from uniform (from
        their diagonals' laws, where the diagonal is not constant)."""
        return uniformity_bound(self.coupling, k)

    def practically_uniform(self, k: int) -> bool:
        return self.uniformity(k) <= PRACTICALLY_UNIFORM

    def line(self, name: str, k: int) -> str:
        n = max(self.count, 1)
        law = "uniform" if self.constant_diagonal else "its diagonal's law (no diversity)"
        uniformity = (
            f"so the {k}-DPP is within {self.uniformity(k):.3g} of {law} (total variation)"
            if self.coupling < 1.0
            else "which bounds nothing"
        )
        kernel = "linear" if math.isnan(self.beta) else f"beta {self.beta:.4g} (mean)"
        return (
            f"{name} kernels ({self.count}): {kernel}, off-diagonal mean "
            f"{self.offdiag_mean_sum / n:.3g}, max {self.offdiag_max:.3g}; effective rank "
            f"{self.effective_rank:.1f} (mean); couplings <= {self.coupling:.3g}, {uniformity}"
        )


# ----------------------------------------------------------------------------------------------
# The spectral sampler
# ----------------------------------------------------------------------------------------------


def draw_uniforms(
    rngs: Sequence[np.random.Generator], shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """One float64 array of the given shape from each generator, stacked:
    (len(rngs), *shape)."""
    draws = np.stack([rng.random(shape) for rng in rngs])
    return torch.from_numpy(draws).to(device)


def poisson_tilt(eigvals: torch.Tensor, k: int, iterations: int = 50) -> torch.Tensor:
    """log alpha with sum_j alpha l_j / (1 + alpha l_j) = k, by bisection, per row.

    eigvals: (B, N) > 0, 0 < k < N -> (B,).
    """
    log_eigvals = eigvals.log()
    low = -log_eigvals.max(-1).values - 40.0  # every probability < 1e-17: sum < k
    high = -log_eigvals.min(-1).values + 40.0  # every probability > 1 - 1e-17: sum > k
    for _ in range(iterations):
        middle = (low + high) / 2
        too_few = torch.sigmoid(middle.unsqueeze(-1) + log_eigvals).sum(-1) < k
        low = torch.where(too_few, middle, low)
        high = torch.where(too_few, high, middle)
    return (low + high) / 2


def select_eigenvectors(
    eigvals: torch.Tensor,
    k: int,
    rngs: Sequence[np.random.Generator],
    trials: int = 32,
) -> torch.Tensor:
    """First phase of the spectral k-DPP sampler: a set J of k eigenvectors with
    P(J) proportional to prod_{j in J} lambda_j (Kulesza & Taskar 2012, Algorithm 8).

    Drawn as independent Bernoulli(p_j), p_j = alpha lambda_j / (1 + alpha lambda_j), until
    exactly k succeed: given |J| = k, P(J) is proportional to prod_J p_j / (1 - p_j) =
    alpha^k prod_J lambda_j, the law above, for any alpha. alpha (poisson_tilt) only sets the
    cost: it makes k the expected number of successes, and then also the most likely one
    (Darroch 1964), so a trial succeeds with probability at least 1 / (N + 1), about
    0.4 / sd with sd^2 = sum p_j (1 - p_j) <= N / 4. No elementary symmetric polynomial is
    formed, so nothing overflows or underflows whatever k and the spectrum. Trials are drawn
    `trials` at a time.
    eigvals: (B, N) > 0; rngs: one per row -> (B, N) bool with k True per row.
    """
    B, N = eigvals.shape
    if k == N:
        return torch.ones(B, N, dtype=torch.bool, device=eigvals.device)
    p = torch.sigmoid(poisson_tilt(eigvals, k).unsqueeze(-1) + eigvals.log())
    selected = torch.empty(B, N, dtype=torch.bool, device=eigvals.device)
    pending = torch.arange(B, device=eigvals.device)
    while len(pending):
        draws = draw_uniforms([rngs[b] for b in pending.tolist()], (trials, N), p.device)
        hits = draws < p[pending].unsqueeze(1)  # (B', trials, N)
        exact = hits.sum(-1) == k
        found = exact.any(-1)
        first = exact.to(torch.int8).argmax(-1)  # the first trial with k successes
        rows = torch.nonzero(found).squeeze(-1)
        selected[pending[rows]] = hits[rows, first[rows]]
        pending = pending[~found]
    return selected


def sample_projection_dpp(
    V: torch.Tensor, rank: torch.Tensor, uniforms: torch.Tensor
) -> torch.Tensor:
    """Exact sample of the projection DPP with kernel K = V V^T (sequential chain rule).

    Item j is drawn with probability proportional to K_jj minus what the items already drawn
    explain (a Schur complement), kept up to date by an incremental Cholesky factor C of
    K[:, drawn]; a projection DPP of rank r draws r items (Kulesza & Taskar 2012, Algorithm 1).
    V: (B, m, r), the first rank[b] columns orthonormal and zero after them; uniforms: (B, r)
    -> (B, m) bool with rank[b] True.
    """
    B, m, r = V.shape
    K = V @ V.transpose(-1, -2)  # (B, m, m)
    residual = K.diagonal(dim1=-2, dim2=-1).clone()  # K_jj - K_jS K_SS^-1 K_Sj
    C = torch.zeros(B, r, m, dtype=V.dtype, device=V.device)
    picks = torch.empty(B, r, dtype=torch.int64, device=V.device)
    K_rows = K.view(B * m, m)
    row_offsets = torch.arange(B, device=V.device) * m
    # a row past its rank draws on from residuals of rounding size: harmless, as the rows do
    # not mix and its extra picks are dropped below
    for i in range(r):
        cdf = residual.clamp(min=0.0).cumsum(-1)
        target = uniforms[:, i : i + 1] * cdf[:, -1:]
        j = torch.searchsorted(cdf, target, right=True).clamp_(max=m - 1)  # (B, 1)
        c = K_rows.index_select(0, row_offsets + j.squeeze(-1))  # K[j, :]
        if i:
            C_j = C[:, :i, :].gather(2, j.view(B, 1, 1).expand(B, i, 1))  # (B, i, 1)
            c.sub_((C_j.transpose(-1, -2) @ C[:, :i, :]).squeeze(1))
        c.mul_(residual.gather(1, j).rsqrt())
        C[:, i, :] = c
        residual.addcmul_(c, c, value=-1.0).scatter_(1, j, 0.0)
        picks[:, i] = j.squeeze(-1)
    beyond_rank = torch.arange(r, device=V.device) >= rank.unsqueeze(-1)
    drawn = torch.zeros(B, m + 1, dtype=torch.bool, device=V.device)
    return drawn.scatter_(1, picks.masked_fill_(beyond_rank, m), True)[:, :m]


# ----------------------------------------------------------------------------------------------
# Block-diagonal proposals, accepted with probability det(L_S) / det(Lb_S)
# ----------------------------------------------------------------------------------------------


def weakly_coupled(L: torch.Tensor, threshold: float) -> torch.Tensor:
    """Items whose normalised couplings |L_ij| / sqrt(L_ii L_jj) to all others are <= threshold.

    L: (B, n, n) -> (B, n) bool.
    """
    scale = L.diagonal(dim1=-2, dim2=-1).clamp(min=torch.finfo(L.dtype).tiny).rsqrt()
    weak = torch.empty(L.shape[:2], dtype=torch.bool, device=L.device)

    def find(b: int) -> None:  # one n x n temporary per kernel
        coupling = torch.mul(L[b], scale[b].unsqueeze(-1)).mul_(scale[b])
        coupling.diagonal().zero_()
        weak[b] = torch.maximum(coupling.amax(-1), -coupling.amin(-1)) <= threshold

    side_by_side(find, len(L), L.device)
    return weak


@dataclass
class BlockSpectrum:
    """Eigendecompositions of a batch of block-diagonal proposal kernels: each is its kernel
    with the couplings of some items ("singletons") removed, i.e. one dense block plus 1 x 1
    blocks.

    order: (B, n) the block's items in ascending order, then the singletons; size: (B,) items in
    the block; eigvals: (B, n) > 0, the block's eigenvalues, then the singletons' diagonal
    entries; eigvecs: (B, m, m) the block's eigenvectors in columns, zero-padded to the largest
    block m. Eigenvalue j < size belongs to eigenvector j, eigenvalue j >= size to item
    order[j].
    """

    order: torch.Tensor
    size: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor

    @classmethod
    def of(cls, L: torch.Tensor, singleton: torch.Tensor) -> BlockSpectrum:
        """L: (B, n, n) float64, singleton: (B, n) bool."""
        order = torch.argsort(singleton.to(torch.int8), dim=1, stable=True)
        size = (~singleton).sum(1)
        m = int(size.max())
        eigvals = L.diagonal(dim1=-2, dim2=-1).gather(1, order)
        eigvecs = torch.zeros(len(L), m, m, dtype=L.dtype, device=L.device)
        sizes = size.tolist()

        def decompose(b: int) -> None:
            items = order[b, : sizes[b]]
            block = L[b].index_select(0, items).index_select(1, items)
            eigvals[b, : sizes[b]], eigvecs[b, : sizes[b], : sizes[b]] = torch.linalg.eigh(
                block
            )

        side_by_side(decompose, len(L), L.device)
        eigvals.clamp_(min=torch.finfo(L.dtype).tiny)
        return cls(order, size, eigvals, eigvecs)


def whole_spectrum(L: torch.Tensor) -> BlockSpectrum:
    """The spectra of kernels as their own proposals: one dense block each, no singleton."""
    no_singleton = torch.zeros(L.shape[:2], dtype=torch.bool, device=L.device)
    return BlockSpectrum.of(L, no_singleton)


def sample_k_dpp_blocks(
    spectrum: BlockSpectrum,
    k: int,
    rngs: Sequence[np.random.Generator],
    kernels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact k-DPP samples of the block-diagonal kernels of a BlockSpectrum, one per generator:
    draw b samples kernel kernels[b] (by default kernel b) with generator rngs[b].

    The spectral sampler: k eigenvectors by select_eigenvectors, then the projection DPP
    they span. A singleton's eigenvector is its item; the block's selected eigenvectors V give
    the projection kernel V V^T over the block's items, sampled by sample_projection_dpp.
    -> (len(rngs), n) bool, k True per row (but for a rounding error of probability ~1e-16:
    check).
    """
    device = spectrum.eigvals.device
    if kernels is None:
        kernels = torch.arange(len(rngs), device=device)
    eigvals, size = spectrum.eigvals[kernels], spectrum.size[kernels]
    B, n = eigvals.shape
    m = spectrum.eigvecs.shape[-1]
    selected = select_eigenvectors(eigvals, k, rngs)
    in_block = torch.arange(n, device=device) < size.unsqueeze(-1)
    picked = selected & ~in_block  # singletons whose eigenvector was selected
    # the projection DPP of the selected block eigenvectors V, or, when they are more than
    # half the block, its complement: that of the others, which has the same law
    in_projection = (selected & in_block)[:, :m]
    complement = 2 * in_projection.sum(1) > size
    in_projection[complement] ^= in_block[complement, :m]
    rank = in_projection.sum(1)
    r = int(rank.max())
    # each draw takes as many uniforms as its projection has rank, whatever the batch
    item_uniforms = torch.zeros(B, r, dtype=torch.float64, device=selected.device)
    for b, (rng, rank_b) in enumerate(zip(rngs, rank.tolist())):
        item_uniforms[b, :rank_b] = torch.from_numpy(rng.random(rank_b))
    if r:
        columns = torch.argsort((~in_projection).to(torch.int8), dim=1, stable=True)
        V = spectrum.eigvecs[  # (B, m, r): the selected columns of each draw's kernel
            kernels.view(B, 1, 1),
            torch.arange(m, device=device).view(1, m, 1),
            columns[:, :r].unsqueeze(1),
        ]
        V *= (torch.arange(r, device=V.device) < rank.unsqueeze(-1)).unsqueeze(1)
        drawn = sample_projection_dpp(V, rank, item_uniforms)
    else:
        drawn = torch.zeros(B, m, dtype=torch.bool, device=selected.device)
    drawn[complement] ^= in_block[complement, :m]
    picked[:, :m] |= drawn
    chosen = torch.zeros_like(picked)
    return chosen.scatter_(1, spectrum.order[kernels], picked)


def fischer_log_ratio(
    L: torch.Tensor,
    rows: torch.Tensor,
    singleton: torch.Tensor,
    chosen: torch.Tensor,
    k: int,
) -> torch.Tensor:
    """log det(L_S) - log det(Lb_S) <= 0 for the chosen subsets S, Lb the proposal kernel.

    With S's block items first, the leading part of the Cholesky factor R of L_S is that of
    their block, so log det(Lb_S) = log det(R_block)^2 + sum of the singletons' log L_ii and
    the ratio is the sum over S's singletons of 2 log R_ii - log L_ii. Fischer's inequality
    (the determinant of a PSD matrix is at most the product of its diagonal blocks') makes it
    at most 0. L: (B0, n, n), rows: (B,) into L; singleton, chosen: (B, n) bool with k True
    per row -> (B,).
    """
    B = len(rows)
    items = torch.nonzero(chosen)[:, 1].reshape(B, k)
    is_single = singleton.gather(1, items)
    items = items.gather(1, torch.argsort(is_single.to(torch.int8), dim=1, stable=True))
    is_single = is_single.sort(dim=1, stable=True).values
    L_S = L[rows.view(-1, 1, 1), items.unsqueeze(-1), items.unsqueeze(-2)]
    factor, info = torch.linalg.cholesky_ex(L_S)
    terms = 2.0 * factor.diagonal(dim1=-2, dim2=-1).log() - L_S.diagonal(dim1=-2, dim2=-1).log()
    ratio = (terms * is_single).sum(-1).clamp(max=0.0)
    return torch.where(info == 0, ratio, torch.full_like(ratio, -math.inf))


@dataclass
class BlockProposals:
    """Kernels made ready for exact k-DPP sampling by rejection from block-diagonal proposals:
    the weakly coupled items and the proposals' spectra depend on neither k nor the seed, so
    they are computed once (of) and sampled for any number of (k, seeds) (sample).

    L: (B, n, n) float64 kernels; singleton: (B, n) bool, the items whose normalised couplings
    all lie below the threshold; spectrum: of the proposal kernels, L without those couplings.
    """

    L: torch.Tensor
    singleton: torch.Tensor
    spectrum: BlockSpectrum

    @classmethod
    def of(cls, L: torch.Tensor, threshold: float = COUPLING_THRESHOLD) -> BlockProposals:
        """L: (B, n, n) symmetric PSD."""
        L = L.to(torch.float64)
        singleton = weakly_coupled(L, threshold)
        return cls(L, singleton, BlockSpectrum.of(L, singleton))

    def __len__(self) -> int:
        return len(self.L)

    @property
    def device(self) -> torch.device:
        return self.L.device

    def sample(
        self,
        k: int,
        seeds: Sequence[np.random.SeedSequence],
        kernels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One exact k-DPP sample per seed: P(S) proportional to det(L_S) over |S| = k.

        A proposal S, drawn exactly from the proposal's k-DPP, is accepted with probability
        det(L_S) / det(Lb_S) <= 1 (fischer_log_ratio), which makes accepted draws exact
        k-DPP(L) samples for any threshold; the threshold only sets the cost (a smaller block
        against more rejections). After MAX_PROPOSALS rejections a draw uses its kernel itself
        as the proposal (one dense block, never rejected), which keeps the law exact. The
        draws are made together, as one batch, each from its own random stream, so a sample
        depends only on its kernel, k and seed (but for rounding, whose effect on a draw has
        a probability of order 1e-11). The acceptance tests run at most len(L) at a time; the
        proposals' memory grows with the number of draws, so sample_draws batches them.
        seeds: one per draw; kernels: (len(seeds),) the kernel each draw samples (by default
        draw b samples kernel b) -> (len(seeds), k) int64, sorted rows.
        """
        L = self.L
        n = L.shape[-1]
        device = L.device
        if kernels is None:
            kernels = torch.arange(len(seeds), device=device)
        if not 1 <= k <= n:
            raise ValueError(f"k = {k} must lie in 1..{n}")
        if k == n:
            return torch.arange(n, device=device).repeat(len(seeds), 1)
        rngs = [np.random.default_rng(seed) for seed in seeds]
        samples = torch.empty(len(seeds), k, dtype=torch.int64, device=device)
        pending = torch.arange(len(seeds), device=device)
        singleton, spectrum, in_spectrum = (
            self.singleton[kernels],
            self.spectrum,
            kernels,
        )
        for proposal in itertools.count():
            if proposal == MAX_PROPOSALS:
                singleton = torch.zeros_like(singleton)
                spectrum = whole_spectrum(L[kernels])
                in_spectrum = torch.arange(len(pending), device=device)
            pending_rngs = [rngs[b] for b in pending.tolist()]
            chosen = sample_k_dpp_blocks(spectrum, k, pending_rngs, in_spectrum)
            accept_uniforms = draw_uniforms(pending_rngs, (), device)
            accepted = chosen.sum(1) == k
            tested = torch.nonzero(accepted & singleton.any(1)).squeeze(-1)
            for first in range(0, len(tested), len(L)):
                part = tested[first : first + len(L)]
                log_ratio = fischer_log_ratio(
                    L, kernels[part], singleton[part], chosen[part], k
                )
                accepted[part] = accept_uniforms[part] < log_ratio.exp()
            done = torch.nonzero(accepted).squeeze(-1)
            samples[pending[done]] = torch.nonzero(chosen[done])[:, 1].reshape(len(done), k)
            rejected = ~accepted
            pending, kernels = pending[rejected], kernels[rejected]
            singleton, in_spectrum = singleton[rejected], in_spectrum[rejected]
            if not len(pending):
                return samples
        raise AssertionError("unreachable")


@dataclass
class DppySpectra:
    """Kernels made ready for dppy's exact k-DPP sampler (the reference backend): their
    float64 eigendecompositions, eigvals (B, n) > 0 and eigvecs (B, n, n) in columns."""

    eigvals: torch.Tensor
    eigvecs: torch.Tensor

    @classmethod
    def of(cls, L: torch.Tensor) -> DppySpectra:
        eigvals, eigvecs = torch.linalg.eigh(L.to(torch.float64))
        return cls(eigvals.clamp(min=torch.finfo(torch.float64).tiny), eigvecs)

    def __len__(self) -> int:
        return len(self.eigvals)

    @property
    def device(self) -> torch.device:
        return self.eigvals.device

    def sample(
        self,
        k: int,
        seeds: Sequence[np.random.SeedSequence],
        kernels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The same law as BlockProposals.sample, drawn by dppy -> (len(seeds), k) int64."""
        from dppy.finite_dpps import FiniteDPP

        if kernels is None:
            kernels = torch.arange(len(seeds))
        samples = []
        eigvals, eigvecs = self.eigvals.cpu().numpy(), self.eigvecs.cpu().numpy()
        for kernel, seed in zip(kernels.tolist(), seeds):
            values, vectors = eigvals[kernel], eigvecs[kernel]
            dpp = FiniteDPP("likelihood", L_eig_dec=(values, vectors))
            random_state = np.random.RandomState(np.random.MT19937(seed))
            try:
                with np.errstate(all="ignore"):
                    sample = dpp.sample_exact_k_dpp(size=k, random_state=random_state)
            except ValueError as e:  # dppy's polynomials over/underflow on wide spectra
                raise SamplingError(
                    f"dppy failed on a kernel ({e}); its eigenvalues span "
                    f"{values.max() / values.min():.1e}"
                ) from None
            samples.append(sorted(sample))
        return torch.tensor(samples, dtype=torch.int64, device=self.eigvals.device)


# ----------------------------------------------------------------------------------------------
# The public entries
# ----------------------------------------------------------------------------------------------

Sampler = BlockProposals | DppySpectra


def prepare_k_dpp(L: torch.Tensor, backend: str = "torch") -> Sampler:
    """Kernels L: (B, n, n) made ready, once, for exact k-DPP sampling by a backend ("torch",
    BlockProposals, or "dppy"); sample_draws then draws any number of (k, seeds) from them
    (or .sample(k, seeds, kernels): draw b from kernel kernels[b], by default b ->
    (len(seeds), k) int64)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if backend == "dppy":
        return DppySpectra.of(L)
    return BlockProposals.of(L)


def sample_draws(
    sampler: Sampler,
    draws: Sequence[tuple[int, Sequence[np.random.SeedSequence]]],
    at_once: int = DRAWS_AT_ONCE,
) -> list[torch.Tensor]:
    """For every draw (k, seeds), one exact k-DPP sample from each of the sampler's B
    kernels, kernel b with seeds[b] -> one (B, k) int64 tensor per draw, in order.

    Draws of one k are sampled at_once at a time as one batch (fewer, larger steps); batches
    of different k run side by side on the CPU cores, those of one k one after another, so
    memory holds one batch per core. Every (draw, kernel) has its own random stream: a sample
    depends on neither at_once nor the other draws.
    """
    B = len(sampler)
    by_k: dict[int, list[int]] = {}
    for index, (k, _) in enumerate(draws):
        by_k.setdefault(k, []).append(index)
    batches = [
        [indices[i : i + at_once] for i in range(0, len(indices), at_once)]
        for indices in by_k.values()
    ]
    samples: list[torch.Tensor] = [torch.empty(0)] * len(draws)
    kernels = torch.arange(B, device=sampler.device)

    def sample(worker: int) -> None:  # writes the slots of its own k's draws only
        for batch in batches[worker]:
            k = draws[batch[0]][0]
            seeds = [seed for d in batch for seed in draws[d][1]]
            drawn = sampler.sample(k, seeds, kernels.repeat(len(batch)))
            for d, part in zip(batch, drawn.split(B)):
                samples[d] = part

    side_by_side(sample, len(batches), sampler.device)
    return samples


def sample_k_dpp(
    L: torch.Tensor,
    k: int,
    seeds: Sequence[np.random.SeedSequence],
    threshold: float = COUPLING_THRESHOLD,
) -> torch.Tensor:
    """Exact k-DPP samples of kernels L: (B, n, n), one per kernel and seed -> (B, k) int64."""
    return BlockProposals.of(L, threshold).sample(k, seeds)


def sample_k_dpp_spectral(
    L: torch.Tensor, k: int, seeds: Sequence[np.random.SeedSequence]
) -> torch.Tensor:
    """The reference path: the spectral sampler on each whole kernel (one eigendecomposition
    of L, nothing proposed or rejected), what BlockProposals falls back to after
    MAX_PROPOSALS. L: (B, n, n), one seed per kernel -> (B, k) int64, sorted rows."""
    L = L.to(torch.float64)
    n = L.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} must lie in 1..{n}")
    spectrum = whole_spectrum(L)
    rngs = [np.random.default_rng(seed) for seed in seeds]
    samples = torch.empty(len(rngs), k, dtype=torch.int64, device=L.device)
    pending = torch.arange(len(rngs), device=L.device)
    while len(pending):  # a row of other than k items, from rounding, is drawn again
        chosen = sample_k_dpp_blocks(spectrum, k, [rngs[b] for b in pending.tolist()], pending)
        done = chosen.sum(1) == k
        samples[pending[done]] = torch.nonzero(chosen[done])[:, 1].reshape(-1, k)
        pending = pending[~done]
    return samples
