"""Peak memory of real camera JPEGs through the predictor: a 3264×2448 photo against a 1024×768 one.

Each measurement is its own Python process (so one's peak cannot hide another's), whose peak
resident set size the parent reads with `os.wait4` (`ru_maxrss`, the kernel's high-water mark):

- `import`: `serve.images` imported, nothing else (the floor of the decode rows);
- `decode <photo>`: `serve.images.square_pixels` of the photo at the model's input size (what the
  service does for an upload; JPEG draft decoding keeps it small);
- `predict <photo>`: `addressclip predict PHOTO --model MODEL --format json` (the whole command:
  model, gallery, decode, forward pass).

    .venv/bin/python speed/bench_real_photos.py [--model runs/demo/train/model.pt] \\
        [--out speed/results/real_photos.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from addressclip.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "photos"
LARGE = PHOTOS / "opensfm-berlin" / "03.jpg"
SMALL = PHOTOS / "opensfm-lund" / "01.jpg"
DEFAULT_MODEL = ROOT / "runs" / "demo" / "train" / "model.pt"

IMPORT_ONLY = "import addressclip.serve.images"
DECODE = (
    "import sys; from addressclip.serve.images import square_pixels; "
    "pixels = square_pixels(sys.argv[1], int(sys.argv[2])); assert pixels.shape[0] == 3"
)
PREDICT = "import sys; from addressclip.cli import main; sys.exit(main(sys.argv[1:]))"


def peak_mb(arguments: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one child process; a failed child is an error."""
    started = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    child = subprocess.Popen(
        [sys.executable, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    stderr = child.stderr.read() if child.stderr else b""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(arguments[:3])}... failed: {stderr.decode(errors='replace')[-2000:]}")
    return usage.ru_maxrss / 1024.0, time.perf_counter() - started  # Linux reports KiB


def model_image_size(model: Path) -> int:
    """The model's input size, read in a child: a parent holding the model would hand its own resident
    pages to every child it forks, and the children's peaks would all read as the parent's."""
    code = (
        "import sys; from addressclip.serve.loading import load_predictor; "
        "print(load_predictor(sys.argv[1], calibrate_threshold=False).image_size)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(model)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{model}: cannot load ({done.stderr.strip().splitlines()[-1:]})")
    return int(done.stdout.strip().splitlines()[-1])


def _jpeg_size(data: bytes) -> str:
    """'WxH' from a JPEG's SOF marker (no imaging library in this parent process: see above)."""
    at = 2
    while at + 9 < len(data):
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = (
                int.from_bytes(data[at + 5 : at + 7], "big"),
                int.from_bytes(data[at + 7 : at + 9], "big"),
            )
            return f"{width}x{height}"
        at += 2 + length
    return "?"


def measure(model: Path, photos: list[Path]) -> dict:
    size = model_image_size(model)
    rows: dict[str, dict] = {}
    mb, seconds = peak_mb(["-c", IMPORT_ONLY])
    rows["import"] = {"peak_rss_mb": round(mb, 1), "seconds": round(seconds, 2)}
    for photo in photos:
        with photo.open("rb") as handle:
            shape = _jpeg_size(handle.read())
        label = f"{photo.parent.name}/{photo.name} ({shape}, {photo.stat().st_size / 1e6:.2f} MB)"
        mb, seconds = peak_mb(["-c", DECODE, str(photo), str(size)])
        rows[f"decode {label}"] = {"peak_rss_mb": round(mb, 1), "seconds": round(seconds, 2)}
        command = ["predict", str(photo), "--model", str(model), "--format", "json", "--threads", "1"]
        mb, seconds = peak_mb(["-c", PREDICT, *command])
        rows[f"predict {label}"] = {"peak_rss_mb": round(mb, 1), "seconds": round(seconds, 2)}
    return {"model": str(model), "image_size": size, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="checkpoint, run folder or bundle")
    parser.add_argument("--photos", type=Path, nargs="+", default=[SMALL, LARGE], help="JPEGs to measure")
    parser.add_argument("--out", type=Path, default=ROOT / "speed" / "results" / "real_photos.json")
    args = parser.parse_args()
    if not args.model.exists():
        raise SystemExit(f"{args.model}: no model there; give --model (a checkpoint, run folder or bundle)")
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
        **measure(args.model, args.photos),
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
