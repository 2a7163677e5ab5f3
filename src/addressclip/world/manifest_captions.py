"""Caption a manifest's images with BLIP (`addressclip caption`): batched, resumable, split over ranks.

The paper captions every training image with BLIP prompted "a street view of". `caption_manifest`
does that for an existing manifest:

* the rows to caption are those with an empty caption (every row with `overwrite`), in manifest order;
  under `torchrun` rank r takes every world_size-th of them, starting at r;
* each rank appends its captions, keyed by the row's image `path`, to parquet parts in the sidecar
  folder `MANIFEST.captions/` (one atomic file per flush, every `flush_every` batches), so a killed run
  loses at most one flush; a rerun skips every row found in any rank's parts (the world size may
  change between runs);
* at the end rank 0 merges the parts into the manifest's `caption` column and rewrites the manifest
  atomically (the other columns and the metadata are kept byte for byte in value); a failure leaves
  the old manifest as it was. The sidecar is removed once every row is captioned.

`settings.json` in the sidecar records the model folder, prompt and token limit: resuming with other
settings is refused, so one caption column is never a mix of two models or prompts.

The model is loaded from a local folder only (`local_files_only=True`): `transformers` never downloads.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from addressclip.atomic import atomic_path, write_text_atomic
from addressclip.errors import ConfigError, InputError

DEFAULT_PROMPT = "a street view of"
SIDECAR_SUFFIX = ".captions"
SETTINGS_FILE = "settings.json"
HOW_TO_GET_BLIP = (
    "save one where there is internet with BlipForConditionalGeneration.from_pretrained("
    "'Salesforce/blip-image-captioning-base').save_pretrained(DIR) and the same for BlipProcessor, "
    "then copy DIR here"
)
# Files a transformers BLIP folder needs: (what, any one of these names).
_REQUIRED_FILES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model config", ("config.json",)),
    ("weights", ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")),
    ("image processor config", ("processor_config.json", "preprocessor_config.json")),
    ("tokenizer", ("tokenizer.json", "vocab.txt")),
)

ImageCaptioner = Callable[[Sequence[object]], list[str]]


@dataclass(frozen=True)
class CaptionSettings:
    """What `addressclip caption` is asked to do (the first three are recorded for resuming)."""

    model: str
    prompt: str = DEFAULT_PROMPT
    max_new_tokens: int = 30
    batch_size: int = 16
    flush_every: int = 10
    overwrite: bool = False
    limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "batch_size", "flush_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.limit is not None and self.limit < 0:
            raise ConfigError(f"--limit must be 0 or more, not {self.limit}")

    def recorded(self) -> dict[str, object]:
        return {"model": self.model, "prompt": self.prompt, "max_new_tokens": self.max_new_tokens}


@dataclass
class CaptionRun:
    """What one rank did, and (on rank 0) what was written."""

    rank: int
    todo: int  # rows of the whole manifest that needed a caption at the start
    skipped: int  # of this rank's slice: already in the sidecar
    captioned: int  # by this rank in this run
    seconds: float
    manifest_written: bool = False
    remaining: int = 0  # rows still without a caption after the merge (rank 0)

    @property
    def images_per_s(self) -> float:
        return self.captioned / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------------------- the model


def check_blip_folder(folder: str | Path) -> Path:
    """The folder, or a one-line error naming what is missing and how to get a BLIP checkpoint."""
    path = Path(folder)
    if not path.is_dir():
        raise InputError(path, None, f"BLIP model folder not found; {HOW_TO_GET_BLIP}")
    for what, names in _REQUIRED_FILES:
        if not any((path / name).is_file() for name in names):
            raise InputError(
                path / names[0], None, f"the BLIP folder lacks its {what} ({' or '.join(names)}); "
                f"{HOW_TO_GET_BLIP}",
            )  # fmt: skip
    return path


class BlipCaptioner:
    """BLIP (`BlipForConditionalGeneration` + `BlipProcessor`) from a local folder, batched.

    `dtype` None: bfloat16 on a GPU, float32 elsewhere.
    """

    def __init__(
        self,
        folder: str | Path,
        device: object = "cpu",
        dtype: str | None = None,
        prompt: str = DEFAULT_PROMPT,
        max_new_tokens: int = 30,
    ) -> None:
        import torch

        from addressclip.extras import require

        path = check_blip_folder(folder)
        transformers = require("transformers", "addressclip caption (BLIP)")
        self.device = torch.device(str(device))
        name = dtype or ("bfloat16" if self.device.type == "cuda" else "float32")
        if name not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"--dtype must be float32, bfloat16 or float16, not '{name}'")
        self.dtype = getattr(torch, name)
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        try:
            self.processor = transformers.BlipProcessor.from_pretrained(str(path), local_files_only=True)
            model = transformers.BlipForConditionalGeneration.from_pretrained(
                str(path), local_files_only=True
            )
        except (OSError, ValueError, KeyError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise InputError(
                path, None, f"cannot load a BLIP model from this folder ({first_line})"
            ) from None
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens

    def __call__(self, images: Sequence[object]) -> list[str]:
        import torch

        if not images:
            return []
        inputs = self.processor(images=list(images), text=[self.prompt] * len(images), return_tensors="pt")
        inputs = {
            key: value.to(self.device, dtype=self.dtype)
            if value.is_floating_point()
            else value.to(self.device)
            for key, value in inputs.items()
        }
        with torch.inference_mode():
            tokens = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        return [text.strip() for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]


# ------------------------------------------------------------------------------------- the sidecar


def sidecar_folder(manifest_path: str | Path) -> Path:
    path = Path(manifest_path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _check_settings(folder: Path, settings: CaptionSettings) -> None:
    wanted = settings.recorded()
    file = folder / SETTINGS_FILE
    if file.is_file():
        try:
            found = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputError(file, None, f"unreadable caption progress settings ({error})") from None
        if found != wanted:
            changed = ", ".join(k for k in wanted if found.get(k) != wanted[k]) or "keys"
            raise ConfigError(
                f"{folder} holds captions made with another {changed} ({found}); rerun with those "
                "settings to resume, or delete the folder to start over"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(file, json.dumps(wanted, indent=2, ensure_ascii=False) + "\n")


def _parts(folder: Path, rank: int | None = None) -> list[Path]:
    pattern = "rank*-part*.parquet" if rank is None else f"rank{rank:04d}-part*.parquet"
    return sorted(folder.glob(pattern))


def read_sidecar(folder: Path) -> dict[str, str]:
    """path -> caption from every rank's parts (a later part wins for a path given twice)."""
    done: dict[str, str] = {}
    for part in _parts(folder):
        try:
            table = pq.read_table(part, columns=["path", "caption"])
        except (pa.ArrowException, OSError, KeyError) as error:
            raise InputError(part, None, f"unreadable caption progress part ({error}); delete it") from None
        done.update(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))
    return done


