"""Real camera files (tests/data/photos, OpenSfM sample data): EXIF GPS, a 3264×2448 JPEG through
`predict` and the service, EXIF orientation, and the peak memory of a large photo."""

import base64
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import piexif
import pytest
from PIL import Image

from addressclip.cli import main
from addressclip.data.readers import READERS
from addressclip.serve.app import ServerThread, create_app
from addressclip.serve.images import square_pixels
from addressclip.serve.loading import load_predictor
from addressclip.serve.predictor import AddressPredictor

PHOTOS = Path(__file__).parent / "data" / "photos"
LARGE = PHOTOS / "opensfm-berlin" / "03.jpg"
SMALL = PHOTOS / "opensfm-lund" / "01.jpg"
ROOT = Path(__file__).resolve().parent.parent


def expected_gps() -> dict[str, tuple[float, float]]:
    """folder/file -> (lat, lon) as written in each folder's exif_gps.csv."""
    found = {}
    for table in sorted(PHOTOS.glob("*/exif_gps.csv")):
        with table.open(newline="") as handle:
            for row in csv.DictReader(handle):
                found[f"{table.parent.name}/{row['file']}"] = (float(row["lat"]), float(row["lon"]))
    return found


def test_vendored_photos_are_real_camera_files_with_their_notice():
    expected = expected_gps()
    assert len(expected) == 30 and sorted(PHOTOS.glob("*/*.jpg")) == sorted(PHOTOS / k for k in expected)
    assert "mapillary" in (PHOTOS / "LICENSE-OpenSfM.txt").read_text().lower()
    with Image.open(LARGE) as image:
        assert (image.format, image.size) == ("JPEG", (3264, 2448))


def test_exif_reader_returns_the_gps_of_every_photo():
    expected = expected_gps()
    result = READERS["exif"].read(PHOTOS, paths_list=None, strict=True, progress=False)
    assert result.report.kept == len(expected) and not result.report.skips
    got = {str(row.path): (row.lat, row.lon) for row in result.frame.itertuples()}
    assert set(got) == set(expected)
    for name, (lat, lon) in expected.items():
        assert got[name] == pytest.approx((lat, lon), abs=1e-6), name


@pytest.fixture(scope="module")
def predictor(trained_world) -> AddressPredictor:
    return load_predictor(trained_world.checkpoint)


def test_predict_command_accepts_the_large_jpeg(trained_world, capsys):
    code = main(
        ["predict", str(LARGE), str(SMALL), "--model", str(trained_world.checkpoint), "--format", "json"]
    )
    assert code == 0
    predictions = json.loads(capsys.readouterr().out)
    assert [Path(p["source"]).name for p in predictions] == ["03.jpg", "01.jpg"]
    assert all(len(p["matches"]) == 5 and p["top1_score"] is not None for p in predictions)
    # the default flag: mahalanobis on image features, its score in the answer
    assert all(p["out_of_city"] == (p["in_city_score"] < p["threshold"]) for p in predictions)
    model = str(trained_world.checkpoint)
    assert (
        main(["predict", str(LARGE), "--model", model, "--format", "json", "--out-of-city-score", "margin"])
        == 0
    )
    (margin,) = json.loads(capsys.readouterr().out)
    top = margin["matches"]
    assert margin["in_city_score"] == pytest.approx(top[0]["score"] - top[1]["score"], abs=2e-6)
    assert margin["out_of_city"] == (margin["in_city_score"] < margin["threshold"])


def test_service_accepts_the_large_jpeg(predictor):
    data = LARGE.read_bytes()
    expected = predictor.predict_one(data, top_k=3)
    with (
        ServerThread(create_app(predictor)) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        multipart = client.post(
            "/v1/predict", params={"top_k": 3}, files={"image": ("03.jpg", data, "image/jpeg")}
        )
        as_json = client.post("/v1/predict", json={"image": base64.b64encode(data).decode(), "top_k": 3})
    for response in (multipart, as_json):
        assert response.status_code == 200, response.text
        body = response.json()
        assert [m["address_id"] for m in body["matches"]] == [m.address_id for m in expected.matches]
        assert body["top1_score"] == pytest.approx(expected.top1_score, abs=1e-6)


def _with_orientation(path: Path, orientation: int) -> bytes:
    """The same JPEG bytes (pixels untouched) with the EXIF Orientation tag set."""
    exif = piexif.load(str(path))
    exif["0th"][piexif.ImageIFD.Orientation] = orientation
    out = io.BytesIO()
    piexif.insert(piexif.dump(exif), path.read_bytes(), out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("orientation", "turn"),
    [(6, Image.Transpose.ROTATE_270), (8, Image.Transpose.ROTATE_90), (3, Image.Transpose.ROTATE_180)],
)
def test_exif_orientation_is_honoured(predictor, orientation, turn):
    """6: a quarter turn clockwise to view, 8: anticlockwise, 3: half a turn. The tagged photo's view
    is the view of the photo turned by hand (to within draft-decoding rounding); ignoring the tag
    gives a very different view."""
    size = predictor.image_size
    with Image.open(SMALL) as photo:
        by_hand = square_pixels(photo.transpose(turn), size).astype(np.int16)
        plain = square_pixels(photo, size).astype(np.int16)  # a caller's upright PIL image stays as is
    data = _with_orientation(SMALL, orientation)
    for decoded in (predictor.decode(data), square_pixels(Image.open(io.BytesIO(data)), size)):
        decoded = decoded.astype(np.int16)
        assert np.abs(decoded - by_hand).mean() < 2.0
        assert np.abs(decoded - plain).mean() > 20.0


def test_broken_exif_block_does_not_reject_the_photo(predictor):
    data = bytearray(_with_orientation(SMALL, 6))
    start = data.find(b"Exif\x00\x00") + 6
    data[start : start + 8] = b"\x00" * 8  # the TIFF header of the EXIF block, destroyed
    assert predictor.decode(bytes(data)).shape == (3, predictor.image_size, predictor.image_size)


@pytest.mark.slow
def test_peak_memory_of_the_large_jpeg_is_bounded(trained_world, tmp_path):
    """The speed script's children (a fresh process each): every peak under 1.5 GB, and decoding the
    12-MP photo adds little to the import floor (draft decoding, not 3264×2448×3 bytes and copies)."""
    out = tmp_path / "real_photos.json"
    script = ROOT / "speed" / "bench_real_photos.py"
    command = [sys.executable, str(script), "--model", str(trained_world.checkpoint), "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 5 and all(row["peak_rss_mb"] < 1536 for row in rows.values())
    large_decode = next(v for k, v in rows.items() if k.startswith("decode opensfm-berlin"))
    assert large_decode["peak_rss_mb"] - rows["import"]["peak_rss_mb"] < 100
