"""The model's features: one list that the event contract, the model and the profile share.

Names are snake case with their unit where they have one. The bundled data set maps onto them
in ``stream/model/data/PROVENANCE.md``.
"""

from __future__ import annotations

from typing import Final

#: Numeric features, in the order the model sees them.
NUMERIC_FEATURES: Final[tuple[str, ...]] = (
    "living_area_sqft",
    "lot_area_sqft",
    "basement_area_sqft",
    "year_built",
    "year_remodelled",
    "garage_cars",
    "garage_area_sqft",
    "full_baths",
    "half_baths",
    "bedrooms",
    "rooms",
    "fireplaces",
    "latitude",
    "longitude",
)

#: Categorical features (free strings: a category never seen in training is allowed and counted).
CATEGORICAL_FEATURES: Final[tuple[str, ...]] = (
    "neighbourhood",
    "building_type",
    "house_style",
    "overall_condition",
    "zoning",
    "central_air",
)

FEATURES: Final[tuple[str, ...]] = NUMERIC_FEATURES + CATEGORICAL_FEATURES

#: The target column in the bundled data set, in US dollars.
TARGET: Final = "sale_price"
