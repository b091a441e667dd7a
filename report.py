"""Sweep reports: rows in, reports out.

A sweep of MNIST.py writes one row per pruned network into its folder's sweep.csv
(SWEEP_FIELDS): the method, its kind and role, the level of weights kept, the mask and its
seed, with or without reweighting, the test accuracy, and the unpruned accuracy. This file
turns those rows into the sweep's report, and nothing else:

* sweep.md        test accuracy per method, setting and level (mean ± std over masks);
* statistics.md   every comparison of DPP methods with their baselines and of edges with
  statistics.csv  nodes, per level: difference, 95% confidence interval, Welch's p-value;
* sweep.png       accuracy against weights kept; sweep_beta.png, accuracy against beta.

Run on a sweep's folder, it rewrites these from sweep.csv alone:

    python3 report.py sweep

It imports numpy, scipy and matplotlib only (no torch, no data), and MNIST.py calls
write_report at the end of every sweep.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.stats

if TYPE_CHECKING:  # matplotlib is imported only where a figure is drawn
    from matplotlib.figure import Figure

# the significance level of the comparisons (95% confidence intervals)
ALPHA = 0.05
Row = dict[str, str]

# One row per (mask, reweighting); True/False as Python writes them. What a comparison needs
# of a method (kind, samples_dpp, baseline, deterministic) is in every row.
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
    "deterministic",
    "samples_dpp",
    "baseline",
    "unpruned_accuracy",
)
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


@dataclass(frozen=True)
class SweepFiles:
    """What a sweep folder holds."""

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


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call write(temporary name) beside path, then rename: never a half-written file, and the
    previous file survives any failure or interruption."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def csv_text(rows: Sequence[dict[str, object]], fields: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_csv(path: Path, fields: Sequence[str] = SWEEP_FIELDS) -> list[Row]:
    """The rows of a CSV with these columns (a sweep's, by default); ValueError when it cannot
    be read or has other columns."""
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = tuple(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"cannot read the sweep results {path}: {e}") from None
    if header != tuple(fields):
        raise ValueError(f"{path} is not a sweep CSV of this version of the program")
    return rows


# ----------------------------------------------------------------------------------------------
# Summaries
# ----------------------------------------------------------------------------------------------


def sample_std(values: Sequence[float] | np.ndarray) -> float:
    """The sample standard deviation (ddof 1), 0 for fewer than two values."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def setting_label(method: str, beta: str, node_features: str) -> str:
    """A method with its setting, e.g. "dpp_node (beta auto, activation)"; the bare name for
    methods without one (empty beta and node features)."""
    setting = ", ".join(part for part in (beta, node_features) if part)
    return f"{method} (beta {setting})" if setting else method


def group_label(row: Row) -> str:
    """A sweep row's method with its setting (setting_label)."""
    return setting_label(row["method"], row["beta"], row["node_features"])


def method_role(row: Row) -> str:
    """ "dpp" for a method that samples a DPP, "random" or "importance" for those baselines,
    else "" (from the row's samples_dpp and baseline columns)."""
    return "dpp" if row["samples_dpp"] == "True" else row["baseline"]


def sweep_groups(rows: Sequence[Row]) -> dict[tuple[str, bool, float], list[Row]]:
    """Rows by (group_label, reweighting, level), in the order they appear."""
    groups: dict[tuple[str, bool, float], list[Row]] = {}
    for row in rows:
        key = (group_label(row), row["reweighting"] == "True", float(row["level"]))
        groups.setdefault(key, []).append(row)
    return groups


def accuracies(group: Sequence[Row]) -> np.ndarray:
    """Test accuracies of a group of sweep rows, in %."""
    return np.array([100.0 * float(row["accuracy"]) for row in group])


def summarize_sweep(
    rows: Sequence[Row],
) -> dict[tuple[str, bool], list[tuple[float, float, float, float, int]]]:
    """(group_label, reweighting) -> sorted [(level, percent kept, mean acc %, std acc %, masks)]."""
    summary: dict[tuple[str, bool], list[tuple[float, float, float, float, int]]] = {}
    for (label, reweighting, level), group in sweep_groups(rows).items():
        accuracy = accuracies(group)
        kept = float(np.mean([float(r["percent_kept"]) for r in group]))
        summary.setdefault((label, reweighting), []).append(
            (level, kept, float(accuracy.mean()), sample_std(accuracy), len(accuracy))
        )
    return {key: sorted(points) for key, points in summary.items()}


def unpruned_accuracy(rows: Sequence[Row]) -> float:
    """The unpruned network's test accuracy, in [0, 1], as its rows record it."""
    return float(rows[0]["unpruned_accuracy"])


def sweep_markdown(rows: Sequence[Row]) -> str:
    """Test accuracy (mean +- std over masks, %) per method, setting and level."""
    summary = summarize_sweep(rows)
    levels = sorted({float(r["level"]) for r in rows})
    unpruned = 100 * unpruned_accuracy(rows)
    lines = [
        f"Test accuracy (%), mean ± std over masks; unpruned: {unpruned:.2f}%.",
        "",
        "| method | reweighting | " + " | ".join(f"{level:g}%" for level in levels) + " |",
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
            f"| {label} | {'yes' if reweighting else 'no'} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Levels are percents of the weights kept (biases excluded); edge methods keep the",
        "parameter-matched floor((k·794 − 10·H)/H) edges per node, the exact percent is in the CSV.",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Comparisons
# ----------------------------------------------------------------------------------------------


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
    spread = [len(side) > 1 and float(side.var(ddof=1)) > 0.0 for side in (first, second)]
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


def comparison_pairs(rows: Sequence[Row]) -> list[tuple[str, str]]:
    """The (first, second) group labels a sweep report compares: every DPP group against the
    random and the importance method of its kind, and edge groups against node groups at the
    same levels (matched budgets): DPP against DPP at the same beta, random and importance
    against their like, and random edges against DPP nodes (the paper's "even random")."""
    groups = {group_label(row): row for row in rows}
    pairs = []
    for first, a in groups.items():
        for second, b in groups.items():
            role_a, role_b = method_role(a), method_role(b)
            same_kind = a["kind"] == b["kind"]
            if same_kind and role_a == "dpp" and role_b in ("random", "importance"):
                pairs.append((first, second))
            elif a["kind"] == "edge" and b["kind"] == "node" and role_a and role_b:
                like = role_a == role_b and (role_a != "dpp" or a["beta"] == b["beta"])
                if like or (role_a, role_b) == ("random", "dpp"):
                    pairs.append((first, second))
    return pairs


def sweep_comparisons(rows: Sequence[Row]) -> list[dict[str, object]]:
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


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def save_figure(fig: Figure, path: Path) -> None:
    """Write a matplotlib figure as PNG, atomically, and free it."""
    import matplotlib.pyplot as plt

    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, imported when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_sweep_figure(rows: Sequence[Row], path: Path) -> None:
    """Accuracy vs. percent of weights kept, mean +- std bands, without / with reweighting;
    solid lines for edge methods, dashed for node methods."""
    plt = pyplot()
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
            ax.fill_between(kept, mean - std, mean + std, color=colors[label], alpha=0.15)
        ax.axhline(
            100 * unpruned_accuracy(rows),
            color="black",
            linestyle=":",
            label="unpruned",
        )
        ax.set_title("with least-squares reweighting" if reweighting else "without reweighting")
        ax.set_xlabel("weights kept (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def save_beta_figure(rows: Sequence[Row], path: Path) -> bool:
    """Per level (columns) and without / with reweighting (rows): each DPP method's accuracy
    (mean +- std over masks) against beta, one line per node-feature choice, next to the
    random and importance methods of its kind as bands (mean +- std). False, and no file,
    when the sweep holds no DPP method."""
    dpp_rows = [row for row in rows if method_role(row) == "dpp"]
    if not dpp_rows:
        return False
    plt = pyplot()
    betas = list(dict.fromkeys(row["beta"] for row in dpp_rows))
    levels = sorted({float(row["level"]) for row in rows})
    groups = sweep_groups(rows)
    lines = list(
        dict.fromkeys((row["method"], row["node_features"], row["kind"]) for row in dpp_rows)
    )
    bands = list(
        dict.fromkeys(
            (group_label(row), row["kind"])
            for row in rows
            if method_role(row) in ("random", "importance")
        )
    )
    palette = plt.get_cmap("tab20").colors
    colors = {name: palette[i % len(palette)] for i, name in enumerate([*lines, *bands])}
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
                    stds.append(sample_std(values))
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
                spread = sample_std(values)
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
                    ("with" if reweighting else "without") + " reweighting\naccuracy (%)",
                    fontsize=8,
                )
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), fontsize=7)
    fig.supxlabel("beta of the DPP kernels", fontsize=9, y=0.09)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    save_figure(fig, path)
    return True


