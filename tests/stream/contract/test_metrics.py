"""The metric catalogue is the one list: every service exports exactly its entries, with its
types and labels, and docs/metrics.md lists exactly the same."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry

from consumers.history.metrics import HistoryMetrics
from consumers.http.app import ServeState, build_app
from consumers.http.metrics import ServeMetrics
from consumers.metrics import ScorerMetrics
from stream.aggregate.service import new_metrics
from stream.contract import metrics as names
from stream.contract.metric_name import MetricName
from stream.contract.metrics import BY_SERVICE
from stream.settings import ScorerSettings, Settings
from tests.tools import METRICS_DOC

_ROW = re.compile(r"^\|\s*`(appraise_\w+)`\s*\|\s*(\w+)\s*\|([^|]*)\|[^|]*\|\s*(\w+)\s*\|$")


def _documented() -> dict[str, tuple[str, tuple[str, ...], str]]:
    """docs/metrics.md's appraise_* rows: name -> (type, labels, status)."""
    found = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line.strip())
        if match:
            labels = tuple(re.findall(r"`(\w+)`", match[3]))
            found[match[1]] = (match[2], labels, match[4])
    return found


def _exported(registry: CollectorRegistry) -> dict[str, str]:
    """Family name (as prometheus_client names it) -> type, of the appraise_* families."""
    return {
        family.name: family.type
        for family in registry.collect()
        if family.name.startswith("appraise_")
    }


def _expected(specs: tuple[MetricName, ...]) -> dict[str, str]:
    return {spec.base: spec.kind for spec in specs}


def test_the_scorer_exports_exactly_its_catalogue() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry, ScorerSettings(), process_collectors=False)
    metrics.set_model("v1")
    assert _exported(registry) == _expected(names.SCORER)


def test_the_history_sink_exports_exactly_its_catalogue() -> None:
    registry = CollectorRegistry()
    HistoryMetrics(registry, with_process_collectors=False)
    assert _exported(registry) == _expected(BY_SERVICE["history"])


def test_the_stream_app_exports_exactly_its_catalogue() -> None:
    registry = CollectorRegistry()
    new_metrics(Settings(), registry)
    assert _exported(registry) == _expected(names.AGGREGATE)


def test_the_price_service_exports_exactly_its_catalogue() -> None:
    registry = CollectorRegistry()
    settings = Settings()
    metrics = ServeMetrics(registry, settings.serve, with_process_collectors=False)
    build_app(ServeState(settings, metrics))  # the instrumentator's metrics, and the gauge
    metrics.set_model("v1", 0.1)
    assert _exported(registry) == _expected(names.SERVE)


@pytest.mark.parametrize("service", sorted(BY_SERVICE))
def test_docs_list_every_metric_with_its_type_and_labels(service: str) -> None:
    documented = _documented()
    for spec in BY_SERVICE[service]:  # type: ignore[index]
        assert spec.name in documented, f"add {spec.name} to docs/metrics.md"
        kind, labels, status = documented[spec.name]
        assert (kind, labels, status) == (spec.kind, spec.labels, "exported"), spec.name


def test_docs_list_nothing_the_catalogue_does_not_have() -> None:
    catalogue = {spec.name for specs in BY_SERVICE.values() for spec in specs}
    exported = {name for name, (_, _, status) in _documented().items() if status == "exported"}
    assert exported - catalogue == set()
