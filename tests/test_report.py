"""report.py on rows the tests write: summaries, statistics against scipy, the comparisons a
report makes, the files it writes, its command line, and that it needs no torch."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import report as R

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"

# (method, kind, deterministic, samples_dpp, baseline) as MNIST.py's table writes them
METHOD_COLUMNS = {
    "dpp_edge": ("edge", "False", "True", ""),
    "dpp_node": ("node", "False", "True", ""),
    "random_edge": ("edge", "False", "False", "random"),
    "random_node": ("node", "False", "False", "random"),
    "importance_edge": ("edge", "True", "False", "importance"),
    "importance_node": ("node", "True", "False", "importance"),
}


def sweep_row(
    method: str,
    level: float,
    mask: int,
    reweighting: bool,
    accuracy: float,
    beta: str = "",
    node_features: str = "",
) -> dict[str, object]:
    """One row of a sweep CSV, every column filled as MNIST.py fills it."""
    kind, deterministic, samples_dpp, baseline = METHOD_COLUMNS[method]
    return {
        "method": method,
        "kind": kind,
        "beta": beta,
        "node_features": node_features,
        "level": level,
        "k": 5,
        "mask": mask,
        "seed": 1 + mask,
        "reweighting": reweighting,
        "remaining_weights": 100,
        "total_weights": 1000,
        "percent_kept": level,
        "accuracy": accuracy,
        "loss": 0.5,
        "beta_used": "",
        "effective_rank": "",
        "uniformity": "",
        "dataset": "MNIST",
        "checkpoint": "net.pt",
        "deterministic": deterministic,
        "samples_dpp": samples_dpp,
        "baseline": baseline,
        "unpruned_accuracy": 0.9788,
    }


def small_sweep_rows() -> list[dict[str, object]]:
    """dpp_node (beta auto, preactivation) clearly above random_node, importance_node one
    mask, two levels, without and with reweighting."""
    rng = np.random.default_rng(0)
    rows = []
    for reweighting in (False, True):
        for level in (10.0, 50.0):
            for mask in range(4):
                rows.append(
                    sweep_row(
                        "dpp_node",
                        level,
                        mask,
                        reweighting,
                        0.8 + 0.01 * rng.random(),
                        "auto",
                        "preactivation",
                    )
                )
                rows.append(
                    sweep_row(
                        "random_node",
                        level,
                        mask,
                        reweighting,
                        0.6 + 0.01 * rng.random(),
                    )
                )
            rows.append(sweep_row("importance_node", level, 0, reweighting, 0.7))
    return rows


def write_sweep_folder(folder: Path, rows: list[dict[str, object]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.csv").write_text(R.csv_text(rows, R.SWEEP_FIELDS))
    return folder


def test_welch_comparison_agrees_with_scipy() -> None:
    first = np.array([91.2, 90.4, 92.8, 91.9, 90.7])
    second = np.array([89.1, 90.2, 88.4, 89.9, 88.8, 90.5])
    difference, low, high, p_value, verdict = R.compare_accuracies(first, second)
    reference = scipy.stats.ttest_ind(first, second, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert difference == pytest.approx(first.mean() - second.mean())
    assert p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert (low, high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    assert verdict == "better" and p_value < 0.05
    assert R.compare_accuracies(second, first)[4] == "worse"
    same = R.compare_accuracies(first, first + 0.01)
    assert same[4] == "no evidence" and same[1] < 0 < same[2]


def test_a_deterministic_method_is_compared_by_a_one_sample_test() -> None:
    masks = np.array([95.1, 95.6, 94.8, 95.3, 95.0])
    difference, low, high, p_value, verdict = R.compare_accuracies(masks, np.array([94.2]))
    assert difference == pytest.approx(masks.mean() - 94.2)
    reference = scipy.stats.ttest_1samp(masks, 94.2)
    interval = reference.confidence_interval(0.95)
    assert p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert (low + 94.2, high + 94.2) == (
        pytest.approx(interval.low),
        pytest.approx(interval.high),
    )
    assert verdict == "better"
    assert R.compare_accuracies(np.array([1.0]), np.array([2.0]))[4] == "n/a"


def test_a_side_with_equal_values_gives_welchs_limit_without_warnings() -> None:
    masks = np.array([95.1, 95.6, 94.8, 95.3, 95.0])
    constant = np.array([96.0, 96.0, 96.0])
    # Welch with one variance 0: t = d / sqrt(s1^2 / n1) on n1 - 1 degrees of freedom.
    d = masks.mean() - 96.0
    scale = masks.std(ddof=1) / np.sqrt(len(masks))
    p_reference = 2 * scipy.stats.t.sf(abs(d / scale), len(masks) - 1)
    half_width = scipy.stats.t.ppf(0.975, len(masks) - 1) * scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forward = R.compare_accuracies(masks, constant)
        backward = R.compare_accuracies(constant, masks)
    assert forward[0] == pytest.approx(d) and backward[0] == pytest.approx(-d)
    assert forward[3] == pytest.approx(p_reference) == backward[3]
    assert forward[1:3] == (
        pytest.approx(d - half_width),
        pytest.approx(d + half_width),
    )
    assert backward[1:3] == (
        pytest.approx(-d - half_width),
        pytest.approx(-d + half_width),
    )
    assert (forward[4], backward[4]) == ("worse", "better")


def test_the_report_compares_dpp_with_baselines_and_edges_with_nodes() -> None:
    """comparison_pairs, from the roles the rows record: DPP against its kind's baselines,
    edge against node."""
    rows = [
        {k: str(v) for k, v in sweep_row(method, 10.0, 0, False, 0.5, beta, f).items()}
        for method, beta, f in (
            ("dpp_edge", "0.3", ""),
            ("dpp_node", "0.3", "preactivation"),
            ("dpp_node", "auto", "preactivation"),
            ("random_edge", "", ""),
            ("random_node", "", ""),
            ("importance_edge", "", ""),
            ("importance_node", "", ""),
        )
    ]
    pairs = R.comparison_pairs(rows)
    assert len(pairs) == len(set(pairs))
    expected = {
        ("dpp_edge (beta 0.3)", "random_edge"),
        ("dpp_edge (beta 0.3)", "importance_edge"),
        *(
            (f"dpp_node (beta {b}, preactivation)", base)
            for b in ("0.3", "auto")
            for base in ("random_node", "importance_node")
        ),
        ("dpp_edge (beta 0.3)", "dpp_node (beta 0.3, preactivation)"),
        ("random_edge", "dpp_node (beta 0.3, preactivation)"),
        ("random_edge", "dpp_node (beta auto, preactivation)"),
        ("random_edge", "random_node"),
        ("importance_edge", "importance_node"),
    }
    assert set(pairs) == expected
    # a method of no role (a user's, registered without a baseline) is compared with nothing
    for row in rows:
        if row["method"] == "random_node":
            row["baseline"] = ""
    assert not any("random_node" in pair for pair in R.comparison_pairs(rows))


def test_level_accuracy_table_uses_sample_std() -> None:
    rows = [
        {k: str(v) for k, v in sweep_row("random_node", 10, i, False, a).items()}
        for i, a in enumerate((0.5, 0.7))
    ]
    ((level, kept, mean, std, n),) = R.summarize_sweep(rows)[("random_node", False)]
    assert (level, kept, n) == (10.0, 10.0, 2) and mean == pytest.approx(60.0)
    assert std == pytest.approx(np.std([50.0, 70.0], ddof=1))
    assert R.sample_std([3.0]) == 0.0


def test_a_report_is_written_from_the_csv_alone(tmp_path: Path) -> None:
    folder = write_sweep_folder(tmp_path / "sweep", small_sweep_rows())
    report = R.write_report(folder)
    files = R.SweepFiles(folder)
    assert report.table == files.table.read_text()
    assert "unpruned: 97.88%" in report.table
    assert "| dpp_node (beta auto, preactivation) | no |" in report.table
    statistics = files.statistics.read_text()
    assert statistics == report.statistics
    assert "**dpp_node (beta auto, preactivation)** vs **random_node**" in statistics
    comparisons = R.read_csv(files.statistics_csv, R.COMPARISON_FIELDS)
    better = [c for c in comparisons if c["second"] == "random_node"]
    assert len(better) == 4 and {c["verdict"] for c in better} == {"better"}
    for figure in (files.figure, files.beta_figure):
        assert figure.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["sweep.csv", *(p.name for p in report.written)]
    )


# a finder that refuses torch, as a Python without torch installed would
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("torch is not installed")
sys.meta_path.insert(0, NoTorch())
"""


