"""The teacher-student world against references computed here: the exact generalisation
error against Monte Carlo on 10^6 fresh inputs (unpruned, edge-pruned, node-pruned and
reweighted students) and 0 for the teacher itself; one online SGD step against autograd; the
error falling over training; the authors' calc_acc.py closed form for random edge masks on a
student made of orthogonal teachers; the exact pruning view against sampled moments; budgets;
every method on a student; the README's commands and bad input (exit 2, one line, nothing
written)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import snapshot

import MNIST as M
import teacher_student as TS

N, TEACHER_NODES, STUDENT_NODES = 100, 2, 6


def small_pair(seed: int = 3, sigma: float = 0.0) -> tuple[TS.Teacher, M.MLP]:
    """A teacher of N 100, M 2 and a student of K 6 trained on 20,000 of its samples."""
    teacher = TS.make_teacher(N, TEACHER_NODES, 4.0, sigma, "normal", seed, 20_000)
    student = TS.make_student(N, STUDENT_NODES, "normal", seed)
    TS.train_students([teacher], [student], lr=0.5)
    return teacher, student


def monte_carlo_error(
    model: M.MLP, teacher: TS.Teacher, samples: int = 1_000_000, seed: int = 0
) -> tuple[float, float]:
    """E[(y_hat - y_noiseless)^2] / 2 over fresh inputs, and its standard error."""
    generator = torch.Generator().manual_seed(seed)
    values = []
    with torch.no_grad():
        for _ in range(samples // 100_000):
            x = torch.randn(100_000, N, generator=generator, dtype=torch.float64)
            y = (
                torch.erf(x @ teacher.w.double().T / math.sqrt(N) / math.sqrt(2))
                @ teacher.v.double()
            )
            y_hat = model.double()(x / math.sqrt(N))[:, 0]
            model.float()
            values.append(0.5 * (y_hat - y) ** 2)
    all_values = torch.cat(values)
    return float(all_values.mean()), float(all_values.std() / math.sqrt(len(all_values)))


def test_the_exact_generalisation_error_is_the_monte_carlo_one() -> None:
    """Within 4 standard errors of 10^6 fresh inputs: the unpruned student, an edge-pruned one
    (dpp_edge), a node-pruned one (dpp_node) and a reweighted one (random_node)."""
    teacher, student = small_pair()
    evaluation = TS.GeneralisationError(teacher)
    view = TS.exact_view(student)
    networks = {"unpruned": student}
    for name, k, reweighting in (("dpp_edge", 40, False), ("dpp_node", 3, False)):
        mask = M.draw_masks(M.METHODS[name], view, [(k, 1)], M.Setting("linear")).masks[0]
        networks[name] = M.prune_with_mask(
            view, evaluation, M.METHODS[name].kind, mask, False
        ).model
    keep = M.draw_masks(M.METHODS["random_node"], view, [(3, 2)], M.Setting()).masks[0]
    networks["reweighted"] = M.prune_with_mask(view, evaluation, "node", keep, True).model
    for name, network in networks.items():
        exact = evaluation.evaluate(network)[0]
        estimate, se = monte_carlo_error(network, teacher)
        assert abs(exact - estimate) < 4 * se, (name, exact, estimate, se)


def test_the_teacher_as_its_own_student_has_no_error() -> None:
    teacher = TS.make_teacher(N, 3, 4.0, 0.25, "normal", 5, 10)
    student = M.MLP([3], input_dim=N, outputs=1, activation="erf", bias=False)
    with torch.no_grad():
        student.w1.weight.copy_(teacher.w)
        student.w2.weight.copy_(teacher.v.unsqueeze(0))
    assert TS.GeneralisationError(teacher).evaluate(student)[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("mode", TS.MODES)
def test_one_sgd_step_is_autograd_s_gradient_scaled(mode: str) -> None:
    """Goldt et al.'s step: w -= (eta / sqrt N) v g'(lambda) Delta x, v -= (eta / N) g Delta,
    i.e. autograd's gradient of (y_hat - y)^2 / 2 on the student fed x / sqrt N, times eta
    for w and eta / N for v (v fixed in soft committee mode): to 1e-6."""
    students = [TS.make_student(N, 4, mode, seed) for seed in (7, 8)]
    x = torch.randn(2, 1, N, generator=torch.Generator().manual_seed(0)) / math.sqrt(N)
    y = torch.tensor([[0.7], [-1.3]])
    expected = []
    for student, xs, ys in zip(students, x, y):
        twin = M.MLP([4], input_dim=N, outputs=1, activation="erf", bias=False)
        twin.load_state_dict(student.state_dict())
        loss = 0.5 * (twin(xs)[0, 0] - ys[0]) ** 2
        loss.backward()
        with torch.no_grad():
            w = twin.w1.weight - 0.5 * twin.w1.weight.grad
            v = twin.w2.weight[0] - (0.5 / N) * twin.w2.weight.grad[0] * (mode == "normal")
        expected.append((w, v))
    W = torch.stack([s.w1.weight.detach().clone() for s in students])
    v = torch.stack([s.w2.weight.detach()[0].clone() for s in students])
    TS.sgd_step(W, v, x, y, lr=0.5, train_v=mode == "normal")
    for (w_expected, v_expected), w_got, v_got in zip(expected, W, v):
        torch.testing.assert_close(w_got, w_expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(v_got, v_expected, rtol=0, atol=1e-6)


def test_training_lowers_the_error_and_a_student_depends_on_its_own_pair_only() -> None:
    """The authors' setting (N 500, M 2, K 6, v* 4, lr 0.5), on 60,000 of its samples: the
    error falls from the initial student's; trained alone or beside another pair, a student
    comes out the same."""
    teachers = [TS.make_teacher(500, 2, 4.0, 0.0, "normal", seed, 60_000) for seed in (1, 2)]
    students = [TS.make_student(500, 6, "normal", seed) for seed in (1, 2)]
    before = [TS.GeneralisationError(t).evaluate(s)[0] for t, s in zip(teachers, students)]
    alone = TS.make_student(500, 6, "normal", 1)
    TS.train_students(teachers, students, lr=0.5)
    TS.train_students(teachers[:1], [alone], lr=0.5)
    after = [TS.GeneralisationError(t).evaluate(s)[0] for t, s in zip(teachers, students)]
    assert all(a < 0.5 * b for a, b in zip(after, before)), (before, after)
    torch.testing.assert_close(alone.w1.weight, students[0].w1.weight, rtol=0, atol=1e-5)


def authors_random_edge_error(c: float, teachers: int, copies: int, v_star: float) -> float:
    """calc_acc.py's closed form, written from its formula: the error of a student of
    `copies` copies of each of `teachers` orthogonal teachers (second-layer v* / copies),
    each edge kept with probability c."""
    scale = teachers * v_star**2
    same = math.asin(c * c / (1 + c))
    student = (scale / math.pi) * (same + (math.asin(c / (1 + c)) - same) / copies)
    return student + scale / 6 - (2 * scale / math.pi) * math.asin(c / math.sqrt(2 + 2 * c))


def test_the_authors_closed_form_for_random_edges_is_the_exact_error_on_average() -> None:
    """Orthogonal teachers (M 2, N 500, rows of norm sqrt N), a student of 3 copies of each
    with v* / 3, Bernoulli(c) edge masks: the exact error averaged over 200 masks is
    calc_acc.py's value within 4 standard errors at each of the authors' budgets."""
    rng = np.random.default_rng(0)
    rows, _ = np.linalg.qr(rng.normal(size=(500, 2)))
    w_star = torch.tensor(rows.T * math.sqrt(500), dtype=torch.float32)
    teacher = TS.Teacher(w_star, torch.full((2,), 4.0), 0.0, "normal", 0, 1)
    W, v = w_star.repeat_interleave(3, 0), torch.full((6,), 4.0 / 3)
    assert TS.generalisation_error(W, v, teacher) == pytest.approx(0.0, abs=1e-9)
    for kept in (83, 166, 250, 333, 417):
        c = kept / 500
        errors = [
            TS.generalisation_error(W * torch.from_numpy(rng.random((6, 500)) < c), v, teacher)
            for _ in range(200)
        ]
        se = np.std(errors, ddof=1) / math.sqrt(len(errors))
        assert abs(np.mean(errors) - authors_random_edge_error(c, 2, 3, 4.0)) < 4 * se, kept


def test_the_exact_view_is_the_limit_of_sampled_moments() -> None:
    """gram() and activation_gram() against sums over 200,000 sampled inputs, divided by
    their number: within 1% of the largest entry."""
    _, student = small_pair()
    view = TS.exact_view(student)
    x = torch.randn(200_000, N, generator=torch.Generator().manual_seed(1)) / math.sqrt(N)
    sampled = M.PruningInputs(student, x)
    for exact, approximate in (
        (view.gram(), sampled.gram() / len(x)),
        (view.activation_gram(), sampled.activation_gram() / len(x)),
    ):
        scale = float(exact.abs().max())
        assert float((exact - approximate).abs().max()) < 0.01 * scale


def test_flap_ranks_the_students_nodes_by_their_exact_fluctuation() -> None:
    """In the exact view (moments of one 'sample') FLAP's score is E[g_h^2] v_h^2: the
    activations have mean 0."""
    _, student = small_pair()
    view = TS.exact_view(student)
    G = view.activation_gram()
    expected = G[1:, 1:].diagonal() * student.w2.weight.detach()[0].double() ** 2
    torch.testing.assert_close(M.flap_scores(view), expected)
    keep = M.draw_masks(M.METHODS["flap_node"], view, [(2, 0)], M.Setting()).masks[0]
    assert set(torch.nonzero(keep).squeeze(-1).tolist()) == set(
        expected.argsort()[-2:].tolist()
    )


def test_the_budgets_beside_the_authors() -> None:
    table = TS.budget_table(500, 6)
    for row in ("| 1 | 501 | 82 | 498 | 83 | 504 |", "| 3 | 1503 | 249 | 1500 | 250 | 1506 |"):
        assert row in table
    assert [TS.authors_edges_per_node(k, 500, 6) for k in range(1, 6)] == [
        83,
        166,
        250,
        333,
        417,
    ]
    shape = M.LayerShape.of((500, 6, 1), 1)
    assert [M.level_to_k("node", lv, shape) for lv in TS.node_levels(6)] == [1, 2, 3, 4, 5]
    edges = [M.level_to_k("edge", lv, shape) for lv in TS.node_levels(6)]
    assert edges == [82, 166, 249, 333, 416]


@pytest.mark.parametrize("name", list(M.METHODS))
def test_every_method_prunes_a_student_with_and_without_reweighting(name: str) -> None:
    teacher, student = small_pair()
    method = M.METHODS[name]
    k = 3 if method.kind == "node" else 50
    for beta in ("linear", "auto"):
        (result,) = TS.prune_student(student, teacher, method, k, M.Setting(beta), 1, 1, True)
        kept = result.mask.sum() if method.kind == "node" else result.mask.sum(-1)
        assert (kept == k).all() and result.right is None
        assert 0 < result.loss and 0 < result.reweighted_loss, name
        if not method.dpp_kernels:
            break


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def ts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Run:
    """ts("--flag", ...) runs teacher_student.main in tmp_path: (code, out, err)."""
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = TS.main(list(argv))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_the_readme_commands_run_as_written(ts: Run, tmp_path: Path) -> None:
    """The authors' four README commands' equivalents (on 5,000 samples: the same commands)."""
    code, out, err = ts(
        *("--procedure", "teacher", "--input_dim", "500", "--teacher_h_size", "2"),
        *("--teacher_path", "teacher.pt", "--num_data", "5000", "--mode", "normal"),
        *("--sig_w", "0", "--v_star", "4"),
    )
    assert code == 0, err
    code, out, err = ts(
        *("--input_dim", "500", "--student_h_size", "6", "--teacher_path", "teacher.pt"),
        *("--nonlinearity", "sigmoid", "--mode", "normal", "--epoch", "1", "--lr", "0.5"),
    )
    assert code == 0 and (tmp_path / "student_6.pt").is_file(), err
    code, out, err = ts(
        *("--input_dim", "500", "--student_h_size", "6", "--teacher_path", "teacher.pt"),
        *("--nonlinearity", "sigmoid", "--pruning_choice", "dpp_node", "--mode", "normal"),
        *("--trained_weights", "student_6.pt", "--procedure", "pruning", "--num_masks", "100"),
        *("--k", "3"),
    )
    assert code == 0 and "over 100 mask(s): eps_g" in out, err
    code, out, err = ts(
        *("--procedure", "order", "--trained_weights", "student_6.pt"),
        *("--teacher_path", "teacher.pt", "--pruning_choice", "dpp_node", "--k", "3"),
        *("--num_masks", "100", "--input_dim", "500"),
    )
    assert code == 0 and "expected Q" in out, err
    assert (tmp_path / "teacher_student" / "order_parameters.png").read_bytes()[
        :4
    ] == b"\x89PNG"


def test_a_sweep_of_pairs_writes_rows_with_the_exact_error_and_its_report(
    ts: Run, tmp_path: Path
) -> None:
    code, _, err = ts(
        *("--procedure", "training", "--pairs", "3", "--num_data", "3000"),
        *("--input_dim", "60", "--out-dir", "pairs", "--no-progress"),
    )
    assert code == 0, err
    students = "pairs"  # its student_1.pt, student_2.pt, student_3.pt
    code, _, err = ts(
        *("--procedure", "sweep", "--trained_weights", students, "--num_masks", "2"),
        *("--methods", "dpp_node,random_node,dpp_edge,random_edge,importance_node"),
        *("--out-dir", "sweep", "--no-progress"),
    )
    assert code == 0, err
    rows = M.report.read_csv(tmp_path / "sweep" / "sweep.csv")
    assert (
        rows[0]["checkpoint"] == "pairs/student_1.pt" and len({r["network"] for r in rows}) == 3
    )
    assert {r["accuracy"] for r in rows} == {""} and all(float(r["loss"]) > 0 for r in rows)
    assert {r["level"] for r in rows} == {str(lv) for lv in TS.node_levels(6)}
    assert "loss" in (tmp_path / "sweep" / "statistics.md").read_text()
    code, _, err = ts("--procedure", "figure", "--sweeps", "sweep", "--out-dir", "fig")
    assert code == 0 and (tmp_path / "fig" / "average_test_loss.png").is_file(), err


BAD = {
    "N not positive": (
        ["--procedure", "teacher", "--teacher_path", "t.pt", "--input_dim", "0"],
        "--input_dim",
    ),
    "M not positive": (
        ["--procedure", "teacher", "--teacher_path", "t.pt", "--teacher_h_size", "0"],
        "--teacher_h_size",
    ),
    "K not positive": (["--procedure", "budget", "--student_h_size", "-1"], "--student_h_size"),
    "K below k": (
        ["--procedure", "pruning", "--trained_weights", "student_6.pt", "--k", "7"],
        "--k 7",
    ),
    "unknown mode": (
        ["--procedure", "teacher", "--teacher_path", "t.pt", "--mode", "committee"],
        "--mode",
    ),
    "unknown nonlinearity": (
        ["--teacher_path", "teacher.pt", "--nonlinearity", "relu"],
        "--nonlinearity",
    ),
    "a teacher missing a field": (
        [
            "--procedure",
            "pruning",
            "--trained_weights",
            "student_6.pt",
            "--teacher_path",
            "broken.pt",
        ],
        "--teacher_path broken.pt",
    ),
    "a flag another than the teacher's": (
        ["--teacher_path", "teacher.pt", "--num_data", "99"],
        "--num_data 99",
    ),
    "pairs with a teacher": (
        ["--procedure", "training", "--pairs", "2", "--teacher_path", "teacher.pt"],
        "--pairs",
    ),
    "sigma below 0": (
        ["--procedure", "teacher", "--teacher_path", "t.pt", "--sig_w", "-0.1"],
        "--sig_w",
    ),
    "teacher of another N": (
        [
            "--procedure",
            "pruning",
            "--trained_weights",
            "student_6.pt",
            "--teacher_path",
            "wide.pt",
        ],
        "--teacher_path wide.pt has N 80",
    ),
    "teacher of another M": (
        [
            "--procedure",
            "pruning",
            "--trained_weights",
            "student_6.pt",
            "--teacher_path",
            "three.pt",
        ],
        "M 3",
    ),
    "a student as the teacher": (
        [
            "--procedure",
            "pruning",
            "--trained_weights",
            "student_6.pt",
            "--teacher_path",
            "student_6.pt",
        ],
        "not a teacher checkpoint",
    ),
    "a teacher as the student": (
        ["--procedure", "pruning", "--trained_weights", "teacher.pt"],
        "dpp-pruning-teacher",
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_exits_2_in_one_line_and_writes_nothing(
    case: str, ts: Run, tmp_path: Path
) -> None:
    teacher = TS.make_teacher(60, 2, 4.0, 0.0, "normal", 1, 100)
    TS.save_teacher(tmp_path / "teacher.pt", teacher)
    TS.save_teacher(tmp_path / "wide.pt", TS.make_teacher(80, 2, 4.0, 0.0, "normal", 1, 100))
    TS.save_teacher(tmp_path / "three.pt", TS.make_teacher(60, 3, 4.0, 0.0, "normal", 1, 100))
    broken = torch.load(tmp_path / "teacher.pt", weights_only=True)
    torch.save(
        {key: value for key, value in broken.items() if key != "sigma"}, tmp_path / "broken.pt"
    )
    student = TS.make_student(60, 6, "normal", 1)
    TS.save_student(
        tmp_path / "student_6.pt", student, teacher, tmp_path / "teacher.pt", 0.5, 1
    )
    before = snapshot(tmp_path)
    argv, named = BAD[case]
    code, _, err = ts(*argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and named in err, err
    assert snapshot(tmp_path) == before