# ----------------------------------------------------------------------------------------------
# The report of a sweep folder
# ----------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What write_report wrote: the two markdown reports, and the files' paths."""

    table: str
    statistics: str
    written: list[Path]


def render_report(rows: Sequence[Row]) -> dict[str, str]:
    """The text files of a report, by name: sweep.md, statistics.md and statistics.csv."""
    comparisons = sweep_comparisons(rows)
    return {
        "sweep.md": sweep_markdown(rows),
        "statistics.md": comparisons_markdown(comparisons),
        "statistics.csv": csv_text(comparisons, COMPARISON_FIELDS),
    }


def write_report(out_dir: Path) -> Report:
    """Rewrite a sweep folder's reports (sweep.md, statistics.md and .csv, the figures) from
    its sweep.csv alone. ValueError when sweep.csv is missing, unreadable or empty."""
    files = SweepFiles(out_dir)
    if not files.csv.is_file():
        raise ValueError(f"{out_dir} holds no sweep.csv")
    rows = read_csv(files.csv)
    if not rows:
        raise ValueError(f"{files.csv} holds no rows")
    texts = render_report(rows)
    for name, text in texts.items():
        atomic_write_text(out_dir / name, text)
    save_sweep_figure(rows, files.figure)
    written = [out_dir / name for name in texts] + [files.figure]
    if save_beta_figure(rows, files.beta_figure):
        written.append(files.beta_figure)
    return Report(texts["sweep.md"], texts["statistics.md"], written)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="report.py",
        description="Rewrite a sweep's reports (sweep.md, statistics.md, statistics.csv, "
        "figures) from its sweep.csv.",
    )
    parser.add_argument("folder", type=Path, help="a sweep's folder, holding its sweep.csv")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.folder)
    except (ValueError, OSError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    print(report.table)
    print(report.statistics)
    print("Wrote " + ", ".join(str(path) for path in report.written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
