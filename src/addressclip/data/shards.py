"""Sharded streaming data: a manifest's images packed into tar shards, read back as a stream.

Layout (the webdataset convention: one tar member per file, members of a sample share a key):

    DIR/index.json               written last, atomically: format, manifest (relative path) and its
                                 SHA-256, and per shard: file, split, rows, addresses, first
    DIR/{split}-{n:06d}.tar      each sample `{row:09d}.jpg` (the original JPEG bytes) and
                                 `{row:09d}.json` (row, path, address, street, UTM, caption)

`row` is the manifest row; a shard holds consecutive rows of one split (`first` = the position of
its first row among the split's rows), so the labels of a stream come from the manifest and the
shard only carries pixels (the .json is for other readers, e.g. `webdataset.WebDataset`).

Reading (`ShardStream`): per epoch a plan of batches is computed from integers only — shards in
index order, or permuted by (seed, epoch) when the shuffle buffer is on; the concatenated stream
cut into equal contiguous parts per DDP rank; a shuffle buffer simulated over each part; batches
capped per address as the folder path does (`samplers.capped_batches`); every rank keeps the same
number of batches. Loader workers take the rank's batches round-robin and read its shards
sequentially (no per-file stat, no random access), decoding only their own samples. The plan does
not depend on the worker count, and a resume skips the consumed batches without decoding them, so
it continues from the sample where the run stopped. With `shuffle_buffer=0` the stream is the
split's rows in manifest order: its batches are those of the folder path over the same order.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from addressclip.atomic import atomic_path, write_text_atomic
from addressclip.data.dataset import AddressDataset, keep_batch, split_rows
from addressclip.data.manifest import SPLITS, read_manifest
from addressclip.data.pixels import PIXELS_VERSION, square_uint8
from addressclip.data.samplers import capped_batches
from addressclip.digest import file_digest
from addressclip.errors import ConfigError, InputError

INDEX_FILE = "index.json"
SHARD_FORMAT = "addressclip-shards"
SHARD_VERSION = 1
DEFAULT_ROWS_PER_SHARD = 2000


@dataclass(frozen=True)
class ShardEntry:
    file: str
    split: str
    rows: int
    addresses: int
    first: int  # position of the shard's first row among its split's rows


@dataclass
class ShardIndex:
    folder: Path
    manifest: Path
    manifest_sha256: str
    shards: list[ShardEntry]

    def of_split(self, split: str) -> list[ShardEntry]:
        return [s for s in self.shards if s.split == split]

    def to_dict(self) -> dict[str, object]:
        splits = {
            split: {"shards": len(self.of_split(split)), "rows": sum(s.rows for s in self.of_split(split))}
            for split in SPLITS
        }
        return {
            "format": SHARD_FORMAT,
            "version": SHARD_VERSION,
            "manifest": os.path.relpath(self.manifest.resolve(), self.folder.resolve()),
            "manifest_sha256": self.manifest_sha256,
            "splits": splits,
            "shards": [asdict(s) for s in self.shards],
        }


def is_shard_folder(path: str | Path) -> bool:
    return (Path(path) / INDEX_FILE).is_file()


def read_shard_index(folder: str | Path, check_manifest: bool = True) -> ShardIndex:
    """The index of a shard folder; a manifest changed since the shards were written is refused."""
    folder = Path(folder)
    path = folder / INDEX_FILE
    if not path.is_file():
        raise InputError(path, None, "shard index not found (write it with `addressclip shard`)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(path, None, f"not a readable shard index ({error})") from None
    if raw.get("format") != SHARD_FORMAT or raw.get("version") != SHARD_VERSION:
        raise InputError(path, "format", f"expected {SHARD_FORMAT} version {SHARD_VERSION}")
    try:
        shards = [ShardEntry(**entry) for entry in raw["shards"]]
        index = ShardIndex(folder, (folder / raw["manifest"]).resolve(), raw["manifest_sha256"], shards)
    except (KeyError, TypeError) as error:
        raise InputError(path, "shards", f"malformed shard index ({error})") from None
    if check_manifest and file_digest(index.manifest) != index.manifest_sha256:
        raise InputError(
            path, "manifest_sha256", f"{index.manifest} changed since the shards were written; re-shard it"
        )
    return index


def _add_member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(payload), 0, 0o644
    tar.addfile(info, io.BytesIO(payload))


def write_shards(
    manifest_path: str | Path,
    out: str | Path,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    progress: bool = True,
) -> ShardIndex:
    """Pack every split of a manifest into tar shards under `out` (see the module doc)."""
    if rows_per_shard < 1:
        raise ConfigError(f"--rows-per-shard must be at least 1, not {rows_per_shard}")
    manifest = read_manifest(manifest_path)
    frame = manifest.frame.reset_index(drop=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries: list[ShardEntry] = []
    bar = tqdm(total=len(frame), desc="shards", unit="img", disable=not progress, leave=False)
    for split in SPLITS:
        rows = split_rows(frame, [split])
        for number, first in enumerate(range(0, len(rows), rows_per_shard)):
            chunk = rows[first : first + rows_per_shard]
            name = f"{split}-{number:06d}.tar"
            with atomic_path(out / name) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
                for row in chunk.tolist():
                    record = frame.iloc[row]
                    image = manifest.image_path(str(record["path"]))
                    try:
                        payload = image.read_bytes()
                    except OSError as error:
                        raise InputError(image, None, f"cannot read image ({error})") from None
                    key = f"{row:09d}"
                    _add_member(tar, f"{key}.jpg", payload)
                    _add_member(tar, f"{key}.json", _sample_json(row, record))
            addresses = int(frame["address_id"].iloc[chunk].nunique())
            entries.append(ShardEntry(name, split, len(chunk), addresses, first))
            bar.update(len(chunk))
    bar.close()
    index = ShardIndex(out, manifest.path, file_digest(manifest.path), entries)
    write_text_atomic(out / INDEX_FILE, json.dumps(index.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return index


def _sample_json(row: int, record) -> bytes:
    def text(value: object) -> str | None:
        return value if isinstance(value, str) else None

    sample = {
        "row": row,
        "path": str(record["path"]),
        "address_id": str(record["address_id"]),
        "address": str(record["address"]),
        "street_id": str(record["street_id"]),
        "street": str(record["street"]),
        "utm_e": float(record["utm_e"]),
        "utm_n": float(record["utm_n"]),
        "caption": text(record["caption"]),
        "city": text(record.get("city")),
        "split": str(record["split"]),
    }
    return json.dumps(sample, ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------------------------------ reading


def shuffle_buffer_order(positions: np.ndarray, buffer: int, rng: np.random.Generator) -> np.ndarray:
    """The order a shuffle buffer of `buffer` samples gives a stream (0 or 1: unchanged). Computed on
    integers, so the plan is known before a byte is read."""
    if buffer <= 1 or len(positions) <= 1:
        return np.asarray(positions, dtype=np.int64)
    stream = np.asarray(positions, dtype=np.int64).tolist()
    held = stream[:buffer]
    picks = rng.integers(0, buffer, size=max(0, len(stream) - buffer)).tolist()
    out: list[int] = []
    for incoming, pick in zip(stream[buffer:], picks, strict=True):
        pick %= len(held)
        out.append(held[pick])
        held[pick] = incoming
    out.extend(np.asarray(held, dtype=np.int64)[rng.permutation(len(held))].tolist())
    return np.asarray(out, dtype=np.int64)


class StagedImages:
    """The image source of a streamed `AddressDataset`: images decoded from a shard are staged by
    manifest row just before their batch is built (a stand-in for `ManifestImages`)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.staged: dict[int, np.ndarray] = {}

    def take(self, rows) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.staged.pop(int(r)) for r in rows]))


