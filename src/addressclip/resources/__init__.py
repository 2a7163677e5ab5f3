"""Files shipped inside the package: the bundled OpenStreetMap extracts (ODbL, see osm/NOTICE.md).

`BUNDLED_CITIES` names every extract, what it shows, and its role: the *evaluation* cities
(`EVALUATION_CITIES`) are the ones a street CLIP is tested on, so the foundation pretraining must never
see them; every other city is a *training* city (`training_cities()`). osm/README.md says why these.
A city may carry a default box (S,W,N,E): an extract that covers a whole country is rendered on its
towns, not on 160 km² of mountain roads.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class BundledCity:
    """One bundled extract: its file, what it is, and the box it is rendered on by default."""

    name: str
    filename: str
    description: str
    bbox: tuple[float, float, float, float] | None = None  # S, W, N, E degrees; None = the whole file


_CITIES: tuple[BundledCity, ...] = (
    BundledCity("helsinki", "helsinki-centre.osm.pbf", "Helsinki centre, Finland (Nordic city blocks)"),
    BundledCity("karhula", "karhula.osm.pbf", "Karhula (Kotka), Finland (sparse suburb, few shops)"),
    BundledCity("heidelberg", "heidelberg-altstadt.osm.pbf", "Heidelberg Altstadt, Germany (dense old town)",
                (49.4040, 8.6900, 49.4160, 8.7200)),
    BundledCity("porto", "porto-centre.osm.pbf", "Porto Baixa/Cedofeita, Portugal (dense, trees, shops)",
                (41.1415, -8.6185, 41.1525, -8.6035)),
    BundledCity("london", "london-city.osm.pbf", "City of London and Clerkenwell, UK (dense offices)",
                (51.5110, -0.1050, 51.5210, -0.0850)),
    BundledCity("nyc-les", "nyc-lower-east-side.osm.pbf", "Lower East Side, Manhattan, USA (street grid)",
                (40.7170, -73.9940, 40.7238, -73.9838)),
    BundledCity("nyc-west-village", "nyc-west-village.osm.pbf", "West Village, Manhattan, USA (grid edge)",
                (40.728, -74.011, 40.742, -73.996)),
    BundledCity("monaco", "monaco.osm.pbf", "Monaco (steep, dense, nine quarters)",
                (43.7280, 7.4120, 43.7480, 7.4320)),
    BundledCity("moscow", "moscow-centre.osm.pbf", "Moscow centre, Russia (Cyrillic names, wide avenues)",
                (55.752, 37.620, 55.770, 37.655)),
    BundledCity("stockholm", "stockholm-centre.osm.pbf", "Södermalm, Stockholm, Sweden (small)"),
    BundledCity("krems", "krems.osm.gz", "Krems an der Donau, Austria (old town and suburbs)",
                (48.400, 15.580, 48.420, 15.630)),
    BundledCity("liechtenstein", "liechtenstein.osm.pbf", "Vaduz, Liechtenstein (small town, hillside)",
                (47.1280, 9.5050, 47.1550, 9.5350)),
)  # fmt: skip
BUNDLED_CITIES: dict[str, BundledCity] = {city.name: city for city in _CITIES}
BUNDLED_EXTRACTS: dict[str, str] = {city.name: city.filename for city in _CITIES}

# Never in the foundation pretraining: the two demo worlds and the second (dense, old-town) evaluation
# city. Change it here (or pass --exclude to `addressclip atlas`) to hold out other cities.
EVALUATION_CITIES: tuple[str, ...] = ("helsinki", "karhula", "heidelberg")


def training_cities(exclude: tuple[str, ...] | list[str] = EVALUATION_CITIES) -> tuple[str, ...]:
    """The bundled cities a foundation model may be pretrained on (all but `exclude`), in table order."""
    return tuple(city.name for city in _CITIES if city.name not in set(exclude))


def bundled_city(name: str) -> BundledCity:
    """The `BundledCity` called `name`; a one-line error listing the known names otherwise."""
    from addressclip.errors import AddressclipError

    try:
        return BUNDLED_CITIES[name]
    except KeyError:
        known = ", ".join(BUNDLED_CITIES)
        raise AddressclipError(f"unknown bundled extract '{name}' (known: {known})") from None


def bundled_extract(name: str) -> Path:
    """Path of a bundled OSM extract (a name of `BUNDLED_CITIES`, e.g. 'helsinki' or 'porto')."""
    from addressclip.errors import AddressclipError

    filename = bundled_city(name).filename
    path = Path(str(resources.files(__name__).joinpath("osm", filename)))
    if not path.is_file():
        raise AddressclipError(f"bundled extract missing: {path} (reinstall addressclip)")
    return path
