"""Where a predictor's candidate addresses come from: the training manifest and/or an AddressBook.

A checkpoint records the manifest it was trained on (`run_config.data`, as typed on the command line,
so possibly relative to the folder training ran in); `find_training_manifest` finds it again from the
checkpoint's own location. The manifest says which addresses the model saw (its train split) and where
the AddressBook with their geometry lives.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from addressclip.data.manifest import Manifest
from addressclip.errors import InputError
from addressclip.geo.addressbook import AddressBook
from addressclip.serve.gallery import GALLERY_COLUMNS, AddressGallery, empty_table


def _run_folder_bases(checkpoint: Path, out: str | None) -> list[Path]:
    """Folders training may have run in: those from which `out` leads to the checkpoint's run folder."""
    bases: list[Path] = []
    if not out:
        return bases
    out_parts = Path(out).parts
    if Path(out).is_absolute():
        return bases
    for run_folder in (checkpoint.parent, checkpoint.parent.parent):
        parts = run_folder.resolve().parts
        if len(parts) >= len(out_parts) and tuple(parts[-len(out_parts) :]) == tuple(out_parts):
            bases.append(Path(*parts[: len(parts) - len(out_parts)]))
    return bases


def find_training_manifest(checkpoint: Path, payload: Mapping[str, Any]) -> Path | None:
    """The manifest the checkpoint was trained on, if it can still be found."""
    run_config = payload.get("run_config") or {}
    data = run_config.get("data")
    if not data:
        return None
    data_path = Path(str(data)).expanduser()
    candidates = [data_path] if data_path.is_absolute() else []
    if not data_path.is_absolute():
        candidates += [base / data_path for base in _run_folder_bases(checkpoint, run_config.get("out"))]
        candidates.append(Path.cwd() / data_path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def train_split_name(payload: Mapping[str, Any]) -> str:
    loader = (payload.get("run_config") or {}).get("loader") or {}
    return str(loader.get("train_split") or "train")


def _first_per_address(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per address (the first of its id; one text under two ids would embed identically)."""
    columns = ["address_id", "address", "street_id", "street", "neighbourhood"]
    rows = frame[columns].drop_duplicates("address_id").drop_duplicates("address")
    return rows.sort_values("address", kind="stable")


def gallery_from_manifest(
    manifest: Manifest, book: AddressBook | None, train_split: str = "train"
) -> AddressGallery:
    """Every address of the manifest (the model's candidate set in validation), geometry from `book`."""
    frame = manifest.frame
    if frame.empty:
        raise InputError(manifest.path, None, "manifest has no rows: no addresses to predict")
    seen = set(frame.loc[frame["split"] == train_split, "address_id"])
    rows = _first_per_address(frame)
    geometry_by_id: dict[str, Any] = {}
    geometry_by_text: dict[str, Any] = {}
    if book is not None:
        geometry_by_id = dict(zip(book.table["address_id"], book.table["geometry"], strict=True))
        geometry_by_text = dict(zip(book.table["address"], book.table["geometry"], strict=True))
    geometries = [
        geometry_by_id.get(aid, geometry_by_text.get(text))
        for aid, text in zip(rows["address_id"], rows["address"], strict=True)
    ]
    table = pd.DataFrame(
        {
            "address_id": rows["address_id"].astype(str).to_numpy(),
            "address": rows["address"].astype(str).to_numpy(),
            "street_id": rows["street_id"].to_numpy(dtype=object),
            "street": rows["street"].to_numpy(dtype=object),
            "neighbourhood": rows["neighbourhood"].to_numpy(dtype=object),
            "seen_in_training": np.array([aid in seen for aid in rows["address_id"]], dtype=bool),
            "geometry": np.array(geometries, dtype=object),
        }
    )
    return AddressGallery(table, book.projection if book is not None else None)


def gallery_from_addressbook(
    book: AddressBook,
    seen_ids: set[str] | frozenset[str] = frozenset(),
    seen_addresses: set[str] | frozenset[str] = frozenset(),
) -> AddressGallery:
    """Every sub-street of `book` (the open set); seen = its id or text was a training address."""
    table = book.table
    if table.empty:
        return AddressGallery(empty_table(), book.projection)
    seen = [
        aid in seen_ids or text in seen_addresses
        for aid, text in zip(table["address_id"], table["address"], strict=True)
    ]
    frame = pd.DataFrame(
        {
            "address_id": table["address_id"].astype(str).to_numpy(),
            "address": table["address"].astype(str).to_numpy(),
            "street_id": table["street_id"].to_numpy(dtype=object),
            "street": table["street"].to_numpy(dtype=object),
            "neighbourhood": table["neighbourhood"].replace("", None).to_numpy(dtype=object),
            "seen_in_training": np.array(seen, dtype=bool),
            "geometry": table["geometry"].to_numpy(dtype=object),
        }
    )[list(GALLERY_COLUMNS)]
    return AddressGallery(frame, book.projection)


def training_addresses(manifest: Manifest, train_split: str = "train") -> tuple[set[str], set[str]]:
    """(address ids, address texts) of the train split: what 'seen in training' means."""
    train = manifest.frame[manifest.frame["split"] == train_split]
    return set(train["address_id"].astype(str)), set(train["address"].astype(str))
