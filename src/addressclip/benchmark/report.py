"""The benchmark report: `results.json` (every number), `report.md` (the tables, rendered from the
same numbers) and `figures/*.png`.

The markdown tables are rendered from `results['main_table']` / `results['ablation_table']`, which
are written into results.json first, so every number in report.md can be traced to (and is tested
against) the JSON.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from addressclip.atomic import write_json_atomic, write_text_atomic
from addressclip.baselines.registry import BASELINES
from addressclip.benchmark.ablations import ABLATION_TITLES
from addressclip.benchmark.figures import make_figures
from addressclip.benchmark.options import FEATURED
from addressclip.benchmark.paired import METHOD, REFERENCE, paired_comparison, paired_markdown
from addressclip.eval.evaluate import EvalData

ACCURACY_COLUMNS: tuple[str, ...] = ("SSA-1", "SSA-5", "SA-1", "SA-5")


def dataset_summary(data: EvalData, split: str) -> dict[str, object]:
    frame = data.frame
    counts = frame["split"].value_counts()
    return {
        "manifest": str(data.path),
        "images": len(frame),
        "images_per_split": {s: int(counts.get(s, 0)) for s in ("train", "val", "test")},
        "locations": int(frame["location_id"].nunique()),
        "candidates": len(data.vocabulary),
        "streets": len(set(data.vocabulary.street_ids)),
        "evaluated_split": split,
        "geometry_source": data.geometry.source,
        "addressbook": str(data.manifest.addressbook_dir) if data.manifest.addressbook_dir else None,
    }


# ------------------------------------------------------------------------------------------ numbers
def _stats(values: list[float | None]) -> dict[str, float | int | None]:
    known = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not known:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(known, ddof=1)) if len(known) > 1 else 0.0
    return {"mean": float(np.mean(known)), "std": std, "n": len(known)}


def summarise_runs(runs: list[dict]) -> dict[str, object]:
    """Mean / std over seeds of the table's numbers for one method (or ablation row)."""
    metrics = [r["metrics"] for r in runs]
    row: dict[str, object] = {c: _stats([m.get(c) for m in metrics]) for c in ACCURACY_COLUMNS}
    row["median_error_m"] = _stats([(m.get("error_m") or {}).get("median") for m in metrics])
    row["ece"] = _stats([(m.get("calibration") or {}).get("ece") for m in metrics])
    row["latency_ms"] = _stats([r.get("latency_ms") for r in runs])
    row["storage_bytes"] = runs[0].get("storage_bytes") if runs else None
    row["seeds"] = [r.get("seed") for r in runs]
    row["queries"] = metrics[0].get("queries") if metrics else None
    return row


def main_table(methods: dict[str, list[dict]]) -> list[dict[str, object]]:
    order = [name for name in BASELINES if name in methods] + [n for n in methods if n not in BASELINES]
    table = []
    for name in order:
        runs = methods[name]
        if not runs:
            continue
        row = summarise_runs(runs)
        row["method"] = name
        row["label"] = runs[0].get("label", name)
        row["group"] = BASELINES[name].group if name in BASELINES else "other"
        table.append(row)
    return table


def ablation_table(ablations: list[dict]) -> list[dict[str, object]]:
    table = []
    for entry in ablations:
        row = summarise_runs(entry["runs"])
        row.update({"group": entry["group"], "label": entry["label"], "overrides": entry["overrides"]})
        if any("by_seen" in r for r in entry["runs"]):  # open set: the unseen / seen sub-streets apart
            for part in ("unseen", "seen"):
                row[f"{part} SSA-1"] = _stats(
                    [(r.get("by_seen") or {}).get(part, {}).get("SSA-1") for r in entry["runs"]]
                )
        table.append(row)
    return table