class ShardStream:
    """This rank's batches of one split, streamed from shards; the training loop's batch source.

    Same surface as `AddressBatchSampler` where the loop needs it (`global_batch_size`,
    `batches_per_epoch`), plus `loader(epoch, start, ...)`. `dataset` must be an `AddressDataset`
    over the split's rows (in manifest order) whose images are a `StagedImages`.
    """

    def __init__(
        self,
        index: ShardIndex,
        split: str,
        dataset: AddressDataset,
        batch_size: int,
        max_per_address: int = 0,
        seed: int = 0,
        shuffle_buffer: int = 0,
        rank: int = 0,
        world_size: int = 1,
        interpolation: str = "bicubic",
    ) -> None:
        if not isinstance(dataset.images, StagedImages):
            raise ConfigError("a shard stream fills its dataset's images: give it StagedImages")
        self.shards = index.of_split(split)
        total = sum(s.rows for s in self.shards)
        if total != len(dataset):
            raise InputError(
                index.folder / INDEX_FILE,
                "rows",
                f"{total} '{split}' rows in shards, {len(dataset)} in the manifest",
            )
        self.folder = index.folder
        self.dataset = dataset
        self.batch_size = batch_size
        self.max_per_address = max_per_address
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.rank = rank
        self.world_size = world_size
        self.interpolation = interpolation
        self._plans: dict[int, list[np.ndarray]] = {}

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def _shard_order(self, epoch: int) -> list[ShardEntry]:
        if self.shuffle_buffer <= 0:
            return list(self.shards)
        order = np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.shards))
        return [self.shards[i] for i in order]

    def _rank_range(self, epoch: int, rank: int) -> tuple[list[ShardEntry], int, int]:
        """Shards in epoch order and this rank's [start, end) in their concatenated stream."""
        shards = self._shard_order(epoch)
        per_rank = sum(s.rows for s in shards) // self.world_size
        return shards, rank * per_rank, (rank + 1) * per_rank

    def _rank_plan(self, epoch: int, rank: int) -> list[np.ndarray]:
        shards, start, end = self._rank_range(epoch, rank)
        stream = np.concatenate([np.arange(s.first, s.first + s.rows) for s in shards])[start:end]
        rng = np.random.default_rng([self.seed, epoch, 2, rank])
        order = shuffle_buffer_order(stream, self.shuffle_buffer, rng)
        return capped_batches(order, self.dataset.labels, self.batch_size, self.max_per_address)

    def plan(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches (dataset indices) of `epoch`; every rank keeps as many as the fewest."""
        if epoch not in self._plans:
            plans = [self._rank_plan(epoch, r) for r in range(self.world_size)]
            keep = min(len(p) for p in plans)
            self._plans = {epoch: plans[self.rank][:keep]}
        return self._plans[epoch]

    def batches_per_epoch(self, epoch: int = 0) -> int:
        return len(self.plan(epoch))

    def loader(
        self, epoch: int, start: int = 0, num_workers: int = 0, pin_memory: bool = False
    ) -> torch.utils.data.DataLoader:
        """A DataLoader over this rank's batches of `epoch` from batch `start` on (a resume)."""
        return torch.utils.data.DataLoader(
            _EpochStream(self, epoch, start),
            batch_size=None,
            collate_fn=keep_batch,
            num_workers=num_workers,
            pin_memory=pin_memory,
            generator=torch.Generator(),
        )

    # ---- one worker's part ------------------------------------------------------------------
    def iterate(self, epoch: int, start: int, worker: int, workers: int) -> Iterator:
        plan = self.plan(epoch)
        mine = [plan[j] for j in range(start + worker, len(plan), workers)]
        if not mine:
            return
        wanted = {int(i) for batch in mine for i in batch}
        held: dict[int, bytes] = {}
        images: StagedImages = self.dataset.images  # type: ignore[assignment]
        next_batch = 0
        for position, payload in self._read(epoch):
            if position in wanted:
                held[position] = payload
            while next_batch < len(mine) and all(int(i) in held for i in mine[next_batch]):
                batch = mine[next_batch]
                for i in batch.tolist():
                    row = int(self.dataset.rows[i])
                    images.staged[row] = self._decode(held.pop(i), row)
                yield self.dataset.__getitems__(batch.tolist())
                next_batch += 1
            if next_batch == len(mine):
                return

    def _decode(self, payload: bytes, row: int) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(payload)) as image:
                return square_uint8(image, self.dataset.images.size, self.interpolation)
        except (OSError, ValueError) as error:
            raise InputError(
                self.folder, f"row {row}", f"cannot decode the shard's image ({error})"
            ) from None

    def _read(self, epoch: int) -> Iterator[tuple[int, bytes]]:
        """(dataset index, JPEG bytes) of this rank's part of the stream, read sequentially."""
        shards, start, end = self._rank_range(epoch, self.rank)
        offset = 0
        for shard in shards:
            low, high = max(start - offset, 0), min(end - offset, shard.rows)
            offset += shard.rows
            if low >= high:
                continue
            for local, (key, payload) in enumerate(self._samples(shard)):
                if local >= high:
                    break
                if local < low:
                    continue
                index = shard.first + local
                if key != int(self.dataset.rows[index]):
                    raise InputError(
                        self.folder / shard.file, "key", f"sample {key} where manifest row "
                        f"{int(self.dataset.rows[index])} was expected; re-shard the manifest",
                    )  # fmt: skip
                yield index, payload

    def _samples(self, shard: ShardEntry) -> Iterator[tuple[int, bytes]]:
        for row, payload, _ in shard_samples(self.folder / shard.file):
            yield row, payload


