"""The HTTP price service's settings section (``APPRAISE_SERVE__*``): where it listens, how it
batches, what it accepts, how much it buffers for Kafka."""

from __future__ import annotations

from pydantic import Field, field_validator

from stream.settings.scorer import DEFAULT_PREDICTION_BUCKETS, Edges, increasing_edges
from stream.settings.sections import Port, Section


class ServeSettings(Section):
    """``appraise serve``: the FastAPI price service."""

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="bind address of the API and its /metrics (0.0.0.0 inside a container)",
    )
    port: Port = Field(default=8000, description="port of the API, /metrics and the probes")
    max_batch_listings: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="most listings coalesced into one predict call; concurrent requests are "
        "batched together up to this",
    )
    max_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=1_000,
        description="longest a listing waits for others to join its predict call, in ms; only "
        "while more requests are arriving (a lone request is predicted at once)",
    )
    max_body_bytes: int = Field(
        default=4_194_304,
        ge=1_024,
        le=104_857_600,
        description="largest request body, in bytes; larger ones get 413",
    )
    max_batch_items: int = Field(
        default=1_000,
        ge=1,
        le=100_000,
        description="most listings in one POST /predict/batch; more get 413",
    )
    publish_buffer_records: int = Field(
        default=100_000,
        ge=100,
        le=10_000_000,
        description="predictions held for Kafka while the broker is slow or away; past it the "
        "oldest are dropped and counted (appraise_http_unpublished_total)",
    )
    publish_interval_s: float = Field(
        default=0.2,
        gt=0,
        le=60,
        description="how often buffered predictions are sent to Kafka, in seconds",
    )
    prediction_buckets_dollars: Edges = Field(
        default=DEFAULT_PREDICTION_BUCKETS,
        description="bucket edges of appraise_http_predicted_price_dollars, in US dollars",
    )
    latency_buckets_seconds: Edges = Field(
        default=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
        description="bucket edges of appraise_http_request_duration_seconds, in seconds",
    )

    @field_validator("prediction_buckets_dollars", "latency_buckets_seconds")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return increasing_edges(value)