# ------------------------------------------------------------------------------------------ format
def format_stat(stat: dict | None, digits: int = 1) -> str:
    """'81.2' for one run, '81.2 ± 0.4' for several, '–' when unknown."""
    if not stat or stat.get("mean") is None:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if (stat.get("n") or 0) > 1:
        text += f" ± {stat['std']:.{digits}f}"
    return text


def format_bytes(value: int | None) -> str:
    if value is None:
        return "–"
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value} B"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main_table_markdown(table: list[dict]) -> str:
    header = ["Method", *ACCURACY_COLUMNS, "median error (m)", "storage", "latency (ms/query)", "seeds"]
    rows = []
    for row in table:
        rows.append(
            [
                str(row["label"]),
                *(format_stat(row[c]) for c in ACCURACY_COLUMNS),
                format_stat(row["median_error_m"], 0),
                format_bytes(row["storage_bytes"]),
                format_stat(row["latency_ms"], 2),
                str(len(row["seeds"])),
            ]
        )
    return _table(header, rows)


SEEN_COLUMNS = ("unseen SSA-1", "seen SSA-1")  # the open-set rows' test photos, split


def ablation_markdown(table: list[dict]) -> str:
    parts = []
    for group in dict.fromkeys(r["group"] for r in table):
        members = [r for r in table if r["group"] == group]
        extra = [c for c in SEEN_COLUMNS if any(c in r for r in members)]
        rows = [
            [
                str(r["label"]),
                *(format_stat(r[c]) for c in ACCURACY_COLUMNS),
                format_stat(r["median_error_m"], 0),
                *(format_stat(r.get(c)) for c in extra),
            ]
            for r in members
        ]
        title = ABLATION_TITLES.get(group, group)
        header = ["Setting", *ACCURACY_COLUMNS, "median error (m)", *extra]
        parts.append(f"**{title}**\n\n" + _table(header, rows))
    return "\n\n".join(parts)


def _diagnostics_markdown(record: dict) -> str:
    metrics = record["metrics"]
    error = metrics.get("error_m") or {}
    confusion = metrics.get("confusion") or {}
    lines = [
        f"Method: **{record.get('label', record['method'])}** (seed {record.get('seed', 0)}), "
        f"{metrics.get('queries')} queries, {metrics.get('candidates')} candidate addresses, "
        f"geometry from the {metrics.get('geometry_source')}.",
        "",
        f"- metre error to the predicted sub-street: median {_num(error.get('median'), 1)} m, "
        f"mean {_num(error.get('mean'), 1)} m; within 25 m {_num(error.get('within_25m'), 1)} %, "
        f"within 100 m {_num(error.get('within_100m'), 1)} %",
        f"- calibration of the top-1 score: ECE {_num((metrics.get('calibration') or {}).get('ece'), 2)} "
        "points (10 bins, see the reliability diagram)",
        f"- mean per-address SSA-1: {_num(metrics.get('mean_per_address_SSA-1'), 1)} % over "
        f"{metrics.get('addresses_evaluated')} addresses with queries",
        f"- top-1 errors: {confusion.get('errors', 0)}; on a neighbouring sub-street "
        f"{_num(confusion.get('neighbour'), 1)} %, elsewhere on the same street "
        f"{_num(confusion.get('same_street'), 1)} %, another street {_num(confusion.get('other'), 1)} %",
    ]
    pairs = confusion.get("top_pairs") or []
    if pairs:
        lines += ["", "Most frequent confusions:", ""]
        lines.append(
            _table(
                ["true address", "predicted", "count", "neighbours"],
                [
                    [p["truth"], p["predicted"], str(p["count"]), "yes" if p["neighbours"] else "no"]
                    for p in pairs[:8]
                ],
            )
        )
    bins = metrics.get("by_intersection_distance") or []
    if bins:
        lines += ["", "Accuracy by distance from the query to the nearest intersection:", ""]
        lines.append(
            _table(
                ["distance", "queries", "SSA-1"],
                [[b["bin"], str(b["count"]), _num(b["SSA-1"], 1)] for b in bins],
            )
        )
    return "\n".join(lines)


