"""report.py on rows the tests write: the paired analysis over networks, Holm and
Benjamini-Hochberg, the one-network test over masks and test images, the claims' comparisons,
merging shards, the files a report writes, its command line, and that it needs no torch."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import report as R

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
IMAGES = 200  # test images of the rows written here

# (kind, deterministic, roles) as MNIST.py's table writes them
METHOD_COLUMNS = {
    "dpp_edge": ("edge", "False", "dpp"),
    "dpp_node": ("node", "False", "dpp"),
    "random_edge": ("edge", "False", "random"),
    "random_node": ("node", "False", "random"),
    "importance_edge": ("edge", "True", "importance"),
    "importance_node": ("node", "True", "importance"),
    "wanda_edge": ("edge", "True", "quality+frontier"),
    "obs_edge": ("edge", "True", "frontier"),
    "thinet_node": ("node", "True", "frontier"),
    "quality_node": ("node", "True", "quality"),
    "qdpp_edge": ("edge", "False", "qdpp"),
    "qdpp_node": ("node", "False", "qdpp"),
}


def right_images(correct: int, shift: int = 0) -> np.ndarray:
    """IMAGES bools, `correct` of them True, starting at image `shift`."""
    return np.roll(np.arange(IMAGES) < correct, shift)


def sweep_row(
    method: str,
    level: float,
    mask: int,
    reweighting: bool,
    right: np.ndarray,
    beta: str = "",
    node_features: str = "",
    network: str = "net1",
    seed: int = 1,
    architecture: str = "784-500-10",
    layer: int = 1,
) -> dict[str, str]:
    """One row of a sweep CSV, every column filled as MNIST.py fills it, as read back."""
    kind, deterministic, roles = METHOD_COLUMNS[method]
    row = {
        "network": network,
        "architecture": architecture,
        "layer": layer,
        "method": method,
        "kind": kind,
        "beta": beta,
        "node_features": node_features,
        "level": level,
        "k": 5,
        "mask": mask,
        "seed": seed + mask,
        "reweighting": reweighting,
        "remaining_weights": 100,
        "total_weights": 1000,
        "percent_kept": level,
        "accuracy": right.mean(),
        "loss": 0.5,
        "beta_used": "",
        "effective_rank": "",
        "uniformity": "",
        "dataset": "MNIST",
        "checkpoint": f"{network}.pt",
        "deterministic": deterministic,
        "roles": roles,
        "unpruned_accuracy": 0.9788,
        "correct_images": R.pack_bits(right),
        "unpruned_loss": 0.0712,
    }
    return {key: str(value) for key, value in row.items()}


DPP_NODE = ("dpp_node", "0.3", "preactivation")  # the plan's primary setting
# the second study's plan (results/PLAN.toml), of the comparisons study_rows has
STUDY_PLAN = R.Plan(
    source="study-plan.toml",
    margins=(1.0, 0.25),
    primary=tuple(
        R.Planned(claim, first, second, (("", 1),))
        for claim, first, second in (
            ("A", R.setting_label(*DPP_NODE), "random_node"),
            ("A", R.setting_label(*DPP_NODE), "importance_node"),
            ("B", "random_edge", R.setting_label(*DPP_NODE)),
            ("C", "dpp_edge (beta 0.3)", "random_edge"),
        )
    ),
)
ENDPOINT = R.NO_PLAN.endpoint  # accuracy in points, higher better, the mean over levels


def study_rows(networks: int = 3, masks: int = 3) -> list[dict[str, str]]:
    """A small study: per network, dpp_node (beta auto) a few images above random_node,
    importance_node one mask, dpp_edge and random_edge; 2 levels, without and with
    reweighting. Networks differ by a few images, masks by one or two."""
    rows = []
    for n in range(networks):
        network = f"net{n + 1}"
        spread = np.random.default_rng(n).integers(0, 6, size=5)  # the network's own share
        for reweighting in (False, True):
            for level in (10.0, 50.0):
                base = 120 + 10 * n + int(level) // 10
                for mask in range(masks):
                    for method, beta, features, extra in (
                        (*DPP_NODE, 20 + spread[0]),
                        ("random_node", "", "", spread[1]),
                        ("dpp_edge", "0.3", "", 40 + spread[2]),
                        ("random_edge", "", "", 30 + spread[3]),
                    ):
                        right = right_images(base + extra + (mask * (n + 1)) % 3, shift=mask)
                        rows.append(
                            sweep_row(
                                method, level, mask, reweighting, right, beta, features, network
                            )
                        )
                rows.append(
                    sweep_row(
                        "importance_node",
                        level,
                        0,
                        reweighting,
                        right_images(base + 5),
                        network=network,
                    )
                )
    return rows


def write_folder(folder: Path, rows: list[dict[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.csv").write_text(R.csv_text(rows, R.SWEEP_FIELDS))
    return folder


def test_packed_images_round_trip() -> None:
    right = np.random.default_rng(0).random(1003) < 0.7
    assert np.array_equal(R.unpack_bits(R.pack_bits(right)), right)


def test_the_paired_analysis_over_networks_is_scipys_paired_t_test() -> None:
    first = np.array([91.2, 90.4, 92.8, 91.9, 90.7])
    second = np.array([89.1, 90.2, 88.4, 89.9, 88.8])
    test = R.paired_over_networks(first, second)
    reference = scipy.stats.ttest_rel(first, second)
    interval = reference.confidence_interval(0.95)
    assert test.difference == pytest.approx((first - second).mean())
    assert test.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    low, high = test.interval(0.95)
    assert (low, high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    greater = scipy.stats.ttest_rel(first, second, alternative="greater").pvalue
    assert test.one_sided_p(True) == pytest.approx(greater, rel=1e-12)
    assert test.one_sided_p(False) == pytest.approx(1 - greater, rel=1e-12)
    assert test.networks == 5 and test.df == 4


def test_the_primary_endpoint_is_paired_over_networks_of_mask_averages() -> None:
    """compare: each network's masks averaged, then over levels; one value per network."""
    rows = study_rows()
    cells = R.cells_of(rows)
    node = R.setting_label(*DPP_NODE)
    test = R.compare(cells, node, "random_node", False, [10.0, 50.0], ENDPOINT)
    per_network = {}
    for row in rows:
        if row["reweighting"] == "False" and row["method"] in ("dpp_node", "random_node"):
            sign = 1 if row["method"] == "dpp_node" else -1
            per_network.setdefault(row["network"], []).append(sign * float(row["accuracy"]))
    # 2 levels x 3 masks a side: the mean over masks and levels, per network, of the difference
    differences = np.array([100 * sum(v) / 6 for v in per_network.values()])
    reference = scipy.stats.ttest_1samp(differences, 0.0)
    assert test.networks == 3 and test.difference == pytest.approx(differences.mean())
    assert test.p_value == pytest.approx(reference.pvalue)


