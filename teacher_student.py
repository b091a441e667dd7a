"""The paper's theory world: a student network learns a teacher network online, is pruned
with MNIST.py's methods, and is scored by its exact generalisation error.

The world (Saad & Solla 1995; Goldt, Advani, Saxe, Krzakala & Zdeborova 2019), as the authors'
teacher-student code sets it up:

* inputs x ~ N(0, I_N);
* a teacher y = sum_m v*_m g(w*_m . x / sqrt N) + sigma zeta, g(u) = erf(u / sqrt 2), zeta ~
  N(0, 1), M hidden nodes;
* a student y_hat = sum_k v_k g(w_k . x / sqrt N), K hidden nodes, no biases, trained by online
  SGD, one fresh sample a step, Delta = y_hat - y: w_k -= (eta / sqrt N) v_k g'(lambda_k)
  Delta x and v_k -= (eta / N) g(lambda_k) Delta (v fixed at 1 in "soft_committee" mode);
* its generalisation error eps_g = E[(y_hat - y_noiseless)^2] / 2, exact for any weights
  from the order parameters Q = W W^T / N, R = W W*^T / N, T = W* W*^T / N.

The student is MNIST.py's MLP (N -> K -> 1, erf, no biases) fed x / sqrt N, so that its first
layer computes w . x / sqrt N; every pruning method of MNIST.METHODS prunes its hidden layer
through the same view (W, the inputs, W_next = v), whose second moments are exact here
(ExactInputs), and the per-mask pipeline scores it by eps_g (GeneralisationError).

    python3 teacher_student.py --procedure teacher --teacher_path teacher.pt --sig_w 0
    python3 teacher_student.py --teacher_path teacher.pt --student_h_size 6 --epoch 1 --lr 0.5
    python3 teacher_student.py --procedure pruning --trained_weights student_6.pt \\
        --teacher_path teacher.pt --pruning_choice dpp_node --k 3 --num_masks 100
    python3 teacher_student.py --procedure training --pairs 100 --out-dir pairs/  # a study's

The file reads top to bottom: the world (teachers, students, eps_g), online SGD, the exact
pruning view, the experiments (pruning one student, sweeps, budgets, order parameters and
figures), then the command line. It imports MNIST.py and report.py; nothing imports it.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

import MNIST as M
import report

if TYPE_CHECKING:  # matplotlib is imported only where a figure is drawn
    from matplotlib.figure import Figure

# the authors' setting
INPUT_DIM = 500  # N
TEACHER_NODES = 2  # M
STUDENT_NODES = 6  # K
V_STAR = 4.0  # the teacher's second-layer weights, normal mode
NUM_DATA = 800_000  # online SGD samples, one pass
LEARNING_RATE = 0.5
MODES = ("normal", "soft_committee")  # v trained, or fixed at 1
# --nonlinearity: the authors' "sigmoid" computes erf(u / sqrt 2) (their forward pass calls
# erf whatever the flag); erf names it as it is
NONLINEARITIES = ("sigmoid", "erf")
SAMPLES_AT_ONCE = 1000  # online samples drawn per block, per pair
# the world's flags a teacher has its own value of, and their values where none is given
WORLD = {
    "input_dim": INPUT_DIM,
    "teacher_h_size": TEACHER_NODES,
    "num_data": NUM_DATA,
    "sig_w": 0.0,
    "v_star": V_STAR,
}
TEACHER_FORMAT = "dpp-pruning-teacher"
TEACHER_VERSION = 1


# what each seed of a pair draws, kept apart: a teacher's weights, its stream, a student's
STREAMS = {"teacher": 0, "data": 1, "student": 2}


def derived_seed(seed: int, stream: str) -> int:
    """The seed of one of a pair's random streams (STREAMS), all drawn from --seed but
    independent of each other (numpy's SeedSequence): a student starts nowhere near its
    teacher though both come from the same seed."""
    state = np.random.SeedSequence([seed, STREAMS[stream]]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))  # torch takes seeds below 2^63


class UsageError(M.UsageError):
    """Bad input that ends the program with exit code 2 and one line."""


# ----------------------------------------------------------------------------------------------
# The world: teachers, students, the exact generalisation error
# ----------------------------------------------------------------------------------------------


@dataclass
class Teacher:
    """A teacher network and the stream of samples it labels: w (M, N) and v (M,) its
    weights, sigma its output noise, mode how v was set, data_seed the seed of the stream
    (inputs and noise, regenerated, never stored) and num_data its length."""

    w: torch.Tensor
    v: torch.Tensor
    sigma: float
    mode: str
    data_seed: int
    num_data: int

    @property
    def input_dim(self) -> int:
        return self.w.shape[1]

    @property
    def nodes(self) -> int:
        return self.w.shape[0]

    def describe(self) -> str:
        return (
            f"teacher-student (N {self.input_dim}, M {self.nodes}, v* "
            f"{float(self.v[0]):g}, sigma {self.sigma:g})"
        )


def make_teacher(
    input_dim: int,
    nodes: int,
    v_star: float,
    sigma: float,
    mode: str,
    seed: int,
    num_data: int,
) -> Teacher:
    """A teacher as the authors' code draws one: w* with i.i.d. N(0, 1) entries (neither
    orthogonalised nor normalised), v* all v_star (all 1 in soft_committee mode); its weights
    and its stream from their own seeds (derived_seed)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, "teacher"))
    w = torch.randn(nodes, input_dim, generator=generator)
    v = torch.full((nodes,), 1.0 if mode == "soft_committee" else float(v_star))
    return Teacher(w, v, float(sigma), mode, derived_seed(seed, "data"), num_data)


