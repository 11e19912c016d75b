"""One entry of the metric catalogue (:mod:`stream.contract.metrics`): name, type, labels, help."""

from __future__ import annotations

from typing import Literal, NamedTuple

Kind = Literal["counter", "gauge", "histogram", "info"]


class MetricName(NamedTuple):
    """One metric family: its exposed name, type, label names and help text."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str

    @property
    def base(self) -> str:
        """The name prometheus_client is given (it adds ``_total`` / ``_info`` itself)."""
        return self.name.removesuffix("_total").removesuffix("_info")


def metric(name: str, kind: Kind, help_text: str, *labels: str) -> MetricName:
    """A catalogue entry; labels in the order the exporter declares them."""
    return MetricName(name, kind, labels, help_text)