def _num(value, digits: int) -> str:
    return "–" if value is None or not math.isfinite(float(value)) else f"{float(value):.{digits}f}"


def featured_record(results: dict) -> dict | None:
    methods = results.get("methods", {})
    for name in FEATURED:
        if methods.get(name):
            return methods[name][0]
    return None


def report_markdown(results: dict, figures: dict[str, str]) -> str:
    dataset = results.get("dataset", {})
    env = results.get("environment", {})
    parts = ["# AddressCLIP benchmark", ""]
    for suite, info in results.get("suites", {}).items():
        if info.get("command"):
            parts.append(f"- `{suite}` suite: `{info['command']}` ({info.get('seconds', 0):.0f} s)")
    split = dataset.get("images_per_split", {})
    parts += [
        "",
        f"Data: `{dataset.get('manifest')}` — {dataset.get('images')} images "
        f"(train {split.get('train')}, val {split.get('val')}, test {split.get('test')}), "
        f"{dataset.get('candidates')} candidate addresses on {dataset.get('streets')} streets; "
        f"evaluated on the **{dataset.get('evaluated_split')}** split. Machine: {env.get('device')}, "
        f"{env.get('torch_threads')} torch threads.",
        "",
        "SSA-k: the true sub-street address is among the top k; SA-k: a top-k address is on the true "
        "street (percent; equal scores ranked against the method). Storage: what inference keeps "
        "besides the backbone (address gallery, cache or retrieval database). Latency: median per "
        "query, from pixels to the top-5 addresses, one image at a time on one CPU thread (or the "
        "GPU), on this machine. Methods that "
        "train: mean ± std over the seeds listed.",
    ]
    table = results.get("main_table") or []
    if table:
        parts += ["", "## Main table", "", main_table_markdown(table)]
        subset = [
            r
            for r in table
            if r.get("queries") != dataset.get("images_per_split", {}).get(dataset.get("evaluated_split"))
        ]
        for row in subset:
            parts.append(f"\n{row['label']}: evaluated on {row.get('queries')} queries only (cost cap).")
        missing = [spec.label for name, spec in BASELINES.items() if name not in results.get("methods", {})]
        if missing:
            parts.append(
                f"\nNot run here: {', '.join(missing)} (`addressclip benchmark --suite main` runs them)."
            )
    if results.get("paired"):
        parts += paired_markdown(results["paired"])
    ablations = results.get("ablation_table") or []
    if ablations:
        parts += ["", "## Ablations (AddressCLIP)", "", ablation_markdown(ablations)]
    if results.get("routes"):
        from addressclip.benchmark.routes import routes_report_section

        parts += routes_report_section(results["routes"])
    record = featured_record(results)
    if record is not None:
        parts += ["", "## Beyond accuracy", "", _diagnostics_markdown(record)]
    if figures:
        parts += ["", "## Figures", ""]
        for title, path in figures.items():
            parts += [f"**{title}**", "", f"![{title}]({path})", ""]
    return "\n".join(parts).rstrip() + "\n"


def write_report(out: Path, results: dict, data: EvalData, options, figures: bool = True) -> Path:
    """Fill the derived tables into `results`, write results.json, figures and report.md."""
    results["main_table"] = main_table(results.get("methods", {}))
    results["ablation_table"] = ablation_table(results.get("ablations", []))
    methods = results.get("methods", {})
    seeds = sorted({r.get("seed", 0) for name in (METHOD, REFERENCE) for r in methods.get(name, [])})
    results["paired"] = paired_comparison(out, data.frame, seeds) if seeds else None
    figure_paths: dict[str, str] = {}
    if figures:
        figure_paths = make_figures(out, results, data)
    results["figures"] = figure_paths
    write_json_atomic(out / "results.json", results)
    report = out / "report.md"
    write_text_atomic(report, report_markdown(results, figure_paths))
    return report
