"""Ordinary photos: FFHQ alignment recovers the face from a turned, scaled and shifted copy, paste-back puts it
back, and odd photos (rotated by EXIF, two faces, none, one pixel, truncated) give the right result or one clear
error."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylegan_lightning.cli import main
from stylegan_lightning.data.errors import BadImageError
from stylegan_lightning.photos import (AlignedFace, FaceLandmarker, NoFaceError, align_faces, feather_mask, ffhq_quad,
                                       load_photo, paste_back)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
FACES = sorted((SAMPLES / "ffhq").glob("*.jpg"))[:3] + sorted((SAMPLES / "celebahq").glob("*.jpg"))[:5]


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def place(face: Image.Image, degrees: float, scale: float, centre: tuple[float, float],
          canvas_size: tuple[int, int] = (900, 800)) -> tuple[Image.Image, np.ndarray]:
    """``face`` turned by ``degrees`` (from +x towards +y), scaled by ``scale`` about its centre and put at
    ``centre`` of a plain canvas; returns the canvas and the 3x3 map from face to canvas coordinates."""
    theta = math.radians(degrees)
    rotation = scale * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    forward = np.eye(3)
    forward[:2, :2] = rotation
    forward[:2, 2] = np.asarray(centre) - rotation @ (np.asarray(face.size) / 2)
    inverse = np.linalg.inv(forward)[:2].flatten()  # PIL: canvas point -> face point (continuous coordinates)
    canvas = Image.new("RGB", canvas_size, (90, 120, 150))
    warped = face.transform(canvas_size, Image.Transform.AFFINE, tuple(inverse), Image.Resampling.BICUBIC)
    inside = Image.new("L", face.size, 255).transform(canvas_size, Image.Transform.AFFINE, tuple(inverse))
    canvas.paste(warped, (0, 0), inside)
    return canvas, forward


def test_the_quad_follows_the_ffhq_formula():
    """Eyes at (40, 50) and (60, 50), mouth corners at (42, 75) and (58, 75): x = (45, 0), y = (0, 45), centre
    (50, 52.5)."""
    points = np.zeros((68, 2))
    points[36:42], points[42:48] = (40, 50), (60, 50)
    points[48], points[54] = (42, 75), (58, 75)
    np.testing.assert_allclose(ffhq_quad(points), [[5, 7.5], [5, 97.5], [95, 97.5], [95, 7.5]])
    with pytest.raises(ValueError, match="68 finite"):
        ffhq_quad(np.full((68, 2), np.nan))


def test_a_turned_scaled_shifted_face_is_recovered_and_pasted_back(landmarker):
    """Measured on these 8 faces (angles within +-30 degrees, scales 0.5-2): central PSNR 23-36 dB against the
    alignment of the original photo, corner error at most 2.5 % of the face side, and a paste-back that leaves every
    pixel outside the face untouched and changes those inside by 1-2.5 levels of 255 on average."""
    rng = np.random.default_rng(0)
    psnrs = []
    for path in FACES:
        photo = load_photo(path)
        reference = align_faces(photo, 256, False, landmarker)[0]
        degrees, scale = rng.uniform(-30, 30), rng.uniform(0.5, 2.0)
        canvas, forward = place(photo, degrees, scale, (450 + rng.uniform(-60, 60), 400 + rng.uniform(-60, 60)))
        face = align_faces(canvas, 256, False, landmarker)[0]
        ours, theirs = np.asarray(face.image, np.float64), np.asarray(reference.image, np.float64)
        centre = slice(48, 208)
        psnrs.append(10 * np.log10(255**2 / np.mean((ours[centre, centre] - theirs[centre, centre]) ** 2)))
        expected = reference.quad @ forward[:2, :2].T + forward[:2, 2]
        side = np.hypot(*(expected[3] - expected[0]))
        assert np.abs(face.quad - expected).max() < 0.04 * side, (path.name, degrees, scale)
        back = np.asarray(paste_back(canvas, face), np.float64)
        covered = np.asarray(Image.new("L", (256, 256), 255).transform(
            canvas.size, Image.Transform.AFFINE, tuple(face.photo_to_aligned().flatten()), Image.Resampling.BILINEAR)) > 0
        difference = np.abs(back - np.asarray(canvas, np.float64)).mean(2)
        assert difference[~covered].max() == 0 and difference[covered].mean() < 4.0, path.name
    print("central PSNR per face", np.round(psnrs, 2))
    assert min(psnrs) > 18.0 and np.median(psnrs) > 26.0


def test_paste_back_of_an_edit_changes_only_the_face(landmarker):
    photo = load_photo(FACES[0])
    canvas, _ = place(photo, 10.0, 1.5, (450, 400))
    face = align_faces(canvas, 128, False, landmarker)[0]
    edited = Image.new("RGB", (512, 512), (255, 0, 0))  # another size than the aligned face
    result = np.asarray(paste_back(canvas, face, edited, feather=0.2), np.float64)
    centre = np.round(face.quad.mean(0)).astype(int)
    assert tuple(result[centre[1], centre[0]]) == (255, 0, 0)
    assert tuple(result[5, 5]) == (90, 120, 150) and result.shape == (800, 900, 3)
    mask = feather_mask(100, 0.2)
    assert mask[50, 50] == 1.0 and mask[0, 50] == pytest.approx(0.025) and mask[10, 50] == pytest.approx(0.525)


def test_exif_orientation_is_applied_before_alignment(tmp_path, landmarker):
    photo = load_photo(FACES[1])
    stored = photo.transpose(Image.Transpose.ROTATE_90)  # what a phone stores, with orientation 6 ("turn right")
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, quality=95, exif=exif)
    upright = load_photo(path)
    assert upright.size == photo.size
    face, reference = align_faces(upright, 128, False, landmarker)[0], align_faces(photo, 128, False, landmarker)[0]
    assert np.abs(face.quad - reference.quad).max() < 0.03 * np.hypot(*(reference.quad[3] - reference.quad[0]))


def test_two_faces_are_found_largest_first_and_a_photo_without_one_is_one_error(landmarker):
    small, large = load_photo(FACES[2]).resize((180, 180)), load_photo(FACES[3]).resize((300, 300))
    photo = Image.new("RGB", (640, 360), (200, 200, 200))
    photo.paste(small, (20, 90))
    photo.paste(large, (320, 30))
    faces = align_faces(photo, 64, True, landmarker)
    assert len(faces) == 2 and [f.index for f in faces] == [0, 1]
    assert faces[0].quad.mean(0)[0] > 320 and faces[1].quad.mean(0)[0] < 200  # the large one first
    assert len(align_faces(photo, 64, False, landmarker)) == 1
    for empty in (Image.new("RGB", (300, 200), (10, 200, 30)), Image.new("RGB", (1, 1))):
        with pytest.raises(NoFaceError, match="no face found"):
            align_faces(empty, 64, True, landmarker, source="empty.png")


def test_truncated_and_non_image_files_are_one_clear_error(tmp_path):
    data = FACES[0].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "notes.jpg").write_text("not a photo")
    for name in ("cut.jpg", "notes.jpg"):
        with pytest.raises(BadImageError, match=name):
            load_photo(tmp_path / name)


def test_align_tool_writes_faces_and_json_that_paste_back(tmp_path, capsys, landmarker):
    photo = load_photo(FACES[4])
    canvas, _ = place(photo, -15.0, 1.2, (450, 400))
    canvas.save(tmp_path / "group.png")
    Image.new("RGB", (64, 64), (0, 0, 0)).save(tmp_path / "blank.png")
    out = tmp_path / "aligned"
    assert main(["align", str(tmp_path / "group.png"), str(tmp_path / "blank.png"), "--out", str(out),
                 "--size", "128"]) == 0
    captured = capsys.readouterr()
    assert "blank.png: no face found" in captured.err and "group_face0.png" in captured.out
    metadata = json.loads((out / "group_face0.json").read_text())
    assert metadata["face_index"] == 0 and metadata["photo_size"] == [900, 800] and len(metadata["landmarks"]) == 68
    face = AlignedFace.from_metadata(Image.open(out / "group_face0.png"), metadata)
    back = np.asarray(paste_back(canvas, face), np.float64)
    assert np.abs(back - np.asarray(canvas, np.float64)).mean() < 1.0
    assert main(["align", str(tmp_path / "blank.png"), "--out", str(tmp_path / "none")]) == 2
    assert "no face was aligned" in capsys.readouterr().err
    assert main(["align", str(tmp_path / "missing.jpg")]) == 2


@pytest.mark.parametrize("kind", ["RGBA png", "grayscale png", "16-bit grayscale png", "CMYK jpeg", "webp",
                                  "avif", "heic"])
def test_photos_in_every_everyday_format_are_aligned(tmp_path, landmarker, kind):
    photo = load_photo(FACES[0])
    suffix = {"webp": ".webp", "avif": ".avif", "heic": ".heic", "CMYK jpeg": ".jpg"}.get(kind, ".png")
    path = tmp_path / f"photo{suffix}"
    if kind == "RGBA png":
        photo.convert("RGBA").save(path)
    elif kind == "grayscale png":
        photo.convert("L").save(path)
    elif kind == "16-bit grayscale png":
        Image.fromarray((np.asarray(photo.convert("L"), np.uint16) * 257)).save(path)
    elif kind == "CMYK jpeg":
        photo.convert("CMYK").save(path, quality=95)
    elif kind == "heic":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.from_pillow(photo).save(path, quality=90)
    else:
        photo.save(path, quality=90)
    loaded = load_photo(path)
    assert loaded.mode == "RGB" and loaded.size == photo.size
    face = align_faces(loaded, 64, False, landmarker)[0]
    reference = align_faces(photo, 64, False, landmarker)[0]
    assert np.abs(face.quad - reference.quad).max() < 0.05 * np.hypot(*(reference.quad[3] - reference.quad[0]))


def test_a_framing_is_a_sub_square_of_the_ffhq_square(landmarker):
    from stylegan_lightning.photos import FRAMINGS, framed_quad
    from stylegan_lightning.photos.arguments import FRAMING_CHOICES

    assert set(FRAMING_CHOICES) == set(FRAMINGS)
    square = np.array([[0.0, 0.0], [0.0, 100.0], [100.0, 100.0], [100.0, 0.0]])
    np.testing.assert_allclose(framed_quad(square, (0.25, 0.5, 0.75, 1.0)), [[25, 50], [25, 100], [75, 100], [75, 50]])
    photo = load_photo(FACES[0])
    full = align_faces(photo, 256, False, landmarker)[0]
    tight = align_faces(photo, 64, False, landmarker, framing="utkface-64")[0]
    left, top, right, bottom = FRAMINGS["utkface-64"]
    crop = full.image.crop((round(left * 256), round(top * 256), round(right * 256), round(bottom * 256)))
    expected = np.asarray(crop.resize((64, 64), Image.Resampling.LANCZOS), np.float64)
    assert 10 * np.log10(255**2 / np.mean((np.asarray(tight.image, np.float64) - expected) ** 2)) > 25
    with pytest.raises(ValueError, match="unknown framing"):
        framed_quad(square, "instagram")