def save_teacher(path: Path, teacher: Teacher) -> None:
    """A teacher as a small checkpoint (no samples: they are regenerated from data_seed)."""
    record = {
        "format": TEACHER_FORMAT,
        "version": TEACHER_VERSION,
        "w": teacher.w,
        "v": teacher.v,
        "sigma": teacher.sigma,
        "mode": teacher.mode,
        "data_seed": teacher.data_seed,
        "num_data": teacher.num_data,
    }
    M.atomic_torch_save(record, path)


def load_teacher(path: Path) -> Teacher:
    """The teacher of a checkpoint save_teacher wrote; UsageError naming --teacher_path for
    anything else (a student's checkpoint included) or a field out of place."""
    record = M.read_torch_file(
        path, "--teacher_path", "does not exist (make one: --procedure teacher)"
    )
    if not isinstance(record, dict) or record.get("format") != TEACHER_FORMAT:
        kind = record.get("format") if isinstance(record, dict) else type(record).__name__
        student = " (a network's, e.g. a student's: pass it as --trained_weights)"
        raise UsageError(
            f"--teacher_path {path} is not a teacher checkpoint: its format is {kind}"
            + (student if kind == M.CHECKPOINT_FORMAT else "")
        )
    if record.get("version") != TEACHER_VERSION:
        raise UsageError(
            f"--teacher_path {path} is of version {record.get('version')}; this "
            f"teacher_student.py reads version {TEACHER_VERSION}"
        )
    w, v = record.get("w"), record.get("v")
    if not (isinstance(w, torch.Tensor) and isinstance(v, torch.Tensor)) or (
        w.ndim != 2 or v.shape != (w.shape[0],)
    ):
        raise UsageError(f"--teacher_path {path}: its weights are not (M, N) and (M,)")
    sigma, mode = record.get("sigma"), record.get("mode")
    seed, num_data = record.get("data_seed"), record.get("num_data")
    fields_ok = (
        isinstance(sigma, float | int)
        and sigma >= 0
        and mode in MODES
        and isinstance(seed, int)
        and isinstance(num_data, int)
        and num_data >= 1
    )
    if not fields_ok:
        raise UsageError(
            f"--teacher_path {path}: sigma, mode, data_seed or num_data is missing or wrong"
        )
    return Teacher(w.float(), v.float(), float(sigma), str(mode), seed, num_data)


def make_student(input_dim: int, nodes: int, mode: str, seed: int) -> M.MLP:
    """A student as the authors' code initialises one with their erf ("sigmoid") choice:
    N -> K -> 1, no biases, w and v i.i.d. N(0, 1) (v all 1 in soft_committee mode)."""
    student = M.MLP([nodes], input_dim=input_dim, outputs=1, activation="erf", bias=False)
    generator = torch.Generator().manual_seed(derived_seed(seed, "student"))
    with torch.no_grad():
        student.w1.weight.copy_(torch.randn(nodes, input_dim, generator=generator))
        if mode == "soft_committee":
            student.w2.weight.fill_(1.0)
        else:
            student.w2.weight.copy_(torch.randn(1, nodes, generator=generator))
    return student


