"""The ablation suite: the paper's loss table, caption text, L_geo form, contrastive targets, which
towers learn, data coverage (12.5 / 25 / 50 / 100 % of the training capture locations), and the open
set (10 % of the sub-streets never seen in training, in the gallery by their text only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from addressclip.baselines.finetune import ADDRESS_ONLY, run_trained
from addressclip.benchmark.options import method_folder
from addressclip.benchmark.runs import Bench, seeds_for, slug
from addressclip.data.manifest import write_manifest
from addressclip.errors import ConfigError
from addressclip.eval.evaluate import EvalData


@dataclass(frozen=True)
class AblationRow:
    group: str
    label: str
    overrides: tuple[str, ...] = ()
    coverage: float = 1.0  # share of training capture locations kept
    unseen: float = 0.0  # share of sub-streets whose train and val photos are all left out


FULL = "all three (default)"
ABLATION_TITLES: dict[str, str] = {
    "loss": "Losses (the paper's loss table)",
    "caption": "Caption text for L_caption",
    "geo": "L_geo form",
    "targets": "Contrastive targets",
    "freezing": "Which towers learn",
    "coverage": "Data coverage (training capture locations kept per address)",
    "openset": "Open set (sub-streets never seen in training, in the gallery by text only)",
}
ABLATIONS: tuple[AblationRow, ...] = (
    AblationRow("loss", "L_address only", ("loss.beta=0", "loss.gamma=0")),
    AblationRow("loss", "L_caption only", ("loss.alpha=0", "loss.gamma=0")),
    AblationRow("loss", "L_address + L_caption", ("loss.gamma=0",)),
    AblationRow("loss", "L_address + L_geo", ("loss.beta=0",)),
    AblationRow("loss", FULL),
    AblationRow("caption", "caption alone", ("loss.caption_template={caption}",)),
    AblationRow("caption", "caption + address (default)"),
    AblationRow("geo", "literal (cos vs distance)", ("loss.geo=literal",)),
    AblationRow("geo", "distance (default)"),
    AblationRow("targets", "plain (default)"),
    AblationRow("targets", "multi-positive", ("loss.targets=multi_positive",)),
    AblationRow("freezing", "image tower frozen (text learns)", ("model.trainable=text",)),
    AblationRow("freezing", "text tower frozen (image learns)", ("model.trainable=image",)),
    AblationRow("freezing", "both towers learn", ("model.trainable=both",)),
    AblationRow("coverage", "12.5 % of locations", (), 0.125),
    AblationRow("coverage", "25 % of locations", (), 0.25),
    AblationRow("coverage", "50 % of locations", (), 0.5),
    AblationRow("coverage", "100 % of locations"),
    AblationRow("openset", "every sub-street seen in training (default)"),
    AblationRow("openset", "10 % of sub-streets unseen", (), 1.0, 0.1),
)


def coverage_manifest(data: EvalData, share: float, seed: int, out: Path) -> Path:
    """A copy of the manifest keeping `share` of each address's training capture locations (>= 1)."""

    frame = data.frame
    train = frame[frame["split"] == "train"]
    rng = np.random.default_rng(seed)
    kept: set[str] = set()
    for _, group in train.groupby("address_id", sort=True):
        locations = np.array(sorted(group["location_id"].unique()))
        count = max(1, math.ceil(share * len(locations)))
        kept.update(rng.choice(locations, size=count, replace=False).tolist())
    keep = (frame["split"] != "train") | frame["location_id"].isin(kept)
    target = out / f"manifest-{data.digest[:10]}-{round(share * 1000):04d}-seed{seed}.parquet"
    if not target.is_file():
        write_manifest(frame[keep].reset_index(drop=True), target, data.manifest.image_root,
                       data.manifest.addressbook_dir)  # fmt: skip
    return target


def unseen_addresses(data: EvalData, share: float, seed: int) -> list[str]:
    """`share` of the sub-streets with test photos (at least one), drawn with `seed`."""

    frame = data.frame
    tested = sorted(frame.loc[frame["split"] == "test", "address_id"].unique())
    count = max(1, round(share * len(tested)))
    return sorted(np.random.default_rng(seed).choice(tested, size=count, replace=False).tolist())


def unseen_manifest(data: EvalData, unseen: list[str], seed: int, out: Path) -> Path:
    """A copy of the manifest without the train and val photos of the `unseen` sub-streets.

    Written unchecked: test photos of an address absent from train are the point here (a built
    manifest never holds them; `validate` would refuse it).
    """

    frame = data.frame
    share = round(1000 * len(unseen) / max(1, frame["address_id"].nunique()))
    keep = (frame["split"] == "test") | ~frame["address_id"].isin(unseen)
    target = out / f"manifest-{data.digest[:10]}-unseen{share:04d}-seed{seed}.parquet"
    if not target.is_file():
        write_manifest(frame[keep].reset_index(drop=True), target, data.manifest.image_root,
                       data.manifest.addressbook_dir, check=False)  # fmt: skip
    return target


