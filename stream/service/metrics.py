"""prometheus_client metrics built from the catalogue (:mod:`stream.contract.metrics`), so a
name, its type, its labels and its help are written once for the exporters and the readers."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from stream.contract.metric_name import MetricName


def expect_kind(spec: MetricName, kind: str) -> None:
    """TypeError unless the catalogue declares ``spec`` as a ``kind``."""
    if spec.kind != kind:
        raise TypeError(f"{spec.name} is a {spec.kind} in the catalogue, not a {kind}")


def counter(spec: MetricName, registry: CollectorRegistry) -> Counter:
    """The catalogue's counter ``spec`` on ``registry``."""
    expect_kind(spec, "counter")
    return Counter(spec.base, spec.help, spec.labels, registry=registry)


def gauge(spec: MetricName, registry: CollectorRegistry) -> Gauge:
    """The catalogue's gauge ``spec`` on ``registry``."""
    expect_kind(spec, "gauge")
    return Gauge(spec.base, spec.help, spec.labels, registry=registry)


def histogram(spec: MetricName, registry: CollectorRegistry, buckets: Sequence[float]) -> Histogram:
    """The catalogue's histogram ``spec`` on ``registry`` with these bucket edges."""
    expect_kind(spec, "histogram")
    return Histogram(spec.base, spec.help, spec.labels, buckets=buckets, registry=registry)


def info(spec: MetricName, registry: CollectorRegistry) -> Info:
    """The catalogue's info ``spec`` on ``registry`` (its labels are the info's keys)."""
    expect_kind(spec, "info")
    return Info(spec.base, spec.help, registry=registry)


def process_collectors(registry: CollectorRegistry) -> None:
    """Register the process, platform and GC collectors (memory, CPU, open fds): they answer
    "is it leaking". prometheus_client's default ``REGISTRY`` has them already."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
