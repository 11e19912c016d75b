"""The scorer's settings section (``APPRAISE_SCORER__*``): batching, panes, retries, buckets."""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import Field, field_validator

from stream.settings.sections import Section

#: Bucket edges of the prediction histogram in US dollars. Dense where Ames prices live
#: (35 k - 755 k), then the "above 10 M / 20 M" bands of the original price service, which
#: flag listings the model prices as unusually expensive.
DEFAULT_PREDICTION_BUCKETS: tuple[float, ...] = (
    50e3, 100e3, 150e3, 200e3, 250e3, 300e3, 400e3, 500e3, 750e3,
    1e6, 2e6, 5e6, 10e6, 20e6,
)  # fmt: skip

#: Bucket edges of the event lag (scored_at - event_time) in seconds: live traffic sits at the
#: bottom; replays of history land in the top buckets (hours to a day and beyond).
DEFAULT_EVENT_LAG_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 3_600.0, 86_400.0,
)  # fmt: skip

Edges = Annotated[tuple[float, ...], Field(min_length=1, max_length=64)]


class ScorerSettings(Section):
    """How the scorer batches, folds panes, retries and exports its histograms."""

    group_id: str = Field(
        default="appraise-scorer",
        min_length=1,
        max_length=249,
        description="consumer group of every scorer process",
    )
    batch_size: int = Field(
        default=2_000,
        ge=1,
        le=100_000,
        description="most records scored per batch (getmany max_records); a predict call has a "
        "fixed cost of a few ms, so larger batches raise throughput",
    )
    batch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=60_000,
        description="longest wait for a batch when no record is buffered, in ms; bounds idle "
        "wake-ups, not latency (getmany returns as soon as records are there)",
    )
    fetch_max_wait_ms: int = Field(
        default=50,
        ge=1,
        le=60_000,
        description="longest a fetch waits at the broker for new records, in ms (the client's "
        "fetch_max_wait_ms); short, because the embedded broker does not always answer a "
        "waiting fetch as soon as records arrive",
    )
    pane_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3_600,
        description="width of an event-time pane, in seconds; windows are whole multiples of it",
    )
    pane_publish_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=300,
        description="pane partials are published at most this often, in seconds",
    )
    compile_trees: bool = Field(
        default=True,
        description="compile the model's trees to native code at start-up with the C compiler "
        "in $CC or gcc (about 2 s; a batch is then predicted in about a third of the time). "
        "The compiled trees must price probe rows as scikit-learn does before they are used; "
        "without a compiler the scorer says why and predicts with scikit-learn",
    )
    predict_threads: int = Field(
        default=2,
        ge=0,
        le=256,
        description="OpenMP threads of scikit-learn's predict for a batch of 1,000 rows or more "
        "(at most the CPUs the process may use; smaller batches get one; compiled trees use "
        "one). 0: the library's default for every batch. Set 1 when you run one scorer "
        "process per core",
    )
    sketch_k: int = Field(
        default=200,
        ge=8,
        le=65_535,
        description="KLL sketch size k of the pane partials (rank error about 1.65/k)",
    )
    produce_retries: int = Field(
        default=5, ge=0, le=100, description="retries of a retriable broker error per batch"
    )
    retry_backoff_s: float = Field(
        default=0.2, gt=0, le=60, description="first backoff in seconds; doubles per retry"
    )
    max_record_bytes: int = Field(
        default=4_194_304,
        ge=1_048_576,
        le=104_857_600,
        description="largest record the scorer fetches and sends, in bytes (consumer "
        "max_partition_fetch_bytes, producer max_request_size); a dead letter carries the "
        "original value, so values above max_event_bytes must still reach the dead-letter "
        "topic, which is created with this max.message.bytes. A dead letter the broker still "
        "refuses is sent without its value",
    )
    prediction_buckets_dollars: Edges = Field(
        default=DEFAULT_PREDICTION_BUCKETS,
        description="bucket edges of appraise_predicted_price_dollars, in US dollars",
    )
    event_lag_buckets_seconds: Edges = Field(
        default=DEFAULT_EVENT_LAG_BUCKETS,
        description="bucket edges of appraise_event_lag_seconds, in seconds",
    )
    lag_refresh_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often the consumer lag gauges are refreshed, in seconds",
    )

    @field_validator("prediction_buckets_dollars", "event_lag_buckets_seconds")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return increasing_edges(value)


def increasing_edges(value: tuple[float, ...]) -> tuple[float, ...]:
    """Histogram bucket edges, checked: positive and strictly increasing."""
    if any(b <= a for a, b in itertools.pairwise(value)) or value[0] <= 0:
        raise ValueError("expected positive, strictly increasing bucket edges")
    return value
