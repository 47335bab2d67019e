"""Face alignment speed on a 12-megapixel photo: seconds per photo for JPEG decoding, detection (the photo
downscaled to 1024 px for the detector), landmarks (at full resolution) and the FFHQ alignment to 256 and 1024 px,
with the HOG and (optionally) the CNN detector. The photo is made from a face of ``data/samples`` enlarged to
1,200 px and placed, turned by 10 degrees, in a 4000 x 3000 scene. Prints a Markdown table.

    python benchmarks/bench_align.py                 # HOG detector
    python benchmarks/bench_align.py --cnn --repeats 3
"""

from __future__ import annotations

import argparse
import io
import platform
import time
from pathlib import Path

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import numpy as np
from PIL import Image

from stylegan_lightning.photos import FaceLandmarker, align_face, load_photo
from stylegan_lightning.utils import format_table

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "ffhq" / "00002.jpg"


def twelve_megapixel_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    scene = Image.fromarray(rng.integers(60, 200, (3000, 4000, 3), dtype=np.uint8)).resize((4000, 3000))
    face = Image.open(SAMPLE).convert("RGB").resize((1200, 1200), Image.Resampling.LANCZOS)
    scene.paste(face.rotate(10, Image.Resampling.BICUBIC), (1500, 800))
    buffer = io.BytesIO()
    scene.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def timed(function, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cnn", action="store_true", help="also time dlib's CNN detector")
    args = parser.parse_args()
    data = twelve_megapixel_jpeg()
    rows = []
    for kind in ("hog", "cnn") if args.cnn else ("hog",):
        landmarker = FaceLandmarker(kind)
        decode, photo = timed(lambda: load_photo(data, "photo.jpg"), args.repeats)
        pixels = np.asarray(photo)
        detect, boxes = timed(lambda: landmarker.boxes(pixels), args.repeats)
        points_time, points = timed(lambda: landmarker.landmarks(pixels, boxes[0]), args.repeats)
        for size in (256, 1024):
            align, _ = timed(lambda: align_face(photo, points, size), args.repeats)
            total = decode + detect + points_time + align
            rows.append([kind, f"{photo.size[0]}x{photo.size[1]}", size, round(decode, 3), round(detect, 3),
                         round(points_time, 3), round(align, 3), round(total, 3)])
    print(f"{platform.processor() or platform.machine()}, median of {args.repeats}; faces found: {len(boxes)}\n")
    print(format_table(rows, ["detector", "photo", "aligned px", "decode s", "detect s", "landmarks s", "align s",
                              "total s"]))


if __name__ == "__main__":
    main()
