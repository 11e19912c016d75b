"""What the metric pages say at one moment: :class:`Snapshot` reads the parsed ``/metrics`` pages
of the scorers (summed over them, with each one's lag) and the stream app (aggregate) by the
catalogue's names, with one
:class:`WindowState` per closed window kind and model version; :func:`latest_window` picks the
window the view shows and :func:`worst_features` its features with the highest drift score (PSI
over the larger of the material threshold and its critical value: above 1 is drift, as the
stream app decides it). Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from stream.contract import metrics as names

#: Worst-drifting features shown.
TOP_FEATURES = 5
#: A drift score above this is drift (the stream app's decision; the rules compare with it).
DRIFT_SCORE_LINE = 1.0


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's drift in a window: its score and PSI (None where the page has none)."""

    feature: str
    score: float | None
    psi: float | None

    @property
    def drifting(self) -> bool:
        """Whether the stream app decided the feature drifts (score above 1)."""
        return self.score is not None and self.score > DRIFT_SCORE_LINE


@dataclass(frozen=True, slots=True)
class WindowState:
    """The stream app's gauges of the last closed window of one kind and model version."""

    window: str
    model_version: str
    end: float | None = None  # Unix seconds (event time)
    events: float | None = None
    quantiles: Mapping[str, float] = field(default_factory=dict)  # "0.5" -> US dollars
    reference: Mapping[str, float] = field(default_factory=dict)  # same quantiles, reference
    prediction_psi: float | None = None
    prediction_score: float | None = None  # above 1: the predictions drift
    drifting_share: float | None = None  # 0..1
    feature_psi: Mapping[str, float] = field(default_factory=dict)
    feature_score: Mapping[str, float] = field(default_factory=dict)
    causes: tuple[tuple[str, float], ...] = ()  # likely causes (feature, score), rank 1 first


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the two metric pages said at one moment (``None``/empty where a page was down)."""

    scorer_up: bool = False
    aggregate_up: bool = False
    model_version: str | None = None
    events_consumed: float | None = None
    predictions: float | None = None  # summed over model versions
    dead_letters: Mapping[str, float] = field(default_factory=dict)  # reason -> total
    event_lag_buckets: tuple[tuple[float, float], ...] = ()  # (upper bound s, cumulative count)
    consumer_lag: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (who, topic)
    windows: tuple[WindowState, ...] = ()
    #: Each scorer's records behind on listings (over its partitions; 0 for an idle one, None
    #: where its page is down), by part name; only when there are several.
    scorer_lag: Mapping[str, float | None] = field(default_factory=dict)
    #: Each scorer's partitions held (0: an idle standby), by part name, as ``scorer_lag``.
    scorer_partitions: Mapping[str, float | None] = field(default_factory=dict)

    @classmethod
    def from_pages(
        cls,
        scorers: Mapping[str, Iterable[Metric] | None],
        aggregate: Iterable[Metric] | None,
    ) -> Snapshot:
        """Read every scorer's page (part name -> its families, ``None`` where it did not
        answer), summed as Prometheus's rules sum over instances, and the stream app's. The
        scorers count as up only when every page answered: a sum with a page missing would
        read as a counter reset."""
        pages = {name: list(families or ()) for name, families in scorers.items()}
        answered = all(families is not None for families in scorers.values()) and bool(scorers)
        merged = [family for families in pages.values() for family in families]
        snapshot = cls.from_families(merged if answered else None, aggregate)
        if len(scorers) < 2:
            return snapshot

        def one(name: str, metric: str) -> float | None:
            if scorers[name] is None:
                return None
            return sum(v for _, v in _samples(pages[name]).get(metric, ()))

        return dataclasses.replace(
            snapshot,
            scorer_lag={n: one(n, names.CONSUMER_LAG.name) for n in scorers},
            scorer_partitions={n: one(n, names.ASSIGNED_PARTITIONS.name) for n in scorers},
        )

    @classmethod
    def from_families(
        cls, scorer: Iterable[Metric] | None, aggregate: Iterable[Metric] | None
    ) -> Snapshot:
        """Read the families of each page: the scorer's and the stream app's (aggregate);
        ``None``: that page did not answer."""
        s = _samples(scorer or ())
        a = _samples(aggregate or ())
        predictions = s.get(names.PREDICTIONS.name)
        lag: dict[tuple[str, str], float] = defaultdict(float)
        for who, samples in (("scorer", s), ("aggregate", a)):
            for labels, value in samples.get(names.CONSUMER_LAG.name, ()):
                lag[who, labels.get("topic", "?")] += value
        # Summed by bound over the scorers' pages (one page: as it is).
        by_bound: dict[float, float] = defaultdict(float)
        for labels, value in s.get(names.EVENT_LAG.name + "_bucket", ()):
            if "le" in labels:
                by_bound[float(labels["le"])] += value
        buckets = sorted(by_bound.items())
        dead_letters: dict[str, float] = defaultdict(float)
        for labels, value in s.get(names.SCORING_ERRORS.name, ()):
            dead_letters[labels.get("reason", "?")] += value
        return cls(
            scorer_up=scorer is not None,
            aggregate_up=aggregate is not None,
            model_version=next(
                (lb["version"] for lb, _ in s.get(names.MODEL_INFO.name, ()) if "version" in lb),
                None,
            ),
            events_consumed=_sum(s, names.EVENTS_CONSUMED.name),
            predictions=None if predictions is None else sum(v for _, v in predictions),
            dead_letters=dict(dead_letters),
            event_lag_buckets=tuple(buckets),
            consumer_lag=dict(lag),
            windows=_windows(a),
        )


_Samples = dict[str, list[tuple[dict[str, str], float]]]


def _samples(families: Iterable[Metric]) -> _Samples:
    out: _Samples = defaultdict(list)
    for family in families:
        for sample in family.samples:
            if sample.name.startswith("appraise_"):
                out[sample.name].append((sample.labels, sample.value))
    return out


def _sum(samples: _Samples, name: str) -> float | None:
    found = samples.get(name)
    return None if not found else sum(value for _, value in found)


def _windows(samples: _Samples) -> tuple[WindowState, ...]:
    def key(labels: Mapping[str, str]) -> tuple[str, str]:
        return labels.get("window", ""), labels.get("model_version", "")

    def scalar(name: str) -> dict[tuple[str, str], float]:
        return {key(labels): value for labels, value in samples.get(name, ())}

    def keyed(name: str, label: str) -> dict[tuple[str, str], dict[str, float]]:
        out: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for labels, value in samples.get(name, ()):
            out[key(labels)][labels.get(label, "")] = value
        return out

    events = scalar(names.WINDOW_EVENTS.name)
    end = scalar(names.WINDOW_END.name)
    psi = scalar(names.PREDICTION_PSI.name)
    score = scalar(names.PREDICTION_SCORE.name)
    share = scalar(names.DRIFTING_SHARE.name)
    quantiles = keyed(names.PREDICTION_QUANTILE.name, "quantile")
    features = keyed(names.FEATURE_PSI.name, "feature")
    scores = keyed(names.FEATURE_SCORE.name, "feature")
    causes: dict[tuple[str, str], list[tuple[int, str, float]]] = defaultdict(list)
    for labels, value in samples.get(names.CAUSE_SCORE.name, ()):
        rank = labels.get("rank", "")
        if rank.isdigit():
            causes[key(labels)].append((int(rank), labels.get("feature", "?"), value))
    reference: dict[str, dict[str, float]] = defaultdict(dict)
    for labels, value in samples.get(names.REFERENCE_QUANTILE.name, ()):
        reference[labels.get("model_version", "")][labels.get("quantile", "")] = value
    return tuple(
        WindowState(
            window=k[0],
            model_version=k[1],
            end=end.get(k),
            events=events.get(k),
            quantiles=quantiles.get(k, {}),
            reference=reference.get(k[1], {}),
            prediction_psi=psi.get(k),
            prediction_score=score.get(k),
            drifting_share=share.get(k),
            feature_psi=features.get(k, {}),
            feature_score=scores.get(k, {}),
            causes=tuple((feature, value) for _, feature, value in sorted(causes.get(k, ()))),
        )
        for k in sorted({*events, *end, *quantiles, *features, *scores})
    )


def latest_window(snapshot: Snapshot) -> WindowState | None:
    """The last closed window: the latest end among those with quantiles (else among all); on a
    tie (a 1 m tumbling and a 5 m hopping window close together) the one with more events."""
    candidates = [w for w in snapshot.windows if w.quantiles] or list(snapshot.windows)
    if not candidates:
        return None
    return max(candidates, key=lambda w: (w.end or -math.inf, w.events or 0.0, w.window))


def worst_features(window: WindowState, n: int = TOP_FEATURES) -> list[FeatureDrift]:
    """The ``n`` features with the highest drift score, highest first (then by PSI, then by
    name; features without a score last)."""
    rows = [
        FeatureDrift(name, window.feature_score.get(name), window.feature_psi.get(name))
        for name in {*window.feature_score, *window.feature_psi}
    ]
    rows.sort(key=lambda f: (f.score is None, -(f.score or 0.0), -(f.psi or 0.0), f.feature))
    return rows[:n]