def order_parameters(
    w: torch.Tensor, teacher_w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q = W W^T / N, R = W W*^T / N, T = W* W*^T / N in float64.
    w: (K, N), teacher_w: (M, N) -> (Q (K, K), R (K, M), T (M, M))."""
    W, Wt = w.double(), teacher_w.double()
    N = W.shape[1]
    return W @ W.T / N, W @ Wt.T / N, Wt @ Wt.T / N


def erf_covariance(C: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """E[g(u_i) g(u'_j)] = (2 / pi) asin(C_ij / sqrt((1 + a_i)(1 + b_j))) for centred Gaussian
    u, u' of variances a, b and covariance C, g(u) = erf(u / sqrt 2)."""
    return (2 / math.pi) * torch.asin(C / torch.sqrt(torch.outer(1 + a, 1 + b)))


def generalisation_error(w: torch.Tensor, v: torch.Tensor, teacher: Teacher) -> float:
    """eps_g = E[(y_hat - y_noiseless)^2] / 2 over x ~ N(0, I), exactly (Saad & Solla 1995):
    (1/pi) [sum_ik v_i v_k asin(Q_ik / sqrt((1+Q_ii)(1+Q_kk))) + the same of the teacher's
    T and v* - 2 sum_kn v_k v*_n asin(R_kn / sqrt((1+Q_kk)(1+T_nn)))]. A pruned edge is a
    zero in w, a pruned node a zero row (g(0) = 0): exact for every pruned student too.
    w: (K, N), v: (K,) -> float."""
    Q, R, T = order_parameters(w, teacher.w)
    v, v_star = v.double(), teacher.v.double()
    q, t = Q.diagonal(), T.diagonal()
    student = v @ erf_covariance(Q, q, q) @ v
    teachers = v_star @ erf_covariance(T, t, t) @ v_star
    between = v @ erf_covariance(R, q, t) @ v_star
    return float(student + teachers - 2 * between) / 2


@dataclass(frozen=True)
class GeneralisationError:
    """The Evaluator of MNIST.py's per-mask pipeline in this world: a network's exact eps_g
    against the teacher (no test set: nothing to get right)."""

    teacher: Teacher

    def evaluate(self, model: M.MLP) -> tuple[float, None]:
        w, v = model.w1.weight.detach(), model.w2.weight.detach()[0]
        return generalisation_error(w, v, self.teacher), None

    def summary(self, loss: float, right: torch.Tensor | None) -> str:
        return f"eps_g {loss:.5g}"


# ----------------------------------------------------------------------------------------------
# Online SGD, many students at once
# ----------------------------------------------------------------------------------------------


def sample_block(
    generator: torch.Generator, size: int, input_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next size samples of a pair's stream: inputs x (size, N), then noise zeta (size,),
    both N(0, 1): the stream depends on its seed alone, not on the block it is drawn in."""
    x = torch.randn(size, input_dim, generator=generator)
    return x, torch.randn(size, generator=generator)


def sgd_step(
    W: torch.Tensor,
    v: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    train_v: bool,
) -> None:
    """One online SGD step of many students in place: with lambda = W x (x already divided by
    sqrt N), Delta = y_hat - y, W -= lr v g'(lambda) Delta x and v -= (lr / N) g(lambda) Delta
    (both from the same forward pass), g'(u) = sqrt(2 / pi) exp(-u^2 / 2); in x's units this
    is w -= (lr / sqrt N) v g' Delta x and the second-layer rate lr / N of Goldt et al.
    W: (S, K, N), v: (S, K), x: (S, 1, N), y: (S, 1)."""
    lam = (W * x).sum(-1)  # (S, K)
    g = M.erf_activation(lam)
    delta = (v * g).sum(-1, keepdim=True) - y
    coefficient = lam.square_().mul_(-0.5).exp_().mul_(v).mul_(delta)
    coefficient.mul_(math.sqrt(2 / math.pi) * lr)
    if train_v:
        v.addcmul_(g, delta, value=-lr / W.shape[-1])
    W.addcmul_(coefficient.unsqueeze(-1), x, value=-1.0)


@torch.no_grad()
def train_students(
    teachers: Sequence[Teacher],
    students: Sequence[M.MLP],
    lr: float,
    epochs: int = 1,
    progress: bool = False,
) -> None:
    """Train each student on its teacher's stream by online SGD (sgd_step), all of them as
    one batch, in place: one pass over num_data samples per epoch (the stream drawn again
    from its seed: the authors' epochs repeat their samples), SAMPLES_AT_ONCE of every pair
    drawn at a time. A student's weights depend on its own pair only, not on the batch."""
    W = torch.stack([s.w1.weight.detach() for s in students])  # (S, K, N)
    v = torch.stack([s.w2.weight.detach()[0] for s in students])  # (S, K)
    w_star = torch.stack([t.w for t in teachers])  # (S, M, N)
    v_star = torch.stack([t.v for t in teachers]).unsqueeze(1)  # (S, 1, M)
    sigma = torch.tensor([t.sigma for t in teachers]).unsqueeze(1)  # (S, 1)
    train_v = [t.mode for t in teachers] != ["soft_committee"] * len(teachers)
    num_data, N = teachers[0].num_data, teachers[0].input_dim
    with tqdm(total=epochs * num_data, unit="sample", disable=not progress) as bar:
        for _ in range(epochs):
            generators = [torch.Generator().manual_seed(t.data_seed) for t in teachers]
            for start in range(0, num_data, SAMPLES_AT_ONCE):
                size = min(SAMPLES_AT_ONCE, num_data - start)
                blocks = [sample_block(g, size, N) for g in generators]
                xs = torch.stack([b[0] for b in blocks]) / math.sqrt(N)  # (S, size, N)
                noise = torch.stack([b[1] for b in blocks])  # (S, size)
                teacher_field = torch.bmm(xs, w_star.transpose(1, 2))  # (S, size, M)
                y = (M.erf_activation(teacher_field) * v_star).sum(-1) + sigma * noise
                for step in range(size):
                    sgd_step(W, v, xs[:, step : step + 1], y[:, step : step + 1], lr, train_v)
                bar.update(size)
    for student, w_trained, v_trained in zip(students, W, v):
        student.w1.weight.copy_(w_trained)
        student.w2.weight.copy_(v_trained.unsqueeze(0))


# ----------------------------------------------------------------------------------------------
# The pruning view, exact
# ----------------------------------------------------------------------------------------------


@dataclass
class ExactInputs(M.PruningInputs):
    """The student's hidden layer as MNIST.py's pruning methods read it, with the second
    moments exact under x ~ N(0, I) instead of sums over training samples (num_images 1:
    per-sample expectations, as the limit of the authors' sums over 800,000 samples divided
    by their number). The layer reads x / sqrt N: gram() = E[x x^T] / N = I / N; its
    activations g(lambda) have mean 0 and E[g_a g_b] = erf_covariance of Q = W W^T / N
    (activation_gram, the intercept's row and column first as on MNIST)."""

    @property
    def num_images(self) -> int:
        return 1

    def gram(self) -> torch.Tensor:
        N = self.W.shape[1]
        return self._cached("gram", lambda: torch.eye(N, dtype=torch.float64) / N)

    def input_sums(self) -> torch.Tensor:
        return torch.zeros(self.W.shape[1], dtype=torch.float64)

    def activation_gram(self) -> torch.Tensor:
        def exact() -> torch.Tensor:
            Q = M.preactivation_gram(self.W, self.gram())
            q = Q.diagonal()
            G = torch.zeros(len(Q) + 1, len(Q) + 1, dtype=torch.float64)
            G[0, 0] = 1.0
            G[1:, 1:] = erf_covariance(Q, q, q)
            return G

        return self._cached("activation_gram", exact)

    def inputs(self) -> torch.Tensor:
        raise NotImplementedError("the exact view has moments, not samples")


# ----------------------------------------------------------------------------------------------
# Experiments: one student pruned, sweeps, budgets, order parameters, the loss figure
# ----------------------------------------------------------------------------------------------


def exact_view(student: M.MLP, layer: int = 1) -> ExactInputs:
    """The pruning view of a student's hidden layer (ExactInputs)."""
    return ExactInputs(student, torch.empty(0, student.sizes[0]), layer)


def node_levels(nodes: int) -> list[float]:
    """The levels (percent of the weights kept) of keeping 1 ... K - 1 of K nodes."""
    return [100.0 * k / nodes for k in range(1, nodes)]


def authors_edges_per_node(kept_nodes: int, input_dim: int, nodes: int) -> int:
    """The authors' matched edges per node, (k N + k - K) / K rounded half up (cal_param_ts):
    83, 166, 250, 333, 417 at N = 500, K = 6."""
    return math.floor((kept_nodes * input_dim + kept_nodes - nodes) / nodes + 0.5)


def budget_table(input_dim: int, nodes: int) -> str:
    """The student's node and edge budgets: this project's matching rule (never more weights
    for edges than for nodes) beside the authors' table."""
    shape = M.LayerShape(inputs=input_dim, nodes=nodes, above=1)
    head = (
        f"Budgets of the student N {input_dim} -> K {nodes} -> 1 ({shape.total_weights} "
        f"weights): k nodes keep k (N + 1), e edges per node K (e + 1); e = floor((k (N + 1) "
        "- K) / K), the authors' (k N + k - K) / K rounded half up."
    )
    lines = [
        head,
        "",
        *report.table_head(
            "nodes kept (k) | weights | edges per node (e) | weights | the authors' e | weights"
        ),
    ]
    for k in range(1, nodes):
        e = M.matched_edges_per_node(k, shape)
        theirs = authors_edges_per_node(k, input_dim, nodes)
        cells = [
            k,
            shape.kept_weights("node", k),
            e,
            shape.kept_weights("edge", e),
            theirs,
            shape.kept_weights("edge", theirs),
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def load_student(path: Path) -> tuple[M.MLP, dict]:
    """A student checkpoint: an erf MLP N -> K -> 1 without biases (UsageError naming
    --trained_weights for anything else, a teacher's included)."""
    model, meta = M.load_checkpoint(path, "--trained_weights", input_dim=None, outputs=1)
    if model.activation != "erf" or model.has_bias or len(model.hidden_sizes) != 1:
        raise UsageError(
            f"--trained_weights {path} is {model.architecture} ({model.activation}, biases "
            f"{model.has_bias}), not a student: erf, one hidden layer, no biases"
        )
    return model, meta


def student_teacher(
    path: Path, student: M.MLP, meta: dict, teacher_path: Path | None
) -> tuple[Teacher, Path]:
    """The teacher of a student: --teacher_path, else the one its checkpoint names (beside
    it); UsageError where its N or M is not the student's teacher's."""
    named = meta.get("teacher")
    if not isinstance(named, dict) or not isinstance(named.get("file"), str):
        named = None
    if teacher_path is None and named is None:
        raise UsageError(f"--trained_weights {path} names no teacher: give --teacher_path")
    where = teacher_path or path.parent / named["file"]  # type: ignore[index]
    teacher = load_teacher(where)
    if teacher.input_dim != student.sizes[0]:
        raise UsageError(
            f"--teacher_path {where} has N {teacher.input_dim}, but --trained_weights {path} "
            f"has {student.sizes[0]} inputs"
        )
    if named is not None and named.get("nodes") not in (None, teacher.nodes):
        raise UsageError(
            f"--teacher_path {where} has M {teacher.nodes}, but --trained_weights {path} was "
            f"trained on a teacher of M {named['nodes']}"
        )
    return teacher, where


def save_student(
    path: Path, student: M.MLP, teacher: Teacher, teacher_file: Path, lr: float, epochs: int
) -> None:
    """A student checkpoint (MNIST.py's format) that names its teacher, beside it."""
    extra = {
        "teacher": {"file": teacher_file.name, "nodes": teacher.nodes},
        "train_args": {"lr": lr, "epoch": epochs, "num_data": teacher.num_data},
        "generalisation_error": GeneralisationError(teacher).evaluate(student)[0],
    }
    M.save_checkpoint(path, student, extra)


def prune_student(
    student: M.MLP,
    teacher: Teacher,
    method: M.Method,
    k: int,
    setting: M.Setting,
    seed: int,
    num_masks: int,
    reweighting: bool,
) -> list[M.PruningResult]:
    """num_masks masks of the student's hidden layer (mask i with seed + i; a deterministic
    method once), each through MNIST.py's pipeline, scored by eps_g."""
    masks = 1 if method.deterministic else num_masks
    cells = [M.Cell(method, k, seed + i, setting, 1, index=i) for i in range(masks)]
    evaluation = GeneralisationError(teacher)
    return [
        result
        for _, result, _ in M.run_cells(exact_view(student), evaluation, cells, reweighting)
    ]


def expected_order_parameters(
    student: M.MLP, teacher: Teacher, results: Sequence[M.PruningResult]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Q and R of the pruned students, averaged over their masks (the authors' evaluate.py:
    their expected Q and R), from each result's network."""
    orders = [order_parameters(r.model.w1.weight.detach(), teacher.w) for r in results]
    return (
        torch.stack([Q for Q, _, _ in orders]).mean(0),
        torch.stack([R for _, R, _ in orders]).mean(0),
    )


def order_figure(panels_: Sequence[tuple[str, torch.Tensor]], title: str) -> Figure:
    """Heatmaps of |order parameters| as the authors' evaluate.py draws them: the absolute
    values, viridis, a colour bar each, the values written in; two panels a row."""
    import matplotlib.figure

    rows = math.ceil(len(panels_) / 2)
    fig = matplotlib.figure.Figure(figsize=(9, 4.2 * rows + 0.6), layout="constrained")
    for ax, (name, matrix) in zip(fig.subplots(rows, 2, squeeze=False).ravel(), panels_):
        values = matrix.abs().numpy()
        image = ax.imshow(values, cmap="viridis")
        fig.colorbar(image, ax=ax, shrink=0.8)
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w")
        report.panel_title(ax, name, 10)
        ax.set_xticks(range(values.shape[1]))
        ax.set_yticks(range(values.shape[0]))
    report.figure_title(fig, title, 10)
    return fig


def loss_figure(folders: Sequence[Path], plan: report.Plan) -> Figure:
    """The authors' "Noiseless / Noise 0_25 Average Test Loss" of sweep folders (one noise
    level each), a row of panels each, without / with reweighting (report.endpoint_panel, as
    sweep.png): eps_g against the parameters kept (k nodes : e edges per node), every
    method at the plan's setting, the mean over students and each method's own 1 - alpha
    band; the unpruned students' mean a grey line."""
    fig, axes = report.panels(len(folders), (16, 5.2 * len(folders) + 1.0))
    every = [report.read_csv(folder / report.SWEEP_CSV) for folder in folders]
    shown = list(dict.fromkeys(g for rows in every for g in report.shown_groups(rows, plan)))
    styles = report.method_styles([row for rows in every for row in rows], shown)
    for row_axes, rows in zip(axes, every):
        kept: dict[float, dict[str, str]] = {}  # level -> kind -> k
        for row in rows:
            kept.setdefault(float(row["level"]), {})[row["kind"]] = row["k"]
        levels = sorted(kept)
        names = [f"{kept[lv].get('node', '-')}:{kept[lv].get('edge', '-')}" for lv in levels]
        students = len({row["network"] for row in rows})
        for ax, reweighting in zip(row_axes, (False, True)):
            report.endpoint_panel(ax, rows, plan, reweighting, shown, styles)
            ax.set_xticks(levels, names)
            ax.set_xlabel("parameters kept (k nodes : e edges per node)")
            state = "with least-squares reweighting" if reweighting else "without reweighting"
            title = f"{rows[0]['dataset']}, {students} students, {state}"
            report.panel_title(ax, title, 10)
        row_axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    report.figure_title(
        fig,
        "The pruned students' generalisation error eps_g (the authors' Average Test Loss; "
        f"lower is better), mean over students; bands: each method's own {1 - plan.alpha:.0%} "
        "t interval over students, not paired; edge methods solid, node methods dashed",
        11,
    )
    return fig


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def nonlinearity(text: str) -> str:
    """--nonlinearity: "sigmoid" (the authors' name for what their code computes, erf(u /
    sqrt 2)) or "erf"."""
    if text not in NONLINEARITIES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the theory's student is erf(u / sqrt 2), which the authors call "
            f"'sigmoid' (their code computes it for every choice); choose from "
            f"{', '.join(NONLINEARITIES)}"
        )
    return text


def folder_list(text: str) -> list[Path]:
    """--sweeps: comma-separated sweep folders."""
    return [Path(part) for part in M.split_items(text, "folders")]


def build_parser() -> argparse.ArgumentParser:
    parser = M.OneLineErrorParser(
        prog="teacher_student.py",
        description="The teacher-student world of the paper's theory: make teachers, train "
        "students by online SGD, prune them with MNIST.py's methods, score them by their "
        "exact generalisation error. Flags as the authors' where they have one.",
        formatter_class=M.DefaultsHelpFormatter,
        allow_abbrev=False,
    )
    add = parser.add_argument
    add(
        "--procedure",
        choices=(
            "teacher",
            "training",
            "pruning",
            "test",
            "sweep",
            "budget",
            "order",
            "figure",
        ),
        default="training",
        help="teacher: make --teacher_path (the authors' teacher_dataset.py); training: train "
        "a student of it (with --pairs: many pairs); pruning (or test): prune "
        "--trained_weights and score it; sweep: students x --methods x --levels x --num_masks "
        "into --out-dir; budget: node and edge budgets; order: order parameters and their "
        "heatmaps (the authors' evaluate.py); figure: eps_g against parameters kept of "
        "--sweeps",
    )
    add("--seed", type=M.nonnegative_int, default=1, help="of the teacher, student and masks")
    add("--no-progress", action="store_true", help="no progress bars (off without a terminal)")

    add = parser.add_argument_group("the world (the authors' flags)").add_argument
    # a teacher's own (None: WORLD, or the teacher's when one is given)
    add("--input_dim", type=M.positive_int, metavar="N", help=f"inputs ({INPUT_DIM})")
    add(
        "--teacher_h_size",
        type=M.positive_int,
        metavar="M",
        help=f"teacher nodes ({TEACHER_NODES})",
    )
    add("--student_h_size", type=M.positive_int, default=STUDENT_NODES, metavar="K")
    add("--num_data", type=M.positive_int, help=f"online samples per epoch ({NUM_DATA})")
    add("--mode", choices=MODES, default="normal", help="second layers trained, or all 1")
    add("--sig_w", type=M.nonnegative_float, metavar="SIGMA", help="label noise (0)")
    add("--v_star", type=M.positive_float, help=f"the teacher's v, normal mode ({V_STAR:g})")
    add(
        "--nonlinearity",
        type=nonlinearity,
        default="sigmoid",
        help="the authors' 'sigmoid' is erf(u / sqrt 2), the only one (erf names it so)",
    )
    add("--epoch", type=M.positive_int, default=1, help="passes over the stream")
    add("--lr", type=M.positive_float, default=LEARNING_RATE, help="eta of online SGD")
    add("--teacher_path", type=Path, help="the teacher checkpoint (teacher.pt)")
    add(
        "--trained_weights",
        type=M.checkpoint_list,
        help="student checkpoint(s); a sweep takes several, or a folder of --pairs' students",
    )

    add = parser.add_argument_group("pruning").add_argument
    add("--pruning_choice", choices=tuple(M.METHODS), default="dpp_node", help="method")
    add("--k", type=M.positive_int, default=3, help="nodes, or edges per node, kept")
    add("--num_masks", type=M.positive_int, default=1, help="masks (deterministic: one)")
    add(
        "--beta",
        type=M.beta_value,
        default=M.LINEAR,
        help="the DPP kernels' beta (MNIST.py's --beta); linear: Z^T Z, the authors' node "
        "kernel here",
    )
    add("--node-features", choices=M.NODE_FEATURES, default="preactivation")
    add("--reweighting", action="store_true", help="least-squares reweighting after pruning")

    add = parser.add_argument_group("experiments").add_argument
    add("--pairs", type=M.positive_int, help="training: this many teacher-student pairs")
    add("--methods", type=M.method_list, default=",".join(M.METHODS), help="a sweep's")
    add("--levels", type=M.level_list, help="percents of weights kept (nodes 1 ... K - 1)")
    add("--betas", type=M.beta_list, help="a sweep's betas (--beta when not given)")
    add(
        "--node-settings",
        type=M.node_setting_list,
        metavar="BETA:FEATURES,...",
        help="a sweep's node DPP settings (--betas x --node-features when not given)",
    )
    add(
        "--plan",
        type=Path,
        metavar="PLAN.toml",
        help="the analysis plan a sweep's report tests",
    )
    add("--sweeps", type=folder_list, metavar="DIR,...", help="figure: sweep folders")
    add(
        "--out-dir",
        type=Path,
        default=Path("teacher_student"),
        help="of a sweep, pairs, figures",
    )
    add("--save-as", type=Path, metavar="PATH", help="training: save the student here")
    return parser


def validated(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Cross-flag checks (parser.error: exit 2, one line) and the defaults that depend on
    others."""
    procedure = "test" if args.procedure == "pruning" else args.procedure
    needs = {
        "test": ("--trained_weights",),
        "order": ("--trained_weights",),
        "sweep": ("--trained_weights",),
        "figure": ("--sweeps",),
    }
    for flag in needs.get(procedure, ()):
        if getattr(args, flag.lstrip("-")) is None:
            parser.error(f"--procedure {procedure} needs {flag}")
    if procedure == "teacher" and args.teacher_path is None:
        parser.error("--procedure teacher needs --teacher_path (where to write it)")
    if procedure == "training" and args.pairs is None and args.teacher_path is None:
        parser.error("--procedure training needs --teacher_path, or --pairs to make its own")
    if (
        args.trained_weights is not None
        and len(args.trained_weights) > 1
        and procedure != "sweep"
    ):
        parser.error("--trained_weights takes one student outside a sweep")
    if args.pairs is not None and procedure != "training":
        parser.error("--pairs only applies to --procedure training")
    if args.pairs is not None and args.teacher_path is not None:
        parser.error("--pairs makes its own teachers: omit --teacher_path")
    given = {name: value for name in WORLD if (value := getattr(args, name)) is not None}
    filled = {
        **WORLD,
        **given,
        "given": given,
        "procedure": procedure,
        "betas": args.betas or [args.beta],
    }
    return argparse.Namespace(**{**vars(args), **filled})


def check_k(k: int, method: M.Method, student: M.MLP, path: Path) -> None:
    """--k within the student's layer: K nodes, N edges per node."""
    ground = student.sizes[0] if method.kind == "edge" else student.sizes[1]
    if not 1 <= k <= ground:
        items = "inputs per node" if method.kind == "edge" else "hidden nodes"
        raise UsageError(
            f"--k {k} is larger than the {ground} {items} of --trained_weights {path} "
            f"({method.name})"
        )


def teacher_of_flags(args: argparse.Namespace, seed: int) -> Teacher:
    """The teacher of the world's flags (make_teacher) and this seed."""
    return make_teacher(
        args.input_dim,
        args.teacher_h_size,
        args.v_star,
        args.sig_w,
        args.mode,
        seed,
        args.num_data,
    )


def teacher_command(args: argparse.Namespace, progress: bool) -> None:
    """--procedure teacher: a teacher of --teacher_h_size nodes on --input_dim inputs."""
    M.check_writable(args.teacher_path)
    teacher = teacher_of_flags(args, args.seed)
    save_teacher(args.teacher_path, teacher)
    print(f"Saved {args.teacher_path}: {teacher.describe()}, {teacher.num_data} samples")


def check_teacher_flags(teacher: Teacher, args: argparse.Namespace) -> None:
    """The world's flags given beside --teacher_path must be its teacher's (UsageError)."""
    own = {
        "input_dim": teacher.input_dim,
        "teacher_h_size": teacher.nodes,
        "num_data": teacher.num_data,
        "sig_w": teacher.sigma,
        "v_star": float(teacher.v[0]),
        "mode": teacher.mode,
    }
    given = {**args.given, "mode": args.mode}
    for name, value in given.items():
        if value != own[name] and not (name == "v_star" and teacher.mode == "soft_committee"):
            raise UsageError(
                f"--{name} {value} is not --teacher_path {args.teacher_path}'s, {own[name]}"
            )


def training_command(args: argparse.Namespace, progress: bool) -> None:
    """--procedure training: a student of --teacher_path (saved as --save-as, else the
    authors' student_K.pt); with --pairs P, P new pairs of seeds --seed ... --seed + P - 1
    into --out-dir (teacher_S.pt, student_S.pt), trained as one batch."""
    if args.pairs is None:
        teachers = [load_teacher(args.teacher_path)]
        check_teacher_flags(teachers[0], args)
        teacher_paths = [args.teacher_path]
        student_paths = [args.save_as or Path(f"student_{args.student_h_size}.pt")]
        M.check_writable(student_paths[0])
    else:
        M.prepare_out_dir(args.out_dir)
        seeds = range(args.seed, args.seed + args.pairs)
        teacher_paths = [args.out_dir / f"teacher_{seed}.pt" for seed in seeds]
        student_paths = [args.out_dir / f"student_{seed}.pt" for seed in seeds]
        teachers = [teacher_of_flags(args, seed) for seed in seeds]
        for path, teacher in zip(teacher_paths, teachers):
            save_teacher(path, teacher)
    students = [
        make_student(t.input_dim, args.student_h_size, t.mode, args.seed + i)
        for i, t in enumerate(teachers)
    ]
    print(
        f"Training {len(students)} student(s) of K {args.student_h_size} on "
        f"{teachers[0].num_data} samples x {args.epoch} epoch(s), lr {args.lr}: "
        f"{teachers[0].describe()}"
    )
    train_students(teachers, students, args.lr, args.epoch, progress)
    for path, student, teacher, teacher_file in zip(
        student_paths, students, teachers, teacher_paths
    ):
        save_student(path, student, teacher, teacher_file, args.lr, args.epoch)
    errors = [GeneralisationError(t).evaluate(s)[0] for t, s in zip(teachers, students)]
    where = student_paths[0] if len(students) == 1 else args.out_dir
    spread = f" ± {report.sample_std(errors):.4g}" if len(errors) > 1 else ""
    print(f"Saved {where}: eps_g {np.mean(errors):.5g}{spread}")


def pruning_command(args: argparse.Namespace, progress: bool) -> None:
    """--procedure pruning (test): --num_masks masks of --pruning_choice at --k, each scored
    by eps_g, without and (--reweighting) with reweighting."""
    (path,) = args.trained_weights
    student, meta = load_student(path)
    teacher, _ = student_teacher(path, student, meta, args.teacher_path)
    method = M.METHODS[args.pruning_choice]
    check_k(args.k, method, student, path)
    setting = M.Setting(args.beta, args.node_features)
    unpruned = GeneralisationError(teacher).evaluate(student)[0]
    print(f"Unpruned: eps_g {unpruned:.5g} ({teacher.describe()})")
    results = prune_student(
        student, teacher, method, args.k, setting, args.seed, args.num_masks, args.reweighting
    )
    for i, result in enumerate(results):
        line = f"Mask {i + 1}/{len(results)} (seed {args.seed + i}): eps_g {result.loss:.5g}"
        if result.reweighted_loss is not None:
            line += f", reweighted {result.reweighted_loss:.5g}"
        print(f"{line} ({result.remaining_weights}/{result.total_weights} weights)")
    losses = [r.loss for r in results]
    print(
        f"{method.name} k={args.k} over {len(results)} mask(s): eps_g {np.mean(losses):.5g} ± "
        f"{report.sample_std(losses):.3g}"
        + (
            f", reweighted {np.mean([r.reweighted_loss for r in results]):.5g}"
            if args.reweighting
            else ""
        )
    )


def order_command(args: argparse.Namespace, progress: bool) -> None:
    """--procedure order: the student's Q, R and the teacher's T, its eps_g; Q and R of the
    student pruned by --pruning_choice at --k, averaged over its --num_masks masks; their
    heatmaps in --out-dir/order_parameters.png."""
    (path,) = args.trained_weights
    student, meta = load_student(path)
    teacher, _ = student_teacher(path, student, meta, args.teacher_path)
    method = M.METHODS[args.pruning_choice]
    check_k(args.k, method, student, path)
    Q, R, T = order_parameters(student.w1.weight.detach(), teacher.w)
    torch.set_printoptions(precision=3, sci_mode=False)
    print(f"eps_g {GeneralisationError(teacher).evaluate(student)[0]:.5g}")
    print(f"Q (student, K x K):\n{Q}\nR (student x teacher, K x M):\n{R}\nT (M x M):\n{T}")
    setting = M.Setting(args.beta, args.node_features)
    results = prune_student(
        student, teacher, method, args.k, setting, args.seed, args.num_masks, False
    )
    expected_Q, expected_R = expected_order_parameters(student, teacher, results)
    print(f"over {len(results)} mask(s) of {method.name} k={args.k}:")
    print(f"expected Q:\n{expected_Q}\nexpected R:\n{expected_R}")
    M.prepare_out_dir(args.out_dir)
    figure = order_figure(
        [
            ("Q, unpruned", Q),
            (f"Q, {method.name} k={args.k}, mean over masks", expected_Q),
            ("R, unpruned", R),
            (f"R, {method.name} k={args.k}, mean over masks", expected_R),
        ],
        f"|order parameters| of {path} ({teacher.describe()})",
    )
    out = args.out_dir / "order_parameters.png"
    report.save_figure(figure, out)
    print(f"Wrote {out}")


def student_files(paths: Sequence[Path]) -> list[Path]:
    """--trained_weights: the files given, a folder standing for its student_S.pt in the
    order of S (what --pairs writes)."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("student_*.pt"), key=lambda p: int(p.stem.split("_")[-1]))
            if not found:
                raise UsageError(f"--trained_weights {path} holds no student_*.pt")
            files += found
        else:
            files.append(path)
    return files


def load_students(
    paths: Sequence[Path], teacher_path: Path | None
) -> list[tuple[M.Network, Teacher]]:
    """The students of a sweep (student_files) with their teachers, one world: the same N,
    M, v* and sigma (UsageError else), each a network once."""
    found = []
    for path in student_files(paths):
        student, meta = load_student(path)
        teacher, _ = student_teacher(path, student, meta, teacher_path)
        found.append((M.Network(path, student, M.weights_fingerprint(student)), teacher))
    worlds = {teacher.describe() for _, teacher in found}
    if len(worlds) > 1:
        raise UsageError(f"--trained_weights are students of several worlds: {sorted(worlds)}")
    return found


def sweep_command(args: argparse.Namespace, progress: bool) -> None:
    """--procedure sweep: every student of --trained_weights x --methods x their settings x
    --levels x --num_masks, with and without reweighting, into --out-dir's sweep.csv
    (resumed), then its report (under --plan)."""
    plan = M.read_plan(args.plan)
    pairs = load_students(args.trained_weights, args.teacher_path)
    M.prepare_out_dir(args.out_dir)
    sweep_csv = args.out_dir / report.SWEEP_CSV
    dataset = pairs[0][1].describe()
    networks = [network for network, _ in pairs]
    rows = M.earlier_rows(sweep_csv, networks, dataset, args.seed)
    done = {report.cell_key(row) for row in rows}
    cells = {
        network.fingerprint: M.sweep_cells(
            args.methods,
            args.levels or node_levels(network.model.sizes[1]),
            args.num_masks,
            args.seed,
            network.model.sizes,
            (1,),
            args.betas,
            [args.node_features],
            args.node_settings,
        )
        for network in networks
    }
    M.check_sweep_plan(plan, rows, itertools.chain.from_iterable(cells.values()))
    for network, teacher in pairs:
        mine = cells[network.fingerprint]
        todo = [c for c in mine if (network.fingerprint, *c.key) not in done]
        earlier = sum(row["network"] == network.fingerprint for row in rows) // 2
        view = partial(exact_view, network.model)
        evaluation = GeneralisationError(teacher)
        M.run_sweep(network, view, evaluation, todo, sweep_csv, dataset, earlier, progress)
    written = M.write_sweep_report(args.out_dir, plan)
    print(written.statistics)
    print("Wrote " + ", ".join(str(path) for path in [sweep_csv, *written.written]))


def budget_command(args: argparse.Namespace, progress: bool) -> None:
    """--procedure budget: the student's node and edge budgets beside the authors'."""
    print(budget_table(args.input_dim, args.student_h_size))


def figure_command(args: argparse.Namespace, progress: bool) -> None:
    """--procedure figure: eps_g against parameters kept of --sweeps, a row each, every
    method at --plan's setting."""
    for folder in args.sweeps:
        if not (folder / report.SWEEP_CSV).is_file():
            raise UsageError(f"--sweeps {folder} holds no {report.SWEEP_CSV}")
    plan = M.read_plan(args.plan)
    if not plan.source:
        loss = report.Endpoint(column="loss", scale=1.0, unit="eps_g", higher_is_better=False)
        plan = replace(plan, endpoint=loss)
    M.prepare_out_dir(args.out_dir)
    out = args.out_dir / "average_test_loss.png"
    report.save_figure(loss_figure(args.sweeps, plan), out)
    print(f"Wrote {out}")


COMMANDS: dict[str, Callable[[argparse.Namespace, bool], None]] = {
    "teacher": teacher_command,
    "training": training_command,
    "test": pruning_command,
    "order": order_command,
    "sweep": sweep_command,
    "budget": budget_command,
    "figure": figure_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = validated(parser, parser.parse_args(argv))
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        COMMANDS[args.procedure](args, progress)
    except M.UsageError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return M.EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; no file was left half-written", file=sys.stderr)
        return M.EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
