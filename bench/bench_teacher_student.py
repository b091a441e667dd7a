"""Benchmark: training many teacher-student students, batched, against a per-sample autograd
loop like the authors'.

Ours: teacher_student.train_students, every student of --students pairs of the authors'
setting (N 500, M 2, K 6, v* 4, lr 0.5) on --num-data online samples, all students one
batch, one hand-written SGD step a sample for all of them (teacher_student.sgd_step), the
samples drawn a block at a time. Theirs, as the authors' teacher_student.py trains (written
here from its rule, not copied): one student at a time, a torch.nn student module, one
sample a step through nn.MSELoss and autograd, the gradients rescaled (the second layer's
halved, the first layer's times sqrt(N) / 2) and torch.optim.SGD with lr / sqrt(N) and lr / N;
it runs --their-samples samples of one student and is scaled linearly to --num-data samples
of --students students. Both in this process, one after the other; the two sides' first
steps are checked to give the same weights.

Run from the repository root, alone on the machine (the target: 100 students of the authors'
setting in at most 20 minutes on 2 cores):

    python3 bench/bench_teacher_student.py
    python3 bench/bench_teacher_student.py --students 10 --num-data 50000
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
import teacher_student as TS

TARGET_MINUTES = 20.0
N, M, K = TS.INPUT_DIM, TS.TEACHER_NODES, TS.STUDENT_NODES  # the authors' setting


class AuthorsStudent(nn.Module):
    """The authors' student module as their code has it: two bias-free linear layers, the
    first layer's output divided by sqrt(N), then erf(. / sqrt 2)."""

    def __init__(self, student: nn.Module, input_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(input_dim, student.w1.weight.shape[0], bias=False)
        self.w2 = nn.Linear(student.w1.weight.shape[0], 1, bias=False)
        self.load_state_dict(student.state_dict())
        self.scale = math.sqrt(input_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(torch.erf(self.w1(x) / self.scale / math.sqrt(2.0)))


def authors_loop(
    teacher: TS.Teacher, student: nn.Module, samples: int, lr: float
) -> tuple[float, AuthorsStudent]:
    """Seconds of `samples` per-sample autograd steps of one student on its teacher's stream,
    and the student after them."""
    N = teacher.input_dim
    model = AuthorsStudent(student, N)
    optimizer = torch.optim.SGD(
        [
            {"params": model.w1.parameters(), "lr": lr / math.sqrt(N)},
            {"params": model.w2.parameters(), "lr": lr / N},
        ]
    )
    loss_function = nn.MSELoss()
    generator = torch.Generator().manual_seed(teacher.data_seed)
    x, noise = TS.sample_block(generator, samples, N)
    with torch.no_grad():
        fields = x @ teacher.w.T / math.sqrt(N)
        y = (torch.erf(fields / math.sqrt(2.0)) @ teacher.v + teacher.sigma * noise).unsqueeze(
            1
        )
    start = time.perf_counter()
    for i in range(samples):
        optimizer.zero_grad()
        loss = loss_function(model(x[i : i + 1]), y[i : i + 1])
        loss.backward()
        model.w2.weight.grad /= 2
        model.w1.weight.grad *= math.sqrt(N) / 2
        optimizer.step()
    return time.perf_counter() - start, model


def ours(students: int, num_data: int, lr: float) -> tuple[float, float]:
    """Seconds of training `students` pairs on num_data samples each as one batch, and their
    mean generalisation error."""
    teachers = [
        TS.make_teacher(N, M, TS.V_STAR, 0.0, "normal", s, num_data) for s in range(students)
    ]
    models = [TS.make_student(N, K, "normal", s) for s in range(students)]
    start = time.perf_counter()
    TS.train_students(teachers, models, lr)
    seconds = time.perf_counter() - start
    errors = [TS.GeneralisationError(t).evaluate(m)[0] for t, m in zip(teachers, models)]
    return seconds, sum(errors) / len(errors)


def same_first_steps(lr: float, samples: int = 50) -> float:
    """The largest weight difference after `samples` steps of one student, ours against
    the authors' loop (float32 rounding only)."""
    teacher = TS.make_teacher(N, M, TS.V_STAR, 0.0, "normal", 0, samples)
    student = TS.make_student(N, K, "normal", 0)
    _, theirs = authors_loop(teacher, student, samples, lr)
    TS.train_students([teacher], [student], lr)
    return float((student.w1.weight - theirs.w1.weight).detach().abs().max())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--num-data", type=int, default=TS.NUM_DATA)
    parser.add_argument("--their-samples", type=int, default=20_000)
    parser.add_argument("--lr", type=float, default=TS.LEARNING_RATE)
    args = parser.parse_args()
    print(
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )
    difference = same_first_steps(args.lr)
    print(f"ours and the authors' loop after 50 steps: max |w1 difference| {difference:.2e}")
    teacher = TS.make_teacher(N, M, TS.V_STAR, 0.0, "normal", 1, args.their_samples)
    seconds, _ = authors_loop(
        teacher, TS.make_student(N, K, "normal", 1), args.their_samples, args.lr
    )
    theirs = seconds * (args.num_data / args.their_samples) * args.students
    mine, error = ours(args.students, args.num_data, args.lr)
    print(
        f"| training | seconds | {args.students} students x {args.num_data} samples |\n"
        f"|---|---:|---|\n"
        f"| ours, one batch | {mine:.1f} | measured (mean eps_g {error:.4g}) |\n"
        f"| the authors' per-sample autograd loop | {theirs:.0f} | scaled from "
        f"{args.their_samples} samples of one student |\n"
        f"\nours {theirs / mine:.0f}x faster; {mine / 60:.1f} min against the target of "
        f"{TARGET_MINUTES:g} min for 100 students"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