class _PartWriter:
    """Appends (path, caption) pairs of one rank as numbered, atomically written parquet parts."""

    def __init__(self, folder: Path, rank: int) -> None:
        self.folder, self.rank = folder, rank
        existing = _parts(folder, rank)
        self.next_part = 1 + max((int(p.stem.rsplit("part", 1)[1]) for p in existing), default=-1)
        self.pending: list[tuple[str, str]] = []

    def add(self, paths: Sequence[str], captions: Sequence[str]) -> None:
        self.pending.extend(zip(paths, captions, strict=True))

    def flush(self) -> None:
        if not self.pending:
            return
        paths, captions = zip(*self.pending, strict=True)
        table = pa.table({"path": pa.array(paths, pa.string()), "caption": pa.array(captions, pa.string())})
        target = self.folder / f"rank{self.rank:04d}-part{self.next_part:06d}.parquet"
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)
        self.next_part += 1
        self.pending.clear()


# ---------------------------------------------------------------------------------------- the run


def _open_rgb(path: Path) -> object:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as error:
        raise InputError(path, None, f"cannot open image ({error})") from None


def _batches(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _share(limit: int, rank: int, world_size: int) -> int:
    return limit // world_size + (1 if rank < limit % world_size else 0)


def write_caption_column(manifest_path: Path, captions: list[str | None]) -> None:
    """Replace the manifest's `caption` column, keeping every other column and the metadata; atomic."""
    table = pq.read_table(manifest_path)
    index = table.schema.get_field_index("caption")
    column = pa.array(captions, pa.string())
    if index < 0:
        table = table.append_column(pa.field("caption", pa.string()), column)
    else:
        table = table.set_column(index, table.schema.field(index), column)
    with atomic_path(manifest_path) as tmp:
        pq.write_table(table, tmp)


def caption_manifest(
    manifest_path: str | Path,
    captioner: ImageCaptioner,
    settings: CaptionSettings,
    *,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] = lambda: None,
    progress: bool = True,
    load_threads: int = 4,
) -> CaptionRun:
    """Caption this rank's slice of the manifest's rows (see the module docstring); rank 0 merges."""
    from tqdm import tqdm

    from addressclip.data.manifest import read_manifest

    started = time.perf_counter()
    manifest = read_manifest(manifest_path)
    paths = manifest.frame["path"].astype(str).tolist()
    old = manifest.frame["caption"].tolist() if "caption" in manifest.frame else [None] * len(paths)
    todo = [i for i, c in enumerate(old) if settings.overwrite or not isinstance(c, str) or not c]
    folder = sidecar_folder(manifest.path)
    if todo:
        _check_settings(folder, settings)
    done = read_sidecar(folder) if folder.is_dir() else {}
    mine = todo[rank::world_size]
    left = [i for i in mine if paths[i] not in done]
    skipped = len(mine) - len(left)
    if settings.limit is not None:
        left = left[: _share(settings.limit, rank, world_size)]
    writer = _PartWriter(folder, rank) if left else None
    bar = tqdm(
        total=len(left), desc=f"captioning (rank {rank})", unit="img", disable=None if progress else True
    )
    captioned = 0
    with ThreadPoolExecutor(max_workers=max(1, load_threads)) as pool:
        batches = list(_batches(left, settings.batch_size))

        def load(rows: Sequence[int]):
            return pool.map(lambda i: _open_rgb(manifest.image_root / paths[i]), rows)

        upcoming = load(batches[0]) if batches else None
        for number, rows in enumerate(batches, start=1):
            images = list(upcoming) if upcoming is not None else []
            upcoming = load(batches[number]) if number < len(batches) else None
            texts = captioner(images)
            if len(texts) != len(rows):
                raise ConfigError(f"the captioner returned {len(texts)} captions for {len(rows)} images")
            assert writer is not None
            writer.add([paths[i] for i in rows], [str(t) for t in texts])
            captioned += len(rows)
            bar.update(len(rows))
            if number % settings.flush_every == 0:
                writer.flush()
    if writer is not None:
        writer.flush()
    bar.close()
    run = CaptionRun(rank, len(todo), skipped, captioned, time.perf_counter() - started)
    barrier()
    if rank == 0 and todo:
        merged = read_sidecar(folder) if folder.is_dir() else {}
        captions = [c if isinstance(c, str) else None for c in old]
        for i in todo:
            captions[i] = merged.get(paths[i], captions[i])
        write_caption_column(manifest.path, captions)
        run.manifest_written = True
        run.remaining = sum(1 for i in todo if paths[i] not in merged)
        if run.remaining == 0:
            shutil.rmtree(folder, ignore_errors=True)
    run.seconds = time.perf_counter() - started
    return run
