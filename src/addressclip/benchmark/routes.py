"""Sequence evaluation on held-out routes: per-photo answers against the decoded sub-street path.

`addressclip benchmark --suite routes --data WORLD/manifest.parquet --model model.pt --out OUT`:

1. routes: `count` seeded random walks (`world.routes`) on the sub-streets of the model's gallery,
   one forward view every `spacing_m` (10 m) at new positions (1.5 m right of the centreline, a
   random phase; training captures lie on the centreline) with new weather, cars and camera draws
   (`world.route_views`), plus `count` sparser walks for each of `sparse_spacings` (30 m, 60 m);
2. each view through the predictor exactly as a user's photo goes (JPEG bytes -> `decode` ->
   `rank_all`): the per-photo answer is its top-1, the sequence answer the Viterbi path of
   `serve.sequences` (the adjacency, gaps and transitions `predict_sequence` uses, with the
   along-route metres as `positions`); the posterior argmax (forward–backward) is kept too;
3. each walk is cut into consecutive, non-overlapping windows of each length in `lengths`, every
   window decoded on its own, so per-photo and sequence numbers are over the very same photos;
4. wrong-order noise: within windows of `swap_length`, adjacent photos are exchanged with
   probability `swap_rates` (the positions stay in order: the photos are misordered, not the clock).

Truth is the label a data build would give the view's GPS (`Route.label`); views whose label is not
a gallery address (merged away, or none within range) stay in the sequence but are not scored.
Metre error: from the view's true position to the answered sub-street's geometry. A paired bootstrap
over routes gives a 95 % interval for the change in SSA-1. `changes` counts photos the decoding
fixed and broke, and where the broken ones lie (at a true change of sub-street, or on a sub-street
the walk passes in at most two photos).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from addressclip.atomic import to_jsonable, write_json_atomic, write_text_atomic
from addressclip.errors import AddressclipError, ConfigError

ROUTES_DIR = "routes"
RESULTS_FILE = "results.json"
TABLE_FILE = "routes.md"
FIGURE_FILE = "route_decoded.png"


@dataclass(frozen=True)
class RouteEvalSettings:
    """What the route suite walks, renders and scores (set with `--option routes.NAME=VALUE`)."""

    count: int = 50  # routes per spacing
    seed: int = 0
    lengths: tuple[int, ...] = (5, 10, 20, 50)
    spacing_m: float = 10.0
    sparse_spacings: tuple[float, ...] = (30.0, 60.0)
    sparse_length: int = 20  # views per sparse route (windows of every length up to it are scored)
    swap_rates: tuple[float, ...] = (0.1, 0.3)
    swap_length: int = 20
    bootstrap: int = 1000

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, wanted: str) -> None:
            if not ok:
                raise ConfigError(f"--option routes.{name}={getattr(self, name)!r}: must be {wanted}")

        check(self.count >= 1, "count", "a whole number >= 1")
        check(self.seed >= 0, "seed", "a whole number >= 0")
        check(len(self.lengths) > 0 and min(self.lengths) >= 1, "lengths", "whole numbers >= 1")
        check(self.spacing_m > 0, "spacing_m", "a positive number of metres")
        check(all(s > 0 for s in self.sparse_spacings), "sparse_spacings", "positive numbers of metres")
        check(self.sparse_length >= 1, "sparse_length", "a whole number >= 1")
        check(all(0 <= r <= 1 for r in self.swap_rates), "swap_rates", "probabilities in [0, 1]")
        check(self.swap_length in self.lengths, "swap_length", "one of the lengths")
        check(self.bootstrap >= 0, "bootstrap", "a whole number >= 0")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RouteEvalSettings:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"--option routes.{unknown[0]}: unknown; known: {', '.join(known)}")
        values: dict[str, Any] = {}
        for name, raw in options.items():
            many = str(known[name].type).startswith("tuple")
            cast = float if "float" in str(known[name].type) else int
            try:
                if many:
                    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
                    values[name] = tuple(cast(item) for item in items if str(item).strip())
                else:
                    value = cast(raw)
                    if cast is int and value != float(raw):
                        raise ValueError
                    values[name] = value
            except (TypeError, ValueError):
                kind = "numbers like 5,10,20" if many else "a number"
                raise ConfigError(f"--option routes.{name}={raw!r}: must be {kind}") from None
        return cls(**values)

    @property
    def longest(self) -> int:
        return max(self.lengths)


@dataclass
class RouteSet:
    """The walks of one spacing with everything scored from them (one entry per route)."""

    spacing_m: float
    routes: list  # world.routes.Route
    log_probs: list[np.ndarray]  # (T, N) per route
    truth: list[np.ndarray]  # (T,) gallery row of each view's label, -1 when not a gallery address
    error_m: list[np.ndarray]  # (T, N) metres from each view to every gallery sub-street


# --------------------------------------------------------------------------------------- scoring
def adjacent_swaps(length: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """A photo order with adjacent pairs exchanged, each pair with probability `rate` (no overlaps)."""
    order = np.arange(length)
    i = 0
    while i < length - 1:
        if rng.random() < rate:
            order[i], order[i + 1] = order[i + 1], order[i]
            i += 2
        else:
            i += 1
    return order


def _run_lengths(truth: np.ndarray) -> np.ndarray:
    """Per photo, how many consecutive photos (its run) share its true sub-street."""
    change = np.r_[True, truth[1:] != truth[:-1]]
    run_id = np.cumsum(change) - 1
    return np.bincount(run_id)[run_id]


def _at_change(truth: np.ndarray) -> np.ndarray:
    """Photos next to a change of true sub-street (the last before it or the first after it)."""
    before = np.r_[truth[1:] != truth[:-1], False]
    after = np.r_[False, truth[1:] != truth[:-1]]
    return before | after


@dataclass
class _Scored:
    """Per scored photo of one setting: answers, truth and where the photo sits."""

    route: list[int]
    truth: list[np.ndarray]
    photo: list[np.ndarray]
    viterbi: list[np.ndarray]
    posterior: list[np.ndarray]
    photo_error: list[np.ndarray]
    viterbi_error: list[np.ndarray]
    posterior_error: list[np.ndarray]
    at_change: list[np.ndarray]
    short_run: list[np.ndarray]
    displaced: int = 0
    photos: int = 0
    windows: int = 0


def score_setting(
    walks: RouteSet,
    length: int,
    decoder,
    gaps_for,
    streets: np.ndarray,
    swap_rate: float = 0.0,
    rng: np.random.Generator | None = None,
    bootstrap: int = 0,
) -> dict[str, Any]:
    """The numbers of one table row: windows of `length` photos of every walk, each decoded alone."""
    rng = rng or np.random.default_rng(0)
    scored = _Scored(*([] for _ in range(10)))
    for number, (log_probs, truth, error) in enumerate(
        zip(walks.log_probs, walks.truth, walks.error_m, strict=True)
    ):
        for start in range(0, len(truth) - length + 1, length):
            order = start + (adjacent_swaps(length, swap_rate, rng) if swap_rate > 0 else np.arange(length))
            result = decoder.decode(log_probs[order], gaps_for(length))
            seen = truth[order]
            keep = seen >= 0
            photo = np.argmax(log_probs[order], axis=1)
            posterior = np.argmax(result.posteriors, axis=1)
            frames = order[keep]
            scored.route.append(np.full(int(keep.sum()), number))
            scored.truth.append(seen[keep])
            scored.photo.append(photo[keep])
            scored.viterbi.append(result.path[keep])
            scored.posterior.append(posterior[keep])
            scored.photo_error.append(error[frames, photo[keep]])
            scored.viterbi_error.append(error[frames, result.path[keep]])
            scored.posterior_error.append(error[frames, posterior[keep]])
            in_order = truth[start : start + length]  # where the photos really are, in walking order
            scored.at_change.append(_at_change(in_order)[order - start][keep])
            scored.short_run.append((_run_lengths(in_order) <= 2)[order - start][keep])
            scored.displaced += int((order != np.arange(start, start + length)).sum())
            scored.photos += length
            scored.windows += 1
    if scored.windows == 0:
        raise AddressclipError(
            f"routes: no walk holds {length} views; lower the length or lengthen the walks"
        )
    cat = {name: np.concatenate(getattr(scored, name)) for name in
           ("route", "truth", "photo", "viterbi", "posterior", "photo_error", "viterbi_error",
            "posterior_error", "at_change", "short_run")}  # fmt: skip
    truth = cat["truth"]

    def metrics(answer: np.ndarray, error: np.ndarray) -> dict[str, float]:
        return {
            "SSA-1": _percent(answer == truth),
            "SA-1": _percent(streets[answer] == streets[truth]),
            "median_error_m": float(np.median(error)) if len(error) else float("nan"),
            "mean_error_m": float(np.mean(error)) if len(error) else float("nan"),
        }

    photo_hit, viterbi_hit = cat["photo"] == truth, cat["viterbi"] == truth
    fixed, broken = ~photo_hit & viterbi_hit, photo_hit & ~viterbi_hit
    return {
        "spacing_m": walks.spacing_m,
        "length": length,
        "swap_rate": swap_rate,
        "sequences": scored.windows,
        "routes": len(walks.routes),
        "photos": scored.photos,
        "scored": len(truth),
        "displaced_photos": scored.displaced,
        "per_photo": metrics(cat["photo"], cat["photo_error"]),
        "sequence": metrics(cat["viterbi"], cat["viterbi_error"]),
        "posterior": metrics(cat["posterior"], cat["posterior_error"]),
        "delta_SSA-1": _paired_bootstrap(cat["route"], photo_hit, viterbi_hit, bootstrap, rng),
        "changes": {
            "fixed": int(fixed.sum()),
            "broken": int(broken.sum()),
            "broken_at_change": int((broken & cat["at_change"]).sum()),
            "broken_on_short_run": int((broken & cat["short_run"]).sum()),
            "photos_at_change": _percent(cat["at_change"]),
            "photos_on_short_run": _percent(cat["short_run"]),
            "per_photo_SSA-1_at_change": _percent(photo_hit[cat["at_change"]]),
            "sequence_SSA-1_at_change": _percent(viterbi_hit[cat["at_change"]]),
            "per_photo_SSA-1_elsewhere": _percent(photo_hit[~cat["at_change"]]),
            "sequence_SSA-1_elsewhere": _percent(viterbi_hit[~cat["at_change"]]),
        },
    }


def _percent(mask: np.ndarray) -> float:
    return float(100.0 * np.mean(mask)) if len(mask) else float("nan")


def _paired_bootstrap(
    route: np.ndarray, before: np.ndarray, after: np.ndarray, draws: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Mean change in SSA-1 (points) and a 95 % interval from resampling whole routes."""
    routes = np.unique(route)
    count = np.bincount(route, minlength=routes.max() + 1)[routes].astype(np.float64)
    gain = np.bincount(route, weights=after.astype(float) - before.astype(float), minlength=routes.max() + 1)
    gain = gain[routes]
    mean = float(100.0 * gain.sum() / count.sum())
    if draws <= 0 or len(routes) < 2:
        return {"mean": mean, "ci95": None, "draws": 0}
    pick = rng.integers(0, len(routes), size=(draws, len(routes)))
    samples = 100.0 * gain[pick].sum(axis=1) / count[pick].sum(axis=1)
    low, high = np.percentile(samples, [2.5, 97.5])
    return {"mean": mean, "ci95": [float(low), float(high)], "draws": int(draws)}


