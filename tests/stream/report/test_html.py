"""The report's HTML page: every plot inline, nothing fetched, text from records escaped, and a
page still made from records without distributions or without drift values."""

from __future__ import annotations

import re

from stream.aggregate.summary import summarise
from stream.aggregate.windows import Window
from stream.contract.features import FEATURES
from stream.contract.windows import DriftRecord
from stream.model.profile import ReferenceProfile
from stream.report.html import render_html
from tests.stream.aggregate.conftest import VERSION
from tests.stream.report.conftest import (
    FULL_PAGE_PLOTS,
    POLICY,
    T0,
    Aggregates,
    Record,
    WindowMaker,
    records_of,
    report_of,
    written_before_scores,
)


def test_the_page_has_every_plot_inline_and_fetches_nothing(make_windows: WindowMaker) -> None:
    page = render_html(report_of(records_of(make_windows(10))))
    assert page.count("<svg") == FULL_PAGE_PLOTS
    for slug in ("score-heatmap", "drift-share", "quantiles", "realised-error"):
        assert re.search(f'<figure id="plot-{slug}"><svg', page), slug
    assert all(f'id="plot-bars-{i}"' in page for i in range(1 + len(FEATURES)))
    for fetching in ("<script", "<link", "src=", "@import", "<?xml", "<!DOCTYPE svg"):
        assert fetching not in page, fetching
    assert "counts only (min 200)" in page  # the window under min_events, in the table


def test_the_page_shows_the_decision_as_the_stream_app_made_it(make_windows: WindowMaker) -> None:
    report = report_of(records_of(make_windows(10)))
    page = render_html(report)
    assert "drift score is above 1" in page
    assert "material PSI (0.2)" in page
    table = page[page.index("<h2>Features in the window") :]
    for head in ("score", "PSI / critical", "KS / critical", "out of range", "importance"):
        assert f"<th>{head}</th>" in table, head
    worst = report.worst
    assert worst is not None
    assert worst.psi is not None
    assert worst.psi_critical is not None
    cells = f"<td>{worst.feature}</td><td>numeric</td><td>{worst.score:.2f}</td>"
    assert f"<tr class='drifting'>{cells}<td>{worst.psi:.3f} / {worst.psi_critical:.3f}</td>" in (
        table
    )
    causes = page[page.index("<h2>Likely causes") : page.index("<h2>Features in the window")]
    assert report.causes
    for rank, cause in enumerate(report.causes, start=1):
        assert f"<td>#{rank}</td><td>{cause.feature}</td><td>{cause.score:.2f}</td>" in causes
    target = report.target
    assert target is not None
    assert target.target is not None
    assert f"score {target.target.score:.2f}, PSI 0.500, critical 0.250: drifting." in page


def test_records_written_before_the_scores_still_make_a_page(make_windows: WindowMaker) -> None:
    page = render_html(report_of(written_before_scores(make_windows(10))))
    assert page.count("<svg") == FULL_PAGE_PLOTS
    assert "These records carry no scores" in page
    assert "These records name no likely causes" in page
    assert "No target drift in these records" in page


def test_text_from_records_is_escaped(make_windows: WindowMaker) -> None:
    version = "<img src=x onerror=alert(1)>"
    records = records_of(make_windows(4, version=version))
    records[-2] = _with_category(records[-2], "zoning", "<script>$x$")  # the focus window
    page = render_html(report_of(records))
    assert "<img" not in page
    assert "<script" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;$x$" in page  # written into the SVG as text, not read as mathtext


def test_records_without_distributions_still_make_a_page(make_windows: WindowMaker) -> None:
    records = [
        r.model_copy(update={"distributions": None}) if isinstance(r, DriftRecord) else r
        for r in records_of(make_windows(6))
    ]  # as written before records carried them
    page = render_html(report_of(records))
    assert page.count("<svg") == 4
    assert "carry no distributions" in page


def test_windows_with_counts_only_make_a_page_without_drift(
    profile: ReferenceProfile,
    aggregates: Aggregates,
) -> None:
    windows = [Window(T0 + 60 * (i + 1), "1m", T0 + 60 * i, VERSION) for i in range(3)]
    records: list[Record] = [
        summarise(w, aggregates.small, profile, POLICY).record() for w in windows
    ]
    report = report_of(records)
    assert report.focus is None
    assert report.features == ()
    assert report.counts_only == 3
    assert "no window has enough events for drift values" in report.summary_line()
    page = render_html(report)
    assert page.count("<svg") == 2  # drift share (all gaps) and quantiles (reference only)
    assert "plot-score-heatmap" not in page


def _with_category(record: Record, feature: str, first: str) -> DriftRecord:
    """``record`` with the first category bin of ``feature`` renamed ``first`` (short: bar
    labels are cut at 18 characters)."""
    assert isinstance(record, DriftRecord)
    assert record.distributions is not None
    shares = record.distributions.features[feature]
    assert shares.categories is not None
    renamed = shares.model_copy(update={"categories": [first, *shares.categories[1:]]})
    features = {**record.distributions.features, feature: renamed}
    distributions = record.distributions.model_copy(update={"features": features})
    return record.model_copy(update={"distributions": distributions})