def test_holm_on_a_hand_checked_family() -> None:
    """Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04, made
    monotone."""
    adjusted = R.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(R.holm([0.5, 0.9]), [1.0, 1.0])


def test_the_primary_family_is_the_plan_s_holm_over_one_sided_hypotheses() -> None:
    """Only the plan's comparisons (dpp_node at 0.3 on pre-activations, dpp_edge at 0.3; no
    edge-against-node ones) are primary; their Holm p-values are Holm's over the 2m
    one-sided p-values, the estimate's side shown."""
    tests = R.claim_tests(study_rows(), STUDY_PLAN)
    primary = [t for t in tests if t.analysis == "primary"]
    node = R.setting_label(*DPP_NODE)
    assert {(t.claim, t.first, t.second) for t in primary} == {
        ("A", node, "random_node"),
        ("A", node, "importance_node"),
        ("B", "random_edge", node),
        ("C", "dpp_edge (beta 0.3)", "random_edge"),
    }
    assert len(primary) == 4 * 2
    one_sided = [t.comparison.one_sided_p(side) for t in primary for side in (True, False)]
    adjusted = R.holm(one_sided).reshape(-1, 2)
    for t, (plus, minus) in zip(primary, adjusted):
        assert t.adjusted_p == pytest.approx(plus if t.comparison.difference >= 0 else minus)
    records = R.test_records(tests)
    assert {r["adjustment"] for r in records if r["analysis"] == "primary"} == {"Holm over 16"}
    dpp_vs_random = next(
        t for t in primary if (t.second, t.reweighting) == ("random_node", False)
    )
    assert dpp_vs_random.verdict.startswith("holds") and dpp_vs_random.low == 0.0


