"""`addressclip predict`: the addresses of photos (files or folders) from a checkpoint or bundle.

`--sequence` decodes the photos as one walk (see `serve.sequences`): in natural file-name order, or
with `--order exif-time` by EXIF DateTimeOriginal (gaps in seconds; a photo without it is an error
naming the file, since guessing its place would silently reorder the walk). A video file stands for
its frames, one every `--every-s` seconds (`serve.video`; the frame times are the sequence's
timestamps).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from addressclip.commands.common import (
    add_backend_argument,
    add_model_arguments,
    output_path,
    predictor_from_args,
)
from addressclip.serve.video import VIDEO_SUFFIXES

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MAX_LISTED_SKIPS = 20


def collect_images(paths: list[str]) -> tuple[list[Path], bool]:
    """Files as given plus image files under folders (sorted); whether any folder was given."""
    from addressclip.errors import InputError

    found: list[Path] = []
    any_folder = False
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            any_folder = True
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(path, None, "not found")
    return found, any_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict the addresses of photos",
        description="Rank the candidate addresses for each photo (files, or folders searched recursively). "
        "Unreadable images are skipped and listed on stderr.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="image or video files, or folders")
    add_model_arguments(parser)
    add_backend_argument(parser)
    parser.add_argument("--top-k", type=int, default=5, help="addresses per photo (default: 5)")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    parser.add_argument("--out", metavar="FILE", help="write the output here (atomically) instead of stdout")
    parser.add_argument("--geometry", action="store_true", help="json: include each sub-street's GeoJSON")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    group = parser.add_argument_group("a sharded dataset (instead of PATHs)")
    group.add_argument(
        "--shards",
        metavar="DIR",
        help="predict every image of a split of these tar shards (`addressclip shard`), read as a "
        "stream; each row is named by its manifest path",
    )
    group.add_argument("--split", default="test", help="with --shards: the split to predict (default: test)")
    group = parser.add_argument_group("photo sequences (a walk, a drive, an album of one trip)")
    group.add_argument(
        "--sequence",
        action="store_true",
        help="treat the photos as one ordered sequence: decode the most likely path of sub-streets "
        "(per-photo answers next to the decoded ones)",
    )
    group.add_argument(
        "--order",
        choices=("name", "exif-time"),
        default="name",
        help="sequence order: file names (natural order: 9.jpg before 10.jpg; default), or EXIF "
        "DateTimeOriginal, whose gaps in seconds then scale the transitions (a photo without it is an error)",
    )
    group.add_argument(
        "--every-s",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="video files: take one frame every SECONDS of the video (default: 1; needs the video extra)",
    )
    parser.set_defaults(func=run, intermixed="paths")


def natural_key(path: Path) -> list[object]:
    """Sort key that puts img9 before img10 (digit runs compare as numbers)."""
    import re

    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def run_sequence(args: argparse.Namespace, images: list[Path], out: Path | None) -> int:
    """`--sequence`: order the photos, decode them together, print per-photo and decoded answers."""
    import numpy as np

    from addressclip.atomic import write_text_atomic
    from addressclip.errors import AddressclipError
    from addressclip.serve.images import ImageRejected
    from addressclip.serve.sequences import (
        format_sequence_csv,
        format_sequence_json,
        format_sequence_table,
        order_by_exif_time,
    )

    videos = [path for path in images if path.suffix.lower() in VIDEO_SUFFIXES]
    if videos and (len(images) > 1 or args.order != "name"):
        raise AddressclipError("a video is a sequence of its own: give one video file alone, without --order")
    times: list[float] | None = None
    if args.order == "exif-time":
        images, times = order_by_exif_time(images)
    else:
        images = sorted(images, key=natural_key)
    predictor = predictor_from_args(args)
    pixels, names, kept_times, skipped = [], [], [], []
    if videos:
        from addressclip.serve.video import video_frames

        times = []
        for frame in video_frames(videos[0], args.every_s, max_pixels=predictor.max_pixels):
            pixels.append(predictor.decode(frame.image, frame.name))
            names.append(frame.name)
            times.append(frame.time_s)
        kept_times = times
    for index, path in enumerate([] if videos else images):
        try:
            pixels.append(predictor.decode(path, str(path)))
        except ImageRejected as error:
            skipped.append(str(error))
            continue
        names.append(str(path))
        if times is not None:
            kept_times.append(times[index])
    _report_skips(skipped, len(images))
    if not pixels:
        raise AddressclipError(f"none of the {len(images)} file(s) could be read as an image")
    result = predictor.predict_sequence_pixels(
        np.stack(pixels), names, timestamps=kept_times if times is not None else None, top_k=args.top_k
    )
    if args.format == "json":
        text = format_sequence_json(result, with_geometry=args.geometry)
    elif args.format == "csv":
        text = format_sequence_csv(result)
    else:
        text = format_sequence_table(result)
    if out is not None:
        write_text_atomic(out, text)
        print(f"wrote a sequence of {len(result)} photo(s) to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _sources(images: list[Path], every_s: float, max_pixels: int) -> Iterator[tuple[object, str]]:
    """(what to decode, display name) per photo; a video gives one per sampled frame."""
    for path in images:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            from addressclip.serve.video import video_frames

            for frame in video_frames(path, every_s, max_pixels=max_pixels):
                yield frame.image, frame.name
        else:
            yield path, str(path)


def _shard_sources(folder: str, split: str) -> tuple[Iterator[tuple[object, str]], int]:
    """(JPEG bytes, manifest path) of every image of `split` in the shards, in manifest order, and
    how many there are. The shards alone suffice (the manifest is not read)."""
    from addressclip.data.shards import INDEX_FILE, read_shard_index, shard_samples
    from addressclip.errors import InputError

    index = read_shard_index(folder, check_manifest=False)
    shards = index.of_split(split)
    if not shards:
        present = ", ".join(sorted({s.split for s in index.shards})) or "none"
        raise InputError(
            Path(folder) / INDEX_FILE, "split", f"no shards of split '{split}' (present: {present})"
        )

    def sources() -> Iterator[tuple[object, str]]:
        for shard in shards:
            for row, payload, sample in shard_samples(index.folder / shard.file, with_json=True):
                yield payload, str(sample["path"]) if sample else f"row {row}"

    return sources(), sum(s.rows for s in shards)


def _report_skips(skipped: list[str], total: int) -> None:
    if skipped:
        print(f"skipped {len(skipped)} of {total} file(s):", file=sys.stderr)
        for line in skipped[:MAX_LISTED_SKIPS]:
            print(f"  {line}", file=sys.stderr)
        if len(skipped) > MAX_LISTED_SKIPS:
            print(f"  ... {len(skipped) - MAX_LISTED_SKIPS} more", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from addressclip.atomic import write_text_atomic
    from addressclip.errors import AddressclipError
    from addressclip.serve.formatting import format_csv, format_json, format_table
    from addressclip.serve.images import ImageRejected

    if args.top_k < 1:
        raise AddressclipError(f"--top-k must be at least 1, not {args.top_k}")
    if args.batch_size < 1:
        raise AddressclipError(f"--batch-size must be at least 1, not {args.batch_size}")
    out = output_path(args.out, "--out", want="file")
    if args.shards:
        if args.paths or args.sequence:
            raise AddressclipError("--shards predicts a split of shards: give no PATH and no --sequence")
        images: list[Path] = []
        shard_sources, total = _shard_sources(args.shards, args.split)
        show = total > args.batch_size
    else:
        if not args.paths:
            raise AddressclipError("give PATHs (image or video files, or folders), or --shards DIR")
        images, any_folder = collect_images(args.paths)
        if not images:
            raise AddressclipError(
                f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {' '.join(args.paths)}"
            )
        if args.sequence:
            return run_sequence(args, images, out)
        total = len(images)
        show = any_folder and total > args.batch_size
    if args.order != "name":
        raise AddressclipError("--order orders a sequence; add --sequence")
    predictor = predictor_from_args(args)
    predictions = []
    skipped: list[str] = []
    pixels, names = [], []
    sources = shard_sources if args.shards else _sources(images, args.every_s, predictor.max_pixels)
    for source, name in tqdm(sources, desc="predicting", unit="image", disable=not show, file=sys.stderr):
        try:
            pixels.append(predictor.decode(source, name))
            names.append(name)
        except ImageRejected as error:
            skipped.append(str(error))
        if len(pixels) == args.batch_size:
            predictions.extend(predictor.predict_pixels(np.stack(pixels), args.top_k, names))
            pixels, names = [], []
    if pixels:
        predictions.extend(predictor.predict_pixels(np.stack(pixels), args.top_k, names))
    _report_skips(skipped, total)
    if not predictions:
        raise AddressclipError(f"none of the {total} file(s) could be read as an image")
    if args.format == "json":
        text = format_json(predictions, with_geometry=args.geometry)
    elif args.format == "csv":
        text = format_csv(predictions)
    else:
        text = format_table(predictions)
    if out is not None:
        write_text_atomic(out, text)
        print(f"wrote {len(predictions)} prediction(s) to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