def shard_samples(path: Path, with_json: bool = False) -> Iterator[tuple[int, bytes, dict | None]]:
    """(manifest row, JPEG bytes, the sample's .json or None) of one shard in order: a streaming read
    (members never stat-ed, nothing seeked), the .json parsed only when asked for."""
    try:
        with open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r|") as tar:
            pending: tuple[int, bytes] | None = None
            for member in tar:
                key, _, extension = member.name.partition(".")
                if extension not in ("jpg", "json") or (extension == "json" and not with_json):
                    continue
                data = tar.extractfile(member)
                assert data is not None
                payload = data.read()
                if extension == "jpg":
                    if pending is not None:
                        yield pending[0], pending[1], None
                    pending = (int(key), payload)
                    if not with_json:
                        yield pending[0], pending[1], None
                        pending = None
                elif pending is not None and int(key) == pending[0]:
                    yield pending[0], pending[1], json.loads(payload)
                    pending = None
            if pending is not None:
                yield pending[0], pending[1], None
    except (OSError, tarfile.TarError, ValueError) as error:
        raise InputError(path, None, f"cannot read shard ({error})") from None


def decode_payloads(
    payloads: list[bytes], size: int, interpolation: str, names: list[str], workers: int = 0
) -> np.ndarray:
    """(N, 3, size, size) uint8 of encoded images, a thread per core (Pillow releases the GIL);
    a payload that does not decode is an InputError naming it."""
    out = np.empty((len(payloads), 3, size, size), dtype=np.uint8)

    def one(i: int) -> None:
        try:
            with Image.open(io.BytesIO(payloads[i])) as image:
                out[i] = square_uint8(image, size, interpolation)
        except (OSError, ValueError) as error:
            raise InputError(names[i], None, f"cannot decode the shard's image ({error})") from None

    workers = workers or max(1, min(8, os.cpu_count() or 1))
    if workers == 1 or len(payloads) < 2:
        for i in range(len(payloads)):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, range(len(payloads))))
    return out


