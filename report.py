"""Sweep reports: rows in, reports out.

A sweep of MNIST.py writes one row per pruned network into its folder's sweep.csv
(SWEEP_FIELDS): the network (a fingerprint of its weights) and its architecture, the pruned
hidden layer, the method, its kind and role, the level of weights kept, the mask and its
seed, with or without reweighting, the test accuracy and the test images it gets right. This
file turns those rows into the sweep's report, and nothing else:

* sweep.md       test accuracy per part, method, setting and level;
* statistics.md  the claims (CLAIMS: the paper's three, D and E) tested as the analysis plan
  statistics.csv (results/PLAN.md, PRIMARY ...) says: its primary comparisons as one Holm
                 family with compatible simultaneous intervals, equivalence margins and the
                 crossing rule; every other test secondary (Benjamini-Hochberg within part and
                 claim); the sensitivity analysis S1; the variance between masks and networks;
* forest.png     the primary family at a glance;
* claim_A.png ... each claim level by level, in the sign of its tables;
* sweep.png      test error against weights kept, one style per method.

Rows of different architectures or pruned layers (parts) are never tested or averaged
together: each part has its own tables, tests and figures. With several networks the network
is the unit: each network's masks are averaged, and methods are compared by the per-network
differences (paired). With one network the tests are about that network only: over its
masks and, paired, over the test images, so that a few images never make a verdict against a
deterministic method.

    python3 report.py SWEEP_DIR                              # rewrite a sweep's report
    python3 report.py SHARD_1 SHARD_2 ... --out-dir STUDY    # merge shards into one report

It imports numpy, scipy and matplotlib only (no torch, no data), and MNIST.py calls
write_report at the end of every sweep.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import math
import os
import sys
import tempfile
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import scipy.optimize
import scipy.stats

if TYPE_CHECKING:  # matplotlib is imported only where a figure is drawn
    from matplotlib.figure import Figure
    from matplotlib.ticker import Formatter

# the significance level of every test (95% confidence intervals)
ALPHA = 0.05
Row = dict[str, str]
Cells = dict[tuple[str, str, bool, float], list[Row]]  # (network, group, reweighting, level)

# The columns of sweep.csv, one row per network, pruned layer, method, setting, level, mask and
# reweighting: each column's type and unit, then who reads it (resume: MNIST.py resuming a
# sweep; merge: merged_rows' checks; tests: claim_tests; tables, figures; people: no code).
SWEEP_FIELDS = {
    "network": "str, fingerprint of the unpruned network's weights; resume, tests (the unit)",
    "architecture": "str, its layer sizes, e.g. 784-500-10; tests (parts kept apart), tables",
    "layer": "int, the pruned hidden layer, 1-based; resume, tests (parts kept apart), tables",
    "method": "str, the pruning method; resume, tests, tables, figures",
    "kind": "edge | node, what the method keeps; tests (which claims), figures",
    "beta": "str, the DPP kernels' beta as asked (0.3, auto, 10/N), else empty; resume, tests",
    "node_features": "preactivation | activation for a node DPP, else empty; resume, tests",
    "level": "float, % of the layer's and the next layer's weights kept, asked; resume, tests",
    "k": "int, incoming edges per node or nodes kept; people",
    "mask": "int, the mask's index among the level's masks; resume, tests (masks averaged)",
    "seed": "int, the mask's seed, the sweep's --seed + mask; resume, merge",
    "reweighting": "True | False, the mask's network least-squares reweighted; tests, tables",
    "remaining_weights": "int, weights of the layer and the next kept, biases excluded; people",
    "total_weights": "int, the same unpruned; people",
    "percent_kept": "float, %, 100 remaining_weights / total_weights; people",
    "accuracy": "float in [0, 1], test accuracy of the pruned network; tests, tables, figures",
    "loss": "float, its mean test cross-entropy; people",
    "beta_used": "float, mean beta of the DPP kernels the mask is drawn from, or empty; people",
    "effective_rank": "float, their mean participation ratio, else empty; people",
    "uniformity": "float in [0, 1], bound of their k-DPP's distance from uniform; people",
    "dataset": "str, the data set's name; resume, merge, tables",
    "checkpoint": "str, path of the network's checkpoint; resume",
    "deterministic": "True | False, the method's mask ignores the seed; tests (one network)",
    "roles": "what the method is for the claims, e.g. quality+frontier (MNIST.ROLES); tests",
    "unpruned_accuracy": "float in [0, 1], the network's test accuracy; merge, tables",
    "correct_images": "str, the test images it gets right (pack_bits); tests (one network)",
}
TEST_FIELDS = (
    "architecture",
    "layer",
    "claim",
    "first",
    "second",
    "reweighting",
    "endpoint",
    "analysis",
    "networks",
    "difference",
    "se",
    "df",
    "low",
    "high",
    "p_value",
    "adjusted_p",
    "adjustment",
    "detectable",
    "verdict",
)
# The claims, each about comparisons "first beats second" (claim_comparisons): the paper's
# three, then whether diversity adds to quality, and how DPP pruning stands against today's
# one-shot pruning methods.
CLAIMS = {
    "A": "DPP node pruning beats the competing node pruning methods (random_node, "
    "importance_node)",
    "B": "at equal parameter budgets, random edge pruning beats DPP node pruning",
    "C": "DPP edge pruning beats the competing methods, edge and node (random_edge, "
    "importance_edge and every node method)",
    "D": "diversity adds to quality: the quality-diversity DPP beats keeping the items of "
    "largest quality (qdpp_edge − wanda_edge, qdpp_node − quality_node)",
    "E": "DPP pruning beats the frontier of one-shot pruning (each DPP edge setting against "
    "wanda_edge and obs_edge, each DPP node setting against thinet_node)",
}
KINDS = ("edge", "node")  # what a method keeps
ENDPOINT = "mean over levels"  # a comparison's endpoint over all the levels both methods have

# The analysis plan (results/PLAN.md), written before the second study's rows: its primary
# comparisons, "first - second" in the claim's direction at the paper's settings, tested at
# this pruned layer, without and with reweighting; the equivalence margins (points) without
# and with reweighting; the power of each primary row's smallest detectable difference; and
# the first study's networks, whose rows for claims A-C were analysed before the plan (the
# sensitivity analysis S1 repeats the primary family without them).
PRIMARY_LAYER = 1
PRIMARY = (
    ("A", "dpp_node (beta 0.3, preactivation)", "random_node"),
    ("A", "dpp_node (beta 0.3, preactivation)", "importance_node"),
    ("B", "random_edge", "dpp_node (beta 0.3, preactivation)"),
    ("C", "dpp_edge (beta 0.3)", "random_edge"),
    ("C", "dpp_edge (beta 0.3)", "importance_edge"),
    ("D", "qdpp_edge (beta 0.3)", "wanda_edge"),
    ("D", "qdpp_node (beta 0.3, preactivation)", "quality_node"),
    ("E", "dpp_edge (beta 0.3)", "wanda_edge"),
    ("E", "dpp_edge (beta 0.3)", "obs_edge"),
    ("E", "dpp_node (beta 0.3, preactivation)", "thinet_node"),
)
MARGINS = {False: 1.0, True: 0.25}
POWER = 0.8
SEEN_NETWORKS = frozenset(
    (
        *("a3be426d0f5bef1e", "c32b02d5ff84d84f", "6586e974546693a1"),
        *("cd0d7a80289edaaf", "c7d4245fd70f0823"),  # MNIST, seeds 1-5
        *("c534a5ce00fbd7e5", "754e13db8cce9ae1", "9881ad4459f1b520"),
        *("1febff9bcc3def5f", "888f335bcece9d01"),  # Fashion-MNIST, seeds 1-5
    )
)


@dataclass(frozen=True)
class SweepFiles:
    """What a sweep folder holds."""

    out_dir: Path

    @property
    def csv(self) -> Path:
        return self.out_dir / "sweep.csv"

    def claim_figure(self, claim: str, part: tuple[str, int] | None = None) -> Path:
        """claim_A.png ..., or of one part of several, e.g. claim_A_784-500-10_layer1.png."""
        where = f"_{part[0]}_layer{part[1]}" if part is not None else ""
        return self.out_dir / f"claim_{claim}{where}.png"


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


def csv_text(rows: Sequence[dict[str, object]], fields: Collection[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def pack_bits(right: np.ndarray) -> str:
    """A bool vector (the test images a network gets right) as text: its length, ":", then
    base64 of its bits, 8 images a byte."""
    return f"{len(right)}:" + base64.b64encode(np.packbits(right)).decode("ascii")


def unpack_bits(text: str) -> np.ndarray:
    """pack_bits undone: the bool vector."""
    count, _, bits = text.partition(":")
    packed = np.frombuffer(base64.b64decode(bits), np.uint8)
    return np.unpackbits(packed, count=int(count)).astype(bool)


def read_csv(path: Path, fields: Collection[str] = SWEEP_FIELDS) -> list[Row]:
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


def cell_key(row: Row) -> tuple[str, int, str, str, str, float, int]:
    """The mask a row belongs to: (network, pruned layer, method, beta, node features, level,
    mask index)."""
    return (
        row["network"],
        int(row["layer"]),
        row["method"],
        row["beta"],
        row["node_features"],
        float(row["level"]),
        int(row["mask"]),
    )


def drawn_with_seed(row: Row) -> int:
    """The --seed of the sweep that drew a row's mask (mask i has seed --seed + i)."""
    return int(row["seed"]) - int(row["mask"])