# --------------------------------------------------------------------------------------- walking
def gallery_rows_of_labels(book, gallery, labels: np.ndarray) -> np.ndarray:
    """Gallery row of each AddressBook row in `labels` (-1: no label, or not a gallery address)."""
    ids = book.table["address_id"].to_numpy(dtype=object)
    lookup = np.array(
        [gallery.row_of(a) if gallery.row_of(a) is not None else -1 for a in ids], dtype=np.int64
    )
    labels = np.asarray(labels, dtype=np.int64)
    return np.where(labels >= 0, lookup[np.maximum(labels, 0)], -1)


def distances_to_gallery(utm: np.ndarray, gallery) -> np.ndarray:
    """(T, N) metres from each point to each gallery sub-street (inf where one has no geometry)."""
    import shapely

    geometries = np.array(
        [g if g is not None and not g.is_empty else None for g in gallery.table["geometry"]], dtype=object
    )
    points = shapely.points(np.asarray(utm, dtype=np.float64))
    distance = shapely.distance(points[:, None], geometries[None, :])
    return np.where(np.isnan(distance), np.inf, distance).astype(np.float32)


def walk_and_score(
    predictor, scene, params, spacing_m: float, length: int, settings: RouteEvalSettings, first_number: int,
    progress: bool,
) -> RouteSet:  # fmt: skip
    """Walk, render and rank the routes of one spacing."""
    from tqdm import tqdm

    from addressclip.world.assets import load_assets
    from addressclip.world.route_views import render_route
    from addressclip.world.routes import RouteParams, random_routes

    book, gallery = predictor.addressbook, predictor.gallery
    allowed = gallery_rows_of_labels(book, gallery, np.arange(len(book))) >= 0
    rng = np.random.default_rng([settings.seed, round(spacing_m * 1000)])
    routes = random_routes(
        book, settings.count, rng, RouteParams(spacing_m=spacing_m, length=length), allowed
    )
    assets = load_assets()
    walks = RouteSet(spacing_m, routes, [], [], [])
    bar = tqdm(routes, desc=f"routes every {spacing_m:g} m", unit="route", disable=not progress)
    for offset, route in enumerate(bar):
        jpegs = render_route(
            scene, assets, route, params, route_seed=settings.seed, route_number=first_number + offset
        )
        pixels = np.stack([predictor.decode(jpeg, f"{route.route_id}-{i}") for i, jpeg in enumerate(jpegs)])
        walks.log_probs.append(
            np.concatenate(
                [
                    predictor.rank_all(pixels[i : i + predictor.batch_size], 1)[3]
                    for i in range(0, len(pixels), predictor.batch_size)
                ]
            )
        )
        walks.truth.append(gallery_rows_of_labels(book, gallery, route.label))
        walks.error_m.append(distances_to_gallery(route.utm, gallery))
    return walks


