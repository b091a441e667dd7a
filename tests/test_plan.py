"""The analysis plan as a file (report.read_plan, report.py --plan), the post-hoc sensitivity
analyses S2-S4 against hand computations, sweep rows appended and recovered after a kill, and
the report's figures as a reviewer reads them (titles inside the figure, labelled ticks where
the curves are, every method its own colour, verdict colours). No torch."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from test_report import STUDY_PLAN, right_images, study_rows, sweep_row, write_folder

import report as R

ROOT = Path(__file__).resolve().parents[1]
NODE = "dpp_node (beta 0.3, preactivation)"

PLAN = """
document = "why.md"

[endpoint]
column = "accuracy"
levels = "all"

[tests]
alpha = 0.05
margin = 1.0
margin_reweighted = 0.25

[primary]
parts = [{ layer = 1 }]
comparisons = [
    { claim = "A", first = "dpp_node (beta 0.3, preactivation)", second = "random_node" },
    { claim = "C", first = "dpp_edge (beta 0.3)", second = "random_edge" },
]
"""


def write_plan(folder: Path, text: str = PLAN) -> Path:
    path = folder / "plan.toml"
    path.write_text(text)
    return path


def test_the_second_study_s_plan_is_a_file_report_py_reads() -> None:
    plan = R.read_plan(ROOT / "results" / "PLAN.toml")
    assert len(plan.primary) == 10 and plan.margins == (1.0, 0.25)
    assert plan.alpha == 0.05 and plan.power == 0.8 and plan.document == "results/PLAN.md"
    assert {p.parts for p in plan.primary} == {(("784-500-10", 1), ("784-500-500-10", 1))}
    (s1,) = plan.sensitivity
    assert s1.name == "S1" and len(s1.networks) == 10
    assert plan.endpoint == R.Endpoint()  # accuracy in points, higher better, every level


def test_report_py_keeps_no_study_s_constants() -> None:
    """No fingerprint, comparison label or margin of a study is written into report.py."""
    source = (ROOT / "report.py").read_text()
    assert not __import__("re").search(r"[0-9a-f]{16}", source)
    assert "beta 0.3, preactivation" not in source and "0.25" not in source


def test_a_plan_makes_its_comparisons_primary_at_its_parts() -> None:
    rows = study_rows()
    tests = R.claim_tests(rows, STUDY_PLAN)
    primary = {(t.claim, t.first, t.second) for t in tests if t.analysis == "primary"}
    assert primary == {(p.claim, p.first, p.second) for p in STUDY_PLAN.primary}
    elsewhere = R.Planned("A", NODE, "random_node", (("784-500-500-10", 1),))
    other_part = R.Plan(source="p.toml", margins=(1.0, 0.25), primary=(elsewhere,))
    assert not any(t.analysis == "primary" for t in R.claim_tests(rows, other_part))


def test_without_a_plan_no_test_is_primary_and_the_report_says_so_first() -> None:
    rows = study_rows()
    tests = R.claim_tests(rows)
    assert {t.analysis for t in tests} == {"secondary"}
    statistics = R.statistics_markdown(rows, tests)
    assert "explored without a plan" in statistics.splitlines()[0]
    assert "**No analysis plan**" in statistics.splitlines()[2]
    assert "Plan: " not in statistics and "## The primary tests" not in statistics


def test_a_plan_names_its_endpoint_levels_and_direction(tmp_path: Path) -> None:
    """An endpoint of named levels is the mean over them; lower-is-better flips the sign."""
    at_50 = PLAN.replace('levels = "all"', "levels = [50]")
    plan = R.read_plan(write_plan(tmp_path, at_50))
    assert plan.endpoint.label == "mean over 50%"
    rows = study_rows()
    tests = R.claim_tests(rows, plan)
    primary = next(t for t in tests if t.analysis == "primary" and not t.reweighting)
    assert primary.levels == (50.0,) and primary.endpoint == "mean over 50%"
    at_level = next(
        t for t in tests if t.pair == primary.pair and t.per_level and t.levels == (50.0,)
    )
    assert primary.comparison.difference == pytest.approx(at_level.comparison.difference)
    loss = PLAN.replace('column = "accuracy"', 'column = "loss"\nhigher_is_better = false')
    loss = loss.replace('levels = "all"', 'levels = "all"\nscale = 1\nunit = "nats"')
    plan = R.read_plan(write_plan(tmp_path, loss))
    for row in rows:  # first's loss 0.1 below second's: the first is better, by +0.1
        row["loss"] = str(0.4 if row["method"] == "dpp_node" else 0.5)
    primary = next(t for t in R.claim_tests(rows, plan) if t.first == NODE and t.levels)
    assert primary.comparison.difference == pytest.approx(0.1)
    assert "second − first in nats of loss" in R.statistics_markdown(rows, [primary], plan)


def test_a_loss_endpoint_neither_runs_nor_lists_s2(tmp_path: Path) -> None:
    """S2 resamples test images, which a loss such as the exact error of a teacher-student
    sweep has none of: the report must not name it among the analyses."""
    loss = PLAN.replace('column = "accuracy"', 'column = "loss"\nhigher_is_better = false')
    loss = loss.replace("alpha = 0.05", 'alpha = 0.05\nsensitivity_checks = ["S3", "S4"]')
    plan = R.read_plan(write_plan(tmp_path, loss.replace('levels = "all"', "scale = 1")))
    rows = study_rows()
    for row in rows:
        row["loss"] = str(1 - float(row["accuracy"]) / 100)
        row["accuracy"] = ""
    tests = R.claim_tests(rows, plan)
    assert {t.analysis.split(":")[0] for t in tests} >= {"S3", "S4"}
    statistics = R.statistics_markdown(rows, tests, plan)
    assert "S3, S4 named in the plan in advance, on the" in statistics
    assert "S2" not in statistics


BAD_PLANS = {
    "unknown method label": (
        PLAN.replace('second = "random_node"', 'second = "random_nod"'),
        "primary.comparisons[0].second",
    ),
    "unknown column": (PLAN.replace('"accuracy"', '"acuracy"'), "endpoint.column"),
    "margin at 0": (PLAN.replace("margin = 1.0", "margin = 0"), "tests.margin"),
    "negative margin": (
        PLAN.replace("margin_reweighted = 0.25", "margin_reweighted = -0.25"),
        "tests.margin_reweighted",
    ),
    "alpha at 1": (PLAN.replace("alpha = 0.05", "alpha = 1"), "tests.alpha"),
    "alpha at 0": (PLAN.replace("alpha = 0.05", "alpha = 0.0"), "tests.alpha"),
    "a comparison with no rows": (
        PLAN.replace("parts = [{ layer = 1 }]", "parts = [{ layer = 2 }]"),
        "primary.comparisons[0]",
    ),
    "malformed file": (PLAN.replace("[tests]", "[tests"), "not valid TOML"),
    "unknown key": (PLAN.replace("alpha = 0.05", "alfa = 0.05"), "tests.alfa"),
    "missing margin": (PLAN.replace("margin = 1.0\n", ""), "tests.margin"),
    "unknown check": (
        PLAN.replace("alpha = 0.05", 'alpha = 0.05\nsensitivity_checks = ["S9"]'),
        "tests.sensitivity_checks",
    ),
    "unknown claim": (
        PLAN.replace('claim = "C"', 'claim = "Z"'),
        "primary.comparisons[1].claim",
    ),
}


@pytest.mark.parametrize("case", BAD_PLANS, ids=list(BAD_PLANS))
def test_a_bad_plan_exits_2_in_one_line_naming_its_key(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, key = BAD_PLANS[case]
    folder = write_folder(tmp_path / "sweep", study_rows())
    before = sorted(p.name for p in folder.iterdir())
    plan = write_plan(tmp_path, text)
    assert R.main([str(folder), "--plan", str(plan)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and key in err and str(plan) in err, err
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written


def test_a_missing_plan_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_folder(tmp_path / "sweep", study_rows())
    assert R.main([str(folder), "--plan", str(tmp_path / "nowhere.toml")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_a_plan_may_name_a_claim_of_its_own(tmp_path: Path) -> None:
    text = PLAN.replace('claim = "C"', 'claim = "M"') + '\n[claims]\nM = "mine beats theirs"\n'
    plan = R.read_plan(write_plan(tmp_path, text))
    tests = R.claim_tests(study_rows(), plan)
    assert any(t.claim == "M" and t.analysis == "primary" for t in tests)
    assert "* **M.** Mine beats theirs." in R.statistics_markdown(study_rows(), tests, plan)


# Post-hoc analyses ----------------------------------------------------------------------------
def test_s4_is_the_exact_sign_flip_test_by_enumeration() -> None:
    """Differences 1.0, 2.0 and -0.5 (mean 0.833): of the 8 sign patterns, those whose mean
    reaches 0.833 are (+,+,-) itself and (+,+,+): p = 2/8; the other side 7/8."""
    d = (1.0, 2.0, -0.5)
    flip = R.SignFlip(np.mean(d), 1.0, 2.0, 3, d)
    means = [np.dot(s, d) / 3 for s in itertools.product((1, -1), repeat=3)]
    assert flip.one_sided_p(True) == sum(m >= np.mean(d) - 1e-12 for m in means) / 8 == 0.25
    assert flip.one_sided_p(False) == 7 / 8 and flip.smallest_p == 1 / 8


def test_s4_beyond_exact_networks_samples_sign_patterns_around_the_exact_p() -> None:
    """17 networks: the 2^17 patterns enumerated here give the exact p, which the 2^16 sampled
    ones must estimate within 4 of their standard errors; the smallest p is then 1/2^16."""
    n = R.EXACT_NETWORKS + 1
    d = np.random.default_rng(0).normal(0.3, 1.0, n)
    flip = R.SignFlip(float(d.mean()), 1.0, 2.0, n, tuple(d))
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    exact = np.mean(signs @ d / n >= d.mean() - 1e-12)
    assert 0.01 < exact < 0.5 and not flip.exact and flip.smallest_p == 1 / R.SIGN_SAMPLES
    sampled = flip.one_sided_p(True)
    assert abs(sampled - exact) < 4 * np.sqrt(exact * (1 - exact) / R.SIGN_SAMPLES)
    assert sampled == flip.one_sided_p(True)  # the same differences, the same patterns


def test_sensitivity_checks_a_plan_names_are_labelled_as_planned(tmp_path: Path) -> None:
    text = PLAN.replace("alpha = 0.05", 'alpha = 0.05\nsensitivity_checks = ["S3", "S4"]')
    plan = R.read_plan(write_plan(tmp_path, text))
    assert plan.checks == ("S3", "S4")
    statistics = R.statistics_markdown(study_rows(), R.claim_tests(study_rows(), plan), plan)
    assert "## Sensitivity analyses\n" in statistics and "(not in the plan)" not in statistics
    assert (
        "S3, S4 named in the plan in advance, S2 chosen after the rows were seen" in statistics
    )


def test_the_post_hoc_tests_are_labelled_and_never_primary() -> None:
    tests = R.claim_tests(study_rows(), STUDY_PLAN)
    primary = [t for t in tests if t.analysis == "primary"]
    posthoc = [t for t in tests if t.analysis.split(":")[0] in R.POSTHOC]
    assert {t.analysis for t in posthoc} == {"S2", "S3: 10%", "S3: 50%", "S4"}
    assert len([t for t in posthoc if t.analysis == "S4"]) == len(primary)
    statistics = R.statistics_markdown(study_rows(), tests, STUDY_PLAN)
    assert "## Post-hoc sensitivity analyses (not in the plan)" in statistics
    assert "### Where they change a primary verdict" in statistics
    records = R.test_records(tests)
    assert {r["adjustment"] for r in records if r["analysis"] == "S4"} == {"Holm over 16"}


def deterministic_rows(shift_per_network: bool) -> list[dict[str, str]]:
    """Three networks, random_node (one mask, deterministic here) and dpp_node at one level:
    dpp_node gets images 0-119 right, random_node images 20-139, the same on every network
    (the network spread 0) unless shifted: a per-image difference of +1 on 20 images and -1
    on 20."""
    rows = []
    for n, network in enumerate(("a", "b", "c")):
        extra = n if shift_per_network else 0
        for method, shift in (("dpp_node", 0), ("random_node", 20)):
            right = right_images(120 + extra * (method == "dpp_node"), shift)
            beta, features = ("0.3", "preactivation") if method == "dpp_node" else ("", "")
            for reweighting in (False, True):
                row = sweep_row(method, 50.0, 0, reweighting, right, beta, features, network)
                rows.append({**row, "deterministic": "True"})
    return rows


def test_s2_adds_the_test_images_variance_to_the_networks_spread() -> None:
    """Per image, dpp_node minus random_node is +100 points on 20 images and -100 on 20 (0 on
    160): the test set's sampling variance of that mean is 100^2 (40/200) / 200 = 10, so with
    no spread between networks S2's SE is sqrt(10) = 3.16 points where the t-test's is 0; with
    a spread, S2's variance is the t-test's plus that of the images' (here with one image
    more on network b and two on c: the per-image mean moves too)."""
    planned = R.Planned("A", NODE, "random_node", (("", 1),))
    plan = R.Plan(source="p", margins=(1.0, 0.25), primary=(planned,))
    tests = R.claim_tests(deterministic_rows(False), plan)
    primary = next(t for t in tests if t.analysis == "primary" and not t.reweighting)
    counted = next(t for t in tests if t.analysis == "S2" and not t.reweighting)
    assert primary.comparison.se == 0 and primary.comparison.difference == 0
    assert counted.comparison.se == pytest.approx(np.sqrt(10.0), rel=1e-9)
    assert counted.verdict == "inconclusive"  # +-3 points is not within the 1-point margin
    rows = deterministic_rows(True)
    tests = R.claim_tests(rows, plan)
    primary = next(t for t in tests if t.analysis == "primary" and not t.reweighting)
    counted = next(t for t in tests if t.analysis == "S2" and not t.reweighting)
    per_image = (
        np.mean(
            [
                sign * R.unpack_bits(r["correct_images"])
                for r in rows
                if r["reweighting"] == "False"
                for sign in [1.0 if r["method"] == "dpp_node" else -1.0]
            ],
            axis=0,
        )
        * 2
    )  # the mean over networks of (dpp_node - random_node): two rows a network
    images = 100**2 * np.var(per_image) / len(per_image)
    assert primary.comparison.se > 0
    expected = np.sqrt(primary.comparison.se**2 + images)
    assert counted.comparison.se == pytest.approx(expected, rel=1e-9)
    assert counted.comparison.df == primary.comparison.df


def test_s3_s_near_lossless_level_is_the_lowest_with_both_near_the_unpruned_network() -> None:
    """Unpruned 97.88%: at 30% both methods lie 5 points below, at 60% one point or less."""
    rows = []
    for network in ("a", "b", "c"):
        for level, correct in ((30.0, (186, 184)), (60.0, (194, 195)), (90.0, (195, 196))):
            for method, c in zip(("dpp_edge", "random_edge"), correct):
                beta = "0.3" if method == "dpp_edge" else ""
                for mask in (0, 1):
                    for rw in (False, True):
                        right = right_images(c + (network == "b") + mask, 0)
                        rows.append(
                            sweep_row(method, level, mask, rw, right, beta, "", network)
                        )
    planned = R.Planned("C", "dpp_edge (beta 0.3)", "random_edge", (("", 1),))
    plan = R.Plan(source="p", margins=(1.0, 0.25), primary=(planned,))
    tests = R.claim_tests(rows, plan)
    near = [t for t in tests if t.analysis == "S3: near-lossless"]
    assert near and all(t.levels == (60.0,) for t in near)
    upper = [t for t in tests if t.analysis == "S3: upper levels"]
    assert upper and all(t.levels == (60.0, 90.0) for t in upper)


# Rows appended --------------------------------------------------------------------------------
def test_rows_are_appended_and_a_kill_mid_write_is_cut_off(tmp_path: Path) -> None:
    # 4 masks, each its two rows (without, with reweighting) in one write, as a sweep does
    rows = sorted(
        study_rows(networks=1, masks=1), key=lambda r: (R.cell_key(r), r["reweighting"])
    )
    rows = rows[:8]
    path = tmp_path / "sweep.csv"
    for pair in (rows[i : i + 2] for i in range(0, 8, 2)):
        R.append_rows(path, pair)
    whole = path.read_bytes()
    assert R.read_csv(path) == rows and R.recover_csv(path) == (rows, "")
    last_line = whole.rstrip(b"\n").rfind(b"\n") + 1
    # torn inside the last row; torn inside the second to last row (the mask's first)
    for cut, kept in ((len(whole) - 5, 6), (last_line - 5, 6), (last_line, 6)):
        path.write_bytes(whole[:cut])
        recovered, dropped = R.recover_csv(path)
        assert recovered == rows[:kept] and dropped, cut
        assert R.read_csv(path) == rows[:kept]  # the file itself is cut back
        R.append_rows(path, rows[kept:])
        assert path.read_bytes() == whole
    path.write_bytes(whole.replace(b"network,", b"net,", 1))
    with pytest.raises(ValueError, match="not a sweep CSV"):
        R.recover_csv(path)


# Figures --------------------------------------------------------------------------------------
def text_boxes(fig: object) -> list[tuple[str, object]]:
    """The figure's title and its panels' titles with their extents on the canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # as savefig draws a PNG
    fig.draw(renderer)  # type: ignore[attr-defined]
    texts = [fig._suptitle] if fig._suptitle is not None else []  # type: ignore[attr-defined]
    texts += [ax.title for ax in fig.axes]  # type: ignore[attr-defined]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text()]