def merged_rows(folders: Sequence[Path]) -> list[Row]:
    """The rows of one or more sweep folders (the shards of one sweep), in order. ValueError
    when a folder holds no rows, when two hold the same mask, or when they disagree on what
    must be one: the data set, the seed the masks were drawn with, a network's accuracy."""
    rows: list[Row] = []
    seen: dict[tuple[str, ...], Path] = {}
    for folder in folders:
        path = SweepFiles(folder).csv
        if not path.is_file():
            raise ValueError(f"{folder} holds no sweep.csv")
        new = read_csv(path)
        if not new:
            raise ValueError(f"{path} holds no rows")
        for row in new:
            key = (*cell_key(row), row["reweighting"])
            if key in seen:
                raise ValueError(
                    f"{path} repeats a row of {seen[key]} ({group_label(row)}, layer "
                    f"{row['layer']}, level {row['level']}, mask {row['mask']}, network "
                    f"{row['network']})"
                )
            seen[key] = path
        rows += new
    datasets = {row["dataset"] for row in rows}
    seeds = {drawn_with_seed(row) for row in rows}
    unpruned = {(row["network"], row["unpruned_accuracy"]) for row in rows}
    if len(datasets) > 1:
        raise ValueError(
            f"the sweeps are of different data sets: {', '.join(sorted(datasets))}"
        )
    if len(seeds) > 1:
        raise ValueError(f"the sweeps drew their masks with different seeds: {sorted(seeds)}")
    if len(unpruned) > len({network for network, _ in unpruned}):
        raise ValueError("the sweeps disagree on a network's unpruned accuracy")
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


def method_roles(row: Row) -> set[str]:
    """What a row's method is for the claims (its roles column): "dpp", "qdpp", "random",
    "importance", "quality", "frontier"."""
    return set(row["roles"].split("+")) - {""}


def cells_of(rows: Sequence[Row]) -> Cells:
    """Rows by (network, group_label, reweighting, level): each holds the masks of one cell."""
    cells: Cells = {}
    for row in rows:
        key = (
            row["network"],
            group_label(row),
            row["reweighting"] == "True",
            float(row["level"]),
        )
        cells.setdefault(key, []).append(row)
    return cells


def accuracies(rows: Sequence[Row]) -> np.ndarray:
    """Test accuracies of rows, in %."""
    return np.array([100.0 * float(row["accuracy"]) for row in rows])


def level_values(
    cells: Cells, networks: Sequence[str], group: str, reweighting: bool, level: float
) -> np.ndarray:
    """A group's accuracies (%) at a level, what the summaries and their spread are over:
    with several networks each network's mean over its masks, with one its masks'."""
    if len(networks) == 1:
        return accuracies(cells.get((networks[0], group, reweighting, level), []))
    return np.array(
        [
            accuracies(masks).mean()
            for (_, label, rw, at), masks in cells.items()
            if (label, rw, at) == (group, reweighting, level)
        ]
    )


def parts(rows: Sequence[Row]) -> dict[tuple[str, int], list[Row]]:
    """Rows by part, (architecture, pruned layer), in order of appearance: the rows of one part
    are about the same layer of networks of one architecture, and are never tested, averaged
    or drawn with another part's."""
    by_part: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        by_part.setdefault((row["architecture"], int(row["layer"])), []).append(row)
    return by_part


def part_label(part: tuple[str, int]) -> str:
    """A part as the reports name it, e.g. "784-500-10, hidden layer 1 pruned"."""
    return f"{part[0]}, hidden layer {part[1]} pruned"