# ------------------------------------------------------------------------------------------ suite
@dataclass
class RouteEvaluation:
    results: dict[str, Any]
    walks: dict[float, RouteSet]
    decoders: dict[float, Any]  # geo.sequence.SequenceDecoder per spacing
    gallery: Any  # serve.gallery.AddressGallery

    def decode_walk(self, spacing: float, number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(per-photo answers, Viterbi path, truth) of one whole walk of `spacing`."""
        walks = self.walks[spacing]
        log_probs = walks.log_probs[number]
        result = self.decoders[spacing].decode(log_probs, along_route_gaps(spacing)(len(log_probs)))
        return np.argmax(log_probs, axis=1), result.path, walks.truth[number]


def along_route_gaps(spacing_m: float):
    """gaps(length): the gaps `predict_sequence` derives from positions every `spacing_m` metres."""
    from addressclip.serve.sequences import sequence_params

    def gaps(length: int) -> np.ndarray | None:
        return sequence_params(length, None, np.arange(length) * spacing_m, None)[0]

    return gaps


def metre_transitions(spacing_m: float):
    """The transition parameters `predict_sequence` uses for positions in metres."""
    from addressclip.serve.sequences import sequence_params

    return sequence_params(2, None, [0.0, spacing_m], None)[1]


def evaluate_routes(
    model: Path,
    manifest: Path,
    settings: RouteEvalSettings,
    device: str = "cpu",
    progress: bool = True,
) -> RouteEvaluation:
    """Walk, render, predict and decode the routes of every spacing; the table rows in `results`."""
    from addressclip.geo.sequence import SequenceDecoder
    from addressclip.serve.loading import load_predictor
    from addressclip.world.render import prepare_world
    from addressclip.world.route_views import render_params_of

    started, load_before = time.perf_counter(), os.getloadavg()
    world_dir = manifest.parent
    params = render_params_of(world_dir)  # fails early when the manifest is not a rendered world
    predictor = load_predictor(model, device=device, manifest=manifest, calibrate_threshold=False)
    if predictor.addressbook is None:
        raise AddressclipError(f"{manifest}: no AddressBook beside the manifest; routes walk on its streets")
    _, scene = prepare_world(params)
    spacings = [settings.spacing_m, *(s for s in settings.sparse_spacings if s != settings.spacing_m)]
    walks: dict[float, RouteSet] = {}
    render_started = time.perf_counter()
    for number, spacing in enumerate(spacings):
        length = settings.longest if spacing == settings.spacing_m else settings.sparse_length
        walks[spacing] = walk_and_score(
            predictor, scene, params, spacing, length, settings, number * settings.count, progress
        )
    render_seconds = time.perf_counter() - render_started
    streets = predictor.gallery.table["street_id"].to_numpy(dtype=object)
    decoders = {
        spacing: SequenceDecoder(predictor.sequence_adjacency(), metre_transitions(spacing))
        for spacing in spacings
    }
    rows = []
    rng = np.random.default_rng([settings.seed, 7])
    for spacing in spacings:
        decoder, gaps = decoders[spacing], along_route_gaps(spacing)
        limit = settings.longest if spacing == settings.spacing_m else settings.sparse_length
        for length in (n for n in settings.lengths if n <= limit):
            rows.append(
                score_setting(walks[spacing], length, decoder, gaps, streets, 0.0, rng, settings.bootstrap)
            )
        if spacing == settings.spacing_m:
            for rate in settings.swap_rates:
                length = settings.swap_length
                rows.append(
                    score_setting(
                        walks[spacing], length, decoder, gaps, streets, rate, rng, settings.bootstrap
                    )
                )
    transition = decoders[settings.spacing_m].params
    results = {
        "settings": {f.name: getattr(settings, f.name) for f in fields(settings)},
        "model": str(model),
        "world": str(world_dir),
        "world_hash": params.hash,
        "gallery": len(predictor.gallery),
        "transition": {
            "move": transition.move,
            "jump": transition.jump,
            "unit_m": transition.unit,
            "emission_weight": transition.emission_weight,
        },
        "held_out": _held_out(manifest, walks),
        "rows": rows,
        "views": int(sum(len(r) for w in walks.values() for r in w.routes)),
        "render_and_predict_seconds": round(render_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
    }
    return RouteEvaluation(to_jsonable(results), walks, decoders, predictor.gallery)


def _held_out(manifest: Path, walks: dict[float, RouteSet]) -> dict[str, float]:
    """How far the route views lie from the nearest training capture point (metres)."""
    import pandas as pd

    from addressclip.world.routes import nearest_distance

    frame = pd.read_parquet(manifest, columns=["utm_e", "utm_n", "split"])
    train = frame.loc[frame["split"] == "train", ["utm_e", "utm_n"]].drop_duplicates().to_numpy(float)
    points = np.concatenate([r.utm for w in walks.values() for r in w.routes])
    distance = nearest_distance(points, train)
    return {
        "train_capture_points": len(train),
        "median_m": float(np.median(distance)),
        "p10_m": float(np.percentile(distance, 10)),
        "min_m": float(distance.min()),
    }


# ------------------------------------------------------------------------------------------ table
def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _setting_label(row: dict[str, Any]) -> str:
    text = f"{row['length']} photos, every {row['spacing_m']:g} m"
    if row["swap_rate"]:
        text += f", {100 * row['swap_rate']:g}% adjacent swaps"
    return text


def _ci(delta: dict[str, Any]) -> str:
    if delta.get("mean") is None:
        return "–"
    text = f"{delta['mean']:+.1f}"
    if delta.get("ci95"):
        low, high = delta["ci95"]
        text += f" [{low:+.1f}, {high:+.1f}]"
    return text


CHANGES_NOTE = (
    "What the decoding changed (photos; at a change = the last photo before or the first after a change "
    "of true sub-street; short = a sub-street the walk passes in at most 2 photos):"
)


def routes_markdown(results: dict[str, Any]) -> str:
    """The route table (per-photo vs sequence) and the breakdown of what the decoding changed."""
    header = ["Setting", "sequences × photos", "SSA-1 photo", "SSA-1 sequence", "Δ SSA-1 [95% CI]",
              "SA-1 photo", "SA-1 sequence", "median m photo", "median m sequence", "mean m photo",
              "mean m sequence"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in results["rows"]:
        photo, seq = row["per_photo"], row["sequence"]
        cells = [
            _setting_label(row), f"{row['sequences']} × {row['length']}",
            _num(photo['SSA-1'], 1), f"**{_num(seq['SSA-1'])}**", _ci(row["delta_SSA-1"]),
            _num(photo['SA-1'], 1), _num(seq['SA-1'], 1),
            _num(photo['median_error_m'], 0), _num(seq['median_error_m'], 0),
            _num(photo['mean_error_m'], 0), _num(seq['mean_error_m'], 0),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", CHANGES_NOTE, ""]
    header = ["Setting", "fixed", "broken", "broken at a change", "broken on a short sub-street",
              "photos at a change", "SSA-1 at a change photo → sequence", "SSA-1 elsewhere photo → sequence",
              "posterior argmax SSA-1"]  # fmt: skip
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in results["rows"]:
        c = row["changes"]
        cells = [
            _setting_label(row), str(c["fixed"]), str(c["broken"]), str(c["broken_at_change"]),
            str(c["broken_on_short_run"]), f"{_num(c['photos_at_change'], 0)}%",
            f"{_num(c['per_photo_SSA-1_at_change'])} → {_num(c['sequence_SSA-1_at_change'])}",
            f"{_num(c['per_photo_SSA-1_elsewhere'])} → {_num(c['sequence_SSA-1_elsewhere'])}",
            _num(row['posterior']['SSA-1'], 1),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def routes_summary_lines(results: dict[str, Any]) -> list[str]:
    held, transition = results["held_out"], results["transition"]
    settings = results["settings"]
    return [
        f"{settings['count']} routes per spacing (seed {settings['seed']}), {results['views']} rendered "
        f"views on the {results['gallery']} gallery sub-streets of `{results['world']}`; model "
        f"`{results['model']}`. Views lie {held['median_m']:.1f} m (median; min {held['min_m']:.1f} m) "
        f"from the nearest of the {held['train_capture_points']} training capture points. Transitions: "
        f"move {transition['move']}, jump {transition['jump']} per {transition['unit_m']:g} m (what "
        "`predict_sequence` uses with positions).",
    ]


def write_route_results(out: Path, evaluation: RouteEvaluation, command: str, figure: bool = True) -> Path:
    """OUT/routes/results.json, routes.md and the decoded-route figure; returns the markdown path."""
    folder = out / ROUTES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    results = evaluation.results
    results["command"] = command
    if figure:
        from addressclip.benchmark.route_figure import plot_decoded_routes

        written = plot_decoded_routes(evaluation, folder / FIGURE_FILE)
        results["figure"] = f"{ROUTES_DIR}/{FIGURE_FILE}" if written else None
    write_json_atomic(folder / RESULTS_FILE, results)
    text = "# Photo sequences on held-out routes\n\n" + "\n".join(routes_summary_lines(results))
    text += f"\n\n`{command}`\n\n" + routes_markdown(results)
    if results.get("figure"):
        text += f"\n![decoded routes]({FIGURE_FILE})\n"
    write_text_atomic(folder / TABLE_FILE, text)
    return folder / TABLE_FILE


def routes_report_section(routes: dict[str, Any]) -> list[str]:
    """The benchmark report's "Photo sequences" section (markdown lines)."""
    parts = ["", "## Photo sequences (held-out routes)", "", *routes_summary_lines(routes), ""]
    if routes.get("command"):
        parts += [f"`{routes['command']}`", ""]
    parts.append(routes_markdown(routes).rstrip())
    if routes.get("figure"):
        parts += ["", f"![decoded routes]({routes['figure']})"]
    return parts
