"""The stream app's settings section (``APPRAISE_AGGREGATE__*``): windows, drift, the join."""

from __future__ import annotations

from pydantic import Field, model_validator

from stream.settings.sections import Section


class AggregateSettings(Section):
    """The stream app (``appraise aggregate``): event-time windows over the scorer's pane partials,
    drift against the reference profile, and realised error from sale labels.

    Every window size and hop must be a whole multiple of the scorer's pane width
    (``APPRAISE_SCORER__PANE_SECONDS``, 10 s by default); panes of another width are refused.
    """

    app_id: str = Field(
        default="appraise-aggregate",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="faust app id: the consumer group and the prefix of its internal topics",
    )
    tumbling_seconds: float = Field(
        default=60.0, gt=0, le=86_400, description="size of the tumbling window, in seconds"
    )
    hopping_seconds: float = Field(
        default=300.0, gt=0, le=86_400, description="size of the hopping window, in seconds"
    )
    hop_seconds: float = Field(
        default=60.0, gt=0, le=86_400, description="advance of the hopping window, in seconds"
    )
    allowed_lateness_seconds: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="a window closes once the event-time watermark (the latest pane start seen) "
        "passes its end plus this many seconds; later panes are counted as dropped",
    )
    min_events: int = Field(
        default=100,
        ge=10,
        description="a closed window with fewer events exports counts but no drift values or "
        "quantiles (a floor only: the drift decision itself accounts for the window's size)",
    )
    psi_threshold: float = Field(
        default=0.2,
        gt=0,
        description="the PSI a user calls material: a feature, the predictions or the sale "
        "prices drift in a window when their PSI is above both this and what sampling noise "
        "reaches at the window's size and false-alarm level",
    )
    false_alarm_days: float = Field(
        default=30.0,
        gt=0,
        le=36_500,
        description="the false-alarm budget: expected days between false drift alerts across "
        "every feature and window kind together; split evenly (Bonferroni) over the tests a "
        "day of windows makes, which sets each test's level (appraise settings shows it)",
    )
    prediction_retention_days: float = Field(
        default=60.0,
        gt=0,
        le=3_650,
        description="how long a prediction waits in the join table (on disk) for its sale, in "
        "days of event time (the newest prediction of its partition minus its own); a later "
        "sale counts as unmatched. Replaces prediction_retention_seconds (1 hour, in memory), "
        "which the stream app no longer reads",
    )
    max_model_versions: int = Field(
        default=2, ge=1, le=16, description="model versions whose gauges are kept (newest first)"
    )
    windows_enabled: bool = Field(
        default=True, description="run the pane windows (drift, quantiles) in this process"
    )
    join_enabled: bool = Field(
        default=True,
        description="run the label join (realised error) in this process. The join handles "
        "every prediction, one at a time: when the scorer runs faster than it, run it as a "
        "second process with its own app_id and windows_enabled=false, so it never slows the "
        "windows down",
    )
    idle_seconds: float | None = Field(
        default=None,
        ge=1,
        le=86_400,
        description="when no pane (or joined sale) arrives for this many seconds of the wall "
        "clock, the stream app advances its watermark by its own clock so open windows close "
        "and the gauges say there is no data; unset: tumbling_seconds + "
        "allowed_lateness_seconds",
    )

    @model_validator(mode="after")
    def _check_windows(self) -> AggregateSettings:
        if not (self.windows_enabled or self.join_enabled):
            raise ValueError("windows_enabled and join_enabled are both false: nothing to run")
        if self.hop_seconds > self.hopping_seconds:
            raise ValueError(
                f"hop_seconds {self.hop_seconds:g} is larger than hopping_seconds "
                f"{self.hopping_seconds:g}: a hopping window advances by at most its size"
            )
        return self

    @property
    def idle_after_seconds(self) -> float:
        """``idle_seconds``, or the tumbling size plus the allowed lateness when it is unset:
        silence for that long closes the tumbling window that holds the last pane."""
        if self.idle_seconds is not None:
            return self.idle_seconds
        return self.tumbling_seconds + self.allowed_lateness_seconds

    @property
    def prediction_retention_seconds(self) -> float:
        """``prediction_retention_days`` in seconds."""
        return self.prediction_retention_days * 86_400
