"""What the app keeps per pane: the merged pane partials, and realised-error sums.

Both follow the aggregate contract: empty state, fold a partial in, serialise. The stored form
is the app's own, versioned apart from the wire's pane record (``stream.contract.panes``): a new
record format does not force a migration of the tables, and state written by an older version
of the app is still read. Each stored form starts with its state key (format and sketch
parameters), so state written with another sketch size or format is refused, not misread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from stream.contract.bundle import SketchBundle
from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from stream.contract.panes import Pane, decode_pane
from stream.contract.sketch import DEFAULT_K, QuantileSketch, SketchError, state_key_for
from stream.errors import DataError

PANE_STATE_FORMAT: Final = "appraise.pane-state/2"
#: The first stored form: state key, digests, then the wire's pane record, one a line.
_PANE_STATE_V1: Final = "appraise.pane-state/1"
ERROR_STATE_FORMAT: Final = "appraise.error-pane/2"
#: The first stored form of an error pane: sums only, no sketch of the sale prices.
_ERROR_STATE_V1: Final = "appraise.error-pane/1"
# How many digests of merged partials a pane remembers: a pane gets one partial per scorer and
# publish interval (about one a second each), so this covers minutes of redelivery.
_MAX_DIGESTS: Final = 512


def pane_state_key(k: int, state_format: str = PANE_STATE_FORMAT) -> str:
    """State key of a stored pane, e.g. ``appraise.pane-state/2;kll_doubles:k=200``."""
    return f"{state_format};{state_key_for(k)}"


def partial_digest(raw: bytes) -> str:
    """Identity of one pane partial record: the first 16 hex of its sha256."""
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class PaneState:
    """One pane (of one model version) with every partial merged into it so far.

    ``digests`` name the partials already merged: a partial delivered again (a worker that
    crashed before committing re-reads it) is recognised and not counted twice.
    """

    pane: Pane
    digests: list[str] = field(default_factory=list)

    def fold(self, partial: Pane, digest: str) -> bool:
        """Merge ``partial`` unless it was merged before; True if it was merged."""
        if digest in self.digests:
            return False
        self.pane.merge(partial)
        self.digests.append(digest)
        del self.digests[:-_MAX_DIGESTS]
        return True

    def to_text(self) -> str:
        """The state key on the first line, then the state as JSON."""
        pane, sketches = self.pane, self.pane.sketches
        body = {
            "digests": self.digests,
            "start": pane.start,
            "seconds": pane.seconds,
            "model_version": pane.model_version,
            "events": sketches.events,
            "prediction": _b64(sketches.prediction),
            "features": {name: _b64(sketches.features[name]) for name in NUMERIC_FEATURES},
            "missing": sketches.missing,
            "out_of_range": sketches.out_of_range,
            "categories": {n: dict(sketches.categories[n]) for n in CATEGORICAL_FEATURES},
        }
        return f"{pane_state_key(pane.k)}\n{orjson.dumps(body).decode()}"

    @classmethod
    def from_text(cls, text: str, k: int) -> PaneState:
        """Rebuild :meth:`to_text` output (or the first stored form) written with sketch size
        ``k``; :class:`DataError` if it was written with another size or format."""
        key, _, rest = text.partition("\n")
        if key == pane_state_key(k, _PANE_STATE_V1):
            digests, _, record = rest.partition("\n")
            return cls(decode_pane(record.encode(), k=k), [d for d in digests.split(",") if d])
        if key != pane_state_key(k):
            raise DataError(f"pane state {key[:60]!r}, expected {pane_state_key(k)!r}")
        try:
            return _state(orjson.loads(rest), k)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, SketchError) as exc:
            raise DataError(f"not a pane state: {exc!r}") from exc


def _b64(sketch: QuantileSketch) -> str:
    return base64.b64encode(sketch.to_bytes()).decode("ascii")


def _sketch(text: str, k: int) -> QuantileSketch:
    try:
        return QuantileSketch.from_bytes(base64.b64decode(text, validate=True), k)
    except binascii.Error as exc:
        raise DataError(f"a stored sketch is not base64: {exc}") from exc


def _state(data: dict[str, Any], k: int) -> PaneState:
    sketches = SketchBundle(k)
    sketches.events = int(data["events"])
    sketches.prediction = _sketch(data["prediction"], k)
    sketches.features = {name: _sketch(data["features"][name], k) for name in NUMERIC_FEATURES}
    sketches.missing = {name: int(data["missing"][name]) for name in FEATURES}
    # State stored before out-of-range counts existed has none.
    counted = data.get("out_of_range", {})
    sketches.out_of_range = {name: int(counted.get(name, 0)) for name in NUMERIC_FEATURES}
    for name in CATEGORICAL_FEATURES:
        sketches.categories[name] = Counter(
            {str(c): int(n) for c, n in data["categories"][name].items()}
        )
    pane = Pane(float(data["start"]), float(data["seconds"]), str(data["model_version"]), sketches)
    return PaneState(pane, [str(d) for d in data["digests"]])


@dataclass
class ErrorPane:
    """Realised error of the sales of one pane of sale time, for one model version, and a sketch
    of their sale prices (target drift).

    Sums rather than means, so panes and windows merge by addition.
    """

    sales: int = 0
    abs_error_dollars: float = 0.0
    abs_pct_error: float = 0.0
    prices: QuantileSketch = field(default_factory=QuantileSketch.empty)
    """Sale prices, US dollars."""

    @classmethod
    def of(cls, k: int = DEFAULT_K) -> ErrorPane:
        """An empty pane whose price sketch has size ``k``."""
        return cls(prices=QuantileSketch.empty(k))

    def add(self, predicted: float, actual: float) -> None:
        """Fold one joined sale in: predicted and actual price in US dollars (actual > 0)."""
        predicted, actual = float(predicted), float(actual)
        error = abs(predicted - actual)
        self.sales += 1
        self.abs_error_dollars += error
        self.abs_pct_error += error / actual
        self.prices.update(actual)

    def merge(self, other: ErrorPane) -> None:
        """Fold another pane's sums and prices in."""
        self.sales += other.sales
        self.abs_error_dollars += other.abs_error_dollars
        self.abs_pct_error += other.abs_pct_error
        self.prices.merge(other.prices)

    @property
    def mae_dollars(self) -> float:
        """Mean absolute error in US dollars; NaN without sales."""
        return self.abs_error_dollars / self.sales if self.sales else float("nan")

    @property
    def mape(self) -> float:
        """Mean absolute percentage error as a fraction (0.11 = 11 %); NaN without sales."""
        return self.abs_pct_error / self.sales if self.sales else float("nan")

    def to_text(self) -> str:
        """JSON with the state key (format and sketch parameters)."""
        return orjson.dumps(
            {
                "format": ERROR_STATE_FORMAT,
                "sketch": self.prices.state_key,
                "sales": self.sales,
                "abs": self.abs_error_dollars,
                "pct": self.abs_pct_error,
                "prices": _b64(self.prices),
            }
        ).decode()

    @classmethod
    def from_text(cls, text: str, k: int = DEFAULT_K) -> ErrorPane:
        """Rebuild :meth:`to_text` output written with sketch size ``k`` (or the first stored
        form, which had no prices: an empty sketch); :class:`DataError` for anything else."""
        try:
            data = orjson.loads(text)
            if data["format"] == _ERROR_STATE_V1:
                prices = QuantileSketch.empty(k)
            elif data["format"] != ERROR_STATE_FORMAT or data["sketch"] != state_key_for(k):
                raise DataError(f"error pane {data['format']!r}, sketch {data.get('sketch')!r}")
            else:
                prices = _sketch(data["prices"], k)
            return cls(int(data["sales"]), float(data["abs"]), float(data["pct"]), prices)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, SketchError) as exc:
            raise DataError(f"not an error pane: {exc!r}") from exc