def figures_of(rows: list[dict[str, str]], plan: R.Plan) -> dict[str, object]:
    tests = R.claim_tests(rows, plan)
    return {name: draw() for name, draw in R.report_figures(rows, tests, plan).items()}


@pytest.mark.parametrize("plan", [STUDY_PLAN, R.NO_PLAN], ids=["plan", "no plan"])
def test_every_title_fits_inside_its_figure_and_overlaps_no_other(plan: R.Plan) -> None:
    for name, fig in figures_of(study_rows(), plan).items():
        box = fig.bbox  # type: ignore[attr-defined]
        titles = text_boxes(fig)
        for text, extent in titles:
            assert box.x0 <= extent.x0 and extent.x1 <= box.x1, (name, text)
            assert box.y0 <= extent.y0 and extent.y1 <= box.y1, (name, text)
        for (a, first), (b, second) in itertools.combinations(titles, 2):
            assert not first.overlaps(second), (name, a, b)


def test_the_committed_figures_titles_fit() -> None:
    """The crossing qualifiers of the second study: MNIST's claim B titles."""
    rows = R.read_csv(ROOT / "results" / "mnist_study" / "sweep.csv")
    rows = [r for r in rows if r["architecture"] == "784-500-10"]
    plan = R.read_plan(ROOT / "results" / "PLAN.toml")
    tests = R.claim_tests(rows, plan)
    fig = R.claim_figure(rows, tests, "B", plan)
    box = fig.bbox
    titles = text_boxes(fig)
    assert any("crossing" in text for text, _ in titles)
    for text, extent in titles:
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1, text
    for (a, first), (b, second) in itertools.combinations(titles, 2):
        assert not first.overlaps(second), (a, b)