def split_by_seen(data: EvalData, folder: Path, unseen: list[str]) -> dict[str, dict[str, float | int]]:
    """SSA-1/5 and SA-1 of a run's test queries, split into unseen and seen sub-streets."""

    columns = ["truth", "truth_position", "street_position"]
    queries = pd.read_parquet(folder / "queries.parquet", columns=columns)
    is_unseen = np.isin(np.asarray(data.vocabulary.address_ids)[queries["truth"].to_numpy()], unseen)
    parts = {}
    for name, mask in (("unseen", is_unseen), ("seen", ~is_unseen)):
        subset = queries[mask]
        position, street = subset["truth_position"].to_numpy(), subset["street_position"].to_numpy()
        parts[name] = {
            "queries": len(subset),
            "addresses": len(unseen) if name == "unseen" else None,
            "SSA-1": float(100.0 * (position <= 1).mean()) if len(subset) else float("nan"),
            "SSA-5": float(100.0 * (position <= 5).mean()) if len(subset) else float("nan"),
            "SA-1": float(100.0 * (street <= 1).mean()) if len(subset) else float("nan"),
        }
    return parts


def ablation_rows(groups: Sequence[str] | None) -> list[AblationRow]:
    known = list(dict.fromkeys(r.group for r in ABLATIONS))
    if groups:
        unknown = [g for g in groups if g not in known]
        if unknown:
            raise ConfigError(
                f"--ablations: unknown group(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
    return [r for r in ABLATIONS if not groups or r.group in groups]


# Ablation rows that are exactly a main-suite method share its run (same folder, same key), so
# `--suite main` and `--suite ablation` with one --out train AddressCLIP and the L_address-only
# fine-tune once.
SHARED_WITH_MAIN: dict[tuple[tuple[str, ...], float, float], str] = {
    ((), 1.0, 0.0): "addressclip",
    (tuple(sorted(ADDRESS_ONLY)), 1.0, 0.0): "finetune_address",
}


def run_ablations(bench: Bench) -> list[dict]:
    opts = bench.options
    rows = []
    done: dict[tuple, list[dict]] = {}
    for row in ablation_rows(opts.ablation_groups):
        signature = (tuple(sorted(row.overrides)), row.coverage, row.unseen)
        if signature not in done and signature in SHARED_WITH_MAIN:
            name = SHARED_WITH_MAIN[signature]
            records = []
            for seed in seeds_for(opts, True):
                print(f"[benchmark] ablation {row.group}: {row.label} (seed {seed}) = {name}", flush=True)
                folder = method_folder(opts.out, name, seed)
                records.append(bench.run(name, folder, seed, {}))
            done[signature] = records
        if signature not in done:
            records = []
            for seed in seeds_for(opts, True):
                folder_name = (
                    slug("-".join(row.overrides) or "default")
                    + (f"-cov{int(row.coverage * 1000):04d}" if row.coverage < 1 else "")
                    + (f"-unseen{int(row.unseen * 1000):04d}" if row.unseen > 0 else "")
                )
                folder = opts.out / "ablations" / folder_name / f"seed{seed}"
                data_path = None
                unseen: list[str] = []
                if row.coverage < 1.0:
                    data_path = coverage_manifest(
                        bench.data, row.coverage, seed, opts.out / "ablations" / "coverage"
                    )
                if row.unseen > 0:
                    unseen = unseen_addresses(bench.data, row.unseen, seed)
                    data_path = unseen_manifest(bench.data, unseen, seed, opts.out / "ablations" / "openset")

                def runner(setup, overrides=row.overrides, data_path=data_path):
                    return run_trained(setup, overrides, data_path)

                print(f"[benchmark] ablation {row.group}: {row.label} (seed {seed})", flush=True)
                extra: dict[str, object] = {"ablation": list(row.overrides), "coverage": row.coverage}
                if row.unseen > 0:
                    extra["unseen"] = unseen
                record = bench.run("addressclip", folder, seed, {}, runner, extra)
                if unseen:
                    record = dict(record, unseen=unseen, by_seen=split_by_seen(bench.data, folder, unseen))
                records.append(record)
            done[signature] = records
        rows.append({"group": row.group, "label": row.label, "overrides": list(row.overrides),
                     "coverage": row.coverage, "unseen": row.unseen,
                     "runs": done[signature]})  # fmt: skip
    return rows
