"""Multi-city training, measured city by city: one model over several cities against one model per city.

The multi-city model is trained on an atlas (`addressclip atlas`, then `addressclip train
data=ATLAS/manifest.parquet`); its gallery is the union of the cities' addresses. For each city its
test images are ranked against that union (so a Helsinki photo may be answered with a Karhula street:
counted as a cross-city top-1), and, next to it, the single-city model of that city is evaluated on the
city's own manifest (the same images, the city's own addresses as gallery). `addressclip eval MULTI
--data ATLAS/manifest.parquet --compare CITY=CHECKPOINT ...` runs it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from addressclip.errors import AddressclipError, ConfigError, InputError
from addressclip.eval.checkpoint import evaluate_checkpoint
from addressclip.eval.evaluate import EvalData
from addressclip.eval.metrics import TiePolicy
from addressclip.model.factory import checkpoint_path
from addressclip.world.atlas import ATLAS_FILE, MANIFEST_NAME

METRICS: tuple[str, ...] = ("SSA-1", "SSA-5", "SA-1", "SA-5")


def parse_compare(items: Sequence[str]) -> dict[str, Path]:
    """`CITY=CHECKPOINT` items -> {city: checkpoint}; a one-line error for a malformed or repeated one."""
    singles: dict[str, Path] = {}
    for item in items:
        city, sep, path = item.partition("=")
        city, path = city.strip(), path.strip()
        if not sep or not city or not path:
            raise ConfigError(f"--compare '{item}': give CITY=CHECKPOINT, e.g. helsinki=runs/hel/model.pt")
        if city in singles:
            raise ConfigError(f"--compare: city '{city}' is given twice")
        singles[city] = Path(path)
    return singles


def atlas_city_manifests(atlas_manifest: Path) -> dict[str, Path]:
    """Each city's own manifest in an atlas folder (from the `atlas.json` beside the atlas manifest)."""
    folder = Path(atlas_manifest).parent
    info_file = folder / ATLAS_FILE
    if not info_file.is_file():
        raise InputError(
            atlas_manifest, None, f"no {ATLAS_FILE} beside it: --compare needs an atlas (addressclip atlas)"
        )
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(info_file, None, f"unreadable ({error})") from None
    cities = info.get("cities") if isinstance(info, dict) else None
    if not isinstance(cities, dict) or not info.get("complete"):
        raise InputError(info_file, "cities", "an unfinished atlas (run addressclip atlas again)")
    return {name: folder / str(entry["folder"]) / MANIFEST_NAME for name, entry in cities.items()}


def compare_cities(
    multi_checkpoint: Path,
    atlas_manifest: Path,
    singles: dict[str, Path],
    split: str = "test",
    *,
    cache: Path | None = None,
    device: str = "auto",
    ties: TiePolicy = "pessimistic",
    progress: bool = True,
) -> dict[str, object]:
    """The multi-city model per city (against the union gallery) and each single-city model on its city.

    Raises when a single-city manifest's `split` does not hold exactly the atlas' images of that city.
    """
    manifests = atlas_city_manifests(atlas_manifest)
    unknown = [city for city in singles if city not in manifests]
    if unknown:
        raise ConfigError(f"--compare: '{unknown[0]}' is not a city of the atlas ({', '.join(manifests)})")
    options = {"cache": cache, "device": device, "ties": ties, "progress": progress}
    atlas = EvalData.load(atlas_manifest, progress=progress)
    multi = evaluate_checkpoint(checkpoint_path(multi_checkpoint, "CHECKPOINT"), atlas, split, **options)
    by_city = multi.metrics.get("by_city")
    if not isinstance(by_city, dict):
        raise InputError(atlas_manifest, "city", "no city on its rows: not a multi-city manifest")
    single: dict[str, dict[str, object]] = {}
    for city, path in singles.items():
        model = checkpoint_path(path, f"--compare {city}")
        data = EvalData.load(manifests[city], progress=progress)
        metrics = evaluate_checkpoint(model, data, split, **options).metrics
        expected = by_city["cities"].get(city, {}).get("queries", 0)
        if metrics["queries"] != expected:
            raise AddressclipError(
                f"{manifests[city]}: {metrics['queries']} '{split}' images, but the atlas has {expected} "
                f"of {city}; the city's manifest and the atlas differ (render the atlas again)"
            )
        single[city] = {
            "checkpoint": str(model),
            "manifest": str(manifests[city]),
            "queries": metrics["queries"],
            "candidates": metrics["candidates"],
            **{k: metrics[k] for k in METRICS},
        }
    return {
        "split": split,
        "ties": ties,
        "multi": {
            "checkpoint": str(multi_checkpoint),
            "manifest": str(atlas_manifest),
            "metrics": multi.metrics,
        },
        "single": single,
    }


def _number(value: object) -> str:
    return "–" if not isinstance(value, int | float) or value != value else f"{value:.1f}"


def comparison_table(record: dict[str, object]) -> str:
    """Markdown: per city, SSA-1/SSA-5/SA-1 of its single-city model and of the multi-city model."""
    multi = record["multi"]["metrics"]  # type: ignore[index]
    single: dict[str, dict[str, object]] = record["single"]  # type: ignore[assignment]
    by_city = multi["by_city"]["cities"]
    header = (
        "| city | test images | addresses (own / union) | SSA-1 single | SSA-1 multi | Δ SSA-1 | "
        "SSA-5 single | SSA-5 multi | SA-1 single | SA-1 multi | multi: top-1 in another city |"
    )
    lines = [header, "|---" * 11 + "|"]
    pooled: dict[str, float] = dict.fromkeys(METRICS, 0.0)
    pooled_queries = 0
    for city, row in by_city.items():
        if not row["queries"]:
            continue
        own = single.get(city, {})
        delta = row["SSA-1"] - own["SSA-1"] if "SSA-1" in own else float("nan")  # type: ignore[operator]
        lines.append(
            f"| {city} | {row['queries']} | {row['candidates']} / {multi['candidates']} | "
            f"{_number(own.get('SSA-1'))} | {_number(row['SSA-1'])} | {delta:+.1f} | "
            f"{_number(own.get('SSA-5'))} | {_number(row['SSA-5'])} | "
            f"{_number(own.get('SA-1'))} | {_number(row['SA-1'])} | "
            f"{row['cross_city_top1']} ({_number(row['cross_city_top1_pct'])} %) |"
        )
        if own:
            pooled_queries += int(row["queries"])
            for key in METRICS:
                pooled[key] += float(own[key]) * int(row["queries"])  # type: ignore[arg-type]
    if pooled_queries == multi["queries"]:
        mean = {key: value / pooled_queries for key, value in pooled.items()}
        cross = multi["by_city"]
        lines.append(
            f"| all cities | {multi['queries']} | – / {multi['candidates']} | {_number(mean['SSA-1'])} | "
            f"{_number(multi['SSA-1'])} | {multi['SSA-1'] - mean['SSA-1']:+.1f} | "
            f"{_number(mean['SSA-5'])} | {_number(multi['SSA-5'])} | {_number(mean['SA-1'])} | "
            f"{_number(multi['SA-1'])} | "
            f"{cross['cross_city_top1']} ({_number(cross['cross_city_top1_pct'])} %) |"
        )
    return "\n".join(lines)