def run_report(*argv: str, block_torch: bool = False) -> subprocess.CompletedProcess:
    """python3 report.py ARGV as a real process; block_torch makes `import torch` fail."""
    code = (NO_TORCH if block_torch else "import sys\n") + (
        "import report\n"
        "code = report.main(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules\n"
        "sys.exit(code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_command_line_rewrites_a_folder_without_torch(tmp_path: Path) -> None:
    folder = write_sweep_folder(tmp_path / "sweep", small_sweep_rows())
    done = run_report(str(folder), block_torch=True)
    assert done.returncode == 0, done.stderr
    assert (folder / "statistics.md").read_text() in done.stdout
    assert "Wrote " in done.stdout


@pytest.mark.parametrize("case", ["missing folder", "no csv", "other columns"])
def test_the_command_line_refuses_bad_folders_in_one_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "sweep"
    if case != "missing folder":
        folder.mkdir()
    if case == "other columns":
        (folder / "sweep.csv").write_text("method,accuracy\ndpp_edge,0.5\n")
    assert R.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(folder) in err


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in RESULTS.iterdir() if (p / "sweep.csv").is_file()),
)
def test_the_committed_reports_are_what_report_py_writes(name: str) -> None:
    """Every results folder's sweep.md and statistics are what report.py renders from its CSV
    (write_report writes exactly these, and the figures)."""
    folder = RESULTS / name
    for file, text in R.render_report(R.read_csv(folder / "sweep.csv")).items():
        assert text == (folder / file).read_text(), file
