"""Files shipped inside the package: the bundled OpenStreetMap extracts (ODbL, see osm/NOTICE.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED_EXTRACTS = {
    "helsinki": "helsinki-centre.osm.pbf",
    "karhula": "karhula.osm.pbf",
}


def bundled_extract(name: str) -> Path:
    """Path of a bundled OSM extract ('helsinki' or 'karhula')."""
    from addressclip.errors import AddressclipError

    try:
        filename = BUNDLED_EXTRACTS[name]
    except KeyError:
        known = ", ".join(sorted(BUNDLED_EXTRACTS))
        raise AddressclipError(f"unknown bundled extract '{name}' (known: {known})") from None
    path = Path(str(resources.files(__name__).joinpath("osm", filename)))
    if not path.is_file():
        raise AddressclipError(f"bundled extract missing: {path} (reinstall addressclip)")
    return path