def test_the_secondary_tests_are_bh_within_part_and_claim_with_fcr_intervals() -> None:
    tests = R.claim_tests(study_rows())
    for claim in ("A", "B", "C"):
        mine = [t for t in tests if t.claim == claim and t.analysis == "secondary"]
        q = scipy.stats.false_discovery_control([t.comparison.p_value for t in mine])
        np.testing.assert_allclose([t.adjusted_p for t in mine], q)
        discoveries = max(int((q < 0.05).sum()), 1)
        level = 1 - 0.05 * discoveries / len(mine)
        for t in mine:
            assert (t.low, t.high) == pytest.approx(t.comparison.interval(level))
            assert (t.low > 0 or t.high < 0) == (t.verdict != "not shown")  # they agree


def primary_test(first: str, difference: float, se: float, reweighting: bool) -> R.Test:
    """A primary test of claim C, first - "b" at layer 1, over 10 networks (df 9)."""
    comparison = R.Comparison(difference, se, 9.0, 10)
    return R.Test(
        "784-500-10", 1, "C", first, "b", reweighting, ENDPOINT.label, "primary", comparison
    )


def test_compatible_simultaneous_intervals_on_a_hand_computed_family() -> None:
    """Three primary tests, df 9, SE 1: estimates 5, -4 and 0.5 (one-sided p 3.7e-4, 1.6e-3,
    0.31 on their sides). Holm over the 6 one-sided p-values rejects the first two (3.7e-4 x 6,
    1.6e-3 x 5 < 0.05; 0.31 x 4 is not), r = 2: their near bounds are 0, the
    other bounds the estimate -/+ t(1 - 0.05 / 4, 9) = 2.6850; the third, not rejected,
    [0.5 - 2.6850, 0.5 + 2.6850]; verdicts holds, reversed, inconclusive."""
    tests = [primary_test(f"a{i}", d, 1.0, False) for i, d in enumerate((5.0, -4.0, 0.5))]
    R.primary_family(tests, STUDY_PLAN)
    t = scipy.stats.t.ppf(1 - 0.05 / 4, 9)
    assert t == pytest.approx(2.6850, abs=1e-4)
    assert (tests[0].low, tests[0].high) == (0.0, pytest.approx(5 + t))
    assert (tests[1].low, tests[1].high) == (pytest.approx(-4 - t), 0.0)
    assert (tests[2].low, tests[2].high) == (pytest.approx(0.5 - t), pytest.approx(0.5 + t))
    assert [x.verdict for x in tests] == ["holds", "reversed", "inconclusive"]
    # the detectable difference: 80% power of the one-sided test at the level it was tested
    first = tests[0]
    critical = scipy.stats.t.ppf(1 - 0.05 / 6, 9)  # rank 1 of 6
    power = scipy.stats.nct.sf(critical, 9, first.detectable / 1.0)
    assert power == pytest.approx(0.8, abs=1e-6)


