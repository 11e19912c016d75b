"""The mergeable quantile sketch every pane, window and reference carries: a thin wrapper over
Apache DataSketches KLL (``kll_doubles``).

A :class:`QuantileSketch` never keeps the values it saw, only about ``k * 3`` weighted samples
however many values went in, so per-pane partials stay a few KB and merge cheaply. Its rank error
(``rank_error``, about 1.3 % at ``k=200`` with 99 % confidence) applies to every rank, quantile
and CDF it answers.

The serialised form starts with the sketch's :attr:`QuantileSketch.state_key`, e.g.
``kll_doubles:k=200``: state written with other parameters is refused instead of misread.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from datasketches import kll_doubles_sketch

from stream.errors import DataError

KIND: Final = "kll_doubles"
#: KLL's own default: ~1.3 % single-sided rank error (99 % confidence), a few KB serialised.
DEFAULT_K: Final = 200
# What separates the state key from the sketch's own bytes in to_bytes(); never in a key.
_SEPARATOR: Final = b"\n"


class SketchError(DataError):
    """Bytes that are not a sketch of the expected kind and parameters, or sketches that differ."""


def state_key_for(k: int = DEFAULT_K) -> str:
    """The state key of a sketch of size ``k``: kind and parameters, e.g. ``kll_doubles:k=200``."""
    return f"{KIND}:k={k}"


class QuantileSketch:
    """A KLL quantile sketch of float64 values; mutable, not thread-safe.

    Build with :meth:`empty` or :meth:`from_bytes`, fold values in with :meth:`update`, combine
    partials with :meth:`merge`. Queries on an empty sketch return NaN.
    """

    __slots__ = ("_k", "_sketch")

    def __init__(self, sketch: kll_doubles_sketch, k: int) -> None:
        self._sketch = sketch
        self._k = k

    @classmethod
    def empty(cls, k: int = DEFAULT_K) -> QuantileSketch:
        """An empty sketch; ``k`` (8..65535, default 200) trades size for accuracy."""
        if not 8 <= k <= 65535:
            raise ValueError(f"k must be between 8 and 65535, got {k}")
        return cls(kll_doubles_sketch(k), k)

    @classmethod
    def of(cls, values: npt.ArrayLike, k: int = DEFAULT_K) -> QuantileSketch:
        """A sketch of ``values`` (non-finite values skipped)."""
        sketch = cls.empty(k)
        sketch.update(values)
        return sketch

    @property
    def k(self) -> int:
        """The KLL size parameter."""
        return self._k

    @property
    def state_key(self) -> str:
        """Kind and parameters, e.g. ``kll_doubles:k=200``; stored with the bytes."""
        return state_key_for(self._k)

    @property
    def n(self) -> int:
        """How many values went in (NaN and infinities excluded)."""
        return int(self._sketch.n)

    @property
    def is_empty(self) -> bool:
        """True until a finite value went in."""
        return bool(self._sketch.is_empty())

    @property
    def rank_error(self) -> float:
        """Single-sided normalised rank error of ranks, quantiles and CDF (99 % confidence)."""
        return float(self._sketch.normalized_rank_error(False))

    @property
    def exact(self) -> bool:
        """True while the sketch holds every value it saw (at most ``k`` of them): its ranks,
        quantiles and CDF are then exact."""
        return not self._sketch.is_estimation_mode()

    @property
    def error(self) -> float:
        """The rank error in force: :attr:`rank_error` once the sketch has compacted, 0 while it
        is :attr:`exact`."""
        return 0.0 if self.exact else self.rank_error

    def update(self, values: npt.ArrayLike) -> None:
        """Fold ``values`` in. NaN and ±inf are skipped: missing values are counted elsewhere, and
        an infinity would make every quantile edge above it meaningless."""
        array = np.asarray(values, dtype=np.float64).ravel()
        finite = array[np.isfinite(array)]
        if finite.size:
            self._sketch.update(np.ascontiguousarray(finite))

    def merge(self, other: QuantileSketch) -> None:
        """Fold ``other`` (a sketch with the same state key) into this one."""
        if other.state_key != self.state_key:
            raise SketchError(
                f"cannot merge a {other.state_key} sketch into a {self.state_key} one"
            )
        self._sketch.merge(other._sketch)

    def copy(self) -> QuantileSketch:
        """An independent copy (merging into it leaves this one unchanged)."""
        return QuantileSketch(kll_doubles_sketch.deserialize(self._sketch.serialize()), self._k)

    def quantiles(
        self, ranks: Sequence[float] | npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Values at the normalised ``ranks`` (each in [0, 1]); NaN for each if empty."""
        ranks_list = [float(r) for r in ranks]
        if any(not 0.0 <= r <= 1.0 for r in ranks_list):
            raise ValueError(f"ranks must lie in [0, 1], got {ranks_list}")
        if self.is_empty:
            return np.full(len(ranks_list), np.nan)
        return np.asarray(self._sketch.get_quantiles(ranks_list), dtype=np.float64)

    def cdf(
        self, split_points: Sequence[float] | npt.NDArray[np.float64], *, inclusive: bool = False
    ) -> npt.NDArray[np.float64]:
        """Normalised ranks at the strictly increasing ``split_points``, with 1.0 appended.

        ``inclusive=False`` (default): entry ``i`` is the share of values ``< split_points[i]``;
        ``True``: ``<=``. ``len(split_points) + 1`` entries, all NaN if the sketch is empty.
        """
        points = [float(p) for p in split_points]
        if any(b <= a for a, b in itertools.pairwise(points)) or not all(np.isfinite(points)):
            raise ValueError("split points must be finite and strictly increasing")
        if self.is_empty:
            return np.full(len(points) + 1, np.nan)
        return np.asarray(self._sketch.get_cdf(points, inclusive), dtype=np.float64)

    def retained_values(self) -> npt.NDArray[np.float64]:
        """The distinct values the sketch keeps (sorted): where its CDF can step."""
        return np.unique(np.fromiter((value for value, _ in self._sketch), dtype=np.float64))

    def to_bytes(self) -> bytes:
        """``state_key``, a newline, then DataSketches' own compact serialisation."""
        return self.state_key.encode("ascii") + _SEPARATOR + bytes(self._sketch.serialize())

    @classmethod
    def from_bytes(cls, data: bytes, k: int = DEFAULT_K) -> QuantileSketch:
        """Rebuild a sketch written by :meth:`to_bytes`; refuses bytes of any other state key."""
        expected = state_key_for(k)
        key, sep, payload = bytes(data).partition(_SEPARATOR)
        if not sep or key != expected.encode("ascii"):
            shown = key[:40].decode("ascii", errors="replace") if sep else "none"
            raise SketchError(f"expected sketch state {expected!r}, found state key {shown!r}")
        try:
            sketch = kll_doubles_sketch.deserialize(payload)
        except (IndexError, RuntimeError, ValueError) as exc:
            raise SketchError(f"{expected} sketch bytes are corrupt: {exc}") from exc
        if int(sketch.k) != k:
            raise SketchError(f"sketch bytes carry k={sketch.k} under the state key {expected!r}")
        return cls(sketch, k)

    @classmethod
    def merged(cls, sketches: Iterable[QuantileSketch], k: int = DEFAULT_K) -> QuantileSketch:
        """A new sketch holding the union of ``sketches`` (empty if there are none)."""
        out = cls.empty(k)
        for sketch in sketches:
            out.merge(sketch)
        return out

    def __repr__(self) -> str:
        return f"QuantileSketch({self.state_key}, n={self.n})"
