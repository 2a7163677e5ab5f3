"""Per-city metrics of a multi-city evaluation (one model, one gallery over several cities).

A multi-city manifest (an atlas, `addressclip atlas`) has a `city` on every row and its candidate set
is the *union* of the cities' addresses (address ids are unique across cities, street ids are
prefixed with the city). Each query is ranked against that whole union, so a Helsinki photo can be
answered with a Karhula street: `city_breakdown` restricts SSA-k / SA-k to each city's queries
(still ranked against the union) and counts those cross-city top-1 answers, by true and predicted city.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

NO_CITY = "(no city)"


def row_cities(frame: pd.DataFrame) -> np.ndarray | None:
    """The `city` of each row as strings (NO_CITY for a null), or None when no row names a city."""
    if "city" not in frame.columns or frame["city"].isna().all():
        return None
    return frame["city"].fillna(NO_CITY).astype(str).to_numpy(dtype=object)


def candidate_cities(frame: pd.DataFrame, address_ids: Sequence[str]) -> np.ndarray | None:
    """The city of each candidate address (in `address_ids` order), or None for a one-city manifest.

    An address id in two cities is refused by the atlas; here the first row's city is taken.
    """
    cities = row_cities(frame)
    if cities is None:
        return None
    by_id = dict(zip(frame["address_id"].to_numpy()[::-1], cities[::-1], strict=True))
    return np.asarray([by_id.get(a, NO_CITY) for a in address_ids], dtype=object)


def city_breakdown(
    query_city: np.ndarray,
    candidate_city: np.ndarray,
    truth_position: np.ndarray,
    street_position: np.ndarray,
    predicted: np.ndarray,
    ks: Sequence[int] = (1, 5),
) -> dict[str, object]:
    """SSA-k / SA-k (percent) per city of the queries, and the cross-city top-1 answers.

    truth_position / street_position: 1-based ranks of the true address / first candidate on the true
    street (against every candidate); predicted: top-1 candidate index of each query.
    """
    query_city = np.asarray(query_city, dtype=object)
    candidate_city = np.asarray(candidate_city, dtype=object)
    predicted_city = candidate_city[np.asarray(predicted, dtype=np.int64)]
    cross = predicted_city != query_city
    names = sorted(set(query_city.tolist()) | set(candidate_city.tolist()))
    per_city: dict[str, dict[str, object]] = {}
    for name in names:
        member = query_city == name
        count = int(member.sum())
        record: dict[str, object] = {"queries": count, "candidates": int((candidate_city == name).sum())}
        for k in ks:
            record[f"SSA-{k}"] = _percent(truth_position[member] <= k)
            record[f"SA-{k}"] = _percent(street_position[member] <= k)
        record["cross_city_top1"] = int(cross[member].sum())
        record["cross_city_top1_pct"] = _percent(cross[member])
        record["predicted_city"] = {other: int((predicted_city[member] == other).sum()) for other in names}
        per_city[name] = record
    return {
        "gallery": "union",  # every query ranked against the candidates of all cities
        "cities": per_city,
        "cross_city_top1": int(cross.sum()),
        "cross_city_top1_pct": _percent(cross),
    }


def _percent(hits: np.ndarray) -> float:
    return 100.0 * float(np.mean(hits)) if len(hits) else float("nan")