def test_an_unadjusted_ci_without_zero_is_no_verdict_when_holm_rejects_nothing() -> None:
    """Estimate 2.5, SE 1, df 9: its unadjusted 95% CI [0.24, 4.76] excludes 0, but in a family
    of three (6 one-sided hypotheses) its Holm p is 6 x 0.017 = 0.10, so its simultaneous
    interval, 2.5 -/+ t(1 - 0.05 / 6, 9), holds 0 and its verdict is inconclusive."""
    tests = [primary_test(f"a{i}", d, 1.0, False) for i, d in enumerate((2.5, 0.1, -0.2))]
    R.primary_family(tests, STUDY_PLAN)
    first = tests[0]
    assert first.comparison.interval(0.95)[0] > 0 and first.adjusted_p >= 0.05
    t = scipy.stats.t.ppf(1 - 0.05 / 6, 9)
    assert (first.low, first.high) == (pytest.approx(2.5 - t), pytest.approx(2.5 + t))
    assert first.low < 0 < first.high and first.verdict == "inconclusive"


def test_equivalence_and_negligible_differences_follow_the_margins() -> None:
    """With reweighting (margin 0.25): a precise 0.01 (SE 0.02) is equivalent; a precise
    0.1 (SE 0.001) holds but is negligible; an imprecise 0.01 (SE 0.5) is inconclusive."""
    cases = ((0.01, 0.02), (0.1, 0.001), (0.01, 0.5))
    tests = [primary_test(f"a{i}", d, se, True) for i, (d, se) in enumerate(cases)]
    R.primary_family(tests, STUDY_PLAN)
    assert [t.verdict for t in tests] == ["equivalent", "holds (negligible)", "inconclusive"]


def test_the_crossing_rule_names_the_levels_against_the_verdict() -> None:
    def level(endpoint: str, verdict: str) -> R.Test:
        test = R.Test(
            "784-500-10",
            1,
            "B",
            "x",
            "y",
            True,
            endpoint,
            "secondary",
            R.Comparison(0.0, 1.0, 9.0, 10),
        )
        test.verdict = verdict
        return test

    main = level(ENDPOINT.label, "holds")
    levels = [level("10%", "reversed"), level("50%", "holds"), level("90%", "not shown")]
    assert R.crossing(main, levels) == "holds; reversed at 10%"
    main.verdict = "inconclusive"
    assert R.crossing(main, levels) == "inconclusive; crossing: holds at 50%, reversed at 10%"
    main.verdict = "reversed"
    assert R.crossing(main, levels[2:]) == "reversed"


def test_a_planned_sensitivity_analysis_leaves_out_its_networks() -> None:
    s1 = R.Sensitivity("S1", "the first study's networks", frozenset({"net1"}))
    plan = dataclasses.replace(STUDY_PLAN, sensitivity=(s1,))
    tests = R.claim_tests(study_rows(), plan)
    sensitivity = [t for t in tests if t.analysis == "S1"]
    assert len(sensitivity) == len([t for t in tests if t.analysis == "primary"])
    assert {t.comparison.networks for t in sensitivity} == {2}
    statistics = R.statistics_markdown(study_rows(), tests, plan)
    assert "## Sensitivity S1: without the first study's networks" in statistics
    assert "3 networks (1 of the first study's networks, which S1 drops)" in statistics


def test_the_variance_between_masks_and_between_networks_by_hand() -> None:
    """random_edge without reweighting: each mask's mean over the 2 levels, per network; the
    pooled variance within networks, and the variance of the network means less it / 3."""
    rows = study_rows()
    record = next(
        c
        for c in R.variance_components(rows)
        if (c["group"], c["reweighting"]) == ("random_edge", False)
    )
    by = {}
    for r in rows:
        if (r["method"], r["reweighting"]) == ("random_edge", "False"):
            by.setdefault(r["network"], {}).setdefault(r["mask"], []).append(
                100 * float(r["accuracy"])
            )
    masks = [[np.mean(v) for v in per.values()] for per in by.values()]
    within = np.mean([np.var(m, ddof=1) for m in masks])
    between = max(np.var([np.mean(m) for m in masks], ddof=1) - within / 3, 0.0)
    assert record["within"] == pytest.approx(np.sqrt(within))
    assert record["between"] == pytest.approx(np.sqrt(between))
    # a method at fewer levels than the others (edges where no edge budget matches) counts too
    fewer = [r for r in rows if (r["method"], r["level"]) != ("random_edge", "10.0")]
    groups = {(c["group"], c["reweighting"]) for c in R.variance_components(fewer)}
    assert ("random_edge", False) in groups