class ShardImages:
    """Every manifest row's image read from shards: the stand-in for `ManifestImages` (training's
    validation) and `EvalImages` (evaluation, feature extraction) when the data is sharded.

    `take(rows)` reads the shards holding the rows sequentially through one cursor, so rows asked
    for in manifest order (how evaluation and feature extraction go through a split) are one
    streaming pass, with no per-file stat; rows behind the cursor reopen their shard. Decoded images
    are kept in memory when all rows fit in `budget` bytes (0: never).
    """

    def __init__(
        self, index: ShardIndex, frame, size: int, interpolation: str = "bicubic", budget: int = 0
    ) -> None:
        self.index = index
        self.size = size
        self.interpolation = interpolation
        self.names = [str(p) for p in frame["path"]]
        self.paths = [Path(name) for name in self.names]  # manifest paths, for naming only
        self.shard_of = np.full(len(frame), -1, dtype=np.int64)
        self.local = np.zeros(len(frame), dtype=np.int64)
        for split in {s.split for s in index.shards}:
            rows = split_rows(frame, [split])
            for number, shard in enumerate(index.shards):
                if shard.split == split:
                    part = rows[shard.first : shard.first + shard.rows]
                    self.shard_of[part] = number
                    self.local[part] = np.arange(len(part))
        fits = budget > 0 and len(frame) * 3 * size * size <= budget
        self.array = np.empty((len(frame), 3, size, size), dtype=np.uint8) if fits else None
        self.decoded = np.zeros(len(frame), dtype=bool)
        self._cursor: tuple[int, int, Iterator] | None = None  # shard, next local position, reader

    def __len__(self) -> int:
        return len(self.names)

    @property
    def cache_key(self) -> str:
        """What identifies the decoded set (the feature store's key): the shards' manifest digest."""
        return f"shards-{self.index.manifest_sha256}-{self.size}-{self.interpolation}-{PIXELS_VERSION}"

    def payloads(self, rows: np.ndarray) -> list[bytes]:
        """The encoded images of `rows` (manifest rows), in the order asked."""
        rows = np.asarray(rows, dtype=np.int64)
        absent = rows[self.shard_of[rows] < 0]
        if len(absent):
            raise InputError(
                self.index.folder / INDEX_FILE, "shards", f"manifest row {absent[0]} is in no shard"
            )
        found: dict[int, bytes] = {}
        for row in sorted(set(rows.tolist()), key=lambda r: (self.shard_of[r], self.local[r])):
            found[row] = self._payload(int(self.shard_of[row]), int(self.local[row]), row)
        return [found[r] for r in rows.tolist()]

    def _payload(self, shard: int, local: int, row: int) -> bytes:
        if self._cursor is None or self._cursor[0] != shard or self._cursor[1] > local:
            entry = self.index.shards[shard]
            self._cursor = (shard, 0, shard_samples(self.index.folder / entry.file))
        number, position, reader = self._cursor
        for key, payload, _ in reader:
            position += 1
            if position - 1 == local:
                self._cursor = (number, position, reader)
                if key != row:
                    file = self.index.folder / self.index.shards[shard].file
                    raise InputError(file, "key", f"sample {key} where manifest row {row} was expected; "
                                     "re-shard the manifest")  # fmt: skip
                return payload
        raise InputError(self.index.folder / self.index.shards[shard].file, None, "shard ends early")

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        names = [self.names[r] for r in rows.tolist()]
        return decode_payloads(self.payloads(rows), self.size, self.interpolation, names)

    def take(self, rows) -> torch.Tensor:
        rows = np.asarray(rows, dtype=np.int64)
        if self.array is None:
            return torch.from_numpy(self._decode(rows))
        missing = np.unique(rows[~self.decoded[rows]])
        if len(missing):
            self.array[missing] = self._decode(missing)
            self.decoded[missing] = True
        return torch.from_numpy(self.array[rows])


class _EpochStream(torch.utils.data.IterableDataset):
    """One epoch of a `ShardStream` from batch `start`, split across the DataLoader's workers."""

    def __init__(self, stream: ShardStream, epoch: int, start: int) -> None:
        self.stream, self.epoch, self.start = stream, epoch, start

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return self.stream.iterate(self.epoch, self.start, worker, workers)