def sweep_markdown(rows: Sequence[Row]) -> str:
    """Test accuracy (%) per part, method, setting and level: with several networks, the
    mean ± SD over networks of each network's mean over masks; with one, mean ± SD over
    masks."""
    lines = []
    for part, mine in parts(rows).items():
        cells = cells_of(mine)
        networks = list(dict.fromkeys(row["network"] for row in mine))
        levels = sorted({float(row["level"]) for row in mine})
        unpruned = sorted({(r["network"], 100 * float(r["unpruned_accuracy"])) for r in mine})
        accuracy = np.array([value for _, value in unpruned])
        if len(networks) > 1:
            header = (
                f"Test accuracy (%) of {len(networks)} networks ({part_label(part)}): each "
                f"network's mean over its masks, then their mean ± SD; unpruned: "
                f"{accuracy.mean():.2f}% ({accuracy.min():.2f}–{accuracy.max():.2f}%)."
            )
        else:
            header = (
                f"Test accuracy (%) of one network ({part_label(part)}), mean ± SD over masks; "
                f"unpruned: {accuracy[0]:.2f}%."
            )
        lines += [
            header,
            "",
            "| method | reweighting | " + " | ".join(f"{level:g}%" for level in levels) + " |",
            "|---|---|" + "---|" * len(levels),
        ]
        for label in dict.fromkeys(group_label(row) for row in mine):
            for reweighting in (False, True):
                values = []
                for level in levels:
                    per = level_values(cells, networks, label, reweighting, level)
                    values.append(
                        f"{per.mean():.2f} ± {sample_std(per):.2f}" if len(per) else ""
                    )
                lines.append(
                    f"| {label} | {'yes' if reweighting else 'no'} | {' | '.join(values)} |"
                )
        lines.append("")
    lines += [
        "Levels are percents of the weights of the pruned layer and the layer above kept",
        "(biases excluded): a layer of H nodes, d inputs and H_next nodes above keeps k of",
        "its nodes, or floor((k·(d + H_next) − H·H_next)/H) edges per node; exact percents",
        "in the CSV.",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """A tested difference first - second in mean accuracy (points): its standard error and
    degrees of freedom (of a t statistic), over how many networks, and (several networks) the
    SD of the per-network differences."""

    difference: float
    se: float
    df: float
    networks: int

    @property
    def t(self) -> float:
        """The t statistic; 0 when the SE is 0 (every network the same difference: nothing
        to test)."""
        return self.difference / self.se if self.se > 0 else 0.0

    @property
    def p_value(self) -> float:
        """Two-sided p-value of "no difference"."""
        return float(2 * scipy.stats.t.sf(abs(self.t), self.df))

    def one_sided_p(self, positive: bool) -> float:
        """p-value of "first <= second" (positive) or "first >= second", one-sided."""
        return float(scipy.stats.t.sf(self.t if positive else -self.t, self.df))

    def half_width(self, one_sided_alpha: float) -> float:
        """The t quantile 1 - one_sided_alpha times the SE: a bound's distance from the
        estimate."""
        return float(scipy.stats.t.ppf(1 - one_sided_alpha, self.df)) * self.se

    def interval(self, level: float) -> tuple[float, float]:
        """The two-sided confidence interval at this level; [min(d, 0), max(d, 0)] without a
        SE, so that it holds 0 as its test finds nothing."""
        if self.se == 0:
            return min(self.difference, 0.0), max(self.difference, 0.0)
        half = self.half_width((1 - level) / 2)
        return self.difference - half, self.difference + half

    def detectable(self, one_sided_alpha: float, power: float = POWER) -> float:
        """The smallest difference a one-sided test at this level detects with this power,
        for this SE and degrees of freedom (non-central t); nan without a SE."""
        if self.se == 0:
            return math.nan
        critical = scipy.stats.t.ppf(1 - one_sided_alpha, self.df)

        def shortfall(delta: float) -> float:
            return float(scipy.stats.nct.sf(critical, self.df, delta / self.se)) - power

        return float(scipy.optimize.brentq(shortfall, 0.0, 100.0 * self.se + 100.0))


def paired_over_networks(first: np.ndarray, second: np.ndarray) -> Comparison:
    """first - second by the per-network differences, the paired t-test (scipy's ttest_rel).
    first, second: one value per network, in the same order."""
    differences = first - second
    n = len(differences)
    return Comparison(
        float(differences.mean()), sample_std(differences) / math.sqrt(n), n - 1.0, n
    )


def one_network_test(
    first_masks: np.ndarray,
    second_masks: np.ndarray,
    first_images: np.ndarray,
    second_images: np.ndarray,
) -> Comparison:
    """first - second on one network, accounting for both what is random: the masks and the
    test images. masks: each mask's accuracy (%), one mask for a deterministic method, two or
    more for one of random masks; images: each test image's share of the side's masks that
    get it right (in [0, 1], the same images in the same order).

    The variance of the difference is that of each side's mean over its masks (a
    deterministic side adds none) plus that of the mean over images of the paired
    per-image differences; degrees of freedom by Welch-Satterthwaite. For two deterministic
    sides this is scipy's paired t-test over the images, close to McNemar's test; it counts
    the mask spread twice in part, so it errs on the side of no verdict."""
    parts = [
        (float(np.var(masks, ddof=1)) / len(masks), len(masks) - 1)
        for masks in (first_masks, second_masks)
        if len(masks) > 1
    ]
    per_image = 100.0 * (first_images.astype(float) - second_images.astype(float))
    parts.append((float(np.var(per_image, ddof=1)) / len(per_image), len(per_image) - 1))
    difference = float(first_masks.mean() - second_masks.mean())
    variance = sum(v for v, _ in parts)
    if variance == 0.0:
        return Comparison(difference, 0.0, 1.0, 1)
    dof = variance**2 / sum(v**2 / d for v, d in parts if v > 0)
    return Comparison(difference, math.sqrt(variance), dof, 1)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (not in scipy): the i-th smallest
    times (m - i + 1), made non-decreasing and capped at 1."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))
    result = np.empty_like(p)
    result[order] = np.minimum(adjusted, 1.0)
    return result


def side(
    cells: Cells, network: str, group: str, reweighting: bool, levels: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, bool]:
    """One network's masks of a group that have every level: (each mask's mean accuracy over
    the levels (%), each test image's share of right answers over those masks and levels,
    whether the group's method is deterministic)."""
    rows = [row for level in levels for row in cells[network, group, reweighting, level]]
    by_mask: dict[str, list[Row]] = {}
    for row in rows:
        by_mask.setdefault(row["mask"], []).append(row)
    complete = [mask for mask in by_mask.values() if len(mask) == len(levels)]
    masks = np.array([accuracies(mask).mean() for mask in complete])
    images = np.mean(
        [unpack_bits(row["correct_images"]) for m in complete for row in m], axis=0
    )
    return masks, images, rows[0]["deterministic"] == "True"


def compare(
    cells: Cells,
    first: str,
    second: str,
    reweighting: bool,
    levels: Sequence[float],
    among: Collection[str] | None = None,
) -> Comparison | None:
    """first - second in mean accuracy over levels, each level weighing the same: paired over
    the networks (of among, if given) that have both at every level; with one network in the
    sweep, one_network_test. None when that is not testable: fewer than two networks with
    both, or, with one network, a method of random masks with fewer than two masks."""
    everyone = [
        n for n in dict.fromkeys(key[0] for key in cells) if among is None or n in among
    ]
    networks = [
        network
        for network in everyone
        if all((network, g, reweighting, lv) in cells for g in (first, second) for lv in levels)
    ]
    if len(networks) > 1:
        means = [
            np.array(
                [
                    np.mean(
                        [accuracies(cells[n, group, reweighting, lv]).mean() for lv in levels]
                    )
                    for n in networks
                ]
            )
            for group in (first, second)
        ]
        return paired_over_networks(*means)
    if len(everyone) > 1 or not networks:
        return None
    sides = [side(cells, networks[0], group, reweighting, levels) for group in (first, second)]
    if any(len(masks) < 2 and not deterministic for masks, _, deterministic in sides):
        return None
    (first_masks, first_images, _), (second_masks, second_images, _) = sides
    return one_network_test(first_masks, second_masks, first_images, second_images)


def claim_comparisons(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """(claim, first, second) for every comparison of CLAIMS, first the side the claim says
    is better: A, each DPP node setting against the random and importance nodes; B, random
    edges against each DPP node setting; C, each DPP edge setting against the random and
    importance edges and nodes and each DPP node setting; D, each quality-diversity DPP
    setting against the quality-only method of its kind; E, each DPP and quality-diversity
    DPP setting against the frontier methods of its kind. Roles: method_roles."""
    groups = {group_label(row): (row["kind"], method_roles(row)) for row in rows}

    def of(kind: str, *roles: str) -> list[str]:
        return [g for g, (k, mine) in groups.items() if k == kind and mine & set(roles)]

    node_methods = of("node", "dpp", "random", "importance")
    return [
        *(("A", d, b) for d in of("node", "dpp") for b in of("node", "random", "importance")),
        *(("B", r, d) for r in of("edge", "random") for d in of("node", "dpp")),
        *(("C", d, c) for d in of("edge", "dpp") for c in of("edge", "random", "importance")),
        *(("C", d, c) for d in of("edge", "dpp") for c in node_methods),
        *(("D", q, b) for kind in KINDS for q in of(kind, "qdpp") for b in of(kind, "quality")),
        *(
            ("E", d, f)
            for kind in KINDS
            for d in of(kind, "dpp", "qdpp")
            for f in of(kind, "frontier")
        ),
    ]


def level_label(level: float) -> str:
    """A level's endpoint in the tests, e.g. "10%"."""
    return f"{level:g}%"


@dataclass
class Test:
    """One test of the report: what it compares (part, claim, first - second, reweighting,
    endpoint), in which analysis ("primary", "secondary" or "S1", the sensitivity analysis
    without SEEN_NETWORKS) and its Comparison; the family's results are filled in by
    primary_family or secondary_families."""

    architecture: str
    layer: int
    claim: str
    first: str
    second: str
    reweighting: bool
    endpoint: str
    analysis: str
    comparison: Comparison
    low: float = math.nan
    high: float = math.nan
    adjusted_p: float = math.nan
    detectable: float = math.nan
    verdict: str = ""

    @property
    def part(self) -> tuple[str, int]:
        return self.architecture, self.layer

    @property
    def pair(self) -> tuple[str, int, str, str, str, bool]:
        """The comparison, all but its endpoint and analysis."""
        return (*self.part, self.claim, self.first, self.second, self.reweighting)


def is_primary(part: tuple[str, int], claim: str, first: str, second: str) -> bool:
    """A comparison the plan names primary: of PRIMARY, at PRIMARY_LAYER."""
    return part[1] == PRIMARY_LAYER and (claim, first, second) in PRIMARY


def primary_family(tests: Sequence[Test]) -> None:
    """Holm over the 2m one-sided hypotheses of m primary tests (first <= second, first >=
    second), then their simultaneous intervals compatible with it (Strassburger & Bretz 2008):
    with r of the 2m rejected, a bound whose side was rejected is 0, the others the estimate
    -/+ the t quantile 1 - ALPHA / (2m - r) times the SE; and each row's smallest detectable
    difference, at the one-sided level Holm tested its estimate's side (that of its rank if
    rejected, ALPHA / (2m - r) if not). Verdicts: plan_verdict."""
    if not tests:
        return
    m = len(tests)
    p = np.array([[t.comparison.one_sided_p(s) for s in (True, False)] for t in tests])
    adjusted = holm(p.ravel()).reshape(m, 2)
    rejected = adjusted < ALPHA
    r = int(rejected.sum())
    rank = np.searchsorted(np.sort(p.ravel()), p.ravel(), side="left")  # ties: the first
    for i, test in enumerate(tests):
        c = test.comparison
        half = c.half_width(ALPHA / (2 * m - r)) if c.se > 0 else 0.0
        test.low = 0.0 if rejected[i, 0] else min(c.difference - half, 0.0)
        test.high = 0.0 if rejected[i, 1] else max(c.difference + half, 0.0)
        side = 0 if c.difference >= 0 else 1
        test.adjusted_p = float(adjusted[i, side])
        step = rank.reshape(m, 2)[i, side]  # 0-based
        level = ALPHA / (2 * m - step) if rejected[i, side] else ALPHA / (2 * m - r)
        test.detectable = c.detectable(level)
        test.verdict = plan_verdict(test, bool(rejected[i, 0]), bool(rejected[i, 1]))


def plan_verdict(test: Test, holds: bool, reversed_: bool) -> str:
    """holds / reversed (negligible when the interval lies inside the margins too),
    equivalent (the interval inside the margins: a TOST at the family's simultaneous level),
    or inconclusive; MARGINS by reweighting state."""
    margin = MARGINS[test.reweighting]
    inside = -margin < test.low and test.high < margin
    if holds or reversed_:
        return ("holds" if holds else "reversed") + (" (negligible)" if inside else "")
    return "equivalent" if inside else "inconclusive"


def secondary_families(tests: Sequence[Test]) -> None:
    """Benjamini-Hochberg within each family (part, claim, analysis) of secondary tests, each
    with its false-coverage-rate interval (Benjamini & Yekutieli 2005): level 1 - ALPHA R / m,
    R the family's discoveries of m (at least 1), which excludes 0 exactly for them."""
    families: dict[tuple[object, ...], list[Test]] = {}
    for test in tests:
        families.setdefault((*test.part, test.claim, test.analysis), []).append(test)
    for members in families.values():
        q = scipy.stats.false_discovery_control([t.comparison.p_value for t in members])
        discoveries = max(int((q < ALPHA).sum()), 1)
        for test, adjusted in zip(members, q):
            test.adjusted_p = float(adjusted)
            test.low, test.high = test.comparison.interval(
                1 - ALPHA * discoveries / len(members)
            )
            shown = adjusted < ALPHA
            sign = "holds" if test.comparison.difference > 0 else "reversed"
            test.verdict = sign if shown else "not shown"


def crossing(test: Test, levels: Sequence[Test]) -> str:
    """The plan's crossing rule: a primary verdict with the level tests (secondary
    discoveries) that contradict it: levels against its direction, or, for an inconclusive or
    equivalent verdict, levels significant both ways."""
    holds = [t.endpoint for t in levels if t.verdict == "holds"]
    reversed_ = [t.endpoint for t in levels if t.verdict == "reversed"]
    direction = test.verdict.split(" ")[0]
    notes = []
    if direction == "holds" and reversed_:
        notes.append(f"reversed at {', '.join(reversed_)}")
    elif direction == "reversed" and holds:
        notes.append(f"holds at {', '.join(holds)}")
    elif direction not in ("holds", "reversed") and holds and reversed_:
        notes.append(
            f"crossing: holds at {', '.join(holds)}, reversed at {', '.join(reversed_)}"
        )
    return "; ".join([test.verdict, *notes])


def claim_tests(rows: Sequence[Row]) -> list[Test]:
    """Every test of the claims, part by part (never over two architectures or pruned
    layers): per comparison and reweighting state the mean over the levels both methods have,
    then each level. The plan's primary comparisons' means form the primary family
    (primary_family) and, on the parts that hold SEEN_NETWORKS and others, the sensitivity
    family S1 without them; all other tests are secondary (secondary_families), and the
    primary verdicts follow the crossing rule."""
    tests: list[Test] = []
    for part, mine in parts(rows).items():
        cells = cells_of(mine)
        present = {(group, level) for _, group, _, level in cells}
        networks = {row["network"] for row in mine}
        unseen = networks - SEEN_NETWORKS
        for claim, first, second in claim_comparisons(mine):
            levels = sorted(lv for g, lv in present if g == first and (second, lv) in present)
            if not levels:  # never at the same level: nothing to compare
                continue
            primary = is_primary(part, claim, first, second)
            for reweighting in (False, True):
                endpoints = [(ENDPOINT, levels), *((level_label(lv), [lv]) for lv in levels)]
                if primary and unseen != networks and len(unseen) > 1:
                    endpoints.append(("S1", levels))
                for endpoint, over in endpoints:
                    among = unseen if endpoint == "S1" else None
                    test = compare(cells, first, second, reweighting, over, among)
                    if test is None:
                        continue
                    analysis = (
                        endpoint
                        if endpoint == "S1"
                        else "primary"
                        if primary and endpoint == ENDPOINT
                        else "secondary"
                    )
                    label = ENDPOINT if endpoint == "S1" else endpoint
                    tests.append(
                        Test(*part, claim, first, second, reweighting, label, analysis, test)
                    )
    primary_family([t for t in tests if t.analysis == "primary"])
    primary_family([t for t in tests if t.analysis == "S1"])
    secondary_families([t for t in tests if t.analysis == "secondary"])
    for test in tests:
        if test.analysis == "primary":
            levels = [t for t in tests if t.pair == test.pair and t.endpoint != ENDPOINT]
            test.verdict = crossing(test, levels)
    return tests


def test_record(test: Test, family_size: dict[str, int]) -> dict[str, object]:
    """A test as statistics.csv records it (TEST_FIELDS)."""
    c = test.comparison
    adjustment = (
        "BH" if test.analysis == "secondary" else f"Holm over {family_size[test.analysis]}"
    )
    return {
        "architecture": test.architecture,
        "layer": test.layer,
        "claim": test.claim,
        "first": test.first,
        "second": test.second,
        "reweighting": test.reweighting,
        "endpoint": test.endpoint,
        "analysis": test.analysis,
        "networks": c.networks,
        "difference": round(c.difference, 4),
        "se": round(c.se, 4),
        "df": round(c.df, 2),
        "low": round(test.low, 4),
        "high": round(test.high, 4),
        "p_value": f"{c.p_value:.3g}",
        "adjusted_p": f"{test.adjusted_p:.3g}",
        "adjustment": adjustment,
        "detectable": "" if math.isnan(test.detectable) else round(test.detectable, 3),
        "verdict": test.verdict,
    }


def test_records(tests: Sequence[Test]) -> list[dict[str, object]]:
    """Every test as statistics.csv records it."""
    size = {a: 2 * sum(t.analysis == a for t in tests) for a in ("primary", "S1")}
    return [test_record(test, size) for test in tests]


def variance_components(rows: Sequence[Row]) -> list[dict[str, object]]:
    """For every method of random masks, part and reweighting state: the SD between masks
    within a network (pooled) and the SD between networks of their mask means, corrected for
    the mask noise (var(means) - within / masks, at least 0), of each mask's mean accuracy
    over the levels of its method (masks with every one of them)."""
    records = []
    for part, mine in parts(rows).items():
        for group in dict.fromkeys(
            group_label(r) for r in mine if r["deterministic"] != "True"
        ):
            levels = {float(row["level"]) for row in mine if group_label(row) == group}
            for reweighting in (False, True):
                by_mask: dict[tuple[str, str], list[float]] = {}
                for row in mine:
                    if (
                        group_label(row) == group
                        and (row["reweighting"] == "True") == reweighting
                    ):
                        by_mask.setdefault((row["network"], row["mask"]), []).append(
                            100.0 * float(row["accuracy"])
                        )
                per_network: dict[str, list[float]] = {}
                for (network, _), values in by_mask.items():
                    if len(values) == len(levels):
                        per_network.setdefault(network, []).append(float(np.mean(values)))
                several = [v for v in per_network.values() if len(v) > 1]
                if not several:
                    continue
                within = float(np.mean([np.var(v, ddof=1) for v in several]))
                masks = float(np.mean([len(v) for v in per_network.values()]))
                means = [float(np.mean(v)) for v in per_network.values()]
                between = (
                    max(np.var(means, ddof=1) - within / masks, 0.0)
                    if len(means) > 1
                    else math.nan
                )
                records.append(
                    {
                        "part": part,
                        "group": group,
                        "reweighting": reweighting,
                        "networks": len(means),
                        "masks": masks,
                        "within": math.sqrt(within),
                        "between": math.sqrt(between),
                    }
                )
    return records


def comparison_label(test: Test) -> str:
    return f"{test.first} − {test.second}"


def bounds(test: Test) -> str:
    """The difference and its interval; a primary bound at 0 from a rejected side is open,
    "(0" or "0)": the difference is shown to be on the other side of 0."""
    verdict = test.verdict.split(" ")[0].rstrip(";")
    primary = test.analysis != "secondary"
    low = "(0" if primary and verdict == "holds" else f"[{test.low:+.2f}"
    high = "0)" if primary and verdict == "reversed" else f"{test.high:+.2f}]"
    return f"{test.comparison.difference:+.2f} {low}, {high}"


def statistics_markdown(rows: Sequence[Row], tests: Sequence[Test]) -> str:
    """The plan's primary table first (forest.png draws it), how it is tested, the variance
    between masks and networks, the sensitivity analysis S1, then the secondary tests part by
    part and claim by claim."""
    by_part = parts(rows)
    primary = [t for t in tests if t.analysis == "primary"]
    m = 2 * len(primary)
    lines = [
        "# Does diversity help? The claims, tested as planned",
        "",
        (
            f"Data: {rows[0]['dataset']}. Plan: results/PLAN.md. Parts (architecture, pruned "
            "layer) are never tested or averaged together:"
        ),
        "",
    ]
    for part, mine in by_part.items():
        networks = {row["network"] for row in mine}
        seen = len(networks & SEEN_NETWORKS)
        unit = (
            f"{len(networks)} networks ({seen} of the first study), the unit of every test: "
            "each network's masks are averaged first, and methods compared by the per-network "
            "differences (paired t-test)"
            if len(networks) > 1
            else "one network: every test is about this network only, over its masks and, "
            "paired, over the test images (a method of random masks needs two masks or more)"
        )
        lines.append(f"* {part_label(part)}: {unit}.")
    lines += ["", "## The primary tests", ""]
    if primary:
        lines += [
            (
                "| part | claim | first − second | reweighting | difference [simultaneous 95%] "
                "| Holm p | detectable | verdict |"
            ),
            "|---|---|---|---|---|---|---|---|",
            *(
                f"| {t.architecture}, layer {t.layer} | {t.claim} | {comparison_label(t)} "
                f"| {'yes' if t.reweighting else 'no'} | {bounds(t)} | {t.adjusted_p:.3g} "
                f"| {t.detectable:.2f} | {t.verdict} |"
                for t in primary
            ),
        ]
    else:
        lines.append(
            "None of the plan's primary comparisons is in these rows: every test below "
            "is secondary."
        )
    margins = ", ".join(
        f"±{v:g} point {'with' if k else 'without'} reweighting" for k, v in MARGINS.items()
    )
    lines += [
        "",
        *(f"* **{claim}.** {text[0].upper()}{text[1:]}." for claim, text in CLAIMS.items()),
        "",
        (
            f"The primary endpoint of a comparison (the plan's, at layer {PRIMARY_LAYER}, the "
            "paper's settings) is a network's difference in mean test accuracy over the levels "
            "both methods have, each weighing the same: first minus second, in points, "
            f"positive where the claim holds. Its {len(primary)} tests (the plan names "
            f"{2 * len(PRIMARY)} per architecture; these rows hold these) are {m} one-sided "
            f"hypotheses, one family, Holm at α = {ALPHA:g} (Holm p: the adjusted one-sided p "
            "of the estimate's side); the intervals are simultaneous and compatible with Holm: "
            "a side shown to differ is open at 0, (0 or 0), so an interval excludes 0 exactly "
            "where the verdict is a difference. Verdicts: holds / reversed "
            f"(negligible: the interval also inside the margins, {margins}); equivalent (the "
            "interval inside them: a TOST at the simultaneous level); inconclusive. The plan's "
            "crossing rule names in a verdict the levels whose secondary tests go against its "
            "direction, or, for an inconclusive or equivalent one, the levels when they are "
            "significant both ways. Detectable: the difference the test finds with "
            f"{POWER:.0%} power, one-sided at the level Holm tested it (that of its rank if "
            "rejected, else the level at which Holm stopped)."
        ),
    ]
    components = variance_components(rows)
    if components:
        lines += [
            "",
            "## Variance between masks and between networks",
            "",
            (
                "SD (points) of a mask's mean accuracy over the levels: between the masks of "
                "one network (pooled), and between networks of their mask means (corrected for "
                "the mask noise)."
            ),
            "",
            (
                "| part | method | reweighting | networks | masks per network "
                "| SD between masks | SD between networks |"
            ),
            "|---|---|---|---:|---:|---:|---:|",
            *(
                f"| {c['part'][0]}, layer {c['part'][1]} | {c['group']} "
                f"| {'yes' if c['reweighting'] else 'no'} | {c['networks']} | {c['masks']:.1f} "
                f"| {c['within']:.3f} | {c['between']:.3f} |"
                for c in components
            ),
        ]
    sensitivity = [t for t in tests if t.analysis == "S1"]
    if sensitivity:
        by_pair = {t.pair: t for t in primary}
        lines += [
            "",
            "## Sensitivity S1: without the first study's networks",
            "",
            (
                "The primary family again, on the networks new to this study alone (the "
                f"plan's S1: Holm over its own {2 * len(sensitivity)} one-sided hypotheses); a "
                "verdict that differs from the primary one is marked."
            ),
            "",
            (
                "| part | claim | first − second | reweighting | networks | difference "
                "[simultaneous 95%] | Holm p | verdict |"
            ),
            "|---|---|---|---|---:|---|---|---|",
        ]
        for t in sensitivity:
            full = by_pair.get(t.pair)
            differs = full is not None and full.verdict.split(";")[0] != t.verdict
            lines.append(
                f"| {t.architecture}, layer {t.layer} | {t.claim} | {comparison_label(t)} "
                f"| {'yes' if t.reweighting else 'no'} | {t.comparison.networks} | {bounds(t)} "
                f"| {t.adjusted_p:.3g} | {t.verdict}{' (differs)' if differs else ''} |"
            )
    several = len(by_part) > 1
    for part in by_part:
        for claim, text in CLAIMS.items():
            mine = [
                t
                for t in tests
                if t.analysis == "secondary" and (*t.part, t.claim) == (*part, claim)
            ]
            if not mine:
                continue
            where = f" ({part_label(part)})" if several or part[1] != PRIMARY_LAYER else ""
            lines += [
                "",
                f"## Claim {claim}, secondary{where}",
                "",
                (
                    f"{text[0].upper()}{text[1:]}. Difference [false-coverage-rate interval], "
                    f"p, and the Benjamini–Hochberg q-value over the claim's {len(mine)} "
                    f"secondary tests{' of this part' if several else ''}; verdict at "
                    f"q < {ALPHA:g}."
                ),
            ]
            pairs = list(dict.fromkeys((t.first, t.second) for t in mine))
            for first, second in pairs:
                lines += [
                    "",
                    f"**{first}** − **{second}**",
                    "",
                    "| endpoint | without reweighting | with reweighting |",
                    "|---|---|---|",
                ]
                cells: dict[str, dict[bool, str]] = {}
                for t in mine:
                    if (t.first, t.second) == (first, second):
                        summary = (
                            f"{bounds(t)}, p {t.comparison.p_value:.3g}, q {t.adjusted_p:.3g}, "
                            f"{t.verdict}"
                        )
                        cells.setdefault(t.endpoint, {})[t.reweighting] = summary
                for endpoint, by in cells.items():
                    lines.append(f"| {endpoint} | {by.get(False, '')} | {by.get(True, '')} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------

VERDICT_COLOURS = {
    "holds": "tab:green",
    "reversed": "tab:red",
    "equivalent": "tab:blue",
    "inconclusive": "0.5",
    "not shown": "0.5",
}
# a method's line in sweep.png: colour, marker, style (by role: DPP solid, random dashed,
# importance dash-dot, quality and frontier dotted)
METHOD_STYLES = {
    "dpp_edge": ("tab:blue", "o", "-"),
    "qdpp_edge": ("tab:cyan", "s", "-"),
    "dpp_node": ("tab:orange", "o", "-"),
    "qdpp_node": ("gold", "s", "-"),
    "random_edge": ("tab:purple", "v", "--"),
    "random_node": ("tab:pink", "v", "--"),
    "importance_edge": ("tab:green", "^", "-."),
    "importance_node": ("olive", "^", "-."),
    "wanda_edge": ("tab:red", "D", ":"),
    "obs_edge": ("black", "P", ":"),
    "thinet_node": ("tab:brown", "X", ":"),
    "quality_node": ("tab:gray", "D", ":"),
}


def pyplot() -> ModuleType:
    """The matplotlib.pyplot module on the file-only Agg backend, imported when a figure is
    drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: Path) -> None:
    """Write a matplotlib figure as PNG, atomically, and free it."""
    plt = pyplot()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def plain_numbers() -> Formatter:
    """A tick formatter writing 0.1, 1, 10 (not powers of ten)."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value:g}")


def verdict_colour(verdict: str) -> str:
    return VERDICT_COLOURS.get(verdict.split(" ")[0].rstrip(";"), "0.5")


def shown_groups(rows: Sequence[Row]) -> list[str]:
    """The groups sweep.png draws: per method its setting of the plan's primary comparisons
    when the rows have it, else all its settings."""
    planned = {label for _, first, second in PRIMARY for label in (first, second)}
    groups = list(dict.fromkeys(group_label(row) for row in rows))
    methods = {g: g.split(" ")[0] for g in groups}
    return [
        g
        for g in groups
        if g in planned or not any(p in planned and methods[p] == methods[g] for p in groups)
    ]


def save_sweep_figure(rows: Sequence[Row], path: Path) -> None:
    """Test error (100 - accuracy, on a log scale: every level readable) against weights kept,
    without / with reweighting, a row of panels per part: per method (at the plan's setting)
    the mean over networks (over masks for one network) with its 95% confidence band, each
    method its own colour, marker and line style, the unpruned networks' mean a grey line;
    the legend beside the panels."""
    plt = pyplot()
    by_part = parts(rows)
    shown = shown_groups(rows)
    fig, axes = plt.subplots(
        len(by_part),
        2,
        figsize=(15, 4.8 * len(by_part) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for row_axes, (part, mine) in zip(axes, by_part.items()):
        cells = cells_of(mine)
        networks = list(dict.fromkeys(row["network"] for row in mine))
        levels = sorted({float(row["level"]) for row in mine})
        unpruned = np.mean([100 * float(r["unpruned_accuracy"]) for r in mine])
        for ax, reweighting in zip(row_axes, (False, True)):
            ax.axhline(
                100 - unpruned, color="0.6", linewidth=1.5, label=f"unpruned ({unpruned:.2f}%)"
            )
            for label in (g for g in shown if any(group_label(r) == g for r in mine)):
                at, mean, low, high = [], [], [], []
                for level in levels:
                    values = level_values(cells, networks, label, reweighting, level)
                    if not len(values):
                        continue
                    half = 0.0
                    if len(values) > 1:
                        sem = scipy.stats.sem(values)
                        half = float(scipy.stats.t.ppf(1 - ALPHA / 2, len(values) - 1)) * sem
                    at.append(level)
                    mean.append(100 - values.mean())
                    low.append(100 - values.mean() - half)
                    high.append(100 - values.mean() + half)
                colour, marker, style = METHOD_STYLES.get(
                    label.split(" ")[0], ("0.3", ".", "-")
                )
                ax.plot(at, mean, style, marker=marker, markersize=4, color=colour, label=label)
                ax.fill_between(at, low, high, color=colour, alpha=0.12, linewidth=0)
            setting = "with least-squares reweighting" if reweighting else "without reweighting"
            ax.set_title(f"{part_label(part)}, {setting}", fontsize=10)
            ax.set_xlabel("weights of the pruned layer and the next kept (%)")
            ax.set_ylabel("test error (%), log scale")
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(plain_numbers())
            ax.yaxis.set_minor_formatter(plain_numbers())
            ax.grid(alpha=0.3, which="both")
        handles, names = row_axes[1].get_legend_handles_labels()
        row_axes[1].legend(
            handles, names, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8
        )
    fig.suptitle(
        f"{rows[0]['dataset']}: test error (100 − accuracy; lower is better), mean over "
        "networks and 95% band (each method at the plan's setting; all settings in sweep.md)",
        fontsize=11,
    )
    save_figure(fig, path)


def save_forest_figure(rows: Sequence[Row], tests: Sequence[Test], path: Path) -> None:
    """The primary family at a glance: per reweighting state a panel of every primary
    comparison, its difference (dot) and simultaneous interval (bar) coloured by its verdict
    (written on the right, * where levels go against it), zero and the equivalence margins
    (grey band) marked; parts apart."""
    plt = pyplot()
    primary = [t for t in tests if t.analysis == "primary"]
    pairs = list(dict.fromkeys(t.pair[:-1] for t in primary))
    fig, axes = plt.subplots(1, 2, figsize=(16, 0.42 * len(pairs) + 2.2), layout="constrained")
    for ax, reweighting in zip(axes, (False, True)):
        margin = MARGINS[reweighting]
        ax.axvspan(-margin, margin, color="0.9", label=f"equivalence margins ±{margin:g}")
        ax.axvline(0.0, color="black", linewidth=0.8)
        y = np.arange(len(pairs))[::-1]
        by_pair = {t.pair[:-1]: t for t in primary if t.reweighting == reweighting}
        verdicts = []
        for yi, pair in zip(y, pairs):
            test = by_pair.get(pair)
            if test is None:
                verdicts.append("")
                continue
            colour = verdict_colour(test.verdict)
            ax.plot([test.low, test.high], [yi, yi], color=colour, linewidth=2.2)
            ax.plot([test.comparison.difference], [yi], "o", color=colour, markersize=5)
            verdicts.append(test.verdict.split(";")[0] + (" *" if ";" in test.verdict else ""))
        ax.set_yticks(
            y,
            [f"{claim}: {first} − {second}" for _, _, claim, first, second in pairs]
            if not reweighting
            else [""] * len(pairs),
            fontsize=8,
        )
        ax.set_ylim(-0.6, len(pairs) - 0.2)
        right = ax.twinx()
        right.set_ylim(ax.get_ylim())
        right.set_yticks(y, verdicts, fontsize=8)
        for tick, verdict in zip(right.get_yticklabels(), verdicts):
            tick.set_color(verdict_colour(verdict))
        previous = None
        for yi, pair in zip(y, pairs):  # a line and a label between parts
            if pair[:2] != previous:
                ax.axhline(yi + 0.5, color="0.4", linewidth=0.6)
                ax.text(
                    0.01,
                    yi + 0.35,
                    f"{pair[0]}, layer {pair[1]}",
                    transform=ax.get_yaxis_transform(),
                    fontsize=8,
                    va="top",
                    color="0.3",
                )
                previous = pair[:2]
        setting = "with reweighting" if reweighting else "without reweighting"
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel("first − second (points); > 0: the claim holds")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(
        f"{rows[0]['dataset']}: the {len(primary)} primary tests (results/PLAN.md), "
        f"differences with simultaneous 95% intervals compatible with Holm over "
        f"{2 * len(primary)} one-sided hypotheses\n*: levels whose tests go against the "
        "verdict (the crossing rule; statistics.md names them)",
        fontsize=11,
    )
    save_figure(fig, path)


def save_claim_figure(
    rows: Sequence[Row], tests: Sequence[Test], claim: str, path: Path
) -> None:
    """A claim level by level, in the sign of its tables (first − second, > 0: the claim
    holds): a row of panels per comparison (the plan's primary ones, at any layer, else all of
    the claim's), without and with reweighting; per level the networks' mean difference with
    its false-coverage-rate interval, filled where its test is a discovery, each network a
    faint line; zero and the margins marked; a symmetric log scale beyond the margin, so that no
    level sets the scale for the others. The panel's title gives the primary verdict."""
    plt = pyplot()
    cells = cells_of(rows)
    networks = list(dict.fromkeys(row["network"] for row in rows))
    mine = [t for t in tests if t.claim == claim]
    present = {(t.first, t.second) for t in mine}
    planned = [(first, second) for c, first, second in PRIMARY if c == claim]
    pairs = [pair for pair in planned if pair in present] or list(
        dict.fromkeys((t.first, t.second) for t in mine)
    )
    fig, axes = plt.subplots(
        len(pairs),
        2,
        figsize=(12, 2.7 * len(pairs) + 1.0),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    for (first, second), row_axes in zip(pairs, axes):
        for ax, reweighting in zip(row_axes, (False, True)):
            margin = MARGINS[reweighting]
            levels = [
                t
                for t in mine
                if (t.first, t.second, t.reweighting) == (first, second, reweighting)
                and t.endpoint != ENDPOINT
            ]
            at = [float(t.endpoint.rstrip("%")) for t in levels]
            for network in networks if len(networks) > 1 else []:
                keys = [(network, g, reweighting, lv) for lv in at for g in (first, second)]
                if at and all(key in cells for key in keys):
                    per = [
                        accuracies(cells[network, first, reweighting, lv]).mean()
                        - accuracies(cells[network, second, reweighting, lv]).mean()
                        for lv in at
                    ]
                    ax.plot(at, per, color="0.5", alpha=0.35, linewidth=0.8)
            ax.axhspan(-margin, margin, color="0.92")
            ax.axhline(0.0, color="black", linewidth=0.8)
            for lv, t in zip(at, levels):
                colour = verdict_colour(t.verdict)
                d = t.comparison.difference
                ax.errorbar(
                    [lv],
                    [d],
                    yerr=[[d - t.low], [t.high - d]],
                    color=colour,
                    capsize=2,
                    linewidth=1.2,
                )
                ax.plot(
                    [lv],
                    [d],
                    "o",
                    color=colour,
                    markersize=6,
                    markerfacecolor=colour if t.verdict != "not shown" else "white",
                )
            ax.set_yscale("symlog", linthresh=margin)
            ax.yaxis.set_major_formatter(plain_numbers())
            ax.grid(alpha=0.3)
            main = next(
                (
                    t
                    for t in mine
                    if (t.first, t.second, t.reweighting, t.endpoint)
                    == (first, second, reweighting, ENDPOINT)
                    and t.analysis in ("primary", "secondary")
                ),
                None,
            )
            verdict = f": {main.verdict}" if main is not None else ""
            state = "with" if reweighting else "without"
            ax.set_title(f"{first} − {second}, {state} reweighting{verdict}", fontsize=8)
            ax.set_ylabel("difference (points)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("weights kept (%)")
    unit = f"{len(networks)} networks (grey)" if len(networks) > 1 else "one network"
    part = part_label((rows[0]["architecture"], int(rows[0]["layer"])))
    fig.suptitle(
        f"Claim {claim}: {CLAIMS[claim]}\n{part}; {unit}; > 0: the claim holds\nfilled: the "
        "level's test a discovery (BH), bars its false-coverage-rate interval; grey band: the "
        "equivalence margins; linear within them, logarithmic beyond",
        fontsize=9,
    )
    save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# The report of a sweep folder
# ----------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What write_report wrote: the two markdown reports, and the files' paths."""

    table: str
    statistics: str
    written: list[Path]


def render_report(rows: Sequence[Row], tests: Sequence[Test]) -> dict[str, str]:
    """The text files of a report, by name: sweep.md, statistics.md and statistics.csv;
    tests: claim_tests(rows)."""
    return {
        "sweep.md": sweep_markdown(rows),
        "statistics.md": statistics_markdown(rows, tests),
        "statistics.csv": csv_text(test_records(tests), TEST_FIELDS),
    }


def write_report(folders: Sequence[Path], out_dir: Path | None = None) -> Report:
    """Write the report of one sweep folder, or of several (a sweep's shards) merged, into
    out_dir (by default the one folder): sweep.md, statistics.md and .csv, the figures
    (sweep.png, forest.png when there are primary tests, one per claim and part), and for
    several folders the merged sweep.csv; claim figures of an earlier report that this one
    does not draw are removed. ValueError for what merged_rows refuses."""
    rows = merged_rows(folders)
    out_dir = out_dir or folders[0]
    written = []
    if [folder.resolve() for folder in folders] != [out_dir.resolve()]:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(SweepFiles(out_dir).csv, csv_text(rows, SWEEP_FIELDS))
        written.append(SweepFiles(out_dir).csv)
    tests = claim_tests(rows)
    texts = render_report(rows, tests)
    for name, text in texts.items():
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    save_sweep_figure(rows, out_dir / "sweep.png")
    written.append(out_dir / "sweep.png")
    if any(t.analysis == "primary" for t in tests):
        save_forest_figure(rows, tests, out_dir / "forest.png")
        written.append(out_dir / "forest.png")
    by_part = parts(rows)
    for part, mine in by_part.items():
        part_tests = [t for t in tests if t.part == part and t.analysis != "S1"]
        for claim in CLAIMS:
            if any(t.claim == claim for t in part_tests):
                path = SweepFiles(out_dir).claim_figure(
                    claim, part if len(by_part) > 1 else None
                )
                save_claim_figure(mine, part_tests, claim, path)
                written.append(path)
    for stale in set(out_dir.glob("claim_*.png")) - set(written):
        stale.unlink()
    return Report(texts["sweep.md"], texts["statistics.md"], written)


def usage_error(message: str) -> int:
    """Say what is wrong in one line on stderr; the exit code of bad input."""
    print(f"report.py: error: {message}", file=sys.stderr)
    return 2


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2), without the usage."""

    def error(self, message: str) -> NoReturn:
        sys.exit(usage_error(message))


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineErrorParser(
        prog="report.py",
        description="Write a sweep's report (sweep.md, statistics.md and .csv, figures) from "
        "its sweep.csv, or merge the folders of a sweep's shards into one report.",
    )
    parser.add_argument(
        "folders", type=Path, nargs="+", help="sweep folders, each with its sweep.csv"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="where the report (and, merging several folders, the merged sweep.csv) goes; "
        "by default the one folder given",
    )
    args = parser.parse_args(argv)
    inputs = {folder.resolve() for folder in args.folders}
    if len(args.folders) > 1 and (args.out_dir is None or args.out_dir.resolve() in inputs):
        return usage_error(f"merging {len(args.folders)} folders needs an --out-dir of its own")
    try:
        report = write_report(args.folders, args.out_dir)
    except (ValueError, OSError) as e:
        return usage_error(str(e))
    print(report.table)
    print(report.statistics)
    print("Wrote " + ", ".join(str(path) for path in report.written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