def test_the_claims_compare_what_the_rows_roles_say() -> None:
    rows = study_rows(networks=1, masks=1)
    pairs = {(c, f, s) for c, f, s in R.claim_comparisons(rows)}
    node = R.setting_label(*DPP_NODE)
    assert pairs == {
        ("A", node, "random_node"),
        ("A", node, "importance_node"),
        ("B", "random_edge", node),
        ("C", "dpp_edge (beta 0.3)", "random_edge"),
        *(
            ("C", "dpp_edge (beta 0.3)", other)
            for other in (node, "random_node", "importance_node")
        ),
    }
    for row in rows:  # a method without a role (a user's) is compared with nothing
        if row["method"] == "random_node":
            row["roles"] = ""
    assert not any("random_node" in pair for pair in R.claim_comparisons(rows))


def test_claims_d_and_e_compare_quality_diversity_and_the_frontier() -> None:
    """D: each quality-diversity DPP setting against the quality-only method of its kind; E:
    each DPP and quality-diversity DPP setting against the frontier methods of its kind
    (wanda_edge is both quality-only and frontier)."""
    right = right_images(100)
    methods = [
        ("dpp_edge", "0.3", ""),
        ("dpp_node", "auto", "activation"),
        ("qdpp_edge", "auto", ""),
        ("qdpp_node", "auto", "preactivation"),
        ("wanda_edge", "", ""),
        ("obs_edge", "", ""),
        ("thinet_node", "", ""),
        ("quality_node", "", ""),
    ]
    rows = [sweep_row(m, 50.0, 0, False, right, b, f) for m, b, f in methods]
    pairs = {p for p in R.claim_comparisons(rows) if p[0] in "DE"}
    dpp_edge, dpp_node = "dpp_edge (beta 0.3)", "dpp_node (beta auto, activation)"
    qdpp_edge, qdpp_node = "qdpp_edge (beta auto)", "qdpp_node (beta auto, preactivation)"
    assert pairs == {
        ("D", qdpp_edge, "wanda_edge"),
        ("D", qdpp_node, "quality_node"),
        *(("E", d, f) for d in (dpp_edge, qdpp_edge) for f in ("wanda_edge", "obs_edge")),
        *(("E", d, "thinet_node") for d in (dpp_node, qdpp_node)),
    }
    assert not any(
        "qdpp" in first for claim, first, _ in R.claim_comparisons(rows) if claim in "ABC"
    )


def test_with_one_network_two_images_never_make_a_verdict() -> None:
    """Two deterministic masks 2 of 10,000 images apart: the paired test over the images
    (scipy's ttest_rel on the per-image outcomes) finds nothing, p 0.16."""
    n = 10_000
    second = np.arange(n) < 9_700
    first = second.copy()
    first[[9_800, 9_900]] = True
    test = R.one_network_test(
        np.array([100 * first.mean()]), np.array([100 * second.mean()]), first, second
    )
    reference = scipy.stats.ttest_rel(100.0 * first, 100.0 * second)
    assert test.difference == pytest.approx(0.02)
    assert test.p_value == pytest.approx(reference.pvalue) and test.p_value > 0.15
    low, high = test.interval(0.95)
    assert low < 0 < high