def test_sweep_png_labels_the_y_axis_where_the_curves_are() -> None:
    fig = R.sweep_figure(study_rows(), STUDY_PLAN)
    fig.draw_without_rendering()
    for ax in fig.axes:
        if not ax.lines:
            continue
        values = np.concatenate(
            [line.get_ydata() for line in ax.lines if len(line.get_ydata())]
        )
        low, high = values.min(), values.max()
        labelled = [
            tick.get_loc()
            for tick in ax.yaxis.get_major_ticks()
            if tick.label1.get_text() and low / 1.2 <= tick.get_loc() <= high * 1.2
        ]
        assert len(labelled) >= 3, (ax.get_title(), low, high, labelled)
    assert "not paired" in fig._suptitle.get_text()


def test_every_method_gets_its_own_colour_edges_solid_nodes_dashed() -> None:
    rows = study_rows()
    mine = [
        {**row, "method": "my_method", "beta": "", "node_features": "", "roles": ""}
        for row in rows
        if row["method"] == "random_edge"
    ]
    rows += mine
    groups = list(dict.fromkeys(R.group_label(r) for r in rows))
    styles = R.method_styles(rows, groups)
    assert styles["my_method"][2] == "-" and styles[NODE][2] == "--"
    assert closest([colour for colour, *_ in styles.values()]) > 30
    assert closest(R.distinct_colours(20)) > 25  # CIE76: 2.3 is a just-noticeable difference


def closest(colours: list[str]) -> float:
    """The smallest CIE76 colour difference between two of these "#rrggbb" colours."""
    rgb = np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in colours])
    lab = R.lab(rgb)
    return float(
        np.linalg.norm(lab[:, None] - lab[None], axis=-1)[np.triu_indices(len(lab), 1)].min()
    )


def test_verdict_colours_tell_shown_negligible_and_equivalent_apart() -> None:
    colours = {v: R.verdict_style(v) for v in R.VERDICT_COLOURS}
    assert len({c for c, _ in colours.values()}) == len(colours)
    assert colours["holds (negligible)"][1] and not colours["holds"][1]
    assert R.verdict_style("inconclusive")[0] == R.verdict_style("not shown")[0]
    assert R.verdict_style("holds; reversed at 10%") == colours["holds"]
