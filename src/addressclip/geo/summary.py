"""Counts of an AddressBook for reports (build_report.json, `addressclip addressbook`'s summary.json)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def book_summary(table: pd.DataFrame, projection_label: str, index: np.ndarray | None = None) -> dict:
    """Streets, sub-streets, lengths, and images per address if `index` (table rows, -1 = none) given."""
    lengths = table["length_m"].to_numpy(dtype=float)
    crosses = table["cross_streets"].map(len).value_counts().to_dict()
    result: dict = {
        "projection": projection_label,
        "sub_streets": len(table),
        "streets": int(table["street"].nunique()),
        "street_names": int(table["street_name"].nunique()),
        "neighbourhoods": {
            str(k): int(v) for k, v in table["neighbourhood"].value_counts().sort_index().items()
        },
        "cross_streets": {str(k): int(crosses.get(k, 0)) for k in (0, 1, 2)},
        "qualified_duplicates": int(
            table["address"].str.contains(r" \((?:\d+|north|south|east|west)\)").sum()
        ),
        "length_m": _stats(lengths) | {"total": round(float(lengths.sum()), 1)},
    }
    if index is not None:
        index = np.asarray(index, dtype=np.int64).ravel()
        labelled = index[index >= 0]
        per_address = np.bincount(labelled, minlength=len(table)) if len(table) else np.zeros(0)
        result["images"] = len(index)
        result["labelled"] = len(labelled)
        result["images_per_address"] = _stats(per_address)
        result["addresses_without_images"] = int(np.count_nonzero(per_address == 0))
    return result


def _stats(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"min": 0.0, "median": 0.0, "max": 0.0}
    return {
        "min": round(float(np.min(values)), 1),
        "median": round(float(np.median(values)), 1),
        "max": round(float(np.max(values)), 1),
    }