def test_with_one_network_masks_without_spread_are_not_a_verdict_either() -> None:
    """Three DPP masks at 97.02, 97.03, 97.02% against a deterministic 97.00%: over the masks
    alone (a one-sample t-test) "better", p 0.02; with the test images counted, 2 or 3 images
    are no evidence."""
    n = 10_000
    deterministic = np.arange(n) < 9_700
    masks = [np.arange(n) < 9_700 + extra for extra in (2, 3, 2)]
    accuracies = np.array([100 * m.mean() for m in masks])
    assert scipy.stats.ttest_1samp(accuracies, 97.0).pvalue < 0.05
    test = R.one_network_test(
        accuracies, np.array([97.0]), np.mean(masks, axis=0), deterministic
    )
    low, high = test.interval(0.95)
    assert test.p_value > 0.1 and low < 0 < high


def test_what_cannot_be_tested_is_not() -> None:
    """One mask of a method of random masks on one network: its spread over masks is unknown,
    so no test rests on the images alone (two masks are tested). Of several networks, one
    with both methods is never tested as if it were the only one."""
    rows = study_rows(networks=1, masks=1)
    assert R.claim_tests(rows, STUDY_PLAN) == []
    assert "None of the plan's primary comparisons" in R.statistics_markdown(
        rows, [], STUDY_PLAN
    )
    assert len(R.claim_tests(study_rows(networks=1, masks=2))) == 7 * 2 * 3
    rows = [
        row
        for row in study_rows(networks=2)
        if (row["network"], row["method"]) != ("net2", "importance_node")
    ]
    tests = R.claim_tests(rows)
    assert not any("importance_node" in (t.first, t.second) for t in tests)
    assert {t.comparison.networks for t in tests} == {2}


def test_one_network_reports_say_so_and_test_over_images() -> None:
    rows = study_rows(networks=1)
    statistics = R.render_report(rows, R.claim_tests(rows))["statistics.md"]
    assert "one network: every test is about this network only" in statistics
    assert (
        "3 networks"
        in R.render_report(study_rows(), R.claim_tests(study_rows()))["statistics.md"]
    )


def test_the_accuracy_table_averages_masks_then_networks() -> None:
    rows = study_rows()
    table = R.sweep_markdown(rows)
    per_network = [
        np.mean(
            [
                100 * float(r["accuracy"])
                for r in rows
                if (r["network"], r["method"], r["level"], r["reweighting"])
                == (f"net{n}", "random_edge", "10.0", "False")
            ]
        )
        for n in (1, 2, 3)
    ]
    cell = f"{np.mean(per_network):.2f} ± {np.std(per_network, ddof=1):.2f}"
    assert f"| random_edge | no | {cell} |" in table
    assert "Test accuracy (%) of 3 networks" in table


