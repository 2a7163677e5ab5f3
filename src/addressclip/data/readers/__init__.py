"""Image readers: each turns one source format into an image table plus a report of skipped records.

| format   | function                | GPS from                         | split from            |
|----------|-------------------------|----------------------------------|-----------------------|
| cosplace | `read_cosplace`         | the `@` file name                | `{train,val,test}/` folders |
| json     | `read_annotation_json`  | `@` name, else GPS CSV / EXIF    | —                     |
| csv      | `read_csv_table`        | the `lat`/`lon` columns          | optional `split` column |
| exif     | `read_exif`             | the JPEG's EXIF GPS block        | —                     |

`READERS` is the one registry of formats: each reader module declares a `ReaderSpec` (its read
function and its options), and `addressclip build --format`, its option flags and
`data.build.build_dataset` all come from this table. A new format is one module + one line here.
"""

from addressclip.data.readers import annotation_json, cosplace_list, csv_table, exif
from addressclip.data.readers.annotation_json import (
    DEFAULT_STREET_PATTERN,
    load_annotation_json,
    read_annotation_json,
    street_key_function,
)
from addressclip.data.readers.base import (
    IMAGE_TABLE_COLUMNS,
    ReaderOption,
    ReaderSpec,
    ReadReport,
    ReadResult,
    Skip,
)
from addressclip.data.readers.cosplace import (
    CosplaceName,
    CosplaceNameError,
    format_cosplace_name,
    parse_cosplace_name,
    read_cosplace,
)
from addressclip.data.readers.csv_table import read_csv_table
from addressclip.data.readers.exif import ExifGps, ExifGpsError, read_exif, read_exif_gps

READERS: dict[str, ReaderSpec] = {
    spec.name: spec
    for spec in (
        cosplace_list.READER,
        annotation_json.READER,
        csv_table.READER,
        exif.READER,
    )
}
READER_FORMATS = tuple(READERS)

__all__ = [
    "DEFAULT_STREET_PATTERN",
    "IMAGE_TABLE_COLUMNS",
    "READERS",
    "READER_FORMATS",
    "CosplaceName",
    "CosplaceNameError",
    "ExifGps",
    "ExifGpsError",
    "ReadReport",
    "ReadResult",
    "ReaderOption",
    "ReaderSpec",
    "Skip",
    "format_cosplace_name",
    "load_annotation_json",
    "parse_cosplace_name",
    "read_annotation_json",
    "read_cosplace",
    "read_csv_table",
    "read_exif",
    "read_exif_gps",
    "street_key_function",
]