def test_shards_merge_into_one_report_and_overlaps_are_refused(tmp_path: Path) -> None:
    rows = study_rows()
    one = write_folder(tmp_path / "one", rows[: len(rows) // 2])
    two = write_folder(tmp_path / "two", rows[len(rows) // 2 :])
    report = R.write_report([one, two], tmp_path / "merged")
    assert R.read_csv(tmp_path / "merged" / "sweep.csv") == rows
    whole = write_folder(tmp_path / "whole", rows)
    assert R.write_report([whole]).statistics == report.statistics
    overlapping = write_folder(tmp_path / "overlap", rows[:3])
    with pytest.raises(ValueError, match="repeats a row"):
        R.merged_rows([one, overlapping])
    other_seed = write_folder(tmp_path / "seed", [{**rows[-1], "seed": "7", "mask": "0"}])
    with pytest.raises(ValueError, match="different seeds"):
        R.merged_rows([one, other_seed])
    other_data = write_folder(tmp_path / "data", [{**rows[-1], "dataset": "Fashion-MNIST"}])
    with pytest.raises(ValueError, match="different data sets"):
        R.merged_rows([one, other_data])


def test_a_report_writes_its_files(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "sweep", study_rows())
    report = R.write_report([folder], plan=STUDY_PLAN)
    assert (folder / "sweep.md").read_text() == report.table
    assert (folder / "statistics.md").read_text() == report.statistics
    tests = R.read_csv(folder / "statistics.csv", R.TEST_FIELDS)
    # 7 comparisons, without and with reweighting, over both levels and at each; then the 8
    # primary tests post hoc: S2, S3 at 10% and at 50%, S4
    assert len(tests) == 7 * 2 * 3 + 8 * 4
    for name in ("sweep.png", "forest.png", "claim_A.png", "claim_B.png", "claim_C.png"):
        assert (folder / name).read_bytes().startswith(b"\x89PNG")
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


def test_the_command_line_merges_folders_without_torch(tmp_path: Path) -> None:
    rows = study_rows()
    one = write_folder(tmp_path / "one", rows[:40])
    two = write_folder(tmp_path / "two", rows[40:])
    code = NO_TORCH + (
        "import report\n"
        "code = report.main(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules\n"
        "sys.exit(code)\n"
    )
    argv = [str(one), str(two), "--out-dir", str(tmp_path / "merged")]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "merged" / "statistics.md").read_text() in done.stdout


@pytest.mark.parametrize(
    "case", ["missing folder", "no csv", "other columns", "several without --out-dir"]
)
def test_the_command_line_refuses_bad_folders_in_one_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "sweep"
    if case != "missing folder":
        folder.mkdir()
    if case == "other columns":
        (folder / "sweep.csv").write_text("method,accuracy\ndpp_edge,0.5\n")
    argv = [str(folder), str(folder)] if case.startswith("several") else [str(folder)]
    assert R.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and (str(folder) in err or "--out-dir" in err)


def test_no_folder_is_one_line_and_no_shard_is_the_merge_s_out_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as exit_:
        R.main([])
    assert exit_.value.code == 2 and len(capsys.readouterr().err.splitlines()) == 1
    monkeypatch.chdir(tmp_path)
    for shard in ("a", "b"):
        (tmp_path / shard).mkdir()
    assert R.main(["a", "b", "--out-dir", str(tmp_path / "a")]) == 2  # "a" by another name
    assert "--out-dir of its own" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name", sorted(str(p.parent.relative_to(RESULTS)) for p in RESULTS.glob("**/sweep.csv"))
)
def test_the_committed_reports_are_what_report_py_writes(name: str) -> None:
    """Every results folder's sweep.md and statistics are what report.py renders from its CSV
    under the plan its statistics.md names (write_report writes exactly these, and the
    figures)."""
    folder = RESULTS / name
    rows = R.read_csv(folder / "sweep.csv")
    statistics = (folder / "statistics.md").read_text()
    named = re.search(r"^Data: .*?\. Plan: (\S+)", statistics, re.MULTILINE)
    plan = R.without_plan(rows)
    if named:  # the plan as the report names it: relative to the repository's root
        plan = dataclasses.replace(R.read_plan(ROOT / named[1]), source=named[1])
    for file, text in R.render_report(rows, R.claim_tests(rows, plan), plan).items():
        assert text == (folder / file).read_text(), file


@pytest.mark.parametrize("df", [1.0, 4.0, 9.0, 1e6])
def test_the_detectable_difference_has_80_percent_power(df: float) -> None:
    """At the detectable difference a one-sided t-test at Holm's strictest level of 80
    hypotheses rejects with probability 0.8 (scipy's non-central t), and with many degrees
    of freedom it is the normal approximation (z(1 - alpha) + z(0.8)) SE; with one degree of
    freedom (two networks) it lies far out but is still found."""
    comparison, alpha = R.Comparison(1.0, 0.5, df, int(df) + 1), 0.05 / 80
    detectable = comparison.detectable(alpha, 0.8)
    critical = scipy.stats.t.ppf(1 - alpha, df)
    power = scipy.stats.nct.sf(critical, df, detectable / comparison.se)
    assert math.isfinite(detectable) and power == pytest.approx(0.8, abs=1e-9)
    if df > 1e5:
        normal = (scipy.stats.norm.ppf(1 - alpha) + scipy.stats.norm.ppf(0.8)) * 0.5
        assert detectable == pytest.approx(normal, rel=1e-3)
